package kubeapi

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/yaml"

	"github.com/podrun/podrun/api"
)

// scheme knows the types of the kinds served, their lists and the meta
// types, so that bodies can be read and written in JSON, YAML and
// protobuf, as the API server's codecs do. Both are made on first use, not
// at package initialisation: every podrun process (each command, each
// shim, each runc init re-exec of the binary) would pay ~1.2 ms for them.
var schemeAndCodecs = sync.OnceValues(func() (*runtime.Scheme, serializer.CodecFactory) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		autoscalingv1.AddToScheme, authorizationv1.AddToScheme, authenticationv1.AddToScheme, metav1.AddMetaToScheme} {
		utilruntime.Must(add(s))
	}
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return s, serializer.NewCodecFactory(s)
})

func scheme() *runtime.Scheme { s, _ := schemeAndCodecs(); return s }

func codecs() serializer.CodecFactory { _, c := schemeAndCodecs(); return c }

// The media types objects are served in; a Table is JSON only (it has no
// protobuf form), as on the API server.
var mediaTypes = []string{runtime.ContentTypeJSON, runtime.ContentTypeYAML, runtime.ContentTypeProtobuf}

func serializerFor(mediaType string) (runtime.SerializerInfo, bool) {
	for _, m := range mediaTypes {
		if m == mediaType {
			return runtime.SerializerInfoForMediaType(codecs().SupportedMediaTypes(), m)
		}
	}
	return runtime.SerializerInfo{}, false
}

func jsonSerializer() runtime.SerializerInfo {
	info, _ := serializerFor(runtime.ContentTypeJSON)
	return info
}

// writeObject encodes obj in the negotiated media type. obj carries its
// TypeMeta (the protobuf envelope names it).
func writeObject(w http.ResponseWriter, out output, code int, obj runtime.Object) {
	if out.partialGV != "" {
		obj = partial(obj, out.partialGV)
	}
	info := out.info
	if info.Serializer == nil {
		info = jsonSerializer()
	}
	w.Header().Set("Content-Type", info.MediaType)
	w.WriteHeader(code)
	if err := info.Serializer.Encode(obj, w); err != nil {
		_, _ = fmt.Fprintf(w, "encoding %s: %v", obj.GetObjectKind().GroupVersionKind().Kind, err)
	}
}

// typed is v as an object of k: the JSON map a dry run answers becomes the
// kind's type, so that it can be encoded in protobuf too.
func typed(k *kind, v any) (runtime.Object, error) {
	if o, ok := v.(runtime.Object); ok {
		return o, nil
	}
	o, err := scheme().New(k.gvk())
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, o); err != nil {
		return nil, err
	}
	o.GetObjectKind().SetGroupVersionKind(k.gvk())
	return o, nil
}

func (k *kind) gvk() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
}

// listOf is the typed list (PodList, ...) of items at resourceVersion rv.
func listOf(k *kind, items []api.Object, rv string) (runtime.Object, error) {
	gvk := k.gvk()
	gvk.Kind += "List"
	l, err := scheme().New(gvk)
	if err != nil {
		return nil, err
	}
	objs := make([]runtime.Object, len(items))
	for i, o := range items {
		objs[i] = o
	}
	if err := meta.SetList(l, objs); err != nil {
		return nil, err
	}
	l.GetObjectKind().SetGroupVersionKind(gvk)
	l.(metav1.ListInterface).SetResourceVersion(rv)
	return l, nil
}

// bodyJSON is a request body as JSON, whatever its Content-Type: JSON,
// YAML or protobuf (what typed client-go sends); the handlers check its
// kind.
func bodyJSON(r *http.Request, data []byte) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" || len(strings.TrimSpace(string(data))) == 0 {
		return data, nil
	}
	typ, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, unsupportedMedia(ct)
	}
	switch typ {
	case runtime.ContentTypeJSON:
		return data, nil
	case runtime.ContentTypeYAML:
		out, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, apierrors.NewBadRequest("the body is not YAML: " + err.Error())
		}
		return out, nil
	case runtime.ContentTypeProtobuf:
		obj, gvk, err := codecs().UniversalDeserializer().Decode(data, nil, nil)
		if err != nil {
			return nil, apierrors.NewBadRequest("the body is not a protobuf object podrun knows: " + err.Error())
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		return json.Marshal(obj)
	}
	return nil, unsupportedMedia(ct)
}

func unsupportedMedia(ct string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason: metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format %q: accepted media types are %s",
			ct, strings.Join(mediaTypes, ", "))}}
}

