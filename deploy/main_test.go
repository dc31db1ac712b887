package deploy

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/approvebot/approvebot/bot/slack"
	"github.com/approvebot/approvebot/bot/teams"
	"github.com/approvebot/approvebot/bot/web"
	"github.com/approvebot/approvebot/policy"
)

// repo is the root of the approvebot source tree.
const repo = ".."

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// goTool is the toolchain that built this test.
func goTool() string {
	//lint:ignore SA1019 runtime.GOROOT is deprecated for binaries copied elsewhere; a test binary runs where it was built.
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// releaseFlags are the build flags the Dockerfile and the release
// instructions use.
var releaseFlags = []string{"-trimpath", "-ldflags=-s -w"}

// staticBinary builds cmd/approvebot once, as the Dockerfile does:
// CGO_ENABLED=0, -trimpath, -ldflags="-s -w".
func staticBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "approvebot-deploy-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "approvebot")
		// -buildvcs=auto: record the revision even where GOFLAGS turns
		// it off, as a release build from a clone does.
		args := append([]string{"build", "-buildvcs=auto"}, releaseFlags...)
		cmd := exec.Command(goTool(), append(args, "-o", binPath, "./cmd/approvebot")...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("CGO_ENABLED=0 go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// staticELF says why the ELF file in data is not statically linked, or "".
func staticELF(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "it has a program interpreter (PT_INTERP)", nil
		}
		if p.Type == elf.PT_DYNAMIC {
			return "it has a dynamic section (PT_DYNAMIC)", nil
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return "", err
	}
	if len(libs) > 0 {
		return fmt.Sprintf("it needs shared libraries %v (DT_NEEDED)", libs), nil
	}
	return "", nil
}

// platforms are the ones approvebot is built with, to read its example
// configurations as it does.
var platforms = policy.Platforms{slack.Platform{}, teams.Platform{}, web.Platform{}}
