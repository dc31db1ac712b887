package deploy

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// hostCABundle is the CA certificates file the offline image takes in
// place of the distroless base's (the same Debian bundle).
const hostCABundle = "/etc/ssl/certs/ca-certificates.crt"

// entry is one file of the image's filesystem.
type entry struct {
	name     string
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// TestOCIImage assembles, offline and from scratch, the image the
// Dockerfile describes: the files distroless/static provides (CA
// certificates, /etc/passwd with the nonroot user, /tmp) and the files the
// final stage copies, with its USER, ENTRYPOINT, CMD, EXPOSE and VOLUME. It
// writes the image as an OCI layout, reads it back as a runtime would, and
// checks its config and its files: a static binary that runs, and CA
// certificates that parse.
func TestOCIImage(t *testing.T) {
	img := parseDockerfile(t)
	bin := staticBinary(t)
	binData, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(hostCABundle)
	if err != nil {
		t.Fatalf("CA bundle: %v (install Debian's ca-certificates)", err)
	}
	uid, gid := 65532, 65532
	files := []entry{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home/", dir: true, mode: 0o755},
		{name: "home/nonroot/", dir: true, mode: 0o700, uid: uid, gid: gid},
		{name: "tmp/", dir: true, mode: 0o1777},
	}
	// The final stage's COPY lines, with the build stage's outputs.
	for _, c := range img.copies {
		owner := [2]int{}
		if c.Chown != "" {
			owner = [2]int{uid, gid}
		}
		dest := strings.TrimPrefix(c.DestPath, "/")
		for dir := path.Dir(dest); dir != "."; dir = path.Dir(dir) {
			if !slices.ContainsFunc(files, func(e entry) bool { return e.name == dir+"/" }) {
				files = append(files, entry{name: dir + "/", dir: true, mode: 0o755})
			}
		}
		switch src := c.SourcePaths[0]; {
		case src == img.binOut:
			files = append(files, entry{name: dest, mode: 0o755, uid: owner[0], gid: owner[1], data: binData})
		case strings.Contains(img.buildRun, "mkdir -p "+src):
			files = append(files, entry{name: dest + "/", dir: true, mode: 0o755, uid: owner[0], gid: owner[1]})
		default:
			t.Fatalf("COPY %s: not something the build stage makes", src)
		}
	}
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	layerTar := tarOf(t, files)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	image, err := mutate.AppendLayers(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Config = v1.Config{
		User:         img.user,
		Entrypoint:   img.entrypoint,
		Cmd:          img.cmd,
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + "/" + "etc/ssl/certs/ca-certificates.crt"},
		ExposedPorts: map[string]struct{}{},
		Volumes:      map[string]struct{}{},
	}
	for _, p := range img.ports {
		cfg.Config.ExposedPorts[p+"/tcp"] = struct{}{}
	}
	for _, v := range img.volumes {
		cfg.Config.Volumes[v] = struct{}{}
	}
	if image, err = mutate.ConfigFile(image, cfg); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(image); err != nil {
		t.Fatal(err)
	}

	// Read it back from the layout, as a runtime would.
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIManifestSchema1 {
		t.Fatalf("index.json: %v %+v", err, im)
	}
	got, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	gotCfg, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := gotCfg.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/approvebot"}) ||
		!slices.Equal(c.Cmd, []string{"serve", "--config", containerConfig}) {
		t.Errorf("config: user %q entrypoint %v cmd %v", c.User, c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v, want 8080/tcp", c.ExposedPorts)
	}
	if _, ok := c.Volumes[dataDir]; !ok || len(c.Volumes) != 1 {
		t.Errorf("volumes %v, want %s", c.Volumes, dataDir)
	}
	if gotCfg.OS != "linux" || gotCfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", gotCfg.OS, gotCfg.Architecture)
	}

	// The filesystem, flattened as a runtime unpacks it.
	fsys := map[string]*tar.Header{}
	contents := map[string][]byte{}
	rc := mutate.Extract(got)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		fsys[name] = h
		if h.Typeflag == tar.TypeReg {
			contents[name], _ = io.ReadAll(tr)
		}
	}
	for _, sh := range []string{"bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"} {
		if _, ok := fsys[sh]; ok {
			t.Errorf("the image has a shell: /%s", sh)
		}
	}
	entry := strings.TrimPrefix(c.Entrypoint[0], "/")
	h, ok := fsys[entry]
	if !ok || h.Mode&0o111 == 0 {
		t.Fatalf("entrypoint %s is missing or not executable in the image", c.Entrypoint[0])
	}
	unpacked := filepath.Join(t.TempDir(), "approvebot")
	if err := os.WriteFile(unpacked, contents[entry], 0o755); err != nil {
		t.Fatal(err)
	}
	if why, err := staticELF(unpacked); err != nil || why != "" {
		t.Fatalf("the image's binary is not static: %s %v", why, err)
	}
	if out, err := exec.Command(unpacked, "version").Output(); err != nil || !strings.HasPrefix(string(out), "approvebot ") {
		t.Fatalf("the image's binary: %v %q", err, out)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(contents["etc/ssl/certs/ca-certificates.crt"]) {
		t.Fatal("the image's CA certificates do not parse")
	}
	if d, ok := fsys[strings.TrimPrefix(dataDir, "/")]; !ok || d.Typeflag != tar.TypeDir || d.Uid != uid || d.Gid != gid {
		t.Fatalf("data directory %s: %+v", dataDir, d)
	}
	if !strings.Contains(string(contents["etc/passwd"]), ":65532:65532:") {
		t.Fatal("/etc/passwd has no user 65532")
	}
}

// tarOf writes files as a layer tarball with fixed times, so the image is
// the same on every run.
func tarOf(t *testing.T, files []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: mtime, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
