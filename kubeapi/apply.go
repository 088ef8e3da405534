package kubeapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"

	"github.com/podrun/podrun/api"
)

// Server-side apply and managedFields, through apimachinery's field
// manager, typed by the OpenAPI schemas (openapi.go): every write records
// its manager's fields in metadata.managedFields (Update), and an
// application/apply-patch+yaml PATCH merges the applied configuration
// into the object, owning what it sets, 409 on a conflict with another
// manager unless force=true. The object the field manager makes goes
// through the same backend Apply as every other write.

var (
	managersOnce sync.Once
	managers     map[*kind]*managedfields.FieldManager
	managersErr  error
)

// fieldManager is k's field manager.
func fieldManager(k *kind) (*managedfields.FieldManager, error) {
	managersOnce.Do(func() {
		managersErr = func() error {
			if _, err := loadSchemas(); err != nil {
				return err
			}
			models := map[string]*spec.Schema{}
			if err := json.Unmarshal(schemasJSON, &models); err != nil {
				return err
			}
			tc, err := managedfields.NewTypeConverter(models, false)
			if err != nil {
				return err
			}
			managers = map[*kind]*managedfields.FieldManager{}
			for _, k := range kinds {
				if !contains(k.Verbs, "patch") {
					continue
				}
				gvk := k.gvk()
				if managers[k], err = managedfields.NewDefaultFieldManager(tc, scheme(), scheme(), scheme(), gvk, gvk.GroupVersion(), "", nil); err != nil {
					return fmt.Errorf("%s: %w", gvk, err)
				}
			}
			return nil
		}()
	})
	if managersErr != nil {
		return nil, managersErr
	}
	return managers[k], nil
}

// managerName is the fieldManager of a write: the parameter, else the
// client's name from its User-Agent, as the API server derives it.
func managerName(r *http.Request) string {
	if m := r.URL.Query().Get("fieldManager"); m != "" {
		return m
	}
	ua, _, _ := strings.Cut(r.UserAgent(), "/")
	return ua
}

// tracked is the JSON of a write's new object with its managedFields
// updated for the writer (cur is nil for a create).
func tracked(r *http.Request, k *kind, cur api.Object, data []byte) ([]byte, error) {
	fm, err := fieldManager(k)
	if err != nil || fm == nil {
		return data, err
	}
	var tm metav1.TypeMeta
	if json.Unmarshal(data, &tm) != nil || tm.Kind != k.Kind {
		return data, nil // not an object of k: refused later, naming what it is
	}
	n, err := typed(k, json.RawMessage(data))
	if err != nil {
		return data, nil
	}
	return json.Marshal(fm.UpdateNoErrors(liveOf(k, cur), n, managerName(r)))
}

// liveOf is the object the field manager compares a write with: cur, or
// for a create (cur nil) an empty object of k.
func liveOf(k *kind, cur api.Object) runtime.Object {
	if cur == nil {
		o, _ := scheme().New(k.gvk())
		return o
	}
	return cur
}

// applyPatch is server-side apply: PATCH application/apply-patch+yaml.
// It creates the object when it does not exist.
func (s *server) applyPatch(w http.ResponseWriter, r *http.Request, t target, out output, data []byte) {
	obj, err := s.applied(r, t, data)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	cur, dry, err := s.current(r, t)
	if err != nil && !apierrors.IsNotFound(err) {
		api.WriteError(w, err)
		return
	}
	fm, err := fieldManager(t.k)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	force := isTrue(r.URL.Query().Get("force"))
	n, err := fm.Apply(liveOf(t.k, cur), obj, r.URL.Query().Get("fieldManager"), force)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	body, err := json.Marshal(n)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if cur == nil {
		s.createJSON(w, r, t, out, body, dry)
		return
	}
	o, err := s.update(r.Context(), t, cur, func([]byte) ([]byte, error) { return body, nil }, dry)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	respond(w, out, t, http.StatusOK, o)
}

// applied reads and checks an applied configuration: YAML or JSON of t's
// kind and name, without managedFields, with a fieldManager.
func (s *server) applied(r *http.Request, t target, data []byte) (*unstructured.Unstructured, error) {
	if r.URL.Query().Get("fieldManager") == "" {
		return nil, apierrors.NewBadRequest("fieldManager: Required value: is required for apply patch")
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, apierrors.NewBadRequest("error decoding YAML: " + err.Error())
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(j); err != nil {
		return nil, apierrors.NewBadRequest("the applied configuration is not an object: " + err.Error())
	}
	if gvk := obj.GroupVersionKind(); gvk != t.k.gvk() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the applied configuration is a %s, not a %s", gvk, t.k.gvk()))
	}
	if obj.GetName() != t.name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", obj.GetName(), t.name))
	}
	if ns := obj.GetNamespace(); ns != "" && ns != t.ns {
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if obj.GetManagedFields() != nil {
		return nil, apierrors.NewBadRequest("metadata.managedFields must be nil")
	}
	return obj, nil
}
