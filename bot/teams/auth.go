package teams

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Bot Framework token rules (platforms.md B1).
const (
	botFrameworkIssuer = "https://api.botframework.com"
	teamsChannelID     = "msteams"
	clockSkew          = 5 * time.Minute
	keysMaxAge         = 24 * time.Hour
	unknownKeyReload   = time.Minute
	maxKeyDocument     = 1 << 20
	minRSABits         = 2048
)

// authError is why an activity was refused. The reason is logged, never
// sent back.
type authError struct {
	status int // 401 or 403
	reason string
}

func (e *authError) Error() string { return e.reason }

func unauthorized(format string, args ...any) error {
	return &authError{status: http.StatusUnauthorized, reason: fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &authError{status: http.StatusForbidden, reason: fmt.Sprintf(format, args...)}
}

// signingKey is one key of the Bot Framework JWKS with the channels it may
// sign for.
type signingKey struct {
	key          *rsa.PublicKey
	endorsements []string
}

// verifiedToken is what a checked JWT says.
type verifiedToken struct {
	claims     jwt.Claims
	serviceURL string
	key        signingKey
}

// tokenValidator checks inbound Bot Framework JWTs. It replaces
// msbotbuilder-go's JwtTokenValidator, which hard-codes the metadata URL,
// downloads it on every request without closing the body, writes its key
// cache without a lock, never reloads on an unknown kid, allows no clock
// skew and skips the endorsement check.
type tokenValidator struct {
	appID       string
	metadataURL string
	client      *http.Client
	now         func() time.Time
	log         *slog.Logger

	fetchMu sync.Mutex // one download at a time

	mu         sync.Mutex
	keys       map[string]signingKey
	loadedAt   time.Time // last successful load
	reloadedAt time.Time // last attempt, to rate-limit unknown-kid reloads
	reloadErr  error     // how the last attempt ended
}

func newTokenValidator(appID, metadataURL string, client *http.Client, now func() time.Time, log *slog.Logger) *tokenValidator {
	return &tokenValidator{appID: appID, metadataURL: metadataURL, client: client, now: now, log: log}
}

// verifyToken checks everything about the bearer token that does not depend
// on the activity: algorithm, signature, issuer, audience and lifetime.
func (v *tokenValidator) verifyToken(ctx context.Context, header string) (*verifiedToken, error) {
	scheme, raw, ok := strings.Cut(header, " ")
	if header == "" {
		return nil, unauthorized("no Authorization header")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, unauthorized("Authorization header is not a Bearer token")
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(raw), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, unauthorized("token is not an RS256 JWT: %v", err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID == "" {
		return nil, unauthorized("token names no signing key (kid)")
	}
	kid := tok.Headers[0].KeyID
	key, err := v.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	var claims jwt.Claims
	var extra struct {
		ServiceURL string `json:"serviceurl"`
	}
	if err := tok.Claims(key.key, &claims, &extra); err != nil {
		return nil, unauthorized("token signature or claims invalid: %v", err)
	}
	if claims.Expiry == nil {
		return nil, unauthorized("token has no exp claim")
	}
	err = claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      botFrameworkIssuer,
		AnyAudience: jwt.Audience{v.appID},
		Time:        v.now(),
	}, clockSkew)
	if err != nil {
		return nil, unauthorized("token rejected (iss %q, aud %q): %v", claims.Issuer, []string(claims.Audience), err)
	}
	return &verifiedToken{claims: claims, serviceURL: extra.ServiceURL, key: key}, nil
}

// checkActivity binds a verified token to the activity it came with.
func checkActivity(tok *verifiedToken, serviceURL, channelID string) error {
	if tok.serviceURL == "" || tok.serviceURL != serviceURL {
		return unauthorized("serviceurl claim %q does not match the activity's serviceUrl %q", tok.serviceURL, serviceURL)
	}
	if channelID != teamsChannelID {
		return forbidden("activity channelId %q is not %q", channelID, teamsChannelID)
	}
	if !slices.Contains(tok.key.endorsements, channelID) {
		return forbidden("signing key is not endorsed for channel %q", channelID)
	}
	return nil
}

// key finds the signing key kid, loading the key set when it is missing or
// older than 24 h, and reloading for an unknown kid at most once a minute
// (keys roll over; an attacker's kid must not make us hammer the endpoint).
func (v *tokenValidator) key(ctx context.Context, kid string) (signingKey, error) {
	v.mu.Lock()
	k, found := v.keys[kid]
	stale := v.keys == nil || v.now().Sub(v.loadedAt) >= keysMaxAge
	mayReload := v.now().Sub(v.reloadedAt) >= unknownKeyReload
	v.mu.Unlock()
	if found && !stale {
		return k, nil
	}
	if !stale && !mayReload {
		return signingKey{}, unauthorized("unknown signing key %q (reload rate-limited)", kid)
	}
	if err := v.reload(ctx); err != nil {
		return signingKey{}, unauthorized("cannot load Bot Framework signing keys: %v", err)
	}
	v.mu.Lock()
	k, found = v.keys[kid]
	v.mu.Unlock()
	if !found {
		return signingKey{}, unauthorized("unknown signing key %q", kid)
	}
	return k, nil
}

// ready loads the keys if they are missing or stale.
func (v *tokenValidator) ready(ctx context.Context) error {
	v.mu.Lock()
	stale := v.keys == nil || v.now().Sub(v.loadedAt) >= keysMaxAge
	v.mu.Unlock()
	if !stale {
		return nil
	}
	return v.reload(ctx)
}

// reload downloads metadata and keys once even when many requests ask at the
// same moment: whoever waited for the lock finds the fresh set and returns.
func (v *tokenValidator) reload(ctx context.Context) error {
	started := v.now()
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	v.mu.Lock()
	if v.keys != nil && !v.reloadedAt.Before(started) {
		err := v.reloadErr
		v.mu.Unlock()
		return err
	}
	v.reloadedAt = v.now()
	v.mu.Unlock()

	keys, err := v.fetchKeys(ctx)
	v.mu.Lock()
	v.reloadErr = err
	if err == nil {
		v.keys = keys
		v.loadedAt = v.now()
	}
	v.mu.Unlock()
	if err != nil {
		v.log.Warn("loading Bot Framework signing keys failed", "metadata_url", v.metadataURL, "err", err)
		return err
	}
	v.log.Info("loaded Bot Framework signing keys", "keys", len(keys))
	return nil
}

func (v *tokenValidator) fetchKeys(ctx context.Context) (map[string]signingKey, error) {
	body, err := v.get(ctx, v.metadataURL)
	if err != nil {
		return nil, fmt.Errorf("openid metadata: %w", err)
	}
	jwksURL, err := parseMetadata(body, v.metadataURL)
	if err != nil {
		return nil, fmt.Errorf("openid metadata %s: %w", v.metadataURL, err)
	}
	body, err = v.get(ctx, jwksURL)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", jwksURL, err)
	}
	return keys, nil
}

