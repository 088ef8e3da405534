package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/podrun/podrun/internal/testutil"
)

// The suite runs the real binary against its own state directories, bridge,
// subnet and cgroup root, so it never touches a user's pods.
var (
	bin     string // the podrun binary under test
	tmp     string
	nodeArg []string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if !testutil.RootEnabled() {
		return m.Run() // every test skips in testutil.RequiresRoot
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "-test.root given, but not running as root")
		return 1
	}
	if _, err := exec.LookPath("busybox"); err != nil {
		fmt.Fprintln(os.Stderr, "the integration tests need busybox-static (apt-get install busybox-static)")
		return 1
	}
	var err error
	// The binary must not live in a directory holding the state root, or
	// libcontainer copies it on every start (DESIGN.md).
	tmp, err = os.MkdirTemp("", "podrun-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin = filepath.Join(tmp, "bin", "podrun")
	suffix := strconv.Itoa(rand.IntN(1 << 16))
	nodeArg = []string{
		"--root", filepath.Join(tmp, "root"),
		"--run-root", "/run/podrun-it-" + suffix,
		"--log-dir", filepath.Join(tmp, "logs"),
		"--bridge", "podrunit" + suffix[:min(len(suffix), 5)],
		"--subnet", "10.252.0.0/24",
		"--cgroup-root", "podrunit" + suffix, // no '-': systemd reads it as slice nesting
	}
	defer os.RemoveAll("/run/podrun-it-" + suffix)
	// Where there is no Go toolchain (the VM tests, hack/vmtest), the binary
	// and the image archive come prebuilt: PODRUN_TEST_BIN, PODRUN_TEST_IMAGE.
	archive := filepath.Join(tmp, "busybox.tar")
	var steps [][]string
	if b := os.Getenv("PODRUN_TEST_BIN"); b != "" {
		steps = append(steps, []string{"install", "-D", "-m", "0755", b, bin})
	} else {
		// With seccomp, as make builds it.
		steps = append(steps, []string{"go", "build", "-tags", "seccomp", "-o", bin, "../cmd/podrun"})
	}
	if a := os.Getenv("PODRUN_TEST_IMAGE"); a != "" {
		archive = a
	} else {
		steps = append(steps, []string{"go", "run", "../hack/testimage", "-o", archive})
	}
	steps = append(steps, []string{bin, "image", "load", "-i", archive, "--root", filepath.Join(tmp, "root")})
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s", strings.Join(s, " "), err, out)
			return 1
		}
	}
	return m.Run()
}

// netnsFile is where the suite's pod network namespaces are pinned.
func netnsFile(uid string) string {
	for i, a := range nodeArg {
		if a == "--bridge" {
			return "/run/netns/" + nodeArg[i+1] + ":" + uid
		}
	}
	return "/run/netns/podrun0:" + uid
}

// events is the log the test containers append to: "<uptime> <name> <what>".
type events struct {
	lines []event
}

type event struct {
	at   float64 // seconds of system uptime (10 ms resolution)
	name string
	what string
}

func readEvents(t *testing.T, path string) *events {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &events{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ev := &events{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 3)
		if len(parts) != 3 {
			continue
		}
		at, err := strconv.ParseFloat(parts[0], 64)
		if err != nil {
			continue
		}
		ev.lines = append(ev.lines, event{at: at, name: parts[1], what: parts[2]})
	}
	return ev
}

// all returns the times of every "<name> <what>".
func (e *events) all(name, what string) []float64 {
	var out []float64
	for _, l := range e.lines {
		if l.name == name && l.what == what {
			out = append(out, l.at)
		}
	}
	return out
}

// first returns the time of the first "<name> <what>", failing the test
// when there is none.
func (e *events) first(t *testing.T, name, what string) float64 {
	t.Helper()
	for _, l := range e.lines {
		if l.name == name && l.what == what {
			return l.at
		}
	}
	t.Fatalf("no %q %q in the event log:\n%s", name, what, e)
	return 0
}

func (e *events) String() string {
	var b strings.Builder
	for _, l := range e.lines {
		fmt.Fprintf(&b, "%.2f %s %s\n", l.at, l.name, l.what)
	}
	return b.String()
}

