package kubeapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/kubectl"
)

// The columns of kubernetes' pkg/printers/internalversion/printers.go;
// priority 1 are the -o wide ones.
func col(name string, priority int32) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: "string", Priority: priority}
	if name == "Name" {
		c.Format = "name"
	}
	return c
}

func cols(names ...string) []metav1.TableColumnDefinition {
	var out []metav1.TableColumnDefinition
	for _, n := range names {
		p := int32(0)
		if w, ok := strings.CutPrefix(n, "+"); ok { // a wide column
			n, p = w, 1
		}
		out = append(out, col(n, p))
	}
	return out
}

var columns = map[api.Resource][]metav1.TableColumnDefinition{
	api.Pods:           cols("Name", "Ready", "Status", "Restarts", "Age", "+IP", "+Node", "+Nominated Node", "+Readiness Gates"),
	api.Deployments:    cols("Name", "Ready", "Up-to-date", "Available", "Age", "+Containers", "+Images", "+Selector"),
	api.ReplicaSets:    cols("Name", "Desired", "Current", "Ready", "Age", "+Containers", "+Images", "+Selector"),
	api.Jobs:           cols("Name", "Status", "Completions", "Duration", "Age", "+Containers", "+Images", "+Selector"),
	api.ConfigMaps:     cols("Name", "Data", "Age"),
	api.Secrets:        cols("Name", "Type", "Data", "Age"),
	api.Events:         cols("Last Seen", "Type", "Reason", "Object", "+Subobject", "+Source", "Message", "+First Seen", "+Count", "+Name"),
	namespacesResource: cols("Name", "Status", "Age"),
	nodesResource:      cols("Name", "Status", "Roles", "Age", "Version", "+Internal-IP", "+External-IP", "+OS-Image", "+Kernel-Version", "+Container-Runtime"),
}

func init() {
	columns[api.Events][8].Type = "integer" // Count
	for i := 1; i <= 3; i++ {
		columns[api.ReplicaSets][i].Type = "integer" // Desired, Current, Ready
	}
}

// table is objs as a meta.k8s.io Table, each row with its object as out
// asks (includeObject).
func (s *server) table(k *kind, objs []api.Object, rv string, out output) *metav1.Table {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: out.tableGV, Kind: "Table"},
		ListMeta: metav1.ListMeta{ResourceVersion: rv}, ColumnDefinitions: columns[k.Resource], Rows: []metav1.TableRow{}}
	now := s.cfg.Now()
	for _, o := range objs {
		row := metav1.TableRow{Cells: cells(o, now)}
		if p, ok := o.(*corev1.Pod); ok {
			switch p.Status.Phase {
			case corev1.PodSucceeded:
				row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue,
					Reason: string(p.Status.Phase), Message: "The pod has completed successfully."}}
			case corev1.PodFailed:
				row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue,
					Reason: string(p.Status.Phase), Message: "The pod failed."}}
			}
		}
		row.Object = rowObject(o, out.include)
		t.Rows = append(t.Rows, row)
	}
	return t
}

func rowObject(o api.Object, include metav1.IncludeObjectPolicy) runtime.RawExtension {
	var v any
	switch include {
	case metav1.IncludeNone:
		return runtime.RawExtension{}
	case metav1.IncludeObject:
		v = o
	default:
		meta := metav1.ObjectMeta{}
		if a, ok := o.(metav1.ObjectMetaAccessor); ok {
			if m, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
				meta = *m
			}
		}
		v = &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"}, ObjectMeta: meta}
	}
	raw, _ := json.Marshal(v)
	return runtime.RawExtension{Raw: raw}
}

