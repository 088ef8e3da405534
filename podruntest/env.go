package podruntest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/podrun/podrun/image/imagetest"
)

// DaemonEnv is the environment variable that points New at a running
// daemon's socket instead of the in-process engine.
const DaemonEnv = "PODRUNTEST_DAEMON"

// Env is where pods run: the in-process engine (New, by default) or a
// running podrun daemon (Daemon). Its methods are safe for parallel tests.
type Env struct {
	b backend
}

// backend is what runs the pods of an Env. Two exist: local (the `podrun
// run` engine in this process) and daemon (api/client). A Kubernetes-API
// backend (client-go) would be a third: the daemon does not serve the real
// Kubernetes API yet.
type backend interface {
	// start runs the objects of a manifest (YAML or JSON documents) in
	// namespace ns; stop (if not nil) deletes what is neither a pod nor a
	// Job.
	start(ctx context.Context, ns, file string, data []byte) (pods []podConn, jobs []jobConn, stop func(), err error)
	loadImage(ctx context.Context, archive string) error
	pullImage(ctx context.Context, ref string) error
}

// New returns the in-process environment of this test process (created on
// first use, shared by every test of the process; podruntest.Main removes
// it when the tests end), or, when $PODRUNTEST_DAEMON names a socket, the
// daemon listening there.
func New(t testing.TB) *Env {
	t.Helper()
	if s := os.Getenv(DaemonEnv); s != "" {
		return Daemon(s)
	}
	l, err := localEnv()
	if err != nil {
		t.Fatalf("podruntest: %v", err)
	}
	return &Env{b: l}
}

// Daemon returns the environment of the podrun daemon listening on socket
// ("" for client.DefaultSocket). Images must then be in the daemon's store
// (podrun image load / pull): LoadImage and PullImage fail.
func Daemon(socket string) *Env { return &Env{b: newDaemon(socket)} }