// order asserts that the first occurrences of the "<name> <what>" pairs
// happened in this order (pairs given as "name what").
func (e *events) order(t *testing.T, steps ...string) {
	t.Helper()
	prev := -1.0
	for _, s := range steps {
		name, what, _ := strings.Cut(s, " ")
		at := e.first(t, name, what)
		if at < prev {
			t.Errorf("%q happened before the step preceding it\n%s", s, e)
		}
		prev = at
	}
}

// scenario is a pod whose containers log to a shared host directory.
type scenario struct {
	t   *testing.T
	dir string // host directory mounted at /log
	pod *corev1.Pod
}

// prelude defines log(), appending "<uptime> $NAME <what>" to the event log.
const prelude = `log() { read up _ < /proc/uptime; echo "$up $NAME $*" >> /log/events; }
`

func newScenario(t *testing.T, name string, rp corev1.RestartPolicy) *scenario {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	// The event log is written by containers that may not run as root.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	tgps := int64(30)
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 rp,
			TerminationGracePeriodSeconds: &tgps,
			Volumes: []corev1.Volume{{Name: "log", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: dir}}}},
		},
	}
	return &scenario{t: t, dir: dir, pod: p}
}

// container makes a busybox container running script after the prelude.
func container(name, script string) corev1.Container {
	return corev1.Container{
		Name:            name,
		Image:           "busybox",
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         []string{"sh", "-c", prelude + script},
		Env:             []corev1.EnvVar{{Name: "NAME", Value: name}},
		VolumeMounts:    []corev1.VolumeMount{{Name: "log", MountPath: "/log"}},
	}
}

func (s *scenario) init(c corev1.Container) *scenario {
	s.pod.Spec.InitContainers = append(s.pod.Spec.InitContainers, c)
	return s
}

func (s *scenario) sidecar(c corev1.Container) *scenario {
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return s.init(c)
}

func (s *scenario) app(c corev1.Container) *scenario {
	s.pod.Spec.Containers = append(s.pod.Spec.Containers, c)
	return s
}

// Scripts used by many scenarios.
const (
	// runs until TERM, then logs Exiting and exits 0
	serve = `trap 'log Exiting; exit 0' TERM; log Starting; log Started; while true; do sleep 1 & wait; done`
	// like serve, but takes 1 s to exit after TERM
	serveSlowStop = `trap 'log Exiting; sleep 1; exit 0' TERM; log Starting; log Started; while true; do sleep 1 & wait; done`
)

// runExit logs Starting, sleeps secs and exits code.
func runExit(secs string, code int) string {
	return fmt.Sprintf(`log Starting; sleep %s; log Exiting; exit %d`, secs, code)
}

// result of one `podrun run`.
type result struct {
	code   int
	pods   []corev1.Pod
	stderr string
	ev     *events
	took   time.Duration
}

// run writes the scenario's pod and runs `podrun run -o json` on it.
func (s *scenario) run(extra ...string) result {
	s.t.Helper()
	return podrun(s.t, s.dir, []any{s.pod}, extra...)
}

// podrun runs `podrun run -o json` on objects written into dir, with the
// suite's node flags, and collects the final pods and the event log.
func podrun(t *testing.T, dir string, objs []any, extra ...string) result {
	t.Helper()
	return startObjects(t, dir, objs, extra...).wait()
}

// podrunFiles runs `podrun run -o json` on existing files.
func podrunFiles(t *testing.T, files ...string) result {
	t.Helper()
	return startFiles(t, t.TempDir(), files).wait()
}

// pod returns the only final pod.
func (r result) pod(t *testing.T) *corev1.Pod {
	t.Helper()
	if len(r.pods) != 1 {
		t.Fatalf("%d pods in the output, want 1", len(r.pods))
	}
	return &r.pods[0]
}

