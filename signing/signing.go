// Package signing owns approvebot's signed decisions: the Ed25519 key that
// signs them, the JWKS that publishes its public half, and the JWT an agent
// receives as "identity_assertion" so it can check who decided, on which
// request and action, without trusting the transport that carried the answer.
package signing

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Leeway is the clock skew Verify tolerates on exp and nbf.
const Leeway = 60 * time.Second

// LoadOrCreateKey reads the PEM PKCS#8 Ed25519 key at path, creating it
// (mode 0600, parent directory 0700 when missing) if there is none. A key
// file others can read is refused rather than used: whoever reads it can
// forge approvals.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("signing key directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs, so both sign
			// with the key that is published.
			return loadKey(path)
		}
		return nil, err
	}
	return priv, nil
}

// writeNew writes data to a new file at path, never over an existing one,
// and only once the data is complete: it is written and synced under a
// temporary name, then linked into place.
func writeNew(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signing-key-*")
	if err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("create signing key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("create signing key %s: %w", path, err)
	}
	return nil
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("signing key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s has mode %04o: group or others can access it, so its signatures prove nothing; run chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: want a PEM \"PRIVATE KEY\" (PKCS#8) block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is a %T, want an Ed25519 key", path, k)
	}
	return priv, nil
}

// Signer signs decisions and audit checkpoints with one key.
type Signer struct {
	key        ed25519.PrivateKey
	kid        string
	issuer     string
	signer     jose.Signer
	checkpoint jose.Signer
	jwks       []byte
}

// NewSigner returns a Signer whose key id is the key's RFC 7638 thumbprint,
// so the id changes whenever the key does.
func NewSigner(key ed25519.PrivateKey, issuer string) *Signer {
	pub := key.Public().(ed25519.PublicKey)
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		panic(fmt.Sprintf("signing: thumbprint of an Ed25519 key: %v", err)) // cannot fail for a valid key
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		panic(fmt.Sprintf("signing: signer for an Ed25519 key: %v", err))
	}
	checkpoint, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(CheckpointType),
	)
	if err != nil {
		panic(fmt.Sprintf("signing: signer for an Ed25519 key: %v", err))
	}
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP",
		"crv": "Ed25519",
		"x":   base64.RawURLEncoding.EncodeToString(pub),
		"kid": kid,
		"alg": "EdDSA",
		"use": "sig",
	}}})
	if err != nil {
		panic(fmt.Sprintf("signing: JWKS: %v", err))
	}
	return &Signer{key: key, kid: kid, issuer: issuer, signer: signer, checkpoint: checkpoint, jwks: jwks}
}

// KeyID is the kid the Signer puts in every token. The server reads it
// from the key set it serves; KeyID is there for tests that check a token
// names the key it was signed with.
func (s *Signer) KeyID() string { return s.kid }

// Issuer is the iss the Signer puts in every token.
func (s *Signer) Issuer() string { return s.issuer }

// JWKS is the public key set to serve at /.well-known/jwks.json.
func (s *Signer) JWKS() []byte { return append([]byte(nil), s.jwks...) }

// Claims is what a decision token asserts.
type Claims struct {
	Subject           string // approver identity (principal)
	ApprovalRequestID string
	ActionDigest      string // schema 1.0 only
	InputDigest       string // schema 1.0 only
	BodyDigest        string // legacy only: sha256 of the request body bytes as received
	Decision          string // allow | deny
	Status            string
	IdentityAssurance string // how the approver was authenticated: slack_signed_interaction, botframework_jwt, system
	ApproverKind      string // human | system
	FinalEntryDigest  string
	Audience          string // the caller's name (optional)
	IssuedAt, Expiry  time.Time
	// AuditSeq and AuditHead are the receipt: the sequence number and
	// digest of the decision's approval_resolved audit record.
	AuditSeq  uint64
	AuditHead string
}

type wireClaims struct {
	Issuer            string `json:"iss"`
	Subject           string `json:"sub"`
	Audience          string `json:"aud,omitempty"`
	IssuedAt          int64  `json:"iat"`
	Expiry            int64  `json:"exp"`
	NotBefore         int64  `json:"nbf"`
	ID                string `json:"jti"`
	ApprovalRequestID string `json:"approval_request_id"`
	ActionDigest      string `json:"action_digest,omitempty"`
	InputDigest       string `json:"input_digest,omitempty"`
	BodyDigest        string `json:"body_digest,omitempty"`
	Decision          string `json:"decision"`
	Status            string `json:"status"`
	IdentityAssurance string `json:"identity_assurance"`
	ApproverKind      string `json:"approver_kind"`
	FinalEntryDigest  string `json:"final_entry_digest,omitempty"`
	AuditSeq          uint64 `json:"audit_seq,omitempty"`
	AuditHead         string `json:"audit_head,omitempty"`
}

