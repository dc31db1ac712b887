package signing

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 11, 12, 0, 0, 0, time.UTC)

func testClaims() Claims {
	return Claims{
		Subject:           "jane@company.com",
		ApprovalRequestID: "ar_9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b",
		ActionDigest:      "sha256:9b43418da608a5a5f7cf62303220b4d194b5780d011785b1db7898fd51284990",
		InputDigest:       "sha256:8b7abc766eb71d29b4dfa5703549e6e3187ecbd087534c6ea94fab93db09c3b3",
		Decision:          "allow",
		Status:            "approved",
		IdentityAssurance: "slack_signed_interaction",
		ApproverKind:      "human",
		FinalEntryDigest:  "sha256:" + strings.Repeat("1", 64),
		Audience:          "payments-agent",
		IssuedAt:          t0,
		Expiry:            t0.Add(10 * time.Minute),
	}
}

func newSigner(t *testing.T) *Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(key, "approvebot")
}

func TestSignVerifyRoundTrip(t *testing.T) {
	s := newSigner(t)
	tok, err := s.Sign(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(tok, ".")
	hb, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "EdDSA" || h["kid"] != s.KeyID() || h["typ"] != "JWT" || len(h) != 3 {
		t.Errorf("header %v", h)
	}
	claims, err := Verify(s.JWKS(), tok, "approvebot", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"iss": "approvebot", "sub": "jane@company.com", "aud": "payments-agent",
		"iat": float64(t0.Unix()), "nbf": float64(t0.Unix()), "exp": float64(t0.Add(10 * time.Minute).Unix()),
		"approval_request_id": "ar_9b2e4f6a8c0d1e3f5a7b9c1d3e5f7a9b",
		"action_digest":       "sha256:9b43418da608a5a5f7cf62303220b4d194b5780d011785b1db7898fd51284990",
		"input_digest":        "sha256:8b7abc766eb71d29b4dfa5703549e6e3187ecbd087534c6ea94fab93db09c3b3",
		"decision":            "allow", "status": "approved", "identity_assurance": "slack_signed_interaction",
		"approver_kind": "human", "final_entry_digest": "sha256:" + strings.Repeat("1", 64),
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if jti, _ := claims["jti"].(string); len(jti) != 32 {
		t.Errorf("jti %v", claims["jti"])
	}
	if len(claims) != len(want)+1 {
		t.Errorf("claims %v", claims)
	}
	tok2, _ := s.Sign(testClaims())
	c2, _ := Verify(s.JWKS(), tok2, "approvebot", t0)
	if c2["jti"] == claims["jti"] {
		t.Error("two tokens share a jti")
	}
}

func TestVerifyRefuses(t *testing.T) {
	s := newSigner(t)
	tok, err := s.Sign(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	other := newSigner(t)
	otherTok, _ := other.Sign(testClaims())

	// The other key published under this signer's kid.
	var set struct{ Keys []map[string]string }
	_ = json.Unmarshal(other.JWKS(), &set)
	set.Keys[0]["kid"] = s.KeyID()
	swapped, _ := json.Marshal(set)

	parts := strings.Split(tok, ".")
	flip := func(part int) string {
		p := append([]string(nil), parts...)
		b := []byte(p[part])
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		p[part] = string(b)
		return strings.Join(p, ".")
	}
	checkpoint, err := s.SignCheckpoint(Checkpoint{AuditSeq: 1, AuditHead: "sha256:00", At: t0})
	if err != nil {
		t.Fatal(err)
	}
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + s.KeyID() + `"}`))
	hsHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + s.KeyID() + `"}`))

	tests := []struct {
		name, jwks, token, issuer string
		now                       time.Time
		want                      string
	}{
		{"payload byte changed", string(s.JWKS()), flip(1), "approvebot", t0, ""},
		{"signature byte changed", string(s.JWKS()), flip(2), "approvebot", t0, "signature"},
		{"signed by another key", string(s.JWKS()), otherTok, "approvebot", t0, "no key"},
		{"another key under our kid", string(swapped), tok, "approvebot", t0, "signature"},
		{"expired", string(s.JWKS()), tok, "approvebot", t0.Add(10*time.Minute + Leeway + time.Second), "expired"},
		{"not yet valid", string(s.JWKS()), tok, "approvebot", t0.Add(-Leeway - time.Second), "not valid yet"},
		{"other issuer", string(s.JWKS()), tok, "someone-else", t0, "issuer"},
		{"alg none", string(s.JWKS()), noneHeader + "." + parts[1] + ".", "approvebot", t0, ""},
		{"alg HS256", string(s.JWKS()), hsHeader + "." + parts[1] + "." + parts[2], "approvebot", t0, ""},
		{"not a token", string(s.JWKS()), "hello", "approvebot", t0, ""},
		{"a checkpoint, not a decision", string(s.JWKS()), checkpoint, "approvebot", t0, "typ"},
		{"bad JWKS", "{", tok, "approvebot", t0, "JWKS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify([]byte(tt.jwks), tt.token, tt.issuer, tt.now)
			if err == nil {
				t.Fatalf("accepted: %v", c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	// Leeway: just inside it is still fine.
	if _, err := Verify(s.JWKS(), tok, "approvebot", t0.Add(10*time.Minute+Leeway-time.Second)); err != nil {
		t.Errorf("within leeway: %v", err)
	}
}

func TestSignRefusesIncompleteClaims(t *testing.T) {
	s := newSigner(t)
	for name, edit := range map[string]func(*Claims){
		"no subject":     func(c *Claims) { c.Subject = "" },
		"decision maybe": func(c *Claims) { c.Decision = "maybe" },
		"no issue time":  func(c *Claims) { c.IssuedAt = time.Time{} },
		"expiry first":   func(c *Claims) { c.Expiry = c.IssuedAt.Add(-time.Second) },
	} {
		c := testClaims()
		edit(&c)
		if tok, err := s.Sign(c); err == nil {
			t.Errorf("%s: signed %s", name, tok)
		}
	}
}

func TestJWKSShape(t *testing.T) {
	s := newSigner(t)
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys %v", set.Keys)
	}
	k := set.Keys[0]
	x, _ := base64.RawURLEncoding.DecodeString(k["x"].(string))
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] != s.KeyID() ||
		len(x) != ed25519.PublicKeySize || len(k) != 6 {
		t.Errorf("key %v", k)
	}
	// RFC 7638: the thumbprint is the SHA-256 of the required members in
	// lexical order, so any JWK library recomputes the same kid.
	if kid := thumbprint(t, k["x"].(string)); kid != s.KeyID() {
		t.Errorf("kid %s, RFC 7638 thumbprint %s", s.KeyID(), kid)
	}
}

// RFC 8037 appendix A.3 gives an Ed25519 key's thumbprint; check against it.
func TestKeyIDIsRFC8037Thumbprint(t *testing.T) {
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	s := NewSigner(ed25519.NewKeyFromSeed(seed), "approvebot")
	if s.KeyID() != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("kid %s", s.KeyID())
	}
}

