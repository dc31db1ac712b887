// Package signingtest lets tests run the Python verifier that agents use on
// approvebot's signed decisions (integrations/agt), so the Go signer and the
// Python checker cannot drift apart unnoticed.
package signingtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Python returns python3 with the cryptography package the verifier needs.
// It is required in CI (the test fails without it) and skipped elsewhere.
func Python(t testing.TB) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import cryptography.hazmat.primitives.asymmetric.ed25519").Run()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 with the cryptography package is required in CI: %v", err)
		}
		t.Skipf("python3 with the cryptography package not available: %v", err)
	}
	return py
}

// VerifierScript is the path of integrations/agt/approvebot_verifier.py.
func VerifierScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "integrations", "agt", "approvebot_verifier.py")
}
