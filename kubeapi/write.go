package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	sigsjson "sigs.k8s.io/json"

	"github.com/podrun/podrun/api"
)

// DryRunner is a backend that can check a manifest the way Apply would,
// changing nothing: what dryRun=All needs. A backend without it refuses
// dry runs.
type DryRunner interface {
	ApplyDryRun(ctx context.Context, file string, data []byte) ([]api.Applied, error)
}

// maxBody bounds a request body.
const maxBody = 16 << 20

// readBody reads a request body as JSON, and what the response is to be
// encoded as.
func readBody(r *http.Request) ([]byte, output, error) {
	out, err := negotiate(r, false)
	if err != nil {
		return nil, out, err
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, out, apierrors.NewBadRequest(err.Error())
	}
	if r.Method == http.MethodPatch {
		return data, out, nil // a patch, in its own media type
	}
	data, err = bodyJSON(r, data)
	return data, out, err
}

// respond writes v, an object or the JSON map of one of t's kind.
func respond(w http.ResponseWriter, out output, t target, code int, v any) {
	o, err := typed(t.k, v)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	writeObject(w, out, code, o)
}

// dryRun reads the dryRun parameter: only "All" exists.
func dryRun(r *http.Request) (bool, error) {
	switch v := r.URL.Query()["dryRun"]; {
	case len(v) == 0:
		return false, nil
	case len(v) == 1 && v[0] == metav1.DryRunAll:
		return true, nil
	default:
		return false, apierrors.NewBadRequest(fmt.Sprintf("dryRun: unsupported value %q: the only value is All", v))
	}
}

func (s *server) create(w http.ResponseWriter, r *http.Request, t target) {
	data, out, err := readBody(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	dry, err := dryRun(r)
	if err == nil {
		err = validateFields(w, r, t.k, data)
	}
	if err == nil {
		data, err = tracked(r, t.k, nil, data)
	}
	if err != nil {
		api.WriteError(w, err)
		return
	}
	s.createJSON(w, r, t, out, data, dry)
}

// createJSON creates the object of data (JSON), or checks that it could.
func (s *server) createJSON(w http.ResponseWriter, r *http.Request, t target, out output, data []byte, dry bool) {
	if t.k.Resource == namespacesResource {
		s.createNamespace(w, r, t, out, data, dry)
		return
	}
	m, err := decodeObject(data, t)
	if err == nil {
		err = s.terminating(t, "")
	}
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if !dry {
		o, err := s.b.Create(r.Context(), t.k.Resource, t.ns, data)
		if err != nil {
			api.WriteError(w, s.invalid(t, "", err))
			return
		}
		s.settled(t.k, o, false)
		respond(w, out, t, http.StatusCreated, o)
		return
	}
	meta := m["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" && ns != t.ns {
		api.WriteError(w, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
		return
	}
	meta["namespace"] = t.ns
	if _, err := s.b.Get(t.k.Resource, t.ns, name); err == nil {
		api.WriteError(w, apierrors.NewAlreadyExists(t.k.GroupResource(), name))
		return
	}
	if err := s.dryApply(r.Context(), t, name, m); err != nil {
		api.WriteError(w, err)
		return
	}
	respond(w, out, t, http.StatusCreated, m)
}

// decodeObject reads a body that must be one object of t's kind.
func decodeObject(data []byte, t target) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, apierrors.NewBadRequest("the body is not a JSON object: " + err.Error())
	}
	if kind, _ := m["kind"].(string); kind != t.k.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body must be a %s, not %q", t.k.Kind, kind))
	}
	if _, ok := m["metadata"].(map[string]any); !ok {
		m["metadata"] = map[string]any{}
	}
	return m, nil
}

