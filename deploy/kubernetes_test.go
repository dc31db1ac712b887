package deploy

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot/policy"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const k8sDir = "../manifests/kubernetes"

// kube is every object of manifests/kubernetes, decoded strictly.
type kube struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	pvc        *corev1.PersistentVolumeClaim
	secret     *corev1.Secret
	configMap  *corev1.ConfigMap
}

// decodeStrict decodes one YAML document into v: an unknown or duplicate
// field is an error (sigs.k8s.io/yaml turns YAML into JSON and decodes it
// with unknown fields disallowed, as kubectl's strict validation does).
func decodeStrict(doc []byte, v any) error {
	return yaml.UnmarshalStrict(doc, v)
}

func loadKube(t *testing.T) kube {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	var k kube
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				k.deployment = &appsv1.Deployment{}
				obj = k.deployment
			case "v1 Service":
				k.service = &corev1.Service{}
				obj = k.service
			case "v1 PersistentVolumeClaim":
				k.pvc = &corev1.PersistentVolumeClaim{}
				obj = k.pvc
			case "v1 Secret":
				k.secret = &corev1.Secret{}
				obj = k.secret
			case "v1 ConfigMap":
				k.configMap = &corev1.ConfigMap{}
				obj = k.configMap
			default:
				t.Fatalf("%s document %d: unexpected %s %s", f, i+1, tm.APIVersion, tm.Kind)
			}
			if err := decodeStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
		}
	}
	if k.deployment == nil || k.service == nil || k.pvc == nil || k.secret == nil || k.configMap == nil {
		t.Fatalf("manifests lack a Deployment, Service, PersistentVolumeClaim, Secret or ConfigMap: %+v", k)
	}
	return k
}

// The strict decoder is strict: a misspelt field is refused.
func TestKubernetesDecodeIsStrict(t *testing.T) {
	var d appsv1.Deployment
	doc := "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 1\n  stratgy: {type: Recreate}\n"
	if err := decodeStrict([]byte(doc), &d); err == nil || !strings.Contains(err.Error(), "stratgy") {
		t.Fatalf("misspelt field: %v", err)
	}
	doc = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 1\n  replicas: 2\n"
	if err := decodeStrict([]byte(doc), &d); err == nil {
		t.Fatal("duplicate field accepted")
	}
}

// secretsAt lays out the Secret's keys as files in a new directory, as the
// kubelet does where the Secret is mounted, and checks that the container
// mounts it read-only and that its config names every key.
func secretsAt(t *testing.T, k kube, c *corev1.Container, volumes map[string]corev1.Volume, config string) (mountPath, dir string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		v := volumes[m.Name]
		if v.Secret == nil {
			continue
		}
		if v.Secret.SecretName != k.secret.Name {
			t.Fatalf("volume %s mounts Secret %q, the manifests hold %q", m.Name, v.Secret.SecretName, k.secret.Name)
		}
		if !m.ReadOnly {
			t.Errorf("the Secret is mounted writable at %s", m.MountPath)
		}
		if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
			mode := "0644 (the default)"
			if v.Secret.DefaultMode != nil {
				mode = fmt.Sprintf("%#o", *v.Secret.DefaultMode)
			}
			t.Errorf("Secret files mode %s: others may read them", mode)
		}
		mountPath = strings.TrimSuffix(m.MountPath, "/")
	}
	if mountPath == "" {
		t.Fatal("the container mounts no Secret")
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			t.Errorf("env %s carries a secret: secrets are files here, so that a rotated Secret reaches approvebot on reload", e.Name)
		}
	}
	dir = t.TempDir()
	for key, v := range k.secret.StringData {
		if !strings.Contains(config, mountPath+"/"+key+"\n") {
			t.Errorf("Secret key %s is read by no *_file key of the config", key)
		}
		if err := os.WriteFile(filepath.Join(dir, key), []byte(v), 0o440); err != nil {
			t.Fatal(err)
		}
	}
	return mountPath, dir
}

// loadConfigText reads config as approvebot does (policy.Load, which reads
// the *_file secrets), with the Secret's mount path moved to dir.
func loadConfigText(t *testing.T, config, mountPath, dir string) *policy.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "approvebot.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, mountPath+"/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(path, func(string) (string, bool) { return "", false }, platforms)
	if err != nil {
		t.Fatalf("the ConfigMap's config, with the Secret's files: %v", err)
	}
	return cfg
}

