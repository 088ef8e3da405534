package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kubectlCLI is one real kubectl binary with the kubeconfig `podrun
// kubeconfig` wrote for the test's daemon.
type kubectlCLI struct {
	t                     *testing.T
	bin, kubeconfig, home string
	env                   []string // added to every command's environment
}

// newKubectl waits until the daemon (started with --kube-listen) serves the
// Kubernetes API and writes its kubeconfig; it skips the test when
// kubectl.VERSION is not installed.
func newKubectl(t *testing.T, version string) *kubectlCLI {
	t.Helper()
	k := &kubectlCLI{t: t, bin: "/usr/lib/google-cloud-sdk/bin/kubectl." + version, home: t.TempDir()}
	if _, err := os.Stat(k.bin); err != nil {
		t.Skipf("no kubectl %s: %v", version, err)
	}
	root := nodeFlag("root")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(root, "kubeapi", "server")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not serve the Kubernetes API")
		}
		time.Sleep(20 * time.Millisecond)
	}
	k.kubeconfig = filepath.Join(k.home, "kubeconfig")
	if out, err := exec.Command(bin, "kubeconfig", "--root", root, "--path", k.kubeconfig).CombinedOutput(); err != nil {
		t.Fatalf("podrun kubeconfig: %v\n%s", err, out)
	}
	return k
}

func (k *kubectlCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	cmd.Env = append([]string{"HOME=" + k.home, "PATH=/usr/bin:/bin"}, k.env...)
	return cmd
}