// validateFields does what fieldValidation asks of a body of k (JSON), as
// the API server does: Strict refuses unknown and duplicate fields (400),
// Warn (the default) says them in Warning headers, Ignore does nothing.
// podrun's backend decodes manifests strictly: it refuses unknown fields
// whatever fieldValidation says.
func validateFields(w http.ResponseWriter, r *http.Request, k *kind, data []byte) error {
	mode := r.URL.Query().Get("fieldValidation")
	switch mode {
	case "", "Warn", "Strict":
	case "Ignore":
		return nil
	default:
		return apierrors.NewBadRequest(fmt.Sprintf("fieldValidation: invalid value %q: the values are Ignore, Warn and Strict", mode))
	}
	o, err := scheme().New(k.gvk())
	if err != nil {
		return err
	}
	problems, err := sigsjson.UnmarshalStrict(data, o, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil || len(problems) == 0 {
		return nil // a body that does not decode is refused later, with the decoder's error
	}
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Error())
	}
	if mode == "Strict" {
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: strict decoding error: %s",
			k.Kind, k.Version, k.Kind, strings.Join(msgs, ", ")))
	}
	for _, m := range msgs {
		w.Header().Add("Warning", "299 - "+strconv.Quote(m))
	}
	return nil
}

// put replaces an object (kubectl replace, edit).
func (s *server) put(w http.ResponseWriter, r *http.Request, t target) {
	data, out, err := readBody(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if t.sub == "scale" {
		s.writeScale(w, r, t, out, func([]byte) ([]byte, error) { return data, nil })
		return
	}
	s.modify(w, r, t, out, func([]byte) ([]byte, error) { return data, nil })
}

// patch applies a JSON patch, a JSON merge patch or a strategic merge
// patch to the object and updates it with the result.
func (s *server) patch(w http.ResponseWriter, r *http.Request, t target) {
	data, out, err := readBody(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	typ, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	schemaOf, err := scheme().New(t.k.gvk()) // the struct strategic merge patches read their strategies from
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if t.sub == "scale" {
		schemaOf = &autoscalingv1.Scale{}
	}
	apply := func(cur []byte) ([]byte, error) {
		var out []byte
		var err error
		switch types.PatchType(typ) {
		case types.JSONPatchType:
			var p jsonpatch.Patch
			if p, err = jsonpatch.DecodePatch(data); err == nil {
				out, err = p.Apply(cur)
			}
		case types.MergePatchType:
			out, err = jsonpatch.MergePatch(cur, data)
		case types.StrategicMergePatchType:
			out, err = strategicpatch.StrategicMergePatch(cur, data, schemaOf)
		default:
			return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", t.k.GroupResource(), t.name,
				fmt.Sprintf("the patch type %q is not supported", typ), 0, false)
		}
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the patch could not be applied: %v", err))
		}
		return out, nil
	}
	if types.PatchType(typ) == types.ApplyYAMLPatchType && t.sub == "" {
		s.applyPatch(w, r, t, out, data)
		return
	}
	if t.sub == "scale" {
		s.writeScale(w, r, t, out, apply)
		return
	}
	s.modify(w, r, t, out, apply)
}

// current is the object a write to t changes, and whether the write is a
// dry run.
func (s *server) current(r *http.Request, t target) (api.Object, bool, error) {
	dry, err := dryRun(r)
	if err != nil {
		return nil, false, err
	}
	if t.k.synthetic {
		cur, err := s.object(t)
		return cur, dry, err
	}
	cur, err := s.b.Get(t.k.Resource, t.ns, t.name)
	return cur, dry, err
}

// modify updates an object with what change makes of its JSON.
func (s *server) modify(w http.ResponseWriter, r *http.Request, t target, out output, change func([]byte) ([]byte, error)) {
	cur, dry, err := s.current(r, t)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	checked := func(b []byte) ([]byte, error) {
		out, err := change(b)
		if err == nil {
			err = validateFields(w, r, t.k, out)
		}
		if err == nil {
			out, err = tracked(r, t.k, cur, out)
		}
		return out, err
	}
	o, err := s.update(r.Context(), t, cur, checked, dry)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	respond(w, out, t, http.StatusOK, o)
}