// Sign returns c as a compact JWS (a JWT) signed with EdDSA.
func (s *Signer) Sign(c Claims) (string, error) {
	switch {
	case c.Subject == "":
		return "", errors.New("sign decision: no subject")
	case c.Decision != "allow" && c.Decision != "deny":
		return "", fmt.Errorf("sign decision: decision %q, want allow or deny", c.Decision)
	case c.IssuedAt.IsZero() || !c.Expiry.After(c.IssuedAt):
		return "", errors.New("sign decision: expiry must follow issue time")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("sign decision: %w", err)
	}
	payload, err := json.Marshal(wireClaims{
		Issuer:            s.issuer,
		Subject:           c.Subject,
		Audience:          c.Audience,
		IssuedAt:          c.IssuedAt.Unix(),
		Expiry:            c.Expiry.Unix(),
		NotBefore:         c.IssuedAt.Unix(),
		ID:                hex.EncodeToString(jti[:]),
		ApprovalRequestID: c.ApprovalRequestID,
		ActionDigest:      c.ActionDigest,
		InputDigest:       c.InputDigest,
		BodyDigest:        c.BodyDigest,
		Decision:          c.Decision,
		Status:            c.Status,
		IdentityAssurance: c.IdentityAssurance,
		ApproverKind:      c.ApproverKind,
		FinalEntryDigest:  c.FinalEntryDigest,
		AuditSeq:          c.AuditSeq,
		AuditHead:         c.AuditHead,
	})
	if err != nil {
		return "", fmt.Errorf("sign decision: %w", err)
	}
	obj, err := s.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign decision: %w", err)
	}
	return obj.CompactSerialize()
}

// Verify checks a token against a JWKS as an agent would: EdDSA only, a kid
// found in the set, the signature, the issuer, and exp/nbf within Leeway of
// now. It returns the claims.
func Verify(jwks []byte, token, issuer string, now time.Time) (map[string]any, error) {
	keys, err := ParseKeySet(jwks)
	if err != nil {
		return nil, err
	}
	// A decision says typ JWT; a checkpoint, signed with the same key, says
	// otherwise and is refused here even though it lacks a decision's
	// claims anyway.
	payload, err := keys.payload(token, "JWT")
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	if iss, _ := claims["iss"].(string); iss != issuer {
		return nil, fmt.Errorf("issuer %q, want %q", iss, issuer)
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return nil, errors.New("token has no exp")
	}
	if now.After(time.Unix(int64(exp), 0).Add(Leeway)) {
		return nil, errors.New("token expired")
	}
	if raw, present := claims["nbf"]; present {
		nbf, ok := raw.(float64)
		if !ok {
			return nil, errors.New("nbf is not a number")
		}
		if now.Add(Leeway).Before(time.Unix(int64(nbf), 0)) {
			return nil, errors.New("token not valid yet")
		}
	}
	return claims, nil
}

// LoadKey reads the key at path without creating one, with the same checks
// as LoadOrCreateKey (a regular file, readable by its owner only, a PEM
// PKCS#8 Ed25519 key).
func LoadKey(path string) (ed25519.PrivateKey, error) { return loadKey(path) }

// KeySet is a parsed JWKS, for checking many tokens against one set.
type KeySet struct {
	set jose.JSONWebKeySet
}

// ParseKeySet reads a JWKS.
func ParseKeySet(jwks []byte) (*KeySet, error) {
	var ks KeySet
	if err := json.Unmarshal(jwks, &ks.set); err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	return &ks, nil
}

// payload checks a compact JWS's signature against the set and returns what
// it signs. typ, when not "", is the "typ" header the token must carry.
func (ks *KeySet) payload(token, typ string) ([]byte, error) {
	obj, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return nil, fmt.Errorf("parse token: %w", err)
	}
	if len(obj.Signatures) != 1 {
		return nil, errors.New("token must carry one signature")
	}
	h := obj.Signatures[0].Protected
	if typ != "" {
		if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ {
			return nil, fmt.Errorf("token type %q, want %q", got, typ)
		}
	}
	kid := h.KeyID
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	keys := ks.set.Key(kid)
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key %q in the JWKS", kid)
	}
	k := keys[0]
	if k.Algorithm != "" && k.Algorithm != string(jose.EdDSA) {
		return nil, fmt.Errorf("key %q is for %s, not EdDSA", kid, k.Algorithm)
	}
	if _, ok := k.Key.(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("key %q is a %T, want an Ed25519 public key", kid, k.Key)
	}
	payload, err := obj.Verify(k.Key)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return payload, nil
}
