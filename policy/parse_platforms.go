package policy

import (
	"fmt"
	"strings"

	"github.com/approvebot/approvebot/policy/confnode"
)

// sections has each platform read its top-level section, in the order the
// platforms were registered. At least one must be configured (but for the
// demo, which has its own sign-in).
func (p *parser) sections(top *confnode.Object, cfg *Config) {
	f := p.file(top, cfg)
	for _, pl := range p.platforms {
		if !top.Has(pl.Name()) {
			continue
		}
		if sec := pl.ParseSection(p.Reader, top.Val[pl.Name()], f); sec != nil {
			cfg.Sections[pl.Name()] = sec
		}
	}
	if len(cfg.Sections) == 0 && !p.demo {
		p.Add(top.Line(), "%s is configured: add at least one of the %s sections", neitherNor(p.platforms.Names()), count(len(p.platforms)))
	}
}

// file is what platforms' sections may depend on elsewhere in the file.
func (p *parser) file(top *confnode.Object, cfg *Config) File {
	return File{PublicURL: cfg.PublicURL, PublicURLLine: top.LineOf("public_url"), Demo: p.demo}
}

// neitherNor is "neither a, b nor c" (or "a" alone).
func neitherNor(names []string) string {
	switch len(names) {
	case 0:
		return "no platform"
	case 1:
		return names[0]
	}
	return "neither " + strings.Join(names[:len(names)-1], ", ") + " nor " + names[len(names)-1]
}

// orList is "a, b or c".
func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func count(n int) string {
	if words := []string{"no", "one", "two", "three", "four", "five", "six"}; n < len(words) {
		return words[n]
	}
	return fmt.Sprint(n)
}

// ReadNotify reads a chat side's notify list (at names the side): whether
// it reaches the listed users directly, and whether it posts to channels
// (the default).
func ReadNotify(r *confnode.Reader, o *confnode.Object, at string) (dm, channels bool) {
	if !o.Has("notify") {
		return false, true
	}
	list, nodes := r.ListNodes(o, "notify")
	for i, n := range list {
		switch n {
		case "channels":
			channels = true
		case "dm":
			dm = true
		default:
			r.Add(nodes[i].Line, "%s.notify: %q is not a way to reach approvers (want channels, dm)", at, n)
		}
	}
	if len(list) == 0 {
		r.Add(o.LineOf("notify"), "%s.notify is empty: list channels, dm or both", at)
	}
	return dm, channels
}

// CheckChatSide insists that a chat platform's side both shows requests
// somewhere and names someone who may decide them there.
func CheckChatSide(r *confnode.Reader, line int, at, platform string, channels, deciders int, who string) {
	switch {
	case channels == 0 && deciders == 0:
		r.Add(line, "%s is empty: list channels and %s", at, who)
	case deciders == 0:
		r.Add(line, "%s: channels set but no %s: nobody could approve from %s", at, who, platform)
	case channels == 0:
		r.Add(line, "%s: %s set but no channels: the request would never be shown on %s", at, who, platform)
	}
}
