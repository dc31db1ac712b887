package policy

import (
	"go.yaml.in/yaml/v3"

	"github.com/approvebot/approvebot"
	"github.com/approvebot/approvebot/policy/confnode"
)

// Platform is a platform package's part in the rules: it reads its own
// section of the file and its side of each approver group (with their
// defaults and checks), and says whom a side lets decide. Policy keeps what
// it reads opaque; the platform's package reads its section back from
// Config.Section.
type Platform interface {
	// Name is the platform's key in the file, both for its top-level
	// section and for approver groups' sides, and its name in
	// approvebot.Destination.Platform and approvebot.Approver.Platform.
	Name() string
	// ParseSection reads the platform's top-level section n, reporting
	// problems to r. It returns the section, or nil when n could not be
	// read at all (the platform then counts as not configured).
	ParseSection(r *confnode.Reader, n *yaml.Node, f File) any
	// ParseSide reads a group's side n, at key path at. section is what
	// ParseSection returned, nil when the file has no such section. ok is
	// false when n could not be read at all.
	ParseSide(r *confnode.Reader, n *yaml.Node, at string, section any, f File) (side approvebot.Side, ok bool)
	// Member reports whether a, as the platform identified them, is
	// someone side lets decide.
	Member(side approvebot.Side, a approvebot.Approver) bool
	// Deciders lists the people side names, for checking that a quorum can
	// be met; open is true when the side also admits people not known here
	// (members of a user group).
	Deciders(side approvebot.Side) (people []string, open bool)
	// DescribeSection and DescribeSide say what the section and a side
	// hold, for approvebot check.
	DescribeSection(section any) string
	DescribeSide(side approvebot.Side) string
}

// Inbox is an optional Platform method, of a platform that shows a stage's
// requests in one place of its own (approvebot's web inbox) rather than in
// chat: a decision made there says so, and names the chat channels that
// could not show the request. InboxName is how it is named ("the web
// inbox").
type Inbox interface {
	InboxName() string
}

// SecretChecker is an optional Platform method: what approvebot check
// refuses in the platform's section (as ParseSection returned it) beyond
// what reading it demands, each problem naming its key (a Slack signing
// secret shorter than those Slack issues).
type SecretChecker interface {
	WeakSecrets(section any) []string
}

// File is what a platform's section may depend on elsewhere in the file.
type File struct {
	// PublicURL is public_url ("" when unset), and PublicURLLine its line.
	PublicURL     string
	PublicURLLine int
	// Demo is set when the file is read for approvebot demo, whose own
	// loopback sign-in stands in for an identity provider.
	Demo bool
}

// Platforms are the platforms approvebot is built with, in the order they
// were registered: sections are read, and destinations listed, in it.
type Platforms []Platform

// Get returns the named platform, or nil.
func (ps Platforms) Get(name string) Platform {
	for _, p := range ps {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// Names lists the platforms' names in order.
func (ps Platforms) Names() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name()
	}
	return out
}

// Eligible reports whether a may decide for group g. A person is matched on
// the platform they clicked from only, by that platform's rule for the
// group's side there (Platform.Member).
func (ps Platforms) Eligible(g approvebot.Group, a approvebot.Approver) bool {
	if a.UserID == "" {
		return false
	}
	p := ps.Get(a.Platform)
	side, ok := g.Side(a.Platform)
	return p != nil && ok && p.Member(side, a)
}
