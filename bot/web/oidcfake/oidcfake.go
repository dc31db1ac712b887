// Package oidcfake is a loopback OpenID Connect provider for tests: a real
// discovery document, a JWKS, an authorization endpoint that signs in
// whoever the test says without a page, and a token endpoint that checks
// the client, the redirect URI, the PKCE verifier (S256) and that each code
// is used once, and returns an RS256-signed ID token. Knobs make it lie the
// ways a provider, or someone in the middle, could.
package oidcfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"time"

	"github.com/approvebot/approvebot/bot/jsonhttp"
	"github.com/go-jose/go-jose/v4"
)

// User is who the authorization endpoint signs in.
type User struct {
	Sub           string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
}

// Tweaks alter the next ID tokens.
type Tweaks struct {
	Issuer   string        // "" : the provider's own
	Audience string        // "" : the client's id
	Expired  bool          // exp in the past
	Nonce    string        // "" : the one the client sent
	Lifetime time.Duration // 0: 5 minutes
}

// Provider is the fake.
type Provider struct {
	srv          *httptest.Server
	key          *rsa.PrivateKey
	signer       jose.Signer
	ClientID     string
	ClientSecret string

	mu      sync.Mutex
	user    User
	tweaks  Tweaks
	codes   map[string]*grant
	used    map[string]bool
	Refused []string // why token requests were refused, in order
}

type grant struct {
	redirect, challenge, nonce string
	user                       User
}

// New starts a provider for one client.
func New(clientID, clientSecret string) *Provider {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "RS256", Use: "sig"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	p := &Provider{key: key, signer: sig, ClientID: clientID, ClientSecret: clientSecret, codes: map[string]*grant{}, used: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	return p
}

// URL is the issuer.
func (p *Provider) URL() string { return p.srv.URL }

// Close stops the provider.
func (p *Provider) Close() { p.srv.Close() }

// SignIn makes u the person the next authorizations sign in.
func (p *Provider) SignIn(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user = u
}

// Tweak changes the next ID tokens.
func (p *Provider) Tweak(t Tweaks) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tweaks = t
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	jsonhttp.Write(w, http.StatusOK, map[string]any{
		"issuer":                                p.URL(),
		"authorization_endpoint":                p.URL() + "/authorize",
		"token_endpoint":                        p.URL() + "/token",
		"jwks_uri":                              p.URL() + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
	})
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	jsonhttp.Write(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

// authorize signs in the configured user at once and sends the browser
// back with a code, as a provider does once its own login is done.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" {
		http.Error(w, "unknown client or response type", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "PKCE (S256) required", http.StatusBadRequest)
		return
	}
	code := random()
	p.mu.Lock()
	p.codes[code] = &grant{redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), user: p.user}
	p.mu.Unlock()
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	v := u.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	refuse := func(why string) {
		p.mu.Lock()
		p.Refused = append(p.Refused, why)
		p.mu.Unlock()
		jsonhttp.Write(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": why})
	}
	if err := r.ParseForm(); err != nil {
		refuse("bad form")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.ClientID || secret != p.ClientSecret {
		refuse("client authentication failed")
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	g := p.codes[code]
	replay := p.used[code]
	delete(p.codes, code)
	p.used[code] = true
	tw := p.tweaks
	p.mu.Unlock()
	switch {
	case replay:
		refuse("code already used")
		return
	case g == nil:
		refuse("unknown code")
		return
	case r.PostForm.Get("redirect_uri") != g.redirect:
		refuse("redirect_uri differs")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		refuse("PKCE verifier does not match the challenge")
		return
	}
	now := time.Now()
	life := tw.Lifetime
	if life == 0 {
		life = 5 * time.Minute
	}
	claims := map[string]any{
		"iss": or(tw.Issuer, p.URL()), "aud": or(tw.Audience, p.ClientID), "sub": g.user.Sub,
		"iat": now.Unix(), "exp": now.Add(life).Unix(), "nonce": or(tw.Nonce, g.nonce),
		"email": g.user.Email, "email_verified": g.user.EmailVerified, "name": g.user.Name,
	}
	if tw.Expired {
		claims["iat"], claims["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	}
	if g.user.Groups != nil {
		claims["groups"] = g.user.Groups
	}
	payload, _ := json.Marshal(claims)
	obj, err := p.signer.Sign(payload)
	if err != nil {
		refuse("signing failed")
		return
	}
	idt, _ := obj.CompactSerialize()
	jsonhttp.Write(w, http.StatusOK, map[string]any{"access_token": random(), "token_type": "Bearer", "expires_in": 300, "id_token": idt})
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func random() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
