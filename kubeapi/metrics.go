package kubeapi

import (
	"context"
	"net/http"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
)

// metrics.k8s.io, as metrics-server serves it, for kubectl top.
var (
	podMetricsResource  = api.Resource{Name: "pods", Group: "metrics.k8s.io", Version: "v1beta1", Kind: "PodMetrics"}
	nodeMetricsResource = api.Resource{Name: "nodes", Group: "metrics.k8s.io", Version: "v1beta1", Kind: "NodeMetrics"}
)

// nodeMetricsWindow is how long the node's CPU usage is averaged over.
var nodeMetricsWindow = 500 * time.Millisecond

// NodeMetrics is metrics.k8s.io/v1beta1 NodeMetrics.
type NodeMetrics struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Timestamp         metav1.Time         `json:"timestamp"`
	Window            metav1.Duration     `json:"window"`
	Usage             corev1.ResourceList `json:"usage"`
}

type metricsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           any `json:"items"`
}

func isMetrics(k *kind) bool {
	return k.Resource == podMetricsResource || k.Resource == nodeMetricsResource
}

// serveMetrics answers the gets and lists of pod and node metrics (JSON:
// metrics-server has no protobuf either).
func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request, t target) {
	var v any
	var err error
	switch {
	case t.k.Resource == nodeMetricsResource && t.name == "":
		var m *NodeMetrics
		if m, err = s.nodeMetrics(r.Context()); err == nil {
			v = &metricsList{TypeMeta: metav1.TypeMeta{APIVersion: "metrics.k8s.io/v1beta1", Kind: "NodeMetricsList"}, Items: []*NodeMetrics{m}}
		}
	case t.k.Resource == nodeMetricsResource:
		if t.name != s.cfg.NodeName {
			err = apierrors.NewNotFound(t.k.GroupResource(), t.name)
		} else {
			v, err = s.nodeMetrics(r.Context())
		}
	case t.name != "":
		v, err = s.b.Metrics(r.Context(), t.ns, t.name)
	default:
		var items []*api.PodMetrics
		if items, err = s.podMetrics(r, t.ns); err == nil {
			v = &metricsList{TypeMeta: metav1.TypeMeta{APIVersion: "metrics.k8s.io/v1beta1", Kind: "PodMetricsList"}, Items: items}
		}
	}
	if err != nil {
		api.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// podMetrics samples every running pod in ns ("" for all) that the
// request's selectors match, all at once.
func (s *server) podMetrics(r *http.Request, ns string) ([]*api.PodMetrics, error) {
	match, err := selector(kindFor("", "v1", "pods"), r.URL.Query())
	if err != nil {
		return nil, err
	}
	pods, err := s.b.List(api.Pods, ns)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	items := []*api.PodMetrics{}
	for _, p := range pods {
		if !match(p) || p.(*corev1.Pod).Status.Phase != corev1.PodRunning {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m, err := s.b.Metrics(r.Context(), p.GetNamespace(), p.GetName()); err == nil { // a pod that just ended has none
				mu.Lock()
				items = append(items, m)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(items, func(i, j int) bool {
		return items[i].Namespace+"/"+items[i].Name < items[j].Namespace+"/"+items[j].Name
	})
	return items, nil
}

// nodeMetrics is the host's CPU usage over nodeMetricsWindow (from
// /proc/stat) and its memory in use (MemTotal less MemAvailable).
func (s *server) nodeMetrics(ctx context.Context) (*NodeMetrics, error) {
	busy0, total0 := cpuTimes()
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(nodeMetricsWindow):
	}
	busy1, total1 := cpuTimes()
	if total1 <= total0 {
		return nil, apierrors.NewServiceUnavailable("the host's CPU times are unreadable (/proc/stat)")
	}
	cores := float64(busy1-busy0) / float64(total1-total0) * float64(goruntime.NumCPU())
	return &NodeMetrics{
		TypeMeta:   metav1.TypeMeta{APIVersion: "metrics.k8s.io/v1beta1", Kind: "NodeMetrics"},
		ObjectMeta: metav1.ObjectMeta{Name: s.cfg.NodeName, Labels: s.node().Labels},
		Timestamp:  metav1.NewTime(s.cfg.Now()), Window: metav1.Duration{Duration: time.Since(t0)},
		Usage: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(cores*1000), resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(memTotal()-meminfo("MemAvailable:"), resource.BinarySI),
		},
	}, nil
}

// cpuTimes are the busy and total jiffies of every CPU, from /proc/stat.
func cpuTimes() (busy, total uint64) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest and guest_nice are counted in user and nice already
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}
