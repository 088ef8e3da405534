package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/kubeapi"
	"github.com/podrun/podrun/node"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/shim"
)

// Config configures a daemon.
type Config struct {
	Socket string // the API's unix socket
	// KubeListen is the host:port of the Kubernetes-compatible HTTPS API
	// (package kubeapi); "" serves none.
	KubeListen string
	Node       node.Config // where pods run (passed on to every shim)
	// Exe is the podrun binary shims run as; default: this executable.
	Exe string
	// LogLevel is the shims' --log-level.
	LogLevel string
	Log      *slog.Logger
}

// key names a namespaced object.
type key struct{ ns, name string }

func (k key) String() string { return k.ns + "/" + k.name }

func keyOf(ns, name string) key { return key{ns, name} }

// Daemon is the API's backend: the objects, a shim per running pod, and
// the Deployment and Job controllers.
//
// Objects in its maps are immutable snapshots: a change replaces the
// pointer, so lists, watches and encoders share them without copying.
type Daemon struct {
	cfg      Config
	node     *node.Node
	log      *slog.Logger
	trace    *trace.Recorder // with --log-level debug: "span" records of each shim's start
	store    *store
	hostname string
	applyMu  sync.Mutex // one apply at a time: it plans, then acts
	ctrlMu   sync.Mutex // one Deployment reconcile at a time

	mu          sync.Mutex // guards everything below
	rv          int64      // the last resourceVersion handed out
	rvReserved  int64      // the stored bound rv stays under, so that it never goes back after a restart
	pods        map[key]*podRec
	deployments map[key]*appsv1.Deployment
	replicaSets map[key]*appsv1.ReplicaSet
	jobs        map[key]*jobRec
	configMaps  map[key]*corev1.ConfigMap
	secrets     map[key]*corev1.Secret
	watchers    map[*watcher]struct{}
}

// Run serves the API on cfg.Socket until ctx ends. Starting, it takes over
// the pods that are still running, restarts the shims that died, and
// removes what dead pods left. Stopping, it leaves every pod running: the
// shims do not depend on it.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Node.Root == "" {
		cfg.Node.Root = "/var/lib/podrun"
	}
	if cfg.Node.RunRoot == "" {
		cfg.Node.RunRoot = "/run/podrun"
	}
	if cfg.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the podrun binary for shims: %w", err)
		}
		cfg.Exe = exe
	}
	if err := os.MkdirAll(shim.PodsDir(cfg.Node.RunRoot), 0o700); err != nil {
		return err
	}
	// One daemon per run root: two would each restart the other's shims.
	lock, err := os.OpenFile(filepath.Join(cfg.Node.RunRoot, "daemon.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("another podrun daemon runs with the run root %s: %w", cfg.Node.RunRoot, err)
	}
	n, err := node.New(cfg.Node)
	if err != nil {
		return fmt.Errorf("opening the node's stores: %w", err)
	}
	hostname, _ := os.Hostname()
	d := &Daemon{
		cfg: cfg, node: n, log: cfg.Log, hostname: hostname, trace: debugTrace(cfg.Log),
		store:       newStore(filepath.Join(cfg.Node.Root, "api"), cfg.Log.Error),
		pods:        map[key]*podRec{},
		deployments: map[key]*appsv1.Deployment{},
		replicaSets: map[key]*appsv1.ReplicaSet{},
		jobs:        map[key]*jobRec{},
		configMaps:  map[key]*corev1.ConfigMap{},
		secrets:     map[key]*corev1.Secret{},
		watchers:    map[*watcher]struct{}{},
	}
	if err := d.load(); err != nil {
		return err
	}
	ln, err := listen(cfg.Socket)
	if err != nil {
		return err
	}
	defer ln.Close()
	d.recover(ctx)

	srv := &http.Server{Handler: api.Handler(d, d.log), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	servers := []*http.Server{srv}
	if cfg.KubeListen != "" {
		ksrv, err := d.serveKubeAPI(errc)
		if err != nil {
			_ = srv.Close()
			return err
		}
		servers = append(servers, ksrv)
	}
	d.log.Info("podrun daemon serving", "socket", cfg.Socket, "root", cfg.Node.Root, "runRoot", cfg.Node.RunRoot)
	select {
	case err := <-errc:
		for _, s := range servers {
			_ = s.Close()
		}
		return fmt.Errorf("serving the API: %w", err)
	case <-ctx.Done():
	}
	d.log.Info("podrun daemon stopping; the pods keep running")
	// Requests in flight get a moment; streams (watch, logs -f, exec) are cut.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			_ = s.Close()
		}
	}
	d.store.flush()
	return nil
}

