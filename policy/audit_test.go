package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/policy"
)

func TestAuditCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want policy.AuditConfig
	}{
		{doc: "", want: policy.AuditConfig{CheckpointInterval: policy.DefaultCheckpointInterval, CheckpointLog: true}},
		{doc: "audit:\n  checkpoint_interval: 1m\n  checkpoints:\n    file: /mnt/anchor/checkpoints.jsonl\n",
			want: policy.AuditConfig{CheckpointInterval: time.Minute, CheckpointFile: "/mnt/anchor/checkpoints.jsonl", CheckpointLog: true}},
		{doc: "audit: {checkpoint_interval: 0s, checkpoints: {log: false}}\n", want: policy.AuditConfig{}},
		{doc: "audit: {checkpoints: {file: cp.jsonl, log: false}}\n",
			want: policy.AuditConfig{CheckpointInterval: policy.DefaultCheckpointInterval, CheckpointFile: "cp.jsonl"}},
	} {
		cfg, err := Parse([]byte(baseY+tc.doc), nil)
		if err != nil {
			t.Errorf("%q: %v", tc.doc, err)
			continue
		}
		if got := cfg.Summary(); !strings.Contains(got, "\naudit:     ") {
			t.Errorf("%q: summary has no audit line:\n%s", tc.doc, got)
		}
		if cfg.Audit != tc.want || cfg.Audit.Checkpoints() != (tc.want.CheckpointFile != "" || tc.want.CheckpointLog) {
			t.Errorf("%q: %+v, want %+v", tc.doc, cfg.Audit, tc.want)
		}
	}
}

func TestAuditCheckpointErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"audit: {checkpoint_interval: 5}\n":               "line 9: audit.checkpoint_interval: 5 has no unit",
		"audit: {checkpoint_interval: 48h}\n":             "line 9: audit.checkpoint_interval may be at most 24h",
		"audit: {checkpoints: {log: maybe}}\n":            "line 9: audit.checkpoints.log must be true or false",
		"audit: {checkpoints: {path: x}}\n":               `line 9: unknown key "path" in audit.checkpoints (want file, log)`,
		"audit: {checkpoint: {file: x}}\n":                `line 9: unknown key "checkpoint" in audit (want checkpoint_interval, checkpoints)`,
		"audit: {checkpoints: {file: ./approvebot.db}}\n": "line 9: audit.checkpoints.file is also store.path",
		"audit: [checkpoints]\n":                          "line 9: audit must be a mapping",
		"audit:\n  checkpoints:\n    file: ${CP_FILE}\n":  "line 11: audit.checkpoints.file: environment variable CP_FILE is not set",
	} {
		_, err := Parse([]byte(baseY+doc), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", doc, err, want)
		}
	}
}