// update checks and applies the new version of cur, through the backend's
// Apply: what podrun cannot change in place is refused there (422).
func (s *server) update(ctx context.Context, t target, cur api.Object, change func([]byte) ([]byte, error), dry bool) (any, error) {
	curJSON, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	data, err := change(curJSON)
	if err != nil {
		return nil, err
	}
	m, err := decodeObject(data, t)
	if err != nil {
		return nil, err
	}
	meta := m["metadata"].(map[string]any)
	if name, _ := meta["name"].(string); name != t.name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%q) does not match the name on the URL (%q)", name, t.name))
	}
	if ns, _ := meta["namespace"].(string); ns != "" && ns != t.ns {
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if rv, _ := meta["resourceVersion"].(string); rv != "" && rv != cur.GetResourceVersion() {
		return nil, apierrors.NewConflict(t.k.GroupResource(), t.name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	}
	if uid, _ := meta["uid"].(string); uid != "" && uid != string(cur.GetUID()) {
		return nil, apierrors.NewConflict(t.k.GroupResource(), t.name, fmt.Errorf("the UID in the object (%s) is not the object's (%s)", uid, cur.GetUID()))
	}
	if t.k.Resource == namespacesResource {
		return s.updateNamespace(cur, m, dry)
	}
	meta["namespace"] = t.ns
	if dry {
		if err := s.dryApply(ctx, t, t.name, m); err != nil {
			return nil, err
		}
		return m, nil
	}
	body, err := json.Marshal(withoutSystemFields(m))
	if err != nil {
		return nil, err
	}
	if _, err := s.b.Apply(ctx, t.k.Name+"/"+t.name, body); err != nil {
		return nil, s.invalid(t, t.name, err)
	}
	o, err := s.b.Get(t.k.Resource, t.ns, t.name)
	if err == nil {
		s.settled(t.k, o, false)
	}
	return o, err
}

func (s *server) dryApply(ctx context.Context, t target, name string, m map[string]any) error {
	dr, ok := s.b.(DryRunner)
	if !ok {
		return apierrors.NewBadRequest("this podrun cannot do dry runs")
	}
	m = deepCopyJSON(m)
	body, err := json.Marshal(withoutSystemFields(m))
	if err != nil {
		return err
	}
	if _, err := dr.ApplyDryRun(ctx, t.k.Name+"/"+name, body); err != nil {
		return s.invalid(t, name, err)
	}
	return nil
}

func deepCopyJSON(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// withoutSystemFields drops what the server owns, so that the backend's
// manifest decoder sees what a user would have written.
func withoutSystemFields(m map[string]any) map[string]any {
	delete(m, "status")
	meta := m["metadata"].(map[string]any)
	for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
		"deletionGracePeriodSeconds", "selfLink", "ownerReferences"} {
		delete(meta, f)
	}
	return m
}

// invalid names the object in the backend's 422: the API server's
// `Pod "x" is invalid: ...`, each problem a cause.
func (s *server) invalid(t target, name string, err error) error {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Reason != metav1.StatusReasonInvalid {
		return err
	}
	st := se.Status()
	if st.Details == nil {
		st.Details = &metav1.StatusDetails{}
	}
	st.Details.Name, st.Details.Group, st.Details.Kind = name, t.k.Group, t.k.Kind
	for i, c := range st.Details.Causes {
		if c.Field == "" {
			st.Details.Causes[i].Field = causeField(c.Message)
		}
	}
	st.Message = fmt.Sprintf("%s %q is invalid: %s", schema.GroupKind{Group: t.k.Group, Kind: t.k.Kind}.String(), name,
		strings.Join(api.Problems(err), "; "))
	return &apierrors.StatusError{ErrStatus: st}
}

// causeField finds the field a problem message names ("...: spec.x: ..."
// or "... spec.x ..."), "" if none.
func causeField(msg string) string {
	for _, w := range strings.FieldsFunc(msg, func(r rune) bool { return r == ' ' || r == ',' || r == '(' || r == ')' }) {
		w = strings.TrimRight(w, ":;.")
		if strings.HasPrefix(w, "spec.") || strings.HasPrefix(w, "metadata.") || strings.HasPrefix(w, "data.") {
			return w
		}
	}
	return ""
}

func (s *server) delete(w http.ResponseWriter, r *http.Request, t target) {
	if t.k.Resource == namespacesResource {
		s.deleteNamespace(w, r, t)
		return
	}
	var opts metav1.DeleteOptions
	data, out, err := readBody(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if len(strings.TrimSpace(string(data))) > 0 {
		if err := json.Unmarshal(data, &opts); err != nil {
			api.WriteError(w, apierrors.NewBadRequest("DeleteOptions: "+err.Error()))
			return
		}
	}
	q := r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		var g int64
		if _, err := fmt.Sscan(v, &g); err != nil {
			api.WriteError(w, apierrors.NewBadRequest("gracePeriodSeconds: "+err.Error()))
			return
		}
		opts.GracePeriodSeconds = &g
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q["dryRun"]; len(v) > 0 {
		opts.DryRun = v
	}
	if p := opts.PropagationPolicy; p != nil && *p != metav1.DeletePropagationBackground && *p != metav1.DeletePropagationForeground {
		api.WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy %q: podrun always deletes an object's pods with it (Background or Foreground)", *p)))
		return
	}
	dry := false
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			api.WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("dryRun: unsupported value %q: the only value is All", v)))
			return
		}
		dry = true
	}
	cur, err := s.b.Get(t.k.Resource, t.ns, t.name)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if pre := opts.Preconditions; pre != nil {
		if pre.UID != nil && *pre.UID != cur.GetUID() || pre.ResourceVersion != nil && *pre.ResourceVersion != cur.GetResourceVersion() {
			api.WriteError(w, apierrors.NewConflict(t.k.GroupResource(), t.name, errors.New("the preconditions of the delete do not hold")))
			return
		}
	}
	var o api.Object
	if dry {
		o = cur.DeepCopyObject().(api.Object)
		if t.k.Resource == api.Pods && o.GetDeletionTimestamp() == nil {
			now := metav1.NewTime(s.cfg.Now())
			o.SetDeletionTimestamp(&now)
		}
	} else if o, err = s.b.Delete(t.k.Resource, t.ns, t.name, opts.GracePeriodSeconds); err != nil {
		api.WriteError(w, err)
		return
	}
	if !dry && o.GetDeletionTimestamp() == nil {
		s.settled(t.k, cur, true)
	} else if !dry && rvOf(o) > rvOf(cur) {
		s.settled(t.k, o, false)
	}
	if o.GetDeletionTimestamp() != nil {
		writeObject(w, out, http.StatusOK, o) // being deleted: the object, as the API server answers
		return
	}
	writeObject(w, out, http.StatusOK, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: t.name, Group: t.k.Group, Kind: t.k.Name, UID: o.GetUID()}})
}