// Main runs a package's tests (call it from TestMain) and then removes
// what the in-process engine kept for the whole process: its images, state
// directories and cgroup root. New refuses to run pods in-process without
// it, since nothing else would remove them.
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	if err := closeLocal(); err != nil {
		fmt.Fprintln(os.Stderr, "podruntest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Start runs the Pods, Deployments, Jobs, ConfigMaps and Secrets of a
// YAML (or JSON) manifest until the test ends; see StartFile.
func (e *Env) Start(t testing.TB, manifest string) *Set {
	t.Helper()
	return e.start(t, "manifest", []byte(manifest))
}

// StartFile runs the objects of a manifest file. Each test gets a
// namespace of its own (Set.Namespace): objects of the default namespace
// (or none) are moved there, so parallel tests may run the same manifest.
// When the test ends (passed, failed or panicked), every pod and Job is
// deleted and terminated the kubelet's way, and Cleanup waits until
// nothing of it is left.
func (e *Env) StartFile(t testing.TB, path string) *Set {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("podruntest: %v", err)
	}
	return e.start(t, path, data)
}

// StartPods runs pods given as values (their status is ignored).
func (e *Env) StartPods(t testing.TB, pods ...*corev1.Pod) *Set {
	t.Helper()
	var buf bytes.Buffer
	for _, p := range pods {
		p = p.DeepCopy()
		p.APIVersion, p.Kind = "v1", "Pod"
		p.Status = corev1.PodStatus{}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("podruntest: %v", err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return e.start(t, "pods", buf.Bytes())
}

// cleanupTimeout bounds how long Cleanup waits for a test's pods to go.
const cleanupTimeout = 2 * time.Minute

func (e *Env) start(t testing.TB, file string, data []byte) *Set {
	t.Helper()
	ns := testNamespace(t.Name())
	pods, jobs, stop, err := e.b.start(context.Background(), ns, file, data)
	s := &Set{t: t, Namespace: ns, stopRest: stop}
	for _, c := range pods {
		s.pods = append(s.pods, &Pod{t: t, c: c})
	}
	for _, c := range jobs {
		s.jobs = append(s.jobs, &Job{t: t, c: c})
	}
	t.Cleanup(s.stop)
	if err != nil {
		t.Fatalf("podruntest: %v", err)
	}
	return s
}

var nsUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// testNamespace is a DNS label unique to one test: its name and a
// random suffix.
func testNamespace(test string) string {
	name := strings.Trim(nsUnsafe.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(name) > 48 {
		name = strings.TrimRight(name[:48], "-")
	}
	return "t-" + name + "-" + randHex(3)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// inNamespace moves every object of the documents that is in the default
// namespace (or names none) to ns, and returns them as a JSON stream.
func inNamespace(data []byte, ns string) ([]byte, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out bytes.Buffer
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			return out.Bytes(), nil
		} else if err != nil {
			return nil, err
		}
		if obj == nil {
			continue
		}
		objs := []map[string]any{obj}
		if items, ok := obj["items"].([]any); ok && obj["kind"] == "List" {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					objs = append(objs, m)
				}
			}
		}
		for _, o := range objs[min(len(objs)-1, 1):] {
			md, _ := o["metadata"].(map[string]any)
			if md == nil {
				md = map[string]any{}
				o["metadata"] = md
			}
			if n, _ := md["namespace"].(string); n == "" || n == corev1.NamespaceDefault {
				md["namespace"] = ns
			}
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out.Write(b)
		out.WriteByte('\n')
	}
}

// LoadImage adds the images of a docker-save or OCI archive (or OCI
// layout directory) to the environment's store, once per process and
// path: later calls return at once.
func (e *Env) LoadImage(t testing.TB, archive string) {
	t.Helper()
	abs, err := filepath.Abs(archive)
	if err == nil {
		err = once("load "+abs, func() error { return e.b.loadImage(context.Background(), abs) })
	}
	if err != nil {
		t.Fatalf("podruntest: loading image archive %s: %v", archive, err)
	}
}

// PullImage pulls ref into the environment's store, once per process.
func (e *Env) PullImage(t testing.TB, ref string) {
	t.Helper()
	if err := once("pull "+ref, func() error { return e.b.pullImage(context.Background(), ref) }); err != nil {
		t.Fatalf("podruntest: pulling %s: %v", ref, err)
	}
}

var (
	onceMu sync.Mutex
	onces  = map[string]func() error{}
)

// once runs fn the first time key is seen in this process; every caller
// gets its result.
func once(key string, fn func() error) error {
	onceMu.Lock()
	f := onces[key]
	if f == nil {
		f = sync.OnceValue(fn)
		onces[key] = f
	}
	onceMu.Unlock()
	return f()
}

// BusyboxImage is the name Busybox gives the test image: not a :latest
// tag, whose default imagePullPolicy (Always) would pull from Docker Hub.
const BusyboxImage = "busybox:podruntest"

// Busybox makes the repo's offline busybox test image (what `go run
// ./hack/testimage` writes: Debian's static busybox in one layer) available
// in the environment as BusyboxImage, once per process, and returns that
// name. It needs /bin/busybox (apt-get install busybox-static).
func (e *Env) Busybox(t testing.TB) string {
	t.Helper()
	const ref = BusyboxImage
	err := once("busybox", func() error {
		dir, err := os.MkdirTemp("", "podruntest-image-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		archive := filepath.Join(dir, "busybox.tar")
		if err := writeBusybox(archive, ref); err != nil {
			return err
		}
		return e.b.loadImage(context.Background(), archive)
	})
	if err != nil {
		t.Fatalf("podruntest: the busybox test image: %v", err)
	}
	return ref
}

// writeBusybox writes the busybox test image as a docker save archive.
func writeBusybox(archive, ref string) error {
	found := false
	for _, p := range imagetest.BusyboxPaths {
		if _, err := os.Stat(p); err == nil {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no static busybox at %s: apt-get install busybox-static", strings.Join(imagetest.BusyboxPaths, " or "))
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	img, err := imagetest.Busybox()
	if err != nil {
		return err
	}
	return tarball.WriteToFile(archive, tag, img)
}
