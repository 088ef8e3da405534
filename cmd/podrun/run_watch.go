package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/podrun/podrun/internal/filewatch"
	"github.com/podrun/podrun/manifest"
	"github.com/podrun/podrun/pod"
)

// watcher is `podrun run --watch`: the files are read again at every
// change and what changed is applied as the controllers would: a changed
// pod is replaced (a pod spec is immutable), a changed Deployment's pods
// are replaced, new ConfigMaps and Secrets are projected into the running
// pods' volumes. Jobs run once, as without --watch.
type watcher struct {
	r     *runner
	paths []string
	// the running units, by "<kind>/<namespace>/<name>" of the pod or the
	// Deployment, with what they were started from
	units map[string]*unit
	jobs  map[string]any // the Jobs started, by "<namespace>/<name>": their spec
}

// unit is a bare pod or a Deployment's pods.
type unit struct {
	spec any // the pod's or Deployment's metadata and spec, to compare
	sups []*pod.Supervisor
}

// runWatch runs everything like run, then follows the files until ctx
// ends; it reports whether a pod or Job failed.
func (r *runner) runWatch(ctx context.Context, paths []string) (failed bool, err error) {
	fw, err := filewatch.New(paths)
	if err != nil {
		return false, err
	}
	changes := fw.Changes(ctx)
	w := &watcher{r: r, paths: paths, units: map[string]*unit{}, jobs: map[string]any{}}
	for _, j := range r.bundle.Jobs {
		w.jobs[j.Namespace+"/"+j.Name] = jobSpec(j)
	}
	iw := newImageWatch(r.node.Images, r.out.note)
	defer iw.Close()
	poll, stopPoll := iw.ticks()
	defer stopPoll()
	if iw != nil {
		iw.reload(ctx, podImages(bundlePods(r.bundle)))
	}
	var jobs sync.WaitGroup
	finalJobs := r.startJobs(ctx, &jobs)
	w.sync(ctx, r.bundle)
	r.out.note("run --watch: following %v; save a file to apply it, Ctrl-C to stop", paths)
	for open := true; open; {
		select {
		case _, open = <-changes:
			if open {
				w.reread(ctx)
			}
		case <-poll:
			if moved := iw.reload(ctx, podImages(w.pods())); len(moved) > 0 {
				w.restartUsers(moved)
				w.sync(ctx, r.bundle)
			}
		}
	}
	jobs.Wait()
	for _, u := range w.units {
		for _, s := range u.sups {
			<-s.Done()
		}
	}
	return r.collect(finalJobs), nil
}

// reread loads the files again and applies them; a file with problems is
// reported and nothing applied.
func (w *watcher) reread(ctx context.Context) {
	b, err := manifest.Load(w.paths...)
	if err == nil {
		err = b.Unsupported()
	}
	if err != nil {
		w.r.out.manifestProblems(err)
		return
	}
	for _, j := range b.Jobs {
		if old, ok := w.jobs[j.Namespace+"/"+j.Name]; !ok || !equality.Semantic.DeepEqual(old, jobSpec(j)) {
			w.r.out.note("job.batch/%s changed: podrun run --watch runs each Job once, as it started; run podrun run again for the new one", j.Name)
		}
	}
	w.sync(ctx, b)
}

// jobSpec is what the file says of a Job: its spec without the selector
// and labels each load makes from a fresh UID.
func jobSpec(j *batchv1.Job) *batchv1.JobSpec {
	s := j.Spec.DeepCopy()
	s.Selector = nil
	for k, v := range s.Template.Labels {
		if v == string(j.UID) {
			delete(s.Template.Labels, k)
		}
	}
	return s
}

// pods is every running unit's pods.
func (w *watcher) pods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, u := range w.units {
		for _, s := range u.sups {
			out = append(out, s.Pod())
		}
	}
	return out
}