// try runs kubectl with stdin and returns its combined output.
func (k *kubectlCLI) try(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := k.command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (k *kubectlCLI) run(args ...string) string {
	k.t.Helper()
	out, err := k.try("", args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// streamPod has a shell to exec into and an HTTP server on 8080.
const streamPod = `apiVersion: v1
kind: Pod
metadata:
  name: streams
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c, "mkdir /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: side
    image: busybox
    imagePullPolicy: Never
    command: [sleep, "3600"]
`

// TestKubectlStreams drives kubectl exec (exit code, stdin, a terminal and
// its size), cp and port-forward against a daemon, with kubectl 1.30 and
// 1.32, over WebSocket and over SPDY.
func TestKubectlStreams(t *testing.T) {
	startDaemonWith(t, "--kube-listen", "127.0.0.1:0")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pod.yaml"), []byte(streamPod), 0o644); err != nil {
		t.Fatal(err)
	}
	k := newKubectl(t, "1.32")
	k.run("apply", "-f", filepath.Join(dir, "pod.yaml"))
	if out, err := k.try("", "wait", "--for=condition=Ready", "pod/streams", "--timeout=60s"); err != nil {
		desc, _ := k.try("", "describe", "pod", "streams")
		t.Fatalf("kubectl wait: %v\n%s\n%s", err, out, desc)
	}
	for _, version := range []string{"1.30", "1.32"} {
		for _, ws := range []string{"true", "false"} {
			t.Run(fmt.Sprintf("kubectl%s/websockets=%s", version, ws), func(t *testing.T) {
				k := newKubectl(t, version)
				k.env = []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws, "KUBECTL_PORT_FORWARD_WEBSOCKETS=" + ws}
				kubectlExec(t, k)
				kubectlTTY(t, k)
				kubectlCp(t, k)
				kubectlPortForward(t, k)
				kubectlAttach(t, k, dir, strings.ReplaceAll(version, ".", "")+map[string]string{"true": "ws", "false": "spdy"}[ws])
			})
		}
	}
}

func kubectlExec(t *testing.T, k *kubectlCLI) {
	out, err := k.try("", "exec", "streams", "-c", "side", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") ||
		!strings.Contains(out, "command terminated with exit code 3") {
		t.Errorf("exec exit 3: %v %q", err, out)
	}
	if out, err := k.try("piped\nin\n", "exec", "-i", "streams", "-c", "side", "--", "tr", "a-z", "A-Z"); err != nil || out != "PIPED\nIN\n" {
		t.Errorf("exec -i: %v %q", err, out)
	}
	if out, err := k.try("", "exec", "streams", "-c", "nope", "--", "true"); err == nil || !strings.Contains(out, "container nope is not valid for pod streams") {
		t.Errorf("exec in a container that does not exist: %v %q", err, out)
	}
	if out, err := k.try("", "exec", "streams", "-c", "side", "--", "/nope"); err == nil || !strings.Contains(out, "Internal error occurred: error executing command in container") {
		t.Errorf("exec of a missing executable: %v %q", err, out)
	}

	// A client that goes away takes its process with it.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := k.command(ctx, "exec", "streams", "-c", "side", "--", "sleep", "1001")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sleeping := func() bool { return strings.Contains(k.run("exec", "streams", "-c", "side", "--", "ps"), "sleep 1001") }
	until(t, "the exec'd process runs", sleeping)
	cancel() // SIGKILL
	_ = cmd.Wait()
	until(t, "the process of a client gone is killed", func() bool { return !sleeping() })
}

// until polls cond for at most 30 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// kubectlTTY runs kubectl exec -it on a terminal of 37 rows and 111
// columns, then resizes it to 20x50.
func kubectlTTY(t *testing.T, k *kubectlCLI) {
	term := startTerminal(t, k, 37, 111, "exec", "-it", "streams", "-c", "side", "--", "sh", "-c", "stty size; while read x; do stty size; done")
	term.want("37 111", false)
	term.resize(20, 50)
	term.want("20 50", true)
	term.write(4) // ^D: read fails, the shell exits
	if err := term.wait(); err != nil {
		t.Errorf("kubectl exec -it: %v", err)
	}
}

// terminal is kubectl running on a pseudo-terminal.
type terminal struct {
	t      *testing.T
	master *os.File
	cmd    *exec.Cmd
	ctx    context.Context
	lines  chan string
	seen   []string
}

func startTerminal(t *testing.T, k *kubectlCLI, rows, cols uint16, args ...string) *terminal {
	master, slave := openPTY(t)
	t.Cleanup(func() { master.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	term := &terminal{t: t, master: master, ctx: ctx, lines: make(chan string, 64)}
	term.resize(rows, cols)
	term.cmd = k.command(ctx, args...)
	term.cmd.Stdin, term.cmd.Stdout, term.cmd.Stderr = slave, slave, slave
	term.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true} // stdin is the controlling terminal
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	t.Cleanup(func() { cancel(); _ = term.cmd.Wait() })
	go func() {
		defer close(term.lines)
		sc := bufio.NewScanner(master)
		for sc.Scan() {
			term.lines <- strings.TrimSpace(sc.Text())
		}
	}()
	return term
}

func (term *terminal) resize(rows, cols uint16) {
	if err := unix.IoctlSetWinsize(int(term.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		term.t.Fatal(err)
	}
}

func (term *terminal) write(b ...byte) { _, _ = term.master.Write(b) }

// want reads lines until one is what. With enter, it types Enter first
// and again after every other line: the commands print a line per line
// read, and what arrives once a resize has reached the container.
func (term *terminal) want(what string, enter bool) {
	term.t.Helper()
	if enter {
		term.write('\r')
	}
	for {
		select {
		case l, ok := <-term.lines:
			if !ok {
				term.t.Fatalf("kubectl ended before printing %q: %q", what, term.seen)
			}
			term.seen = append(term.seen, l)
			if l == what {
				return
			}
			if enter {
				term.write('\r')
			}
		case <-term.ctx.Done():
			term.t.Fatalf("kubectl never printed %q: %q", what, term.seen)
		}
	}
}

// wait waits for kubectl to exit.
func (term *terminal) wait() error {
	for range term.lines {
	}
	return term.cmd.Wait()
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

func kubectlCp(t *testing.T, k *kubectlCLI) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("through tar and the exec stream\n"), 4096)
	if err := os.WriteFile(filepath.Join(dir, "src"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	k.run("cp", filepath.Join(dir, "src"), "streams:/tmp/copied", "-c", "side")
	if out := k.run("exec", "streams", "-c", "side", "--", "wc", "-c", "/tmp/copied"); strings.Fields(out)[0] != fmt.Sprint(len(data)) {
		t.Errorf("in the container after cp: %q", out)
	}
	k.run("cp", "streams:/tmp/copied", filepath.Join(dir, "back"), "-c", "side")
	if b, err := os.ReadFile(filepath.Join(dir, "back")); err != nil || !bytes.Equal(b, data) {
		t.Errorf("cp from the container: %v, %d bytes", err, len(b))
	}
}

// attachPod's containers wait for input: once on its stdin (closed when
// the first client attached closes its own), term on a terminal.
const attachPod = `apiVersion: v1
kind: Pod
metadata:
  name: attach-%s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: once
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c, "while read l; do echo got $l; done; echo bye"]
    stdin: true
    stdinOnce: true
  - name: term
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c, "while read x; do stty size; done"]
    stdin: true
    tty: true
`

// kubectlAttach attaches to a new pod's containers: stdin piped to one, a
// terminal and its resize to the other.
func kubectlAttach(t *testing.T, k *kubectlCLI, dir, suffix string) {
	file := filepath.Join(dir, "attach-"+suffix+".yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(attachPod, suffix)), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "attach-" + suffix
	k.run("apply", "-f", file)
	k.run("wait", "--for=condition=Ready", "pod/"+name, "--timeout=60s")
	if out, err := k.try("a\nb\n", "attach", "-i", name, "-c", "once"); err != nil || !strings.HasSuffix(out, "got a\ngot b\nbye\n") {
		t.Errorf("attach -i: %v %q", err, out)
	}
	term := startTerminal(t, k, 25, 80, "attach", "-it", name, "-c", "term")
	term.want("25 80", true)
	term.resize(30, 100)
	term.want("30 100", true)
}

var forwardingFrom = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)

// kubectlPortForward fetches the pod's page through kubectl port-forward,
// twice.
func kubectlPortForward(t *testing.T, k *kubectlCLI) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := k.command(ctx, "port-forward", "pod/streams", ":8080")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var port string
	for port == "" && sc.Scan() {
		if m := forwardingFrom.FindStringSubmatch(sc.Text()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("kubectl port-forward did not say where it listens: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	for range 2 {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatalf("through the port-forward: %v\n%s", err, stderr.String())
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "hello from the pod\n" {
			t.Errorf("through the port-forward: %v %q", err, body)
		}
	}
}

// logsPod has a container that prints three lines and one that ticks, and
// one that exits at once and is restarted (its previous instance's log).
const logsPod = `apiVersion: v1
kind: Pod
metadata:
  name: logs
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: three
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c, "echo line 1; echo line 2; echo line 3; exec sleep 3600"]
  - name: ticks
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c, "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]
  - name: restarts
    image: busybox
    imagePullPolicy: Never
    command: [sh, -c, "echo run at $(cat /proc/uptime); exec sleep 0.5"]
`

var timestamped = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 3$`)

// TestKubectlLogs drives kubectl logs' options against a daemon: -c,
// --tail, --timestamps, --since, --since-time, --limit-bytes,
// --all-containers, --previous and -f.
func TestKubectlLogs(t *testing.T) {
	startDaemonWith(t, "--kube-listen", "127.0.0.1:0")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pod.yaml"), []byte(logsPod), 0o644); err != nil {
		t.Fatal(err)
	}
	k := newKubectl(t, "1.32")
	k.run("apply", "-f", filepath.Join(dir, "pod.yaml"))
	deadline := time.Now().Add(60 * time.Second)
	for {
		three, _ := k.try("", "logs", "logs", "-c", "three")
		restarts, _ := k.try("", "get", "pod", "logs", "-o", `jsonpath={.status.containerStatuses[?(@.name=="restarts")].restartCount}`)
		if three == "line 1\nline 2\nline 3\n" && restarts != "0" && restarts != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod did not log and restart:\n%s", k.run("describe", "pod", "logs"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, version := range []string{"1.30", "1.32"} {
		t.Run("kubectl"+version, func(t *testing.T) {
			k := newKubectl(t, version)
			if out := k.run("logs", "logs", "-c", "three"); out != "line 1\nline 2\nline 3\n" {
				t.Errorf("logs -c three: %q", out)
			}
			if out := k.run("logs", "logs", "-c", "three", "--tail=1"); out != "line 3\n" {
				t.Errorf("logs --tail=1: %q", out)
			}
			if out := strings.TrimSpace(k.run("logs", "logs", "-c", "three", "--tail=1", "--timestamps")); !timestamped.MatchString(out) {
				t.Errorf("logs --tail=1 --timestamps: %q", out)
			}
			if out := k.run("logs", "logs", "-c", "three", "--since=1h"); out != "line 1\nline 2\nline 3\n" {
				t.Errorf("logs --since=1h: %q", out)
			}
			if out := k.run("logs", "logs", "-c", "three", "--since-time="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); out != "" {
				t.Errorf("logs --since-time in an hour: %q", out)
			}
			if out := k.run("logs", "logs", "-c", "three", "--limit-bytes=9"); out != "line 1\nli" {
				t.Errorf("logs --limit-bytes=9: %q", out)
			}
			wantAll := "[pod/logs/three] line 1\n[pod/logs/three] line 2\n[pod/logs/three] line 3\n"
			if out := k.run("logs", "logs", "--all-containers", "--prefix", "--tail=3"); !strings.Contains(out, wantAll) || !strings.Contains(out, "[pod/logs/ticks] tick") {
				t.Errorf("logs --all-containers --prefix: %q", out)
			}
			prev := k.run("logs", "logs", "-c", "restarts", "--previous")
			if cur := k.run("logs", "logs", "-c", "restarts"); !strings.HasPrefix(prev, "run at ") || prev == cur {
				t.Errorf("logs --previous %q, current %q", prev, cur)
			}
			if out, err := k.try("", "logs", "logs", "-c", "three", "--previous"); err == nil || !strings.Contains(out, "previous terminated container") {
				t.Errorf("logs --previous of a container never restarted: %v %q", err, out)
			}
			follow(t, k)
		})
	}
}

// follow reads kubectl logs -f until two ticks newer than the first one.
func follow(t *testing.T, k *kubectlCLI) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := k.command(ctx, "logs", "-f", "logs", "-c", "ticks", "--tail=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var got []string
	for len(got) < 3 && sc.Scan() {
		got = append(got, sc.Text())
	}
	if len(got) < 3 {
		t.Fatalf("logs -f: %q", got)
	}
	var first, last int
	if _, err := fmt.Sscanf(got[0], "tick %d", &first); err != nil {
		t.Fatalf("logs -f: %q", got)
	}
	if _, err := fmt.Sscanf(got[2], "tick %d", &last); err != nil || last != first+2 {
		t.Errorf("logs -f: %q", got)
	}
}
