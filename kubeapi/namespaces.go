package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/atomicfile"
)

// Namespaces, as the API server keeps them, with one podrun rule kept:
// a namespace also exists while objects are in it (podrun apply puts
// objects in any namespace), as does "default". The ones created through
// this API, and the ones being deleted, are stored in
// <StateDir>/namespaces.json with a resourceVersion counter of their own,
// and their changes feed the namespaces' history, so they are watched as
// the other kinds are. Deleting a namespace terminates it as the API
// server's namespace controller does: Terminating at once, every object
// in it deleted (Deployments and Jobs before pods), gone once it is
// empty; nothing new can be created in it meanwhile.

// protectedNamespaces cannot be deleted.
var protectedNamespaces = map[string]bool{corev1.NamespaceDefault: true, "kube-system": true, "kube-public": true}

// terminateEvery is how often a terminating namespace is checked for
// what is left in it (pods take their grace periods to go).
var terminateEvery = 250 * time.Millisecond

type nsStore struct {
	path string // "" keeps them in memory only
	mu   sync.Mutex
	h    *history
}

type nsFile struct {
	ResourceVersion int64              `json:"resourceVersion"`
	Items           []corev1.Namespace `json:"items"`
}

func newNSStore(dir string) (*nsStore, error) {
	n := &nsStore{h: &history{objs: map[string]api.Object{}, watchers: map[*subscriber]struct{}{}}}
	n.h.changed = sync.NewCond(&n.h.mu)
	if dir == "" {
		return n, nil
	}
	n.path = filepath.Join(dir, "namespaces.json")
	b, err := os.ReadFile(n.path)
	if errors.Is(err, fs.ErrNotExist) {
		return n, nil
	} else if err != nil {
		return nil, err
	}
	var f nsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", n.path, err)
	}
	for i := range f.Items {
		n.h.objs[objKey(&f.Items[i])] = &f.Items[i]
	}
	n.h.rv, n.h.floor = f.ResourceVersion, f.ResourceVersion
	return n, nil
}

// put records a change of a stored namespace, on disk first.
func (n *nsStore) put(typ string, ns *corev1.Namespace) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.h.mu.Lock()
	f := nsFile{ResourceVersion: n.h.rv + 1}
	for _, o := range n.h.objs {
		if o.GetName() != ns.Name {
			f.Items = append(f.Items, *o.(*corev1.Namespace))
		}
	}
	n.h.mu.Unlock()
	ns.ResourceVersion = strconv.FormatInt(f.ResourceVersion, 10)
	if typ != "DELETED" {
		f.Items = append(f.Items, *ns)
	}
	if n.path != "" {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(n.path, b, 0o600, true); err != nil {
			return err
		}
	}
	n.h.record(api.Event{Type: typ, Object: ns})
	return nil
}

func (n *nsStore) get(name string) *corev1.Namespace {
	n.h.mu.Lock()
	defer n.h.mu.Unlock()
	o, _ := n.h.objs["/"+name].(*corev1.Namespace)
	return o
}

// allNamespaces are the stored namespaces and the implicit ones, and the
// resourceVersion of the list.
func (s *server) allNamespaces() ([]api.Object, int64, error) {
	implicit, err := s.namespaces()
	if err != nil {
		return nil, 0, err
	}
	stored, rv := s.ns.h.list("")
	out := stored
	for _, o := range implicit {
		if s.ns.get(o.GetName()) == nil {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, rv, nil
}

// terminating refuses a create in a namespace being deleted.
func (s *server) terminating(t target, name string) error {
	if ns := s.ns.get(t.ns); ns != nil && ns.DeletionTimestamp != nil {
		return apierrors.NewForbidden(t.k.GroupResource(), name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", t.ns))
	}
	return nil
}

// createNamespace makes the namespace of data (JSON), or checks that it
// could (dry).
func (s *server) createNamespace(w http.ResponseWriter, r *http.Request, t target, out output, data []byte, dry bool) {
	var ns corev1.Namespace
	if err := json.Unmarshal(data, &ns); err != nil || ns.Kind != "Namespace" {
		api.WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("the body must be a Namespace (%v)", err)))
		return
	}
	if ns.Name == "" && ns.GenerateName != "" {
		ns.Name = ns.GenerateName + rand.String(5)
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(ns.Name) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), ns.Name, msg))
	}
	if len(errs) > 0 {
		api.WriteError(w, apierrors.NewInvalid(schema.GroupKind{Kind: t.k.Kind}, ns.Name, errs))
		return
	}
	if _, err := s.object(target{k: t.k, name: ns.Name}); err == nil {
		api.WriteError(w, apierrors.NewAlreadyExists(t.k.GroupResource(), ns.Name))
		return
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
	ns.ResourceVersion, ns.Finalizers, ns.DeletionTimestamp = "", nil, nil
	ns.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
	ns.UID, ns.CreationTimestamp = uuid.NewUUID(), metav1.NewTime(s.cfg.Now())
	ns.Spec = corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}}
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	if !dry {
		if err := s.ns.put("ADDED", &ns); err != nil {
			api.WriteError(w, err)
			return
		}
	}
	writeObject(w, out, http.StatusCreated, &ns)
}