func (v *tokenValidator) get(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeyDocument+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if len(body) > maxKeyDocument {
		return nil, fmt.Errorf("GET %s: document larger than %d bytes", u, maxKeyDocument)
	}
	return body, nil
}

// parseMetadata reads the OpenID configuration and returns its jwks_uri.
func parseMetadata(body []byte, metadataURL string) (string, error) {
	var m struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("not JSON: %w", err)
	}
	if m.Issuer != botFrameworkIssuer {
		return "", fmt.Errorf("issuer is %q, want %q", m.Issuer, botFrameworkIssuer)
	}
	if len(m.Algs) > 0 && !slices.Contains(m.Algs, "RS256") {
		return "", fmt.Errorf("id_token_signing_alg_values_supported %v lacks RS256", m.Algs)
	}
	u, err := url.Parse(m.JWKSURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("jwks_uri %q is not an absolute URL", m.JWKSURI)
	}
	// Keys fetched over plain HTTP could be swapped: only allow it when the
	// operator pointed the metadata itself at plain HTTP (a local fake).
	if u.Scheme == "http" && !strings.HasPrefix(metadataURL, "http://") {
		return "", fmt.Errorf("jwks_uri %q is not https", m.JWKSURI)
	}
	return m.JWKSURI, nil
}

// parseJWKS reads the key set, including the Bot Framework's endorsements
// extension, which go-jose's JSONWebKeySet does not keep. Keys that are not
// RSA signing keys of at least 2048 bits are skipped.
func parseJWKS(body []byte) (map[string]signingKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	keys := make(map[string]signingKey)
	for _, raw := range set.Keys {
		var ext struct {
			Kid          string   `json:"kid"`
			Endorsements []string `json:"endorsements"`
		}
		if json.Unmarshal(raw, &ext) != nil || ext.Kid == "" {
			continue
		}
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(raw) != nil {
			continue
		}
		pub, ok := jwk.Key.(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < minRSABits || (jwk.Use != "" && jwk.Use != "sig") {
			continue
		}
		keys[ext.Kid] = signingKey{key: pub, endorsements: ext.Endorsements}
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable RSA signing key in keys")
	}
	return keys, nil
}
