package policy

import (
	"path/filepath"

	"github.com/approvebot/approvebot/policy/confnode"
)

// audit reads the audit section: checkpoints go to the log by default, and
// to a file when one is named.
func (p *parser) audit(top *confnode.Object, cfg *Config) {
	audit := p.Object(top.Val["audit"], "audit", "checkpoint_interval", "checkpoints")
	cfg.Audit.CheckpointInterval = p.Duration(audit, "checkpoint_interval", DefaultCheckpointInterval, true)
	var sinks *confnode.Object
	if audit != nil {
		sinks = p.Object(audit.Val["checkpoints"], "audit.checkpoints", "file", "log")
	}
	cfg.Audit.CheckpointFile = p.Str(sinks, "file", confnode.Optional)
	cfg.Audit.CheckpointLog = true
	if sinks != nil && sinks.Has("log") {
		cfg.Audit.CheckpointLog = p.Bool(sinks, "log")
	}
	if f := cfg.Audit.CheckpointFile; f != "" {
		line := sinks.Val["file"].Line
		for _, other := range []struct{ key, path string }{{"store.path", cfg.Store.Path}, {"signing.key_file", cfg.Signing.KeyFile}} {
			if filepath.Clean(f) == filepath.Clean(other.path) {
				p.Add(line, "audit.checkpoints.file is also %s: checkpoints need a file of their own, on another volume than the store", other.key)
			}
		}
	}
}
