package policy

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/approvebot/approvebot/policy/confnode"
)

// MinRetention is the shortest store.retention accepted: a decided request
// stays at least a day, for agents that poll late and operators who look.
const MinRetention = 24 * time.Hour

// maxRetention keeps the cutoff's arithmetic far from overflow.
const maxRetention = 100 * 365 * 24 * time.Hour

var daysPattern = regexp.MustCompile(`^([0-9]+)d$`)

// retention reads store.retention: whole days ("90d") or a Go duration
// with units ("2160h"). Absent or empty gives 0: keep everything.
func (p *parser) retention(o *confnode.Object, key string) time.Duration {
	s := strings.TrimSpace(p.Str(o, key, confnode.Optional))
	if s == "" {
		return 0
	}
	at, line := confnode.Join(o.Path, key), o.Val[key].Line
	var d time.Duration
	if m := daysPattern.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > int64(maxRetention/(24*time.Hour)) {
			p.Add(line, "%s: %s is too long (at most 36500d)", at, s)
			return 0
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		if confnode.WholeNumber(s) {
			p.Add(line, `%s: %s has no unit: write days like "90d" (or a duration like "2160h")`, at, s)
			return 0
		}
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			p.Add(line, `%s: %q is not a duration: write days like "90d" (or a duration like "2160h")`, at, s)
			return 0
		}
		if d > maxRetention {
			p.Add(line, "%s: %s is too long (at most 36500d)", at, s)
			return 0
		}
	}
	if d < MinRetention {
		p.Add(line, "%s must be at least 1d (decided requests are kept at least a day), not %s", at, s)
		return 0
	}
	return d
}

// days writes d in whole days when it is some ("90d"), else as Go does.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
