package volumes

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/podrun/podrun/internal/podspec"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The kubelet's default file mode for every projection (0644).
const defaultMode = corev1.ConfigMapVolumeSourceDefaultMode

func modeOr(m *int32) int32 {
	if m == nil {
		return defaultMode
	}
	return *m
}

// keyFiles is the kubelet's MakePayload for configMaps and secrets: every
// key under its own name with the default mode, or only the listed items
// under their paths, each with its own mode if it has one. A listed key the
// object lacks is an error unless the source is optional.
func keyFiles(kind, name string, data map[string][]byte, items []corev1.KeyToPath, mode int32, optional bool) (map[string]file, error) {
	out := make(map[string]file, len(data))
	if len(items) == 0 {
		for k, v := range data {
			out[k] = file{data: v, mode: mode}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s %q has no key %q", kind, name, it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = *it.Mode
		}
		out[it.Path] = file{data: v, mode: m}
	}
	return out, nil
}

func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return data
}

// secretData merges stringData into data, as the API server does when it
// stores a secret (a locally loaded Secret may still carry stringData).
func secretData(s *corev1.Secret) map[string][]byte {
	data := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		data[k] = v
	}
	for k, v := range s.StringData {
		data[k] = []byte(v)
	}
	return data
}

func configMapProjection(pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, mode int32, objs Objects) (map[string]file, error) {
	opt := optional != nil && *optional
	var cm *corev1.ConfigMap
	if objs != nil {
		cm = objs.ConfigMap(pod.Namespace, name)
	}
	if cm == nil {
		if !opt {
			return nil, fmt.Errorf("configMap %q not found in namespace %q", name, pod.Namespace)
		}
		return map[string]file{}, nil
	}
	return keyFiles("configMap", name, configMapData(cm), items, mode, opt)
}

func secretProjection(pod *corev1.Pod, name string, items []corev1.KeyToPath, optional *bool, mode int32, objs Objects) (map[string]file, error) {
	opt := optional != nil && *optional
	var s *corev1.Secret
	if objs != nil {
		s = objs.Secret(pod.Namespace, name)
	}
	if s == nil {
		if !opt {
			return nil, fmt.Errorf("secret %q not found in namespace %q", name, pod.Namespace)
		}
		return map[string]file{}, nil
	}
	return keyFiles("secret", name, secretData(s), items, mode, opt)
}

func configMapFiles(pod *corev1.Pod, src *corev1.ConfigMapVolumeSource, objs Objects) (map[string]file, error) {
	return configMapProjection(pod, src.Name, src.Items, src.Optional, modeOr(src.DefaultMode), objs)
}

func secretFiles(pod *corev1.Pod, src *corev1.SecretVolumeSource, objs Objects) (map[string]file, error) {
	return secretProjection(pod, src.SecretName, src.Items, src.Optional, modeOr(src.DefaultMode), objs)
}

// projectedFiles merges the sources in order, later ones winning on a
// shared path, with the projection's defaultMode for every item without a
// mode of its own. Every failing source is reported.
func projectedFiles(pod *corev1.Pod, src *corev1.ProjectedVolumeSource, objs Objects, volumesDir string) (map[string]file, error) {
	mode := modeOr(src.DefaultMode)
	out := map[string]file{}
	var errs []error
	for i, s := range src.Sources {
		var files map[string]file
		var err error
		switch {
		case s.ConfigMap != nil:
			files, err = configMapProjection(pod, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, mode, objs)
		case s.Secret != nil:
			files, err = secretProjection(pod, s.Secret.Name, s.Secret.Items, s.Secret.Optional, mode, objs)
		case s.DownwardAPI != nil:
			files, err = downwardAPIFiles(pod, s.DownwardAPI.Items, &mode, volumesDir)
		case s.ServiceAccountToken != nil:
			err = errors.New("serviceAccountToken sources are not supported: podrun has no API server to issue tokens")
		case s.ClusterTrustBundle != nil:
			err = errors.New("clusterTrustBundle sources are not supported: podrun has no API server")
		case s.PodCertificate != nil:
			err = errors.New("podCertificate sources are not supported: podrun has no API server")
		default:
			err = errors.New("source sets no known type")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("source %d: %w", i, err))
			continue
		}
		for p, f := range files {
			out[p] = f
		}
	}
	return out, errors.Join(errs...)
}

