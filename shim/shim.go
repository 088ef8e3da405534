// Package shim is "podrun shim", one pod's supervisor in its own process,
// and the daemon's side of it: the contract between a daemon and its shims
// (the run directory's files, with a version, and the shim's routes) lives
// here and nowhere else.
//
// A shim hosts a pod.Supervisor and is the parent of the pod's containers,
// so the daemon can crash or be upgraded without losing a pod, an exit
// code or a log pipe (containerd's shim model, one shim per pod). It
// serves GET /state, GET /watch (one JSON State per change), POST /delete,
// PUT /pod (an update), PUT /objects (the namespace's ConfigMaps and
// Secrets changed: the pod's volumes are refreshed; a shim of an older
// build answers 404, and the daemon logs it) and POST /exec (an upgraded
// stream) on shim.sock,
// checkpoints the supervisor after every change, and writes final.json
// when the pod finished.
//
// May import: pod, node, api (wire types and framing), runtime (exec
// specs) and internal helpers.
package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/node"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
)

// Spec is what the daemon hands a new shim in spec.json: the pod, the
// ConfigMaps and Secrets of its namespace, and the node's directories.
type Spec struct {
	Version    int                 `json:"version,omitempty"`
	Pod        *corev1.Pod         `json:"pod"`
	ConfigMaps []*corev1.ConfigMap `json:"configMaps,omitempty"`
	Secrets    []*corev1.Secret    `json:"secrets,omitempty"`
	Node       node.Config         `json:"node"`
}

func (s *Spec) ConfigMap(namespace, name string) *corev1.ConfigMap {
	for _, c := range s.ConfigMaps {
		if c.Namespace == namespace && c.Name == name {
			return c
		}
	}
	return nil
}

func (s *Spec) Secret(namespace, name string) *corev1.Secret {
	for _, c := range s.Secrets {
		if c.Namespace == namespace && c.Name == name {
			return c
		}
	}
	return nil
}

// Objects is the body of PUT /objects: every ConfigMap and Secret of the
// pod's namespace, as they are now.
type Objects struct {
	ConfigMaps []*corev1.ConfigMap `json:"configMaps,omitempty"`
	Secrets    []*corev1.Secret    `json:"secrets,omitempty"`
}

// State is what a shim reports: the pod with its status and events;
// Final once the pod finished (also the content of final.json).
type State struct {
	Version int         `json:"version,omitempty"`
	Pod     *corev1.Pod `json:"pod"`
	Events  []pod.Event `json:"events,omitempty"`
	Final   bool        `json:"final,omitempty"`
}

// shim serves one pod's supervisor to the daemon.
type shim struct {
	dir Dir
	log *slog.Logger
	sup atomic.Pointer[pod.Supervisor]

	attached attachments // clients of kubectl attach
	specMu   sync.Mutex  // guards spec
	spec     *Spec

	mu      sync.Mutex    // guards changed
	changed chan struct{} // closed and replaced at every change
	final   atomic.Pointer[State]
	done    chan struct{} // closed once final is set
}

