package bot

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/signing"
)

// Checkpoint and receipt files come from outside: another volume, a log
// pipeline, agents. Whatever they hold, reading them never panics, and
// every anchor read is one the key signed.

func fuzzSigner(f *testing.F) (*signing.Signer, *signing.KeySet) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	s := signing.NewSigner(key, "approvebot")
	ks, err := signing.ParseKeySet(s.JWKS())
	if err != nil {
		f.Fatal(err)
	}
	return s, ks
}

func lines(in []byte) int {
	n := 0
	for _, l := range bytes.Split(in, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			n++
		}
	}
	return n
}

func FuzzReadCheckpoints(f *testing.F) {
	s, ks := fuzzSigner(f)
	at := time.Date(2026, 12, 1, 18, 0, 0, 5, time.UTC)
	tok, err := s.SignCheckpoint(signing.Checkpoint{AuditSeq: 7, AuditHead: "sha256:ab", At: at})
	if err != nil {
		f.Fatal(err)
	}
	line, _ := json.Marshal(CheckpointLine{AuditSeq: 7, AuditHead: "sha256:ab", At: at.Format(time.RFC3339Nano), Checkpoint: tok})
	f.Add(line)
	f.Add([]byte(`{"time":"2026-12-01T18:00:00Z","level":"INFO","msg":"audit checkpoint","audit_seq":7,"audit_head":"sha256:ab","checkpoint":"` + tok + `"}`))
	f.Add(append(append(line, "\n\n"...), line...))
	f.Add([]byte(`{"checkpoint":"` + tok + `","audit_seq":8}`))
	f.Add([]byte(`{"checkpoint":"a.b.c"}`))
	f.Add([]byte("{\"checkpoint\":1}\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ReadCheckpoints(bytes.NewReader(in), "cp", ks, "approvebot")
		if err != nil {
			if got != nil || !strings.HasPrefix(err.Error(), "cp line ") && !strings.HasPrefix(err.Error(), "read cp") {
				t.Fatalf("error %q with anchors %v", err, got)
			}
			return
		}
		if len(got) != lines(in) {
			t.Fatalf("%d anchors from %d lines", len(got), lines(in))
		}
		for _, a := range got {
			// Only the seed's key signed anything: whatever verified is what it signed.
			if a.Seq != 7 || a.Digest != "sha256:ab" || !a.At.Equal(at) {
				t.Fatalf("anchor %+v was never signed", a)
			}
		}
	})
}

func FuzzReadReceipts(f *testing.F) {
	s, ks := fuzzSigner(f)
	tok, err := s.Sign(signing.Claims{Subject: "jane@company.com", ApprovalRequestID: "ar_1", Decision: "allow", Status: "approved",
		IssuedAt: time.Unix(1796140000, 0), Expiry: time.Unix(1796140300, 0), AuditSeq: 9, AuditHead: "sha256:cd"})
	if err != nil {
		f.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"approval_request_id": "ar_1", "approved": true, "audit_seq": 9, "audit_head": "sha256:cd", "identity_assertion": tok})
	f.Add(body)
	f.Add([]byte(tok + "\n" + string(body)))
	f.Add([]byte(`{"approval_request_id":"ar_2","identity_assertion":"` + tok + `"}`))
	f.Add([]byte(`{"approved":true}`))
	f.Add([]byte("eyJ.eyJ.x"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ReadReceipts(bytes.NewReader(in), "rc", ks, "approvebot")
		if err != nil {
			if got != nil || !strings.HasPrefix(err.Error(), "rc line ") && !strings.HasPrefix(err.Error(), "read rc") {
				t.Fatalf("error %q with anchors %v", err, got)
			}
			return
		}
		if len(got) != lines(in) {
			t.Fatalf("%d anchors from %d lines", len(got), lines(in))
		}
		for _, a := range got {
			if a.Seq != 9 || a.Digest != "sha256:cd" || !strings.Contains(a.Source, "ar_1") {
				t.Fatalf("anchor %+v was never signed", a)
			}
		}
	})
}

// A line cut short (a crash or a full disk mid-write) is ended before the
// next checkpoint is appended, so the next one stands on its own line.
func TestAppendDurablyEndsATornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	if err := appendDurably(path, []byte("{\"a\":1}\n")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"audit_seq":4,"che`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := appendDurably(path, []byte("{\"b\":2}\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "{\"a\":1}\n{\"audit_seq\":4,\"che\n{\"b\":2}\n"; string(got) != want {
		t.Fatalf("file holds %q, want %q", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint file mode %04o, want 0600", fi.Mode().Perm())
	}
	if err := appendDurably(t.TempDir(), []byte("x\n")); err == nil {
		t.Error("appending to a directory succeeded")
	}
}

func TestLastLine(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"":           "",
		"torn":       "",
		"a\n":        "a",
		"a\nb\n":     "b",
		"a\nb\ntorn": "b",
		"a\n\n":      "",
		strings.Repeat("x", maxAnchorLine+10) + "\nlast\n": "last",
	} {
		path := filepath.Join(dir, "cp")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := lastLine(path)
		if err != nil || string(got) != want {
			t.Errorf("%.20q: %q %v, want %q", content, got, err, want)
		}
	}
	if got, err := lastLine(filepath.Join(dir, "none")); got != nil || err != nil {
		t.Errorf("missing file: %q %v", got, err)
	}
}