// scaleOf is a Deployment's scale subresource.
func scaleOf(o api.Object) *autoscalingv1.Scale {
	d := o.(*appsv1.Deployment)
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	sel := ""
	if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		sel = s.String()
	}
	return &autoscalingv1.Scale{TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, UID: d.UID, ResourceVersion: d.ResourceVersion,
			CreationTimestamp: d.CreationTimestamp},
		Spec: autoscalingv1.ScaleSpec{Replicas: want}, Status: autoscalingv1.ScaleStatus{Replicas: d.Status.Replicas, Selector: sel}}
}

// writeScale changes a Deployment's replicas through its scale.
func (s *server) writeScale(w http.ResponseWriter, r *http.Request, t target, out output, change func([]byte) ([]byte, error)) {
	cur, dry, err := s.current(r, t)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	scaleJSON, err := json.Marshal(scaleOf(cur))
	if err != nil {
		api.WriteError(w, err)
		return
	}
	data, err := change(scaleJSON)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	var sc autoscalingv1.Scale
	if err := json.Unmarshal(data, &sc); err != nil {
		api.WriteError(w, apierrors.NewBadRequest("the body is not a Scale: "+err.Error()))
		return
	}
	if rv := sc.ResourceVersion; rv != "" && rv != cur.GetResourceVersion() {
		api.WriteError(w, apierrors.NewConflict(t.k.GroupResource(), t.name,
			errors.New("the object has been modified; please apply your changes to the latest version and try again")))
		return
	}
	o, err := s.update(r.Context(), target{k: t.k, ns: t.ns, name: t.name}, cur, func(b []byte) ([]byte, error) {
		return jsonpatch.MergePatch(b, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, sc.Spec.Replicas))
	}, dry)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if d, ok := o.(api.Object); ok {
		writeObject(w, out, http.StatusOK, scaleOf(d))
		return
	}
	sc.Spec.Replicas = max(sc.Spec.Replicas, 0)
	sc.APIVersion, sc.Kind = "autoscaling/v1", "Scale"
	writeObject(w, out, http.StatusOK, &sc)
}
