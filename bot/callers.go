package bot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy"
)

// The limits a caller can be over, as named in a 429's "limit".
const (
	LimitRate       = "rate"
	LimitMaxPending = "max_pending"
)

// pendingRetryAfter is what a caller at its cap of pending requests is told
// to wait: a slot frees when a human decides, which nobody can predict.
const pendingRetryAfter = 5 * time.Second

// LimitError refuses a submission because its caller is over one of its
// limits. Nothing was read into the store or shown on chat.
type LimitError struct {
	Caller     string
	Limit      string // LimitRate or LimitMaxPending
	RetryAfter time.Duration
	Message    string
}

func (e *LimitError) Error() string { return e.Message }

// attachError says that an identical request from the same caller is
// already open: the submission is that request again.
type attachError struct{ id string }

func (e *attachError) Error() string { return "identical to open request " + e.id }

// callers keeps each caller's request rate (a token bucket), its count of
// pending requests and, for requests that carry no id of their own
// (legacy bodies without an Idempotency-Key), the open ones by body and
// routing, so an identical one attaches instead of being posted again.
type callers struct {
	clock Clock
	mu    sync.Mutex
	by    map[string]*callerState
}

type callerState struct {
	cfg     policy.Caller
	limiter *rate.Limiter
	pending map[string]string // open request id -> its twin key ("" when it has none)
	twins   map[string]string // twin key -> open request id
}

func newCallers(clock Clock, cfg []policy.Caller) *callers {
	c := &callers{clock: clock, by: map[string]*callerState{}}
	c.configure(cfg)
	return c
}

// configure sets each caller's limits, as a reload changes them: a caller
// keeps the requests it has pending and what is left in its bucket.
func (c *callers) configure(cfg []policy.Caller) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	for _, cl := range cfg {
		burst := max(cl.Burst, 1)
		st := c.by[cl.Name]
		if st == nil {
			c.by[cl.Name] = &callerState{
				cfg:     cl,
				limiter: rate.NewLimiter(rate.Limit(cl.Rate), burst),
				pending: map[string]string{},
				twins:   map[string]string{},
			}
			continue
		}
		st.cfg = cl
		st.limiter.SetLimitAt(now, rate.Limit(cl.Rate))
		st.limiter.SetBurstAt(now, burst)
	}
}

func (c *callers) state(name string) *callerState {
	st := c.by[name]
	if st == nil {
		// A caller the policy does not list (only the engine's own tests
		// submit as one) is held to the defaults.
		st = &callerState{
			cfg:     policy.Caller{Name: name, Rate: policy.DefaultCallerRate, Burst: policy.DefaultCallerBurst, MaxPending: policy.DefaultCallerMaxPending},
			pending: map[string]string{}, twins: map[string]string{},
		}
		st.limiter = rate.NewLimiter(rate.Limit(st.cfg.Rate), st.cfg.Burst)
		c.by[name] = st
	}
	return st
}

// allow takes one request from the caller's bucket, or says how long until
// one is there.
func (c *callers) allow(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state(name)
	now := c.clock.Now()
	r := st.limiter.ReserveN(now, 1)
	if !r.OK() {
		return c.rateError(st, time.Second)
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return c.rateError(st, d)
	}
	return nil
}

func (c *callers) rateError(st *callerState, wait time.Duration) *LimitError {
	return &LimitError{Caller: st.cfg.Name, Limit: LimitRate, RetryAfter: wait,
		Message: fmt.Sprintf("caller %s sent requests faster than its rate (callers[].rate %s, burst %d); nothing was recorded or approved; retry in %s",
			st.cfg.Name, perSecond(st.cfg.Rate), st.cfg.Burst, seconds(ceilSecond(wait)))}
}

// admit counts r as one of its caller's pending requests, unless the caller
// is at its cap, or an identical request (twin) is open: then it refuses
// with a *LimitError or an *attachError. It runs inside the store's
// transaction and may run more than once for one request; added is true
// only for the run that counted it.
func (c *callers) admit(r *approvebot.Request, twin string, notTwinOf string) (added bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state(r.Caller)
	if _, ok := st.pending[r.ID]; ok {
		return false, nil
	}
	if twin != "" {
		if id, ok := st.twins[twin]; ok && id != notTwinOf {
			return false, &attachError{id: id}
		}
	}
	if len(st.pending) >= st.cfg.MaxPending {
		return false, &LimitError{Caller: r.Caller, Limit: LimitMaxPending, RetryAfter: pendingRetryAfter,
			Message: fmt.Sprintf("caller %s has %d requests pending, its limit (callers[].max_pending); nothing was recorded or approved; retry when some are decided",
				r.Caller, len(st.pending))}
	}
	st.pending[r.ID] = twin
	if twin != "" {
		st.twins[twin] = r.ID
	}
	return true, nil
}

// restore counts a pending request found in the store at start, whatever
// the cap now says (it may have been lowered since).
func (c *callers) restore(r *approvebot.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state(r.Caller)
	twin := twinKey(r)
	st.pending[r.ID] = twin
	if twin != "" {
		st.twins[twin] = r.ID
	}
}

// closed forgets a request that is no longer pending (or was never stored).
func (c *callers) closed(caller, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.by[caller]
	if st == nil {
		return
	}
	twin, ok := st.pending[id]
	if !ok {
		return
	}
	delete(st.pending, id)
	if twin != "" && st.twins[twin] == id {
		delete(st.twins, twin)
	}
}

// twinKey identifies a request by its caller's body, for requests that
// carry no id of their own: a legacy body without an Idempotency-Key. Others
// return "" (their id already makes a retry attach). Whether a twin is
// routed the same way is checked when it is found (sameRouting).
func twinKey(r *approvebot.Request) string {
	if r.Schema == approvebot.SchemaV1 || r.IdempotencyKey != "" {
		return ""
	}
	return r.Digest
}

// sameRouting reports whether two requests go to the same approvers.
func sameRouting(a, b approvebot.Chain) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

func ceilSecond(d time.Duration) time.Duration {
	return max(time.Second, time.Duration(math.Ceil(d.Seconds()))*time.Second)
}

func perSecond(r float64) string {
	if r >= 1 && r == math.Trunc(r) {
		return fmt.Sprintf("%.0f/s", r)
	}
	return fmt.Sprintf("%g/m", r*60)
}