func TestKubernetesManifests(t *testing.T) {
	k := loadKube(t)
	d := k.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1: one bbolt file has one writer", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q, want Recreate: a rolling update would start a second writer", d.Spec.Strategy.Type)
	}
	pod := d.Spec.Template
	for key, v := range d.Spec.Selector.MatchLabels {
		if pod.Labels[key] != v || k.service.Spec.Selector[key] != v {
			t.Errorf("label %s=%s: selector, pod template and Service disagree", key, v)
		}
	}
	if len(k.service.Spec.Selector) != len(d.Spec.Selector.MatchLabels) {
		t.Errorf("Service selector %v, Deployment selector %v", k.service.Spec.Selector, d.Spec.Selector.MatchLabels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]

	// The config the container reads: args name a file of the ConfigMap.
	img := parseDockerfile(t)
	if len(c.Command) != 0 {
		t.Errorf("command %v overrides the image's ENTRYPOINT", c.Command)
	}
	if len(c.Args) != 3 || c.Args[0] != "serve" || c.Args[1] != "--config" {
		t.Fatalf("args %v, want serve --config FILE", c.Args)
	}
	if !slices.Equal(c.Args, img.cmd) {
		t.Errorf("args %v differ from the image's CMD %v", c.Args, img.cmd)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = v
	}
	mountOf := func(file string) (corev1.VolumeMount, corev1.Volume) {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") {
				return m, volumes[m.Name]
			}
		}
		t.Fatalf("%s is on no mounted volume", file)
		return corev1.VolumeMount{}, corev1.Volume{}
	}
	cfgMount, cfgVol := mountOf(c.Args[2])
	if cfgVol.ConfigMap == nil || cfgVol.ConfigMap.Name != k.configMap.Name || !cfgMount.ReadOnly {
		t.Fatalf("the config %s is not on the ConfigMap %s mounted read-only: %+v", c.Args[2], k.configMap.Name, cfgVol)
	}
	key := strings.TrimPrefix(c.Args[2], strings.TrimSuffix(cfgMount.MountPath, "/")+"/")
	text, ok := k.configMap.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", k.configMap.Name, key)
	}
	secretMount, secretDir := secretsAt(t, k, c, volumes, text)
	cfg := loadConfigText(t, text, secretMount, secretDir)

	// Ports: the config listens on the container port the probes and the
	// Service use, on all interfaces.
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if host != "0.0.0.0" && host != "" && host != "::" {
		t.Errorf("listen %s: in a pod, listen on all interfaces", cfg.Listen)
	}
	port, _ := strconv.Atoi(portStr)
	if len(c.Ports) != 1 || int(c.Ports[0].ContainerPort) != port || c.Ports[0].Name == "" {
		t.Fatalf("container ports %+v, want one named port %d", c.Ports, port)
	}
	if !slices.Contains(img.ports, portStr) {
		t.Errorf("the image exposes %v, the config listens on %s", img.ports, portStr)
	}
	resolve := func(what string, p intstr.IntOrString) int {
		if p.Type == intstr.String {
			for _, cp := range c.Ports {
				if cp.Name == p.StrVal {
					return int(cp.ContainerPort)
				}
			}
			t.Errorf("%s names port %q, which the container lacks", what, p.StrVal)
			return 0
		}
		return p.IntValue()
	}
	if len(k.service.Spec.Ports) != 1 || resolve("Service targetPort", k.service.Spec.Ports[0].TargetPort) != port {
		t.Errorf("Service ports %+v do not reach %d", k.service.Spec.Ports, port)
	}
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	wantPath := map[string]string{"liveness": "/healthz", "readiness": "/readyz", "startup": "/healthz"}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet", name)
			continue
		}
		if p.HTTPGet.Path != wantPath[name] || resolve(name+" probe", p.HTTPGet.Port) != port {
			t.Errorf("%s probe %s on %s, want %s on %d", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), wantPath[name], port)
		}
	}
	if p := c.ReadinessProbe; p != nil && p.TimeoutSeconds < 5 {
		t.Errorf("readiness timeout %ds: /readyz asks Slack and Teams, give it at least 5 s", p.TimeoutSeconds)
	}

	// Grace: the pod outlives shutdown_grace and the up to 10 s the stop
	// takes after it (answering held agents, flushing chat updates).
	grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= cfg.ShutdownGrace+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v, want more than shutdown_grace %v + 10s", grace, cfg.ShutdownGrace)
	}

	// The store and the signing key are on the claim, which is one-writer.
	for what, file := range map[string]string{"store.path": cfg.Store.Path, "signing.key_file": cfg.Signing.KeyFile} {
		m, v := mountOf(file)
		if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != k.pvc.Name || m.ReadOnly {
			t.Errorf("%s %s is not on the writable PersistentVolumeClaim %s", what, file, k.pvc.Name)
		}
		if path.Dir(file) != dataDir {
			t.Errorf("%s %s is not in the image's volume %s", what, file, dataDir)
		}
	}
	if !slices.Equal(k.pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("PVC access modes %v, want ReadWriteOnce", k.pvc.Spec.AccessModes)
	}
	if cfg.Store.MaxSize > 0 {
		if size := k.pvc.Spec.Resources.Requests[corev1.ResourceStorage]; size.Value() < cfg.Store.MaxSize {
			t.Errorf("PVC of %s is smaller than store.max_size %d", size.String(), cfg.Store.MaxSize)
		}
	}

	// Security: non-root (the image's user), read-only root, nothing to
	// escalate to.
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("pod or container securityContext missing")
	}
	uid, _ := strconv.ParseInt(strings.Split(img.user, ":")[0], 10, 64)
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != uid {
		t.Errorf("pod runAsNonRoot %v runAsUser %v, want true and %d (the image's USER)", psc.RunAsNonRoot, psc.RunAsUser, uid)
	}
	if psc.FSGroup != nil && (psc.FSGroupChangePolicy == nil || *psc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch) {
		t.Error("fsGroup without fsGroupChangePolicy OnRootMismatch: each start would make the signing key group-readable, which approvebot refuses")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	for _, s := range []*corev1.SeccompProfile{psc.SeccompProfile, sc.SeccompProfile} {
		if s == nil || s.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("seccompProfile %+v, want RuntimeDefault", s)
		}
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it never uses")
	}

	// Resources, from the benchmark's figures.
	idle, held := benchmarkMemory(t)
	req := c.Resources.Requests[corev1.ResourceMemory]
	limit := c.Resources.Limits[corev1.ResourceMemory]
	if req.Value() < idle {
		t.Errorf("memory request %s is below the idle resident memory %d bytes", req.String(), idle)
	}
	if limit.Value() < held*5/4 {
		t.Errorf("memory limit %s leaves less than 25%% above the %d bytes measured with 10,000 agents held", limit.String(), held)
	}
	// GOMEMLIMIT keeps the collector ahead of the limit, and leaves room
	// for the agents held in the benchmark.
	var memLimit string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			memLimit = e.Value
		}
	}
	if soft, ok := goMemLimit(memLimit); !ok {
		t.Errorf("GOMEMLIMIT %q: want a size such as 300MiB, below the container's memory limit", memLimit)
	} else if soft > limit.Value()*9/10 || soft < held {
		t.Errorf("GOMEMLIMIT %s: want it between the %d bytes measured with 10,000 agents held and 90%% of the %s limit", memLimit, held, limit.String())
	}
	if cpu := c.Resources.Requests[corev1.ResourceCPU]; cpu.Cmp(resource.MustParse("50m")) < 0 {
		t.Errorf("cpu request %s", cpu.String())
	}
	if _, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		t.Error("a CPU limit throttles decisions under load; set none")
	}

	// The probes answer on the real server running this config.
	used := map[string]string{}
	for name, p := range probes {
		if p != nil && p.HTTPGet != nil {
			used[name] = p.HTTPGet.Path
		}
	}
	probeTheConfig(t, strings.ReplaceAll(text, secretMount+"/", secretDir+"/"), k.secret.StringData["slack-bot-token"], used)
}

