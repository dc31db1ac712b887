package deploy

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// The released binary is static: CGO_ENABLED=0 builds (so nothing in the
// module needs cgo), and the result has no interpreter and no shared
// libraries.
func TestStaticBuild(t *testing.T) {
	bin := staticBinary(t)
	why, err := staticELF(bin)
	if err != nil {
		t.Fatal(err)
	}
	if why != "" {
		t.Fatalf("the CGO_ENABLED=0 build is not static: %s", why)
	}

	// `approvebot version` says what `go version -m` reads from the same
	// build information.
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("approvebot version: %v", err)
	}
	meta, err := exec.Command(goTool(), "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	modLine := regexp.MustCompile(`(?m)^\s+mod\s+(\S+)\s+(\S+)`).FindSubmatch(meta)
	if modLine == nil || string(modLine[1]) != "github.com/approvebot/approvebot" {
		t.Fatalf("go version -m names no module github.com/approvebot/approvebot:\n%s", meta)
	}
	want := "approvebot " + string(modLine[2])
	if rev := regexp.MustCompile(`(?m)vcs\.revision=(\S+)`).FindSubmatch(meta); rev != nil {
		want += " (revision " + string(rev[1])
		if head, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output(); err == nil && strings.TrimSpace(string(head)) != string(rev[1]) {
			t.Errorf("build information names revision %s, the checkout is at %s", rev[1], head)
		}
	} else {
		// The go command finds no repository in a git worktree (.git is a
		// file there) or an exported tree.
		t.Log("built without VCS information: not a plain git clone")
	}
	if !strings.HasPrefix(string(out), want) {
		t.Fatalf("approvebot version printed %q, want it to start with %q", out, want)
	}
	if out2, err := exec.Command(bin, "--version").Output(); err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("--version: %v %q", err, out2)
	}

	// Help through the real binary: usage on stdout, exit 0.
	for _, args := range [][]string{{"--help"}, {"-h"}, {"serve", "--help"}, {"check", "-h"}, {"backup", "-h"},
		{"audit", "--help"}, {"audit", "verify", "-h"}, {"teams", "package", "-h"}, {"version", "-h"}} {
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), "Usage") || stderr.Len() > 0 {
			t.Errorf("approvebot %v: %v\nstdout %q\nstderr %q", args, err, out, stderr.String())
		}
	}
	if err := exec.Command(bin, "frobnicate").Run(); err == nil {
		t.Error("an unknown command exited 0")
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("an unknown command: %v, want exit 2", err)
	}
}

// `go install github.com/approvebot/approvebot/cmd/approvebot@VERSION`
// works: the module, zipped as the module proxy serves it, installs through
// a file-based proxy (dependencies from the local module cache), and the
// installed binary reports that version.
func TestGoInstallAtVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the module from a zip")
	}
	const path, version = "github.com/approvebot/approvebot", "v0.99.0"
	proxy := t.TempDir()
	dir := filepath.Join(proxy, path, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	if err := modzip.CreateFromDir(&zipped, module.Version{Path: path, Version: version}, repo); err != nil {
		t.Fatalf("the module does not zip: %v", err)
	}
	gomod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(gomod, []byte("\nreplace ")) || bytes.Contains(gomod, []byte("\nreplace(")) {
		t.Fatal("go.mod has replace directives: go install ...@version refuses such a module")
	}
	for name, data := range map[string][]byte{
		version + ".zip":  zipped.Bytes(),
		version + ".mod":  gomod,
		version + ".info": []byte(`{"Version":"` + version + `","Time":"2026-01-01T00:00:00Z"}`),
		"list":            []byte(version + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	modcache, err := exec.Command(goTool(), "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	gobin := t.TempDir()
	cmd := exec.Command(goTool(), "install", releaseFlags[0], releaseFlags[1], path+"/cmd/approvebot@"+version)
	cmd.Dir = t.TempDir() // outside any module
	cmd.Env = append(os.Environ(),
		"GOBIN="+gobin, "CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local", "GOSUMDB=off", "GOWORK=off",
		"GOPROXY=file://"+proxy+",file://"+filepath.Join(strings.TrimSpace(string(modcache)), "cache", "download"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s/cmd/approvebot@%s: %v\n%s", path, version, err, out)
	}
	out, err := exec.Command(filepath.Join(gobin, "approvebot"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "approvebot "+version+" ") {
		t.Fatalf("the installed binary says %q (%v), want approvebot %s", out, err, version)
	}
	if why, err := staticELF(filepath.Join(gobin, "approvebot")); err != nil || why != "" {
		t.Fatalf("the installed binary is not static: %s %v", why, err)
	}
}

// `make release` builds static binaries for linux/amd64 and linux/arm64 and
// a SHA256SUMS file that matches them.
func TestMakeRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles twice")
	}
	makeTool, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not installed")
	}
	dist := t.TempDir()
	cmd := exec.Command(makeTool, "release", "DIST="+dist)
	cmd.Dir = repo
	// The go that built this test, first on PATH.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(goTool())+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"approvebot-linux-amd64": elf.EM_X86_64, "approvebot-linux-arm64": elf.EM_AARCH64}
	lines := strings.Split(strings.TrimSpace(string(sums)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("SHA256SUMS:\n%s", sums)
	}
	for _, line := range lines {
		sum, name, ok := strings.Cut(line, "  ")
		machine, known := want[name]
		if !ok || !known {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		path := filepath.Join(dist, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: SHA256SUMS says %s, the file's is %x", name, sum, got)
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", name, f.Machine, machine)
		}
		f.Close()
		if why, err := staticELF(path); err != nil || why != "" {
			t.Errorf("%s is not static: %s %v", name, why, err)
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s keeps its symbol table: -ldflags=-s missing", name)
		}
	}
}
