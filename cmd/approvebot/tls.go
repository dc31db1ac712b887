package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in certFile/keyFile and picks up a
// renewed pair on the first handshake after either file changes (cert-manager
// and Kubernetes secret volumes replace the files in place). A pair that does
// not load (half written, mismatched) is logged and the previous one kept, so
// a botched renewal never takes the service down.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate
	stamp  string // the files' sizes and modification times when loaded
	warned string // the stamp last reported as unloadable
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := r.currentStamp()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) currentStamp() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		stamp += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

func (r *certReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// getCertificate is tls.Config.GetCertificate. Two stats per handshake are
// the whole cost of noticing a renewal.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	stamp, err := r.currentStamp()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && stamp != r.stamp && stamp != r.warned {
		if lerr := r.load(stamp); lerr != nil {
			r.warned = stamp
			r.log.Error("tls: the renewed certificate does not load; still serving the previous one", "err", lerr)
		} else {
			r.log.Info("tls: certificate reloaded", "cert_file", r.certFile, "not_after", r.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return r.cert, nil
}

func (r *certReloader) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}