// probeTheConfig runs the ConfigMap's config (its listen address and paths
// moved to the test's, Slack to a fake that takes botToken) and calls each
// probe's path.
func probeTheConfig(t *testing.T, text, botToken string, paths map[string]string) {
	dir := t.TempDir()
	text = strings.ReplaceAll(text, dataDir, dir)
	text = regexp.MustCompile(`(?m)^listen: .*$`).ReplaceAllString(text, "listen: 127.0.0.1:0")
	text = regexp.MustCompile(`(?m)^(  bot_token_file: .*)$`).ReplaceAllString(text, "$1\n  api_url: $${SLACK_API_URL}")
	s := startServer(t, text, map[string]string{"SLACK_BOT_TOKEN": botToken})
	for name, p := range paths {
		if code, body := s.call(http.MethodGet, p, nil, nil); code != http.StatusOK {
			t.Errorf("%s probe %s: %d %s\n%s", name, p, code, body, s.logs)
		}
	}
}

// goMemLimit reads a GOMEMLIMIT value as the Go runtime does: a number of
// bytes with an optional B, KiB, MiB, GiB or TiB.
func goMemLimit(v string) (int64, bool) {
	m := regexp.MustCompile(`^([0-9]+)(B|KiB|MiB|GiB|TiB)?$`).FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false
	}
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	return n << shift, true
}

// benchmarkMemory reads BENCHMARKS.md's resident memory idle and with
// 10,000 agents held.
func benchmarkMemory(t *testing.T) (idle, held int64) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\| Resident memory \| ([\d.]+) MiB \| ([\d.]+) MiB \|`).FindSubmatch(data)
	if m == nil {
		t.Fatal("BENCHMARKS.md has no 'Resident memory' row")
	}
	mib := func(b []byte) int64 {
		f, _ := strconv.ParseFloat(string(b), 64)
		return int64(f * (1 << 20))
	}
	return mib(m[1]), mib(m[2])
}