// updateNamespace takes a namespace's new labels, annotations and
// managedFields from m, the JSON of the whole object: podrun changes
// nothing else of a namespace (422).
func (s *server) updateNamespace(cur api.Object, m map[string]any, dry bool) (api.Object, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var n corev1.Namespace
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, apierrors.NewBadRequest("the body is not a Namespace: " + err.Error())
	}
	old := cur.(*corev1.Namespace)
	if !equality.Semantic.DeepEqual(n.Spec, old.Spec) {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Namespace"}, old.Name, field.ErrorList{field.Forbidden(field.NewPath("spec"),
			"podrun changes only the labels and annotations of a namespace")})
	}
	ns := old.DeepCopy()
	ns.Labels, ns.Annotations = n.Labels, n.Annotations
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
	if len(n.ManagedFields) > 0 {
		ns.ManagedFields = n.ManagedFields
	}
	if dry {
		return ns, nil
	}
	typ := "MODIFIED"
	if s.ns.get(ns.Name) == nil {
		typ = "ADDED" // an implicit namespace: stored from now on
	}
	return ns, s.ns.put(typ, ns)
}

func (s *server) deleteNamespace(w http.ResponseWriter, r *http.Request, t target) {
	out, err := negotiate(r, false)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if protectedNamespaces[t.name] {
		api.WriteError(w, apierrors.NewForbidden(t.k.GroupResource(), t.name, errors.New("this namespace may not be deleted")))
		return
	}
	cur, err := s.object(t)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	ns := cur.DeepCopyObject().(*corev1.Namespace)
	if ns.DeletionTimestamp != nil {
		writeObject(w, out, http.StatusOK, ns)
		return
	}
	now := metav1.NewTime(s.cfg.Now())
	ns.DeletionTimestamp, ns.Status.Phase = &now, corev1.NamespaceTerminating
	if !dry {
		typ := "MODIFIED"
		if s.ns.get(ns.Name) == nil {
			typ = "ADDED" // an implicit namespace: stored while it terminates
		}
		if err := s.ns.put(typ, ns); err != nil {
			api.WriteError(w, err)
			return
		}
		go s.terminate(ns)
	}
	writeObject(w, out, http.StatusOK, ns)
}

// terminatedKinds are deleted from a terminating namespace in this
// order: the owners first, so that nothing makes their pods again.
var terminatedKinds = []api.Resource{api.Deployments, api.Jobs, api.Pods, api.ConfigMaps, api.Secrets}

// terminate deletes everything in ns, then ns.
func (s *server) terminate(ns *corev1.Namespace) {
	ctx := s.cfg.Context
	for {
		left := 0
		for _, r := range terminatedKinds {
			objs, err := s.b.List(r, ns.Name)
			if err != nil {
				s.cfg.Log.Error("terminating a namespace", "namespace", ns.Name, "err", err)
			}
			for _, o := range objs {
				left++
				if o.GetDeletionTimestamp() != nil {
					continue
				}
				if _, err := s.b.Delete(r, ns.Name, o.GetName(), nil); err != nil && !apierrors.IsNotFound(err) {
					s.cfg.Log.Error("terminating a namespace", "namespace", ns.Name, "object", r.Name+"/"+o.GetName(), "err", err)
				}
			}
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return // resumed at the next start
		case <-time.After(terminateEvery):
		}
	}
	if err := s.ns.put("DELETED", ns.DeepCopy()); err != nil {
		s.cfg.Log.Error("deleting a namespace", "namespace", ns.Name, "err", err)
	}
}

// resumeTerminating goes on deleting the namespaces a previous daemon was
// deleting.
func (s *server) resumeTerminating(ctx context.Context) {
	objs, _ := s.ns.h.list("")
	for _, o := range objs {
		if ns := o.(*corev1.Namespace); ns.DeletionTimestamp != nil && ctx.Err() == nil {
			go s.terminate(ns)
		}
	}
}
