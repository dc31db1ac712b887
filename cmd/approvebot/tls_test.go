package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/bot"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial n,
// and returns it.
func writeCert(t *testing.T, certFile, keyFile string, n int64) *x509.Certificate {
	t.Helper()
	return writeCertFor(t, certFile, keyFile, n, []net.IP{net.ParseIP("127.0.0.1")}, nil)
}

// writeCertFor is writeCert for the given addresses and DNS names.
func writeCertFor(t *testing.T, certFile, keyFile string, n int64, ips []net.IP, names []string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: "approvebot test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: ips, DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The key first, as a renewal that replaces files one by one would.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func TestServesTLSAndReloadsTheCertificate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	certFile, keyFile := filepath.Join(h.dir, "tls.crt"), filepath.Join(h.dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	h.rewriteConfig("listen: 127.0.0.1:0", "listen: 127.0.0.1:0\ntls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile)
	h.start()
	if !strings.HasPrefix(h.url, "https://") {
		t.Fatalf("listening on %s, want https", h.url)
	}
	// Each probe is a new connection, so each sees the certificate served now.
	serial := func() int64 {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get(h.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz over TLS: %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serving certificate %d, want 1", s)
	}
	writeCert(t, certFile, keyFile, 2)
	if s := serial(); s != 2 {
		t.Fatalf("after renewal serving certificate %d, want 2", s)
	}
	// A broken renewal keeps the last good certificate, and says so.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := serial(); s != 2 {
		t.Fatalf("after a broken renewal serving certificate %d, want 2", s)
	}
	h.waitLogged("the renewed certificate does not load; still serving the previous one", 1)
	// Plain HTTP on the TLS port gets nothing useful.
	if resp, err := http.Get("http://" + strings.TrimPrefix(h.url, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
}

func TestServeRefusesAnUnloadableCertificate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.rewriteConfig("listen: 127.0.0.1:0", "listen: 127.0.0.1:0\ntls:\n  cert_file: ${DIR}/missing.crt\n  key_file: ${DIR}/missing.key")
	var out, errOut strings.Builder
	err := run(t.Context(), bot.SystemClock{}, []string{"serve", "--config", h.config}, h.getenv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Fatalf("serve with a missing certificate: %v", err)
	}
}

func TestLogsDurationsAsText(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	h.start()
	h.stop()
	logs := h.logs.String()
	if !strings.Contains(logs, `"grace":"20s"`) || !strings.Contains(logs, `"msg":"listening","url":"`+h.url+`"`) {
		t.Fatalf("logs lack the grace as text or the listening line:\n%s", logs)
	}
}

// Operator commands reach a TLS server on loopback although its
// certificate names only its public DNS name: they trust the certificate
// file the server serves, and nothing else.
func TestOperatorCommandsUnderTLS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig)
	certFile, keyFile := filepath.Join(h.dir, "tls.crt"), filepath.Join(h.dir, "tls.key")
	writeCertFor(t, certFile, keyFile, 1, nil, []string{"approvebot.example.com"})
	h.rewriteConfig("listen: 127.0.0.1:0", "listen: 127.0.0.1:0\ntls:\n  cert_file: "+certFile+"\n  key_file: "+keyFile)
	h.start()
	if out, err := h.reloadCLI(); err != nil || !strings.Contains(out, "reloaded:") {
		t.Fatalf("reload over TLS: %v %s", err, out)
	}
	// Another certificate in the file than the server's is refused.
	other := filepath.Join(h.dir, "other.crt")
	writeCertFor(t, other, filepath.Join(h.dir, "other.key"), 2, nil, []string{"approvebot.example.com"})
	h.rewriteConfig("  cert_file: "+certFile, "  cert_file: "+other)
	if _, err := h.reloadCLI(); err == nil || !strings.Contains(err.Error(), "is not the one in") {
		t.Fatalf("reload trusting another certificate: %v", err)
	}
}