func none(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// cells is one object's row.
func cells(o api.Object, now time.Time) []any {
	switch v := o.(type) {
	case *corev1.Pod:
		r := kubectl.Row(v, now)
		gates := "<none>"
		if n := len(v.Spec.ReadinessGates); n > 0 {
			ok := 0
			for _, g := range v.Spec.ReadinessGates {
				for _, c := range v.Status.Conditions {
					if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
						ok++
					}
				}
			}
			gates = fmt.Sprintf("%d/%d", ok, n)
		}
		return []any{r.Name, r.Ready, r.Status, r.Restarts, r.Age, r.IP, r.Node, none(v.Status.NominatedNodeName), gates}
	case *appsv1.Deployment:
		return append(strings2any(kubectl.DeploymentRow(v, now)), podTemplateCells(&v.Spec.Template.Spec, v.Spec.Selector)...)
	case *appsv1.ReplicaSet:
		want := int64(1)
		if v.Spec.Replicas != nil {
			want = int64(*v.Spec.Replicas)
		}
		return append([]any{v.Name, want, int64(v.Status.Replicas), int64(v.Status.ReadyReplicas), kubectl.Since(v.CreationTimestamp, now)},
			podTemplateCells(&v.Spec.Template.Spec, v.Spec.Selector)...)
	case *batchv1.Job:
		return append(strings2any(kubectl.JobRow(v, now)), podTemplateCells(&v.Spec.Template.Spec, v.Spec.Selector)...)
	case *corev1.ConfigMap:
		return strings2any(kubectl.ConfigMapRow(v, now))
	case *corev1.Secret:
		return strings2any(kubectl.SecretRow(v, now))
	case *corev1.Event:
		return eventCells(v, now)
	case *corev1.Namespace:
		return []any{v.Name, string(v.Status.Phase), kubectl.Since(v.CreationTimestamp, now)}
	case *corev1.Node:
		return nodeCells(v, now)
	}
	return []any{o.GetName()}
}

func strings2any(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// podTemplateCells are the Containers, Images and Selector columns.
func podTemplateCells(spec *corev1.PodSpec, sel *metav1.LabelSelector) []any {
	var names, images []string
	for _, c := range spec.Containers {
		names, images = append(names, c.Name), append(images, c.Image)
	}
	selector := "<none>"
	if s, err := metav1.LabelSelectorAsSelector(sel); err == nil && sel != nil {
		selector = none(s.String())
	}
	return []any{strings.Join(names, ","), strings.Join(images, ","), selector}
}

func eventCells(e *corev1.Event, now time.Time) []any {
	first := kubectl.Since(e.FirstTimestamp, now)
	last := kubectl.Since(e.LastTimestamp, now)
	switch {
	case e.Series != nil:
		last = kubectl.Since(metav1.Time(e.Series.LastObservedTime), now)
	case e.LastTimestamp.IsZero() && !e.EventTime.IsZero():
		last = kubectl.Since(metav1.Time(e.EventTime), now)
	}
	if e.FirstTimestamp.IsZero() && !e.EventTime.IsZero() {
		first = kubectl.Since(metav1.Time(e.EventTime), now)
	}
	count := int64(e.Count)
	if e.Series != nil {
		count = int64(e.Series.Count)
	} else if count == 0 {
		count = 1
	}
	source := e.Source.Component
	if source == "" {
		source = e.ReportingController
	}
	if host := e.Source.Host; host != "" {
		source += ", " + host
	} else if e.ReportingInstance != "" {
		source += ", " + e.ReportingInstance
	}
	return []any{last, e.Type, e.Reason, strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name,
		e.InvolvedObject.FieldPath, source, strings.TrimSpace(e.Message), first, count, e.Name}
}

func nodeCells(n *corev1.Node, now time.Time) []any {
	status := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = "NotReady"
			if c.Status == corev1.ConditionTrue {
				status = "Ready"
			}
		}
	}
	if n.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	var roles []string
	for l := range n.Labels {
		if r, ok := strings.CutPrefix(l, "node-role.kubernetes.io/"); ok && r != "" {
			roles = append(roles, r)
		}
	}
	sort.Strings(roles)
	addr := func(t corev1.NodeAddressType) string {
		for _, a := range n.Status.Addresses {
			if a.Type == t {
				return a.Address
			}
		}
		return "<none>"
	}
	return []any{n.Name, status, none(strings.Join(roles, ",")), kubectl.Since(n.CreationTimestamp, now), n.Status.NodeInfo.KubeletVersion,
		addr(corev1.NodeInternalIP), addr(corev1.NodeExternalIP), n.Status.NodeInfo.OSImage, n.Status.NodeInfo.KernelVersion,
		n.Status.NodeInfo.ContainerRuntimeVersion}
}
