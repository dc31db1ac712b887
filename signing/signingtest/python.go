// Package signingtest lets tests run the Python package that agents use on
// approvebot's signed decisions (integrations/agt, package approvebot_agt),
// so the Go signer and the Python checker cannot drift apart unnoticed.
package signingtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Python returns python3 with the cryptography package approvebot_agt
// needs, and the other modules named. It is required in CI (the test fails
// without it) and skipped elsewhere.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	for _, m := range append([]string{"cryptography.hazmat.primitives.asymmetric.ed25519"}, modules...) {
		if err != nil {
			break
		}
		err = exec.Command(py, "-c", "import "+m).Run()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 with the cryptography package (and %v) is required in CI: %v", modules, err)
		}
		t.Skipf("python3 with the cryptography package (and %v) not available: %v", modules, err)
	}
	return py
}

// PackageDir is integrations/agt, the directory that holds approvebot_agt.
func PackageDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "integrations", "agt")
}

// Command runs py with approvebot_agt importable, as after
// `pip install ./integrations/agt`.
func Command(ctx context.Context, py string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+PackageDir())
	return cmd
}

// Verifier is `python3 -m approvebot_agt args...`: the command line that
// checks one answer read from stdin (exit 0 and the approver, or exit 1).
func Verifier(ctx context.Context, py string, args ...string) *exec.Cmd {
	return Command(ctx, py, append([]string{"-m", "approvebot_agt"}, args...)...)
}