// downwardAPIFiles is the kubelet's downwardapi.CollectData: metadata
// fields, and container resources with limits a container leaves unset
// reading as the node's capacity (the kubelet's node allocatable, which on
// one machine without reservations is its capacity).
func downwardAPIFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, mode *int32, volumesDir string) (map[string]file, error) {
	out := make(map[string]file, len(items))
	var errs []error
	for _, it := range items {
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			value, err = podField(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			value, err = containerResource(pod, it.ResourceFieldRef, volumesDir)
		default:
			err = errors.New("sets neither fieldRef nor resourceFieldRef")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("item %q: %w", it.Path, err))
			continue
		}
		m := modeOr(mode)
		if it.Mode != nil {
			m = *it.Mode
		}
		out[filepath.Clean(it.Path)] = file{data: []byte(value), mode: m}
	}
	return out, errors.Join(errs...)
}

// podField is fieldpath.ExtractFieldPathAsString for what a volume may
// show: name, namespace, uid, and labels and annotations, whole or one key.
func podField(pod *corev1.Pod, path string) (string, error) {
	if s, ok := strings.CutSuffix(path, "']"); ok {
		if field, key, ok := strings.Cut(s, "['"); ok && field != "" {
			switch field {
			case "metadata.labels":
				return pod.Labels[key], nil
			case "metadata.annotations":
				return pod.Annotations[key], nil
			}
			return "", fmt.Errorf("fieldPath %q does not support a subscript", path)
		}
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q in a downwardAPI volume", path)
}

// formatMap is fieldpath.FormatMap: key="quoted value" lines, sorted by key.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%v=%q", k, m[k])
	}
	return b.String()
}

// containerResource is resource.ExtractResourceValueByContainerName: the
// value divided by the divisor (default 1) and rounded up.
func containerResource(pod *corev1.Pod, sel *corev1.ResourceFieldSelector, volumesDir string) (string, error) {
	c := podspec.Container(&pod.Spec, sel.ContainerName)
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef names no container of the pod (%q)", sel.ContainerName)
	}
	divisor := sel.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	kind, name, ok := strings.Cut(sel.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported container resource %q", sel.Resource)
	}
	rn := corev1.ResourceName(name)
	switch {
	case rn == corev1.ResourceCPU, rn == corev1.ResourceMemory, rn == corev1.ResourceEphemeralStorage,
		strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
	default:
		return "", fmt.Errorf("unsupported container resource %q", sel.Resource)
	}
	list := c.Resources.Requests
	if kind == "limits" {
		list = c.Resources.Limits
	}
	q := list[rn]
	if kind == "limits" && q.IsZero() && !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
		capacity, err := nodeCapacity(rn, volumesDir)
		if err != nil {
			return "", err
		}
		q = capacity
	}
	if rn == corev1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// nodeCapacity stands in for the kubelet's node allocatable: the CPUs this
// process may run on, MemTotal, and the size of the filesystem holding the
// pod's volumes.
func nodeCapacity(name corev1.ResourceName, dir string) (resource.Quantity, error) {
	switch name {
	case corev1.ResourceCPU:
		return *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI), nil
	case corev1.ResourceMemory:
		b, err := os.ReadFile("/proc/meminfo")
		if err != nil {
			return resource.Quantity{}, fmt.Errorf("node memory: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				if err != nil {
					return resource.Quantity{}, fmt.Errorf("node memory: parse MemTotal: %w", err)
				}
				return *resource.NewQuantity(kb*1024, resource.BinarySI), nil
			}
		}
		return resource.Quantity{}, errors.New("node memory: no MemTotal in /proc/meminfo")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return resource.Quantity{}, fmt.Errorf("node ephemeral storage: %w", err)
	}
	return *resource.NewQuantity(int64(st.Blocks)*st.Bsize, resource.BinarySI), nil
}