// Run is "podrun shim": it hosts the supervisor of the pod whose run
// directory is dir until the pod finished, and serves it on dir/shim.sock.
// With a checkpoint in dir it takes over from a shim that died (pod.Restore),
// else it starts the pod of spec.json. Cancelling ctx (SIGTERM) deletes the
// pod. It returns once the pod finished and final.json is written.
func Run(ctx context.Context, path string, log *slog.Logger) error {
	dir := Dir(path)
	lock, err := shimLock(dir)
	if err != nil {
		return err
	}
	heldLock = lock
	spec, err := dir.ReadSpec()
	if err != nil {
		return err
	}
	log = log.With("pod", spec.Pod.Namespace+"/"+spec.Pod.Name, "podUID", spec.Pod.UID)
	n, err := node.New(spec.Node)
	if err != nil {
		return fmt.Errorf("opening the node's stores: %w", err)
	}
	go n.KeepOOMGroups(ctx)
	sh := &shim{dir: dir, log: log, spec: spec, changed: make(chan struct{}), done: make(chan struct{})}
	var settled sync.Once
	settle := func() { settled.Do(func() { go settleMemory() }) }
	// Start-up is over once all containers run, or after settleAfter for
	// a pod that never gets there (a crash loop, a long init container).
	time.AfterFunc(settleAfter, settle)
	notify := func(p *corev1.Pod) {
		sh.notify()
		if allRunning(p) {
			settle()
		}
	}
	opts := pod.Options{
		Host: n, Objects: spec, Log: log,
		OnEvent:    func(p *corev1.Pod, _ pod.Event) { notify(p) },
		OnStatus:   notify,
		Checkpoint: sh.checkpoint,
		Raw:        sh.attached.write,

		AllowedUnsafeSysctls: spec.Node.AllowedUnsafeSysctls,
	}
	// --log-level debug: every phase of the pod as a "span" record.
	if log.Enabled(ctx, slog.LevelDebug) {
		opts.Trace = trace.New(nil, log)
	}
	var sup *pod.Supervisor
	switch cp, err := dir.readCheckpoint(); {
	case err == nil:
		log.Info("taking over the pod from a shim that died")
		if sup, err = pod.Restore(ctx, cp, opts); err != nil {
			return sh.lost(ctx, n, cp, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		sup = pod.New(spec.Pod, opts)
	default:
		return err
	}
	sh.sup.Store(sup)

	sock := dir.path(sockFile)
	_ = os.Remove(sock) // left by a shim that died
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("shim socket: %w", err)
	}
	srv := &http.Server{Handler: sh.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	_ = sup.Run(ctx)
	sh.finish(&State{Pod: sup.Pod(), Events: sup.Events(), Final: true})
	// Let the daemon's watch read the final state before the socket goes.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	log.Info("pod finished", "phase", sup.Pod().Status.Phase)
	return nil
}

// settleAfter bounds how long a shim keeps start-up's memory settings
// when its pod never has all its containers running.
const settleAfter = time.Minute

// settleGCPercent is the shim's GOGC once start-up is over.
const settleGCPercent = 25

// settleMemory ends start-up: what it allocated (decoding, the sandbox,
// the containers' specs) goes back to the kernel instead of staying
// resident for the pod's life, and the heap may then outgrow its live data
// (~1.7 MB) by a quarter before a collection, not up to the runtime's 4 MB
// minimum target: with GOGC=100 the garbage of probes, status updates and
// checkpoints piled up to ~8 MB resident within a minute of 1 s probes,
// with 25 ~6.5 MB, at no measurable CPU cost (a collection of so small a
// heap is well under a millisecond).
//
// The runtime's background scavenger leaves up to ~1 MB of free pages of
// so small a heap resident, so every releaseEvery they go back too once
// there are releaseMin of them: ~5.9 MB instead of 6.6 MB after a minute
// of 1 s probes; an idle pod's shim collects nothing extra.
func settleMemory() {
	debug.SetGCPercent(settleGCPercent)
	debug.FreeOSMemory()
	free := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	for range time.Tick(releaseEvery) {
		if metrics.Read(free); free[0].Value.Uint64() >= releaseMin {
			debug.FreeOSMemory()
		}
	}
}

// releaseEvery and releaseMin pace settleMemory's releases of free pages.
const (
	releaseEvery = 20 * time.Second
	releaseMin   = 256 << 10
)

// heldLock is the liveness lock, never closed: the kernel releases it when
// the process exits, after the process' memory and arguments are gone, so
// a daemon that waits for it (Dir.WaitExited) finds no process of the shim.
// Closing it on return would free it a moment before the exit.
var heldLock *os.File

// shimLock returns the pod's liveness lock: the one the daemon took and
// handed down as fd 3, or, for a shim started by hand, its own.
func shimLock(dir Dir) (*os.File, error) {
	var want, got unix.Stat_t
	if unix.Stat(dir.path(lockFile), &want) == nil && unix.Fstat(3, &got) == nil &&
		want.Dev == got.Dev && want.Ino == got.Ino {
		// Containers and hooks must not inherit it, or the pod would look
		// live after this shim died.
		unix.CloseOnExec(3)
		return os.NewFile(3, lockFile), nil
	}
	f, ok, err := dir.Lock()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("another shim runs the pod of %s", dir)
	}
	return f, nil
}

// lost ends a pod that could not be taken over: what is left of it is
// removed and it is reported Failed, the way a node reports a pod it lost.
func (sh *shim) lost(ctx context.Context, n *node.Node, cp *pod.Checkpoint, cause error) error {
	sh.log.Error("cannot take over the pod", "err", cause)
	p := cp.Pod.DeepCopy()
	if err := n.DestroySandbox(context.WithoutCancel(ctx), p); err != nil {
		sh.log.Error("removing what is left of the pod", "err", err)
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodFailed, Reason: "ShimRestoreFailed",
		Message: fmt.Sprintf("podrun could not take over the pod after its shim died: %v", cause)}
	p.Status.Conditions = cp.Conditions
	return sh.dir.writeFinal(&State{Pod: p, Events: cp.Events, Final: true})
}

// checkpoint writes the supervisor's state on every change (owner
// goroutine): a tmpfs write and a rename, well under a millisecond.
func (sh *shim) checkpoint(cp *pod.Checkpoint) {
	if err := sh.dir.writeCheckpoint(cp); err != nil {
		sh.log.Error("writing the checkpoint", "err", err)
	}
}

// allRunning says whether the pod runs and all its app containers run.
func allRunning(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) < len(p.Spec.Containers) {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func (sh *shim) notify() {
	sh.mu.Lock()
	close(sh.changed)
	sh.changed = make(chan struct{})
	sh.mu.Unlock()
}

// finish publishes the final state: written to final.json before anyone
// is told, so that a daemon that misses the stream still finds it.
func (sh *shim) finish(st *State) {
	if err := sh.dir.writeFinal(st); err != nil {
		sh.log.Error("writing the final state", "err", err)
	}
	sh.final.Store(st)
	close(sh.done)
}

// state is the current state and a channel closed at the next change.
func (sh *shim) state() (*State, <-chan struct{}) {
	sh.mu.Lock()
	ch := sh.changed
	sh.mu.Unlock()
	if f := sh.final.Load(); f != nil {
		return f, ch
	}
	sup := sh.sup.Load()
	return &State{Version: Version, Pod: sup.Pod(), Events: sup.Events()}, ch
}

func (sh *shim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		st, _ := sh.state()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("GET /watch", sh.watch)
	mux.HandleFunc("POST /delete", func(w http.ResponseWriter, r *http.Request) {
		var grace *int64
		if g := r.URL.Query().Get("grace"); g != "" {
			v, err := strconv.ParseInt(g, 10, 64)
			if err != nil {
				api.WriteError(w, apierrors.NewBadRequest("grace: "+err.Error()))
				return
			}
			grace = &v
		}
		sh.sup.Load().Delete(grace)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /pod", func(w http.ResponseWriter, r *http.Request) {
		var p corev1.Pod
		data, err := api.ReadBody(w, r, 16<<20)
		if err != nil {
			api.WriteError(w, err)
			return
		}
		if err := json.Unmarshal(data, &p); err != nil {
			api.WriteError(w, apierrors.NewBadRequest("pod: "+err.Error()))
			return
		}
		sh.sup.Load().Update(&p)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT /objects", sh.objects)
	mux.HandleFunc("POST /exec", sh.exec)
	mux.HandleFunc("POST /attach", sh.attach)
	return mux
}

// objects takes the namespace's new ConfigMaps and Secrets: spec.json is
// rewritten with them and the supervisor refreshes the pod's volumes.
func (sh *shim) objects(w http.ResponseWriter, r *http.Request) {
	data, err := api.ReadBody(w, r, 64<<20)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	var o Objects
	if err := json.Unmarshal(data, &o); err != nil {
		api.WriteError(w, apierrors.NewBadRequest("objects: "+err.Error()))
		return
	}
	sh.specMu.Lock()
	defer sh.specMu.Unlock()
	spec := *sh.spec
	spec.ConfigMaps, spec.Secrets = o.ConfigMaps, o.Secrets
	if err := sh.dir.updateObjects(&spec); err != nil {
		api.WriteError(w, apierrors.NewInternalError(err))
		return
	}
	sh.spec = &spec
	sh.sup.Load().Refresh(&spec)
	w.WriteHeader(http.StatusNoContent)
}

// watch streams the state, one JSON line per change (changes in between
// coalesce), ending with the final state.
func (sh *shim) watch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	for {
		st, changed := sh.state()
		if enc.Encode(st) != nil || rc.Flush() != nil || st.Final {
			return
		}
		select {
		case <-changed:
		case <-sh.done:
		case <-r.Context().Done():
			return
		}
	}
}

// firstSizeWait bounds how long a terminal's exec waits for the client's
// terminal size.
const firstSizeWait = time.Second

// exec runs a process in a container over a hijacked connection (the
// framing is api's).
func (sh *shim) exec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := sh.sup.Load().Pod()
	name := q.Get("container")
	args := q["command"]
	if err := execable(p, name, len(args)); err != nil {
		api.WriteError(w, err)
		return
	}
	conn, br, err := api.SwitchProtocols(w, api.ExecProtocol)
	if err != nil {
		sh.log.Warn("exec: upgrade", "err", err)
		return
	}
	defer conn.Close()

	fw := api.NewFrameWriter(conn)
	spec := runtime.ExecSpec{Args: args, Stdout: fw.Stream(api.StreamStdout), TTY: isTrue(q.Get("tty"))}
	if isTrue(q.Get("stderr")) {
		spec.Stderr = fw.Stream(api.StreamStderr)
	}
	var stdinW *io.PipeWriter
	if isTrue(q.Get("stdin")) {
		var stdinR *io.PipeReader
		stdinR, stdinW = io.Pipe()
		defer stdinR.Close()
		spec.Stdin = stdinR
	}
	resize := make(chan [2]uint16, 4)
	if spec.TTY {
		spec.Resize = resize
	}
	// The client going away kills the process, as the kubelet does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		for {
			stream, payload, err := api.ReadFrame(br)
			if err != nil {
				if stdinW != nil {
					stdinW.CloseWithError(io.EOF)
				}
				return
			}
			switch {
			case stream == api.StreamStdin && stdinW != nil && len(payload) == 0:
				stdinW.Close()
			case stream == api.StreamStdin && stdinW != nil:
				if _, err := stdinW.Write(payload); err != nil {
					stdinW = nil // the process closed its stdin; drop the rest
				}
			case stream == api.StreamResize:
				var sz api.TerminalSize
				if json.Unmarshal(payload, &sz) == nil {
					select {
					case resize <- [2]uint16{sz.Width, sz.Height}:
					default: // a newer size follows
					}
				}
			}
		}
	}()
	if spec.TTY {
		// The process starts on a terminal of the client's size: kubectl
		// and podrun send it first. A client that sends none gets 0x0.
		select {
		case sz := <-resize:
			spec.Size = sz
		case <-ctx.Done():
		case <-time.After(firstSizeWait):
		}
	}
	code, err := sh.sup.Load().Exec(ctx, name, spec)
	st := api.ExecStatus{ExitCode: code}
	if err != nil {
		st = api.ExecStatus{ExitCode: 126, Error: err.Error()}
	}
	b, _ := json.Marshal(st)
	_ = fw.WriteFrame(api.StreamStatus, b)
}

// execable checks an exec request before the connection is taken over, so
// that what is wrong is answered as an API error.
func execable(p *corev1.Pod, name string, nargs int) error {
	if nargs == 0 {
		return apierrors.NewBadRequest("you must specify at least one command for the container")
	}
	if name == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", p.Name))
	}
	for _, cs := range podspec.Statuses(&p.Status) {
		if cs.Name != name {
			continue
		}
		if cs.State.Running == nil {
			return apierrors.NewBadRequest(fmt.Sprintf("container %s is not running in pod %s", name, p.Name))
		}
		return nil
	}
	return apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, p.Name))
}

func isTrue(s string) bool { b, _ := strconv.ParseBool(s); return b }