// restartUsers has the next sync replace every unit with a pod using one
// of refs: its containers start again, on the image the tag names now.
func (w *watcher) restartUsers(refs []string) {
	for k, u := range w.units {
		for _, s := range u.sups {
			if usesAny(s.Pod(), refs) {
				w.r.out.note("%s uses %v, which moved", k, refs)
				u.spec = nil
				break
			}
		}
	}
}

func bundlePods(b *manifest.Bundle) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range b.Pods {
		out = append(out, p.Pod)
	}
	return out
}

// sync makes the running pods those of b.
func (w *watcher) sync(ctx context.Context, b *manifest.Bundle) {
	r := w.r
	r.mu.Lock()
	objectsChanged := !sameObjects(r.bundle, b)
	r.bundle = b
	r.mu.Unlock()

	want := map[string]*unit{}
	pods := map[string][]*corev1.Pod{}
	for _, p := range b.Pods {
		switch {
		case p.Job != nil:
		case p.Deployment != nil:
			k := "Deployment/" + p.Deployment.Namespace + "/" + p.Deployment.Name
			want[k] = &unit{spec: []any{p.Deployment.Labels, p.Deployment.Annotations, p.Deployment.Spec}}
			pods[k] = append(pods[k], p.Pod)
		default:
			k := "Pod/" + p.Namespace + "/" + p.Name
			want[k] = &unit{spec: []any{p.Labels, p.Annotations, p.Spec}}
			pods[k] = []*corev1.Pod{p.Pod}
		}
	}
	// What changed or went is deleted first, all at once; what replaces
	// it starts once it is gone, as a pod of the same name must wait.
	var stopping []*pod.Supervisor
	for k, u := range w.units {
		if n := want[k]; n != nil && equality.Semantic.DeepEqual(n.spec, u.spec) {
			continue
		}
		if want[k] != nil {
			r.out.note("%s changed: replacing its pods", k)
		} else {
			r.out.note("%s is no longer in the files: deleting its pods", k)
		}
		for _, s := range u.sups {
			s.Delete(nil)
			stopping = append(stopping, s)
		}
		delete(w.units, k)
	}
	if objectsChanged && len(w.units) > 0 {
		r.out.note("ConfigMaps or Secrets changed: refreshing the running pods' volumes")
		for _, u := range w.units {
			for _, s := range u.sups {
				s.Refresh(b)
			}
		}
	}
	for _, s := range stopping {
		<-s.Done()
	}
	r.forget(stopping)
	for k, u := range want {
		if w.units[k] != nil {
			continue
		}
		for _, p := range pods[k] {
			u.sups = append(u.sups, r.start(ctx, p))
		}
		w.units[k] = u
	}
}

// sameObjects reports whether a and b have the same ConfigMaps and Secrets
// (names and content: every load gives them new UIDs).
func sameObjects(a, b *manifest.Bundle) bool {
	content := func(x *manifest.Bundle) []any {
		var out []any
		for _, c := range x.ConfigMaps {
			out = append(out, c.Namespace, c.Name, c.Data, c.BinaryData)
		}
		for _, s := range x.Secrets {
			out = append(out, s.Namespace, s.Name, s.Type, s.Data, s.StringData)
		}
		return out
	}
	return equality.Semantic.DeepEqual(content(a), content(b))
}

// forget drops replaced pods from the run's pods.
func (r *runner) forget(gone []*pod.Supervisor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range gone {
		for i, s := range r.sups {
			if s == g {
				r.sups = append(r.sups[:i], r.sups[i+1:]...)
				break
			}
		}
	}
}

func (o *console) note(format string, args ...any) {
	if o.quiet {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.errw, format+"\n", args...)
}

// manifestProblems prints what is wrong with the files, one per line.
func (o *console) manifestProblems(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs manifest.Errors
	if !errors.As(err, &errs) {
		fmt.Fprintln(o.errw, err)
		return
	}
	for _, e := range errs {
		fmt.Fprintln(o.errw, e)
	}
	fmt.Fprintln(o.errw, "run --watch: the files were not applied; save them again once fixed")
}