func status(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// background is a `podrun run` in the background, for scenarios that act
// while the pod runs.
type background struct {
	t      *testing.T
	s      *scenario
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr syncBuffer
	start  time.Time
	done   chan struct{}
	err    error
}

func (s *scenario) start(extra ...string) *background {
	s.t.Helper()
	return startObjects(s.t, s.dir, []any{s.pod}, extra...)
}

// startObjects starts `podrun run -o json` on objects written into dir,
// whose event log is dir/events.
func startObjects(t *testing.T, dir string, objs []any, extra ...string) *background {
	t.Helper()
	file := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(file, manifestYAML(t, objs), 0o644); err != nil {
		t.Fatal(err)
	}
	return startFiles(t, dir, []string{file}, extra...)
}

// manifestYAML is objs as one multi-document YAML manifest.
func manifestYAML(t *testing.T, objs []any) []byte {
	t.Helper()
	var docs [][]byte
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	return bytes.Join(docs, []byte("---\n"))
}

// startFiles starts `podrun run -o json` on files; dir holds the event log.
func startFiles(t *testing.T, dir string, files []string, extra ...string) *background {
	t.Helper()
	s := &scenario{t: t, dir: dir}
	args := append(append(append([]string{"run", "-o", "json"}, nodeArg...), extra...), files...)
	bg := &background{t: t, s: s, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	bg.cmd.Stdout, bg.cmd.Stderr = &bg.stdout, &bg.stderr
	bg.start = time.Now()
	if err := bg.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		bg.err = bg.cmd.Wait()
		close(bg.done)
	}()
	t.Cleanup(func() {
		_ = bg.cmd.Process.Kill()
		<-bg.done
	})
	return bg
}

// waitEvent waits until the event log has "<name> <what>".
func (bg *background) waitEvent(name, what string) { bg.t.Helper(); bg.waitEventN(name, what, 1) }

// waitEventN waits until the event log has "<name> <what>" n times.
func (bg *background) waitEventN(name, what string, n int) {
	bg.t.Helper()
	bg.until(fmt.Sprintf("%d× %s %s", n, name, what), func() bool {
		return len(readEvents(bg.t, filepath.Join(bg.s.dir, "events")).all(name, what)) >= n
	})
}

// waitStderr waits until podrun's stderr (status changes, events) has s.
func (bg *background) waitStderr(s string) {
	bg.t.Helper()
	bg.until(fmt.Sprintf("%q on stderr", s), func() bool { return strings.Contains(bg.stderr.String(), s) })
}

// until polls cond (a file or a buffer another process writes) until it
// holds, podrun exits, or two minutes pass.
func (bg *background) until(what string, cond func() bool) {
	bg.t.Helper()
	deadline := time.After(2 * time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-bg.done:
			bg.t.Fatalf("podrun exited before %s: %v\n%s", what, bg.err, bg.stderr.String())
		case <-deadline:
			bg.t.Fatalf("no %s after 2 minutes:\n%s", what, bg.stderr.String())
		case <-tick.C:
		}
	}
}

// interrupt sends SIGINT (Ctrl-C) and collects the result.
func (bg *background) interrupt() result {
	bg.t.Helper()
	if err := bg.cmd.Process.Signal(os.Interrupt); err != nil {
		bg.t.Fatal(err)
	}
	return bg.wait()
}

func (bg *background) wait() result {
	bg.t.Helper()
	select {
	case <-bg.done:
	case <-time.After(5 * time.Minute):
		_ = bg.cmd.Process.Kill()
		<-bg.done
		bg.t.Fatalf("podrun run did not finish in 5 minutes:\n%s", bg.stderr.String())
	}
	r := result{took: time.Since(bg.start), stderr: bg.stderr.String(), ev: readEvents(bg.t, filepath.Join(bg.s.dir, "events"))}
	var ee *exec.ExitError
	if errors.As(bg.err, &ee) {
		r.code = ee.ExitCode()
	} else if bg.err != nil {
		bg.t.Fatal(bg.err)
	}
	var list struct{ Items []corev1.Pod }
	if err := json.Unmarshal(bg.stdout.Bytes(), &list); err != nil {
		bg.t.Fatalf("output is not a List: %v\nstdout: %s\nstderr: %s", err, bg.stdout.String(), r.stderr)
	}
	r.pods = list.Items
	bg.t.Logf("podrun run took %v, exit %d\nstderr:\n%s\nevents:\n%s", r.took, r.code, r.stderr, r.ev)
	return r
}

// syncBuffer is a buffer one goroutine writes while another reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
