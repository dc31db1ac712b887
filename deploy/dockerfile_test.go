package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// dockerImage is what the Dockerfile's final stage makes.
type dockerImage struct {
	base       string
	user       string
	entrypoint []string
	cmd        []string
	ports      []string
	volumes    []string
	copies     []*instructions.CopyCommand
	build      *instructions.Stage // the stage the binary is copied from
	buildRun   string              // its RUN line that builds the binary
	binOut     string              // where that go build writes the binary
	goVersion  string              // ARG GO_VERSION's default
}

// parseDockerfile reads the repository's Dockerfile with BuildKit's own
// parser and instruction reader, as `docker build` does.
func parseDockerfile(t *testing.T) dockerImage {
	t.Helper()
	f, err := os.Open(filepath.Join(repo, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a final stage", len(stages))
	}
	var img dockerImage
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Key == "GO_VERSION" && kv.Value != nil {
				img.goVersion = *kv.Value
			}
		}
	}
	final := stages[len(stages)-1]
	img.base = final.BaseName
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			img.user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT %v is in shell form: the image has no shell", c.CmdLine)
			}
			img.entrypoint = c.CmdLine
		case *instructions.CmdCommand:
			if c.PrependShell {
				t.Errorf("CMD %v is in shell form: the image has no shell", c.CmdLine)
			}
			img.cmd = c.CmdLine
		case *instructions.ExposeCommand:
			img.ports = append(img.ports, c.Ports...)
		case *instructions.VolumeCommand:
			img.volumes = append(img.volumes, c.Volumes...)
		case *instructions.CopyCommand:
			img.copies = append(img.copies, c)
		case *instructions.RunCommand, *instructions.ShellCommand, *instructions.AddCommand:
			t.Errorf("the final stage runs %s: it must only copy files (the base has no shell)", c.Name())
		}
	}
	for i := range stages[:len(stages)-1] {
		s := &stages[i]
		for _, c := range s.Commands {
			run, ok := c.(*instructions.RunCommand)
			if ok && strings.Contains(strings.Join(run.CmdLine, " "), "go build") {
				img.build, img.buildRun = s, strings.Join(run.CmdLine, " ")
				if m := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(img.buildRun); m != nil {
					img.binOut = m[1]
				}
			}
		}
	}
	return img
}

func TestDockerfile(t *testing.T) {
	img := parseDockerfile(t)

	// The final image: distroless static or scratch, non-root by number
	// (Kubernetes' runAsNonRoot can only check a numeric user).
	if !strings.HasPrefix(img.base, "gcr.io/distroless/static") && img.base != "scratch" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static... or scratch", img.base)
	}
	uid, _, _ := strings.Cut(img.user, ":")
	if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) {
		t.Errorf("USER %q, want a numeric non-root user such as 65532:65532", img.user)
	}
	if len(img.entrypoint) != 1 || !strings.HasSuffix(img.entrypoint[0], "/approvebot") {
		t.Errorf("ENTRYPOINT %v, want [\"/.../approvebot\"]", img.entrypoint)
	}
	if !slices.Equal(img.cmd, []string{"serve", "--config", containerConfig}) {
		t.Errorf("CMD %v, want serve --config %s", img.cmd, containerConfig)
	}
	if !slices.Equal(img.ports, []string{"8080"}) {
		t.Errorf("EXPOSE %v, want 8080 (the port the Kubernetes config listens on)", img.ports)
	}
	if !slices.Equal(img.volumes, []string{dataDir}) {
		t.Errorf("VOLUME %v, want [%s]", img.volumes, dataDir)
	}

	// The binary comes from the build stage, built static and stripped.
	if img.build == nil || img.build.Name == "" {
		t.Fatal("no named build stage runs go build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`, "./cmd/approvebot"} {
		if !strings.Contains(img.buildRun, want) {
			t.Errorf("the go build in stage %s lacks %s: %s", img.build.Name, want, img.buildRun)
		}
	}
	if img.binOut == "" {
		t.Fatalf("go build names no -o output: %s", img.buildRun)
	}
	var binCopied, dataCopied bool
	for _, c := range img.copies {
		if c.From != img.build.Name {
			t.Errorf("COPY %v does not come from the build stage", c.SourcePaths)
		}
		if slices.Equal(c.SourcePaths, []string{img.binOut}) && c.DestPath == img.entrypoint[0] {
			binCopied = true
		}
		if c.DestPath == dataDir && c.Chown == img.user {
			dataCopied = true
		}
	}
	if !binCopied {
		t.Errorf("no COPY --from=%s %s %s", img.build.Name, img.binOut, img.entrypoint[0])
	}
	if !dataCopied {
		t.Errorf("the data directory %s is not created owned by %s: a new volume there would not be writable", dataDir, img.user)
	}

	// The Go version the image builds with is the one go.mod wants.
	gomod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil || img.goVersion != string(goLine[1]) {
		t.Errorf("ARG GO_VERSION=%s, go.mod wants go %s", img.goVersion, goLine[1])
	}
	if !strings.Contains(img.build.BaseName, "${GO_VERSION}") {
		t.Errorf("build stage FROM %s does not use GO_VERSION", img.build.BaseName)
	}
}

// Where the image and the manifests put things.
const (
	dataDir         = "/var/lib/approvebot"
	containerConfig = "/etc/approvebot/approvebot.yaml"
)