// serveKubeAPI serves the Kubernetes-compatible API over HTTPS on
// cfg.KubeListen with the credentials of <root>/kubeapi (made the first
// time); errors of the server go to errc.
func (d *Daemon) serveKubeAPI(errc chan<- error) (*http.Server, error) {
	host, _, err := net.SplitHostPort(d.cfg.KubeListen)
	if err != nil {
		return nil, fmt.Errorf("--kube-listen %q: %w", d.cfg.KubeListen, err)
	}
	creds, err := kubeapi.EnsureCredentials(filepath.Join(d.cfg.Node.Root, "kubeapi"), host)
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API's credentials: %w", err)
	}
	tlsCfg, err := creds.TLSConfig()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", d.cfg.KubeListen)
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API (--kube-listen %s; another podrun daemon may serve it): %w", d.cfg.KubeListen, err)
	}
	url := "https://" + ln.Addr().String()
	if err := creds.SaveServer(url); err != nil {
		ln.Close()
		return nil, err
	}
	h := creds.Authenticate(kubeapi.Handler(d, kubeapi.Config{NodeName: pod.NodeName(), Log: d.log, StateDir: creds.Dir}))
	srv := &http.Server{Handler: h, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second}
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	d.log.Info("serving the Kubernetes API", "url", url, "credentials", creds.Dir)
	return srv, nil
}

// listen makes the API socket: mode 0600 and root's, since whoever can
// reach it can run anything as root. A socket a dead daemon left is
// replaced; a live one is an error.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("a podrun daemon already serves %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// The socket is created with the umask's mode: never world-reachable,
	// not even between bind and chmod.
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("API socket: %w", err)
	}
	if err := os.Chown(path, 0, 0); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// rvReserve is how many resourceVersions one stored reservation covers.
const rvReserve = 1000

// nextRV hands out a resourceVersion (d.mu held). Resource versions grow
// across restarts, deletions included: the store keeps a bound ahead of
// the last one handed out (renewed half-way, so that the write has landed
// long before the bound is reached), and load starts above it.
func (d *Daemon) nextRV() string {
	d.rv++
	if d.rv+rvReserve/2 > d.rvReserved {
		d.rvReserved = d.rv + rvReserve
		d.store.reserveRV(d.rvReserved)
	}
	return strconv.FormatInt(d.rv, 10)
}

// ResourceVersion is the last resourceVersion handed out: the one a list
// made now is at (kubeapi's watch history starts there).
func (d *Daemon) ResourceVersion() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rv
}

// watcher is one watch request.
type watcher struct {
	res api.Resource
	ns  string // "" for every namespace
	ch  chan api.Event
}

// emit tells the watchers of res about a change (d.mu held). A watcher
// whose buffer is full is dropped: its stream ends and the client lists
// again, as with the API server's "too old resource version".
func (d *Daemon) emit(res api.Resource, typ string, obj api.Object) {
	if typ == "DELETED" { // a deletion is a change: it has its own resourceVersion, as in etcd
		obj = obj.DeepCopyObject().(api.Object)
		obj.SetResourceVersion(d.nextRV())
	}
	for w := range d.watchers {
		if w.res != res || w.ns != "" && w.ns != obj.GetNamespace() {
			continue
		}
		select {
		case w.ch <- api.Event{Type: typ, Object: obj}:
		default:
			close(w.ch)
			delete(d.watchers, w)
		}
	}
}

var _ kubeapi.DryRunner = (*Daemon)(nil)

// debugTrace is a recorder of spans for log's debug level, nil without it.
func debugTrace(log *slog.Logger) *trace.Recorder {
	if log == nil || !log.Enabled(context.Background(), slog.LevelDebug) {
		return nil
	}
	return trace.New(nil, log)
}