// watchEncoder writes watch events as the API server frames them: JSON
// lines of {"type", "object"}, or length-prefixed protobuf WatchEvents
// whose object is the protobuf object.
func watchEncoder(w io.Writer, info runtime.SerializerInfo) func(typ string, obj runtime.Object) error {
	enc := streaming.NewEncoder(info.StreamSerializer.Framer.NewFrameWriter(w), info.StreamSerializer.Serializer)
	return func(typ string, obj runtime.Object) error {
		raw, err := runtime.Encode(info.Serializer, obj)
		if err != nil {
			return err
		}
		return enc.Encode(&metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: raw}})
	}
}

// watchContentType is the Content-Type of a watch stream.
func watchContentType(info runtime.SerializerInfo) string {
	if info.MediaType == runtime.ContentTypeProtobuf {
		return info.MediaType + ";stream=watch"
	}
	return info.MediaType
}

// output is what the client accepts: an object, a Table of it or its
// PartialObjectMetadata, in a media type.
type output struct {
	table     bool
	tableGV   string // meta.k8s.io/v1 or v1beta1
	partialGV string // meta.k8s.io/v1 or v1beta1 for metadata only
	include   metav1.IncludeObjectPolicy
	info      runtime.SerializerInfo
}

// partial is obj's metadata only: a PartialObjectMetadata, or a
// PartialObjectMetadataList of a list (what client-go's metadata client
// and informers ask for); a Status stays one.
func partial(obj runtime.Object, gv string) runtime.Object {
	if meta.IsListType(obj) {
		l := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: gv, Kind: "PartialObjectMetadataList"}}
		if li, ok := obj.(metav1.ListInterface); ok {
			l.ResourceVersion = li.GetResourceVersion()
		}
		items, _ := meta.ExtractList(obj)
		for _, it := range items {
			if p, ok := partial(it, gv).(*metav1.PartialObjectMetadata); ok {
				l.Items = append(l.Items, *p)
			}
		}
		return l
	}
	a, ok := obj.(metav1.ObjectMetaAccessor)
	if _, status := obj.(*metav1.Status); !ok || status {
		return obj
	}
	m, _ := a.GetObjectMeta().(*metav1.ObjectMeta)
	if m == nil {
		return obj
	}
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: gv, Kind: "PartialObjectMetadata"}, ObjectMeta: *m}
}

type mediaType struct {
	typ    string
	params map[string]string
}

func parseAccept(h string) []mediaType {
	var out []mediaType
	for _, part := range strings.Split(h, ",") {
		fields := strings.Split(part, ";")
		m := mediaType{typ: strings.ToLower(strings.TrimSpace(fields[0])), params: map[string]string{}}
		for _, f := range fields[1:] {
			if k, v, ok := strings.Cut(f, "="); ok {
				m.params[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		if m.typ != "" {
			out = append(out, m)
		}
	}
	return out
}

// negotiate picks the first media type of Accept podrun can answer, as
// the API server does: JSON, YAML or protobuf objects, or a
// meta.k8s.io Table in JSON or YAML (a Table has no protobuf form); a
// watch is JSON or protobuf. Nothing acceptable is a 406.
func negotiate(r *http.Request, watch bool) (output, error) {
	out := output{include: metav1.IncludeMetadata, info: jsonSerializer()}
	if v := r.URL.Query().Get("includeObject"); v != "" {
		out.include = metav1.IncludeObjectPolicy(v)
		if out.include != metav1.IncludeNone && out.include != metav1.IncludeMetadata && out.include != metav1.IncludeObject {
			return out, apierrors.NewBadRequest(fmt.Sprintf("includeObject: unsupported value %q", v))
		}
	}
	accept := parseAccept(r.Header.Get("Accept"))
	if len(accept) == 0 {
		return out, nil
	}
	for _, m := range accept {
		typ := m.typ
		if typ == "*/*" || typ == "application/*" {
			typ = runtime.ContentTypeJSON
		}
		info, ok := serializerFor(typ)
		if !ok || watch && info.StreamSerializer == nil {
			continue
		}
		switch as := m.params["as"]; {
		case as == "":
			out.info = info
			return out, nil
		case as == "Table" && m.params["g"] == "meta.k8s.io" && (m.params["v"] == "v1" || m.params["v"] == "v1beta1") &&
			typ != runtime.ContentTypeProtobuf:
			out.table, out.tableGV, out.info = true, "meta.k8s.io/"+m.params["v"], info
			return out, nil
		case (as == "PartialObjectMetadata" || as == "PartialObjectMetadataList") && m.params["g"] == "meta.k8s.io" &&
			(m.params["v"] == "v1" || m.params["v"] == "v1beta1"):
			out.partialGV, out.info = "meta.k8s.io/"+m.params["v"], info
			return out, nil
		}
	}
	return out, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotAcceptable,
		Reason: metav1.StatusReasonNotAcceptable, Message: fmt.Sprintf("only the following media types are accepted: %s",
			strings.Join(append(mediaTypes, "application/json;as=Table;v=v1;g=meta.k8s.io",
				"application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"), ", "))}}
}
