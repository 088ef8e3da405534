package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/atomicfile"
	"github.com/podrun/podrun/pod"
)

// store keeps the daemon's objects under <root>/api/<resource>/<ns>/<name>.json,
// each written atomically and synced, so that the daemon finds them again
// after it restarted (or the machine did). Callers hold the daemon's lock,
// so save and remove only take a copy and queue it: one writer goroutine
// does the writes and their fsyncs outside every lock (containerd#8617
// removed the same lock-across-I/O), the newest content of each file
// winning. flush waits for what was queued before it.
type store struct {
	dir string

	mu      sync.Mutex // guards pending, queued, written
	cond    *sync.Cond // signalled when written moves
	pending map[string]pendingWrite
	queued  uint64 // sequence number of the last queued write
	written uint64 // every write up to this sequence number is done
	kick    chan struct{}
	log     func(msg string, args ...any)
}

type pendingWrite struct {
	data []byte // nil: remove the file
	seq  uint64
}

func newStore(dir string, log func(msg string, args ...any)) *store {
	s := &store{dir: dir, pending: map[string]pendingWrite{}, kick: make(chan struct{}, 1), log: log}
	s.cond = sync.NewCond(&s.mu)
	go s.writer()
	return s
}

func (s *store) path(res api.Resource, ns, name string) string {
	return filepath.Join(s.dir, res.Name, ns, name+".json")
}

func (s *store) save(res api.Resource, ns, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s %s/%s: %w", res.Name, ns, name, err)
	}
	s.queue(s.path(res, ns, name), b)
	return nil
}

func (s *store) remove(res api.Resource, ns, name string) { s.queue(s.path(res, ns, name), nil) }

// rvPath is the file of the resourceVersion reservation.
func (s *store) rvPath() string { return filepath.Join(s.dir, "resourceVersion") }

func (s *store) reserveRV(n int64) { s.queue(s.rvPath(), strconv.AppendInt(nil, n, 10)) }

func (s *store) queue(path string, b []byte) {
	s.mu.Lock()
	s.queued++
	s.pending[path] = pendingWrite{data: b, seq: s.queued}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// flush returns once everything queued before it is on disk.
func (s *store) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for target := s.queued; s.written < target; {
		s.cond.Wait()
	}
}

func (s *store) writer() {
	for range s.kick {
		s.mu.Lock()
		batch, upTo := s.pending, s.queued
		s.pending = map[string]pendingWrite{}
		s.mu.Unlock()
		for path, w := range batch {
			if err := s.write(path, w.data); err != nil {
				s.log("writing a stored object", "path", path, "err", err)
			}
		}
		s.mu.Lock()
		s.written = upTo
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

func (s *store) write(path string, b []byte) error {
	if b == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600, true)
}

// each calls fn with the content of every stored object of res; an
// object fn refuses is reported and the others still read.
func (s *store) each(res api.Resource, fn func(path string, b []byte) error) error {
	root := filepath.Join(s.dir, res.Name)
	var errs []error
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return filepath.SkipAll
			}
			return err
		}
		if e.IsDir() || !strings.HasSuffix(path, ".json") || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := fn(path, b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// podFile is a stored pod: its spec as applied and, once it finished, its
// final status and events.
type podFile struct {
	Pod      *corev1.Pod `json:"pod"`
	Events   []pod.Event `json:"events,omitempty"`
	Finished bool        `json:"finished,omitempty"`
	// Deleting: the deletion was requested (with Grace).
	Deleting bool   `json:"deleting,omitempty"`
	Grace    *int64 `json:"grace,omitempty"`
}

// savePod persists a pod record (d.mu held).
func (d *Daemon) savePod(rec *podRec) {
	f := podFile{Pod: rec.pod, Finished: rec.finished, Deleting: rec.deleting, Grace: rec.grace}
	if rec.finished {
		f.Events = rec.events
	}
	if err := d.store.save(api.Pods, rec.pod.Namespace, rec.pod.Name, &f); err != nil {
		d.log.Error("saving a pod", "pod", rec.key(), "err", err)
	}
}

// saveObject persists any other object (d.mu held).
func (d *Daemon) saveObject(res api.Resource, obj api.Object) {
	if err := d.store.save(res, obj.GetNamespace(), obj.GetName(), obj); err != nil {
		d.log.Error("saving an object", "resource", res.Name, "name", obj.GetNamespace()+"/"+obj.GetName(), "err", err)
	}
}

func (d *Daemon) forget(res api.Resource, ns, name string) { d.store.remove(res, ns, name) }

// load reads every stored object. The shims are found again later.
func (d *Daemon) load() error {
	var errs []error
	errs = append(errs, d.store.each(api.ConfigMaps, func(_ string, b []byte) error {
		var o corev1.ConfigMap
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		d.configMaps[keyOf(o.Namespace, o.Name)] = &o
		return nil
	}))
	errs = append(errs, d.store.each(api.Secrets, func(_ string, b []byte) error {
		var o corev1.Secret
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		d.secrets[keyOf(o.Namespace, o.Name)] = &o
		return nil
	}))
	errs = append(errs, d.store.each(api.Deployments, func(_ string, b []byte) error {
		var o appsv1.Deployment
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		d.deployments[keyOf(o.Namespace, o.Name)] = &o
		return nil
	}))
	errs = append(errs, d.store.each(api.ReplicaSets, func(_ string, b []byte) error {
		var o appsv1.ReplicaSet
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		d.replicaSets[keyOf(o.Namespace, o.Name)] = &o
		return nil
	}))
	errs = append(errs, d.store.each(api.Jobs, func(_ string, b []byte) error {
		var o batchv1.Job
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		d.jobs[keyOf(o.Namespace, o.Name)] = &jobRec{job: &o, deleting: o.DeletionTimestamp != nil}
		return nil
	}))
	errs = append(errs, d.store.each(api.Pods, func(_ string, b []byte) error {
		var f podFile
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		if f.Pod == nil {
			return errors.New("no pod")
		}
		rec := newPodRec(f.Pod, d.podDir(string(f.Pod.UID)))
		rec.events, rec.finished, rec.deleting, rec.grace = f.Events, f.Finished, f.Deleting, f.Grace
		rec.loadedRV = f.Pod.ResourceVersion
		if rec.finished {
			close(rec.gone)
		}
		d.pods[rec.key()] = rec
		return nil
	}))
	// Resource versions go on from the highest stored one or the stored
	// reservation, whichever is higher.
	for _, o := range d.objects() {
		if v, err := parseRV(o.GetResourceVersion()); err == nil && v > d.rv {
			d.rv = v
		}
	}
	if b, err := os.ReadFile(d.store.rvPath()); err == nil {
		if v, err := parseRV(strings.TrimSpace(string(b))); err == nil && v > d.rv {
			d.rv = v
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	d.rvReserved = d.rv
	// A damaged file costs its object, not the daemon's start.
	if err := errors.Join(errs...); err != nil {
		d.log.Error("some stored objects could not be read", "err", err)
	}
	return nil
}
