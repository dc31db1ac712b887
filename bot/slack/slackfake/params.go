package slackfake

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"sync"
)

// params are one call's parameters. A call's are decoded as it arrives,
// except those of a message call (chat.postMessage, chat.update,
// chat.postEphemeral) sent as a form while block checks are off
// (SetBlockChecks): its body is only scanned for the few parameters the
// answer depends on, and kept. The rest, the blocks above all, is decoded
// from it the first time anything reads it (Messages, a Call's Form), once.
// Unescaping a message's blocks was most of what a post cost the fake once
// their checks were off, and the benchmark reads few of them.
type params struct {
	lazy bool
	// With lazy: the first value of each of scannedKeys, and whether the
	// first blocks value sent is not empty.
	head       [len(scannedKeys)]string
	blocksSent bool

	decode sync.Once
	body   []byte     // with lazy: the body as sent, until decoded
	values url.Values // every parameter; with lazy, once decoded
	// With lazy, once decoded: the first blocks value, as Get gives it, and
	// whether it holds an actions block.
	blocks     string
	actionable bool
}

// scannedKeys are the parameters a message call's answer depends on.
var scannedKeys = [...]string{"token", "channel", "text", "ts", "thread_ts", "user"}

// maxScannedParams bounds the parameters of a body scanned. url.ParseQuery
// refuses a query of more than its limit (10000, lower if GODEBUG
// urlmaxqueryparams says so); a body with more than this far lower bound is
// decoded by url.ParseQuery itself, so it is refused exactly as before.
const maxScannedParams = 100

// decodedParams are parameters decoded as they arrived.
func decodedParams(v url.Values) *params { return &params{values: v} }

// Get returns the first value of key, as url.Values.Get does.
func (p *params) Get(key string) string {
	if p.lazy {
		for i, k := range scannedKeys {
			if k == key {
				return p.head[i]
			}
		}
	}
	return p.all().Get(key)
}

// all returns every parameter, decoding them the first time when lazy.
func (p *params) all() url.Values {
	if !p.lazy {
		return p.values
	}
	p.decode.Do(func() {
		// scanParams took the body only if url.ParseQuery takes it whole,
		// without error.
		p.values, _ = url.ParseQuery(string(p.body))
		p.body = nil
		p.blocks = p.values.Get("blocks")
		p.actionable = bytes.Contains([]byte(p.blocks), actionsBlock)
	})
	return p.values
}

// takenBlocks returns the blocks of lazy params as sent, decoding the params
// the first time, and whether they hold an actions block, as takeBlocks
// reports it.
func (p *params) takenBlocks() (json.RawMessage, bool) {
	p.all()
	if p.blocks == "" {
		return nil, false
	}
	return json.RawMessage(p.blocks), p.actionable
}

// scanMethods are the calls whose parameters may be scanned.
var scanMethods = map[string]bool{"chat.postMessage": true, "chat.update": true, "chat.postEphemeral": true}

// scannable reports whether a call's parameters are all in its form body,
// the only place Request.ParseForm would read them from: a POST of that
// media type, without a query.
func scannable(r *http.Request) bool {
	if r.Method != http.MethodPost || r.URL.RawQuery != "" || r.Body == nil {
		return false
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && ct == "application/x-www-form-urlencoded"
}

// readScanned reads a form body and scans it (scanParams). A body the scan
// does not take is decoded whole by url.ParseQuery, as Request.ParseForm
// would, and refused for the same errors.
func readScanned(r *http.Request) (*params, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= maxBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return nil, err
	}
	body := buf.Bytes()
	if p, ok := scanParams(body); ok {
		return p, nil
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	return decodedParams(v), nil
}

// scanParams takes a url-encoded body as lazy params: it unescapes the first
// value of each of scannedKeys and notes whether a first blocks value was
// sent, without unescaping anything else. It reports false, taking nothing,
// when url.ParseQuery would refuse the body (a bad %-escape, a semicolon)
// or the body holds more than maxScannedParams parameters.
func scanParams(body []byte) (*params, bool) {
	if bytes.IndexByte(body, ';') >= 0 || bytes.Count(body, []byte("&")) >= maxScannedParams || !validEscapes(body) {
		return nil, false
	}
	p := &params{lazy: true, body: body}
	var seen [len(scannedKeys)]bool
	blocksSeen := false
	for rest := body; len(rest) > 0; {
		var pair []byte
		pair, rest, _ = bytes.Cut(rest, []byte("&"))
		if len(pair) == 0 {
			continue
		}
		rawKey, rawValue, _ := bytes.Cut(pair, []byte("="))
		key := rawKey
		if bytes.ContainsAny(rawKey, "%+") {
			k, err := url.QueryUnescape(string(rawKey))
			if err != nil {
				return nil, false
			}
			key = []byte(k)
		}
		if string(key) == "blocks" {
			if !blocksSeen {
				blocksSeen, p.blocksSent = true, len(rawValue) > 0
			}
			continue
		}
		for i, k := range scannedKeys {
			if string(key) != k || seen[i] {
				continue
			}
			v, err := url.QueryUnescape(string(rawValue))
			if err != nil {
				return nil, false
			}
			seen[i], p.head[i] = true, v
			break
		}
	}
	return p, true
}

// validEscapes reports whether every % in a url-encoded body begins an
// escape of two hex digits, as url.QueryUnescape demands. Neither & nor =
// is a hex digit, so an escape checked across the whole body is one checked
// within its key or value. A form's blocks are a third escapes: a plain loop
// beats a search per escape.
func validEscapes(body []byte) bool {
	for i := 0; i < len(body); i++ {
		if body[i] != '%' {
			continue
		}
		if i+2 >= len(body) || !isHex[body[i+1]] || !isHex[body[i+2]] {
			return false
		}
		i += 2
	}
	return true
}

var isHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()