func thumbprint(t *testing.T, x string) string {
	t.Helper()
	h := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func FuzzVerify(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := NewSigner(key, "approvebot")
	tok, _ := s.Sign(testClaims())
	f.Add(tok)
	f.Add("a.b.c")
	f.Add(`{"payload":"e30","signatures":[]}`)
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := Verify(s.JWKS(), token, "approvebot", t0)
		if err != nil {
			return
		}
		// Only this signer's tokens verify: the claims are ones it signed.
		if claims["iss"] != "approvebot" || claims["sub"] != "jane@company.com" {
			t.Fatalf("verified unexpected claims %v", claims)
		}
	})
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "signing.pem")
	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %04o, want 0700", di.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the key", len(entries))
	}
	again, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(again) {
		t.Error("second load gave another key")
	}
	// A token signed with the first load verifies with the second's JWKS.
	tok, _ := NewSigner(key, "approvebot").Sign(testClaims())
	if _, err := Verify(NewSigner(again, "approvebot").JWKS(), tok, "approvebot", t0); err != nil {
		t.Error(err)
	}
}

func TestLoadOrCreateKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	tests := []struct {
		name, path, want string
	}{
		{"group readable", write("group.pem", pemOf("PRIVATE KEY", edDER), 0o640), "chmod 600"},
		{"world readable", write("world.pem", pemOf("PRIVATE KEY", edDER), 0o604), "mode 0604"},
		{"not Ed25519", write("ec.pem", pemOf("PRIVATE KEY", ecDER), 0o600), "want an Ed25519 key"},
		{"not PEM", write("junk.pem", []byte("hello"), 0o600), "PKCS#8"},
		{"wrong PEM type", write("rsa.pem", pemOf("RSA PRIVATE KEY", edDER), 0o600), "PKCS#8"},
		{"a directory", dir, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadOrCreateKey(tt.path)
			if err == nil {
				t.Fatalf("loaded %x", k.Public())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
	// The refused file is left as it was.
	if data, _ := os.ReadFile(filepath.Join(dir, "junk.pem")); string(data) != "hello" {
		t.Error("refused key file was changed")
	}
}
