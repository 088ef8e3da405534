package kubeapi

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podrun/podrun/api"
)

func goarch() string    { return goruntime.GOARCH }
func goVersion() string { return goruntime.Version() }

// uidOf is a stable UID for a synthesized object.
func uidOf(kind, name string) types.UID {
	h := sha256.Sum256([]byte("podrun/" + kind + "/" + name))
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

// namespaces are podrun's implicit namespaces: "default" and every
// namespace an object of the backend is in, created when its first object
// was.
func (s *server) namespaces() ([]api.Object, error) {
	created := map[string]metav1.Time{corev1.NamespaceDefault: metav1.NewTime(s.started)}
	for _, r := range api.Resources {
		if r == api.Events {
			continue
		}
		objs, err := s.b.List(r, "")
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			t, ok := created[o.GetNamespace()]
			if ct := o.GetCreationTimestamp(); !ok || ct.Before(&t) {
				created[o.GetNamespace()] = ct
			}
		}
	}
	var names []string
	for n := range created {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []api.Object
	for _, n := range names {
		out = append(out, &corev1.Namespace{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{Name: n, UID: uidOf("namespace", n), ResourceVersion: "1", CreationTimestamp: created[n],
				Labels: map[string]string{corev1.LabelMetadataName: n}},
			Spec:   corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
			Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
		})
	}
	return out, nil
}

// node is the one Node: this host, Ready, with its CPUs and memory.
func (s *server) node() *corev1.Node {
	name := s.cfg.NodeName
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:  *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourcePods: *resource.NewQuantity(110, resource.DecimalSI),
	}
	if mem := memTotal(); mem > 0 {
		capacity[corev1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	since := metav1.NewTime(s.started)
	return &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: uidOf("node", name), ResourceVersion: "1", CreationTimestamp: since,
			Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: goruntime.GOARCH}},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity,
			Phase: corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				Message: "podrun is serving pods", LastHeartbeatTime: metav1.NewTime(s.cfg.Now()), LastTransitionTime: since}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: readTrim("/etc/machine-id"), KernelVersion: unix.ByteSliceToString(uts.Release[:]), OSImage: osImage(),
				ContainerRuntimeVersion: "podrun://" + KubernetesVersion, KubeletVersion: KubernetesVersion + "+podrun",
				OperatingSystem: "linux", Architecture: goruntime.GOARCH,
			},
		},
	}
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func osImage() string {
	for _, line := range strings.Split(readTrim("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// memTotal is MemTotal of /proc/meminfo in bytes.
func memTotal() int64 { return meminfo("MemTotal:") }

// meminfo is a field of /proc/meminfo in bytes, 0 when unknown.
func meminfo(field string) int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
