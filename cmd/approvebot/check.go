package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/approvebot/approvebot/policy"
)

// The rules check holds secrets to, beyond what the config parser demands.
const (
	// minDistinct is the fewest different characters a caller or admin token
	// may have. With at least 16 characters that is at least 16 × log2(8) =
	// 48 bits even by the crudest estimate; a repeated character
	// ("aaaaaaaaaaaaaaaa") or a short repeated pattern ("abcabcabc...")
	// fails it, while random tokens pass (`openssl rand -hex 32` gives 64
	// characters out of 16).
	minDistinct = 8
)

// weakSecrets names every secret of cfg that check refuses, and why.
func weakSecrets(cfg *policy.Config) []string {
	var out []string
	weak := func(at, token string) {
		if n := distinct(token); n < minDistinct {
			out = append(out, fmt.Sprintf("%s: weak token: %d different characters, want at least %d (e.g. openssl rand -hex 32)", at, n, minDistinct))
		}
	}
	for i, c := range cfg.Callers {
		if c.Token != "" { // a token given as token_sha256 cannot be judged
			weak(fmt.Sprintf("callers[%d].token (caller %q)", i, c.Name), c.Token)
		}
	}
	if cfg.Admin.Token != "" {
		weak("admin.token", cfg.Admin.Token)
	}
	// What a platform's secrets must be is its own rule.
	for _, p := range cfg.Platforms {
		if sc, ok := p.(policy.SecretChecker); ok {
			out = append(out, sc.WeakSecrets(cfg.Section(p.Name()))...)
		}
	}
	return out
}

func distinct(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}

// setupWarnings names what would make serve fail to start although the
// config itself is valid.
func setupWarnings(cfg *policy.Config) []string {
	var out []string
	dir := filepath.Dir(cfg.Store.Path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		out = append(out, fmt.Sprintf("store.path: the directory %s does not exist: create it (mode 0700) before starting approvebot", dir))
	case err != nil:
		out = append(out, fmt.Sprintf("store.path: cannot read the directory %s: %v", dir, err))
	case !fi.IsDir():
		out = append(out, fmt.Sprintf("store.path: %s is not a directory", dir))
	}
	return out
}

// checkProblems is the error check returns for refused secrets.
func checkProblems(problems []string) error {
	return fmt.Errorf("config refused:\n  %s", strings.Join(problems, "\n  "))
}
