// Command probebench measures probe round trips inside a real pod
// supervisor: it runs one pod whose container has an exec readiness probe
// (/bin/true) and an HTTP liveness probe (bench/agent serving 200), both
// every second, through a Host that wraps podrun's node and times each
// exec and each HTTP connection (from the dial in the pod's network
// namespace to its close after the response). It prints the samples (ms)
// as JSON: {"Exec": [...], "HTTP": [...]}. bench/podbench runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/manifest"
	"github.com/podrun/podrun/node"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
)

func init() {
	// This binary starts containers: it is libcontainer's init when
	// re-executed, and keeps main on the main thread (DESIGN.md).
	runtime.MaybeReexec()
	goruntime.LockOSThread()
}

func main() {
	cfg := node.Config{}
	flag.StringVar(&cfg.Root, "root", "", "state directory (with the busybox image loaded)")
	flag.StringVar(&cfg.RunRoot, "run-root", "", "runtime state directory")
	flag.StringVar(&cfg.LogDir, "log-dir", "", "container log directory")
	flag.StringVar(&cfg.Network.Bridge, "bridge", "", "pod network bridge")
	flag.StringVar(&cfg.Network.Subnet, "subnet", "", "pod network subnet")
	flag.StringVar(&cfg.Cgroups.Root, "cgroup-root", "", "top-level cgroup")
	agent := flag.String("agent", "", "the static bench/agent binary")
	dir := flag.String("dir", "", "a directory for the pod file and its event log")
	n := flag.Int("n", 25, "samples of each probe")
	flag.Parse()
	cfg.Cgroups.PidsLimit = -1
	if err := run(cfg, *agent, *dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "probebench:", err)
		os.Exit(1)
	}
}

func run(cfg node.Config, agent, dir string, n int) error {
	if agent == "" || dir == "" || cfg.Root == "" || cfg.RunRoot == "" {
		return fmt.Errorf("-agent, -dir, -root and -run-root are required")
	}
	nd, err := node.New(cfg)
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "probes.yaml")
	if err := os.WriteFile(file, []byte(probePod(filepath.Dir(agent), dir)), 0o644); err != nil {
		return err
	}
	b, err := manifest.Load(file)
	if err != nil {
		return err
	}
	h := &timedHost{Node: nd, want: n, done: make(chan struct{})}
	s := pod.New(b.Pods[0].Pod, pod.Options{
		Host: h, Objects: b,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = s.Run(ctx) }()
	var runErr error
	select {
	case <-h.done:
	case <-s.Done():
		runErr = fmt.Errorf("the pod ended early: phase %s", s.Pod().Status.Phase)
	case <-time.After(time.Duration(n)*time.Second + time.Minute):
		runErr = fmt.Errorf("only %d exec and %d HTTP probes after %d s", len(h.exec), len(h.http), n+60)
	}
	cancel() // deletes the pod
	<-s.Done()
	if runErr != nil {
		return runErr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var perPeriod []float64
	if h.n1 > h.n0 {
		perPeriod = []float64{(h.cpu1 - h.cpu0) / float64(h.n1-h.n0)}
	}
	return json.NewEncoder(os.Stdout).Encode(struct{ Exec, HTTP, CPUPerPeriod []float64 }{h.exec[:n], h.http[:n], perPeriod})
}

func probePod(agentDir, logDir string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: probebench
spec:
  restartPolicy: Never
  volumes:
    - {name: bench, hostPath: {path: %s, type: Directory}}
    - {name: log, hostPath: {path: %s, type: Directory}}
  containers:
    - name: app
      image: busybox:latest
      imagePullPolicy: IfNotPresent
      command: [/bench/agent, -http, ":8080", /log/events, probebench/app]
      volumeMounts:
        - {name: bench, mountPath: /bench, readOnly: true}
        - {name: log, mountPath: /log}
      readinessProbe:
        exec: {command: [/bin/true]}
        periodSeconds: 1
      livenessProbe:
        httpGet: {path: /, port: 8080}
        periodSeconds: 1
        failureThreshold: 1000
`, agentDir, logDir)
}

// timedHost is podrun's node, with the probes' execs and connections timed.
type timedHost struct {
	*node.Node
	want int
	mu   sync.Mutex
	exec []float64 // ms
	http []float64 // ms
	done chan struct{}
	once sync.Once
	// The process's CPU time (its own and its reaped children's: every
	// exec's runc init) once warmed up and at the end, and the exec
	// probes counted then.
	cpu0, cpu1 float64
	n0, n1     int
}

const warmup = 5

// cpuMs is the CPU time (user + sys) of this process and of its reaped
// children so far.
func cpuMs() float64 {
	var t float64
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) == nil {
			t += float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
		}
	}
	return t
}

func (h *timedHost) record(list *[]float64, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*list = append(*list, float64(d.Microseconds())/1000)
	if h.n0 == 0 && len(h.exec) >= warmup && len(h.http) >= warmup {
		h.cpu0, h.n0 = cpuMs(), len(h.exec)
	}
	if len(h.exec) >= h.want && len(h.http) >= h.want {
		h.once.Do(func() {
			h.cpu1, h.n1 = cpuMs(), len(h.exec)
			close(h.done)
		})
	}
}

func (h *timedHost) CreateSandbox(ctx context.Context, p *corev1.Pod, objs pod.Objects) (*pod.Sandbox, error) {
	sb, err := h.Node.CreateSandbox(ctx, p, objs)
	if err != nil {
		return nil, err
	}
	dial := sb.Dial
	sb.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		start := time.Now()
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &timedConn{Conn: c, done: func() { h.record(&h.http, time.Since(start)) }}, nil
	}
	return sb, nil
}

func (h *timedHost) StartContainer(ctx context.Context, r *pod.ContainerRequest) (pod.Container, error) {
	c, err := h.Node.StartContainer(ctx, r)
	if err != nil {
		return nil, err
	}
	return &timedContainer{Container: c, h: h}, nil
}

type timedContainer struct {
	pod.Container
	h *timedHost
}

func (c *timedContainer) Exec(ctx context.Context, e runtime.ExecSpec) (int, error) {
	start := time.Now()
	code, err := c.Container.Exec(ctx, e)
	if err == nil && code == 0 {
		c.h.record(&c.h.exec, time.Since(start))
	}
	return code, err
}

// timedConn reports once, when the prober closes it after the response.
type timedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *timedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}
