package pod

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/expansion"
	"github.com/podrun/podrun/internal/podspec"
)

// resolveContainer computes a container's argv and environment the way the
// kubelet (makeEnvironmentVariables, ExpandContainerCommandAndArgs) and
// containerd (image Entrypoint/Cmd, image env first) do together.
func resolveContainer(p *corev1.Pod, c *corev1.Container, img *image.Image, sb *Sandbox, objs Objects) (args, env, vars []string, err error) {
	vars, err = containerEnv(p, c, sb, objs)
	if err != nil {
		return nil, nil, nil, err
	}
	env = mergeEnv(img.Config.Env, vars)

	m := map[string]string{}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	var cmd, cargs []string
	for _, s := range c.Command {
		cmd = append(cmd, expansion.Expand(s, m))
	}
	for _, s := range c.Args {
		cargs = append(cargs, expansion.Expand(s, m))
	}
	switch {
	case len(cmd) > 0:
		args = append(cmd, cargs...)
	case len(cargs) > 0:
		args = append(append([]string{}, img.Config.Entrypoint...), cargs...)
	default:
		args = append(append([]string{}, img.Config.Entrypoint...), img.Config.Cmd...)
	}
	if len(args) == 0 {
		return nil, nil, nil, errors.New("no command specified")
	}
	return args, env, vars, nil
}

// mergeEnv appends add to base, a later KEY replacing an earlier one in place.
func mergeEnv(base, add []string) []string {
	out := append([]string{}, base...)
	idx := map[string]int{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		idx[k] = i
	}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// containerEnv is the kubelet's makeEnvironmentVariables: envFrom first,
// then env in order, each value expanded against what came before.
func containerEnv(p *corev1.Pod, c *corev1.Container, sb *Sandbox, objs Objects) ([]string, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, from := range c.EnvFrom {
		data, err := envFromData(p, from, objs)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		v := e.Value
		switch {
		case v != "":
			v = expansion.Expand(v, vals)
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			var err error
			if v, err = fieldRefValue(e.ValueFrom.FieldRef.FieldPath, p, sb); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			var err error
			if v, err = resourceFieldValue(e.ValueFrom.ResourceFieldRef, p, c); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil, e.ValueFrom.SecretKeyRef != nil:
			val, ok, err := keyRefValue(p, e.ValueFrom, objs)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue // optional and absent
			}
			v = val
		default:
			return nil, fmt.Errorf("env %s: this valueFrom source is not supported by podrun", e.Name)
		}
		set(e.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

// envFromData is what one envFrom source gives (nothing when it is
// optional and absent).
func envFromData(p *corev1.Pod, from corev1.EnvFromSource, objs Objects) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm := lookupConfigMap(objs, p.Namespace, from.ConfigMapRef.Name)
		if cm == nil {
			if isTrue(from.ConfigMapRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		sec := lookupSecret(objs, p.Namespace, from.SecretRef.Name)
		if sec == nil {
			if isTrue(from.SecretRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("secret %q not found", from.SecretRef.Name)
		}
		data := map[string]string{}
		for k, v := range sec.Data {
			data[k] = string(v)
		}
		return data, nil
	}
	return nil, nil
}

// keyRefValue is the value of a configMapKeyRef or secretKeyRef, with the
// kubelet's errors; ok is false when the reference is optional and absent.
func keyRefValue(p *corev1.Pod, from *corev1.EnvVarSource, objs Objects) (v string, ok bool, err error) {
	kind, name, key, optional := "ConfigMap", "", "", false
	var data map[string]string
	if ref := from.ConfigMapKeyRef; ref != nil {
		name, key, optional = ref.Name, ref.Key, isTrue(ref.Optional)
		if cm := lookupConfigMap(objs, p.Namespace, name); cm != nil {
			data = cm.Data
		} else if !optional {
			return "", false, fmt.Errorf("configmap %q not found", name)
		}
	} else {
		ref := from.SecretKeyRef
		kind, name, key, optional = "Secret", ref.Name, ref.Key, isTrue(ref.Optional)
		if sec := lookupSecret(objs, p.Namespace, name); sec != nil {
			if b, found := sec.Data[key]; found {
				data = map[string]string{key: string(b)}
			} else {
				data = map[string]string{}
			}
		} else if !optional {
			return "", false, fmt.Errorf("secret %q not found", name)
		}
	}
	if data == nil {
		return "", false, nil // optional, and its object is absent
	}
	v, ok = data[key]
	if !ok && !optional {
		return "", false, fmt.Errorf("couldn't find key %s in %s %s/%s", key, kind, p.Namespace, name)
	}
	return v, ok, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

func lookupConfigMap(objs Objects, ns, name string) *corev1.ConfigMap {
	if objs == nil {
		return nil
	}
	return objs.ConfigMap(ns, name)
}

func lookupSecret(objs Objects, ns, name string) *corev1.Secret {
	if objs == nil {
		return nil
	}
	return objs.Secret(ns, name)
}

// fieldRefValue is the downward API for env (podFieldSelectorRuntimeValue).
func fieldRefValue(path string, p *corev1.Pod, sb *Sandbox) (string, error) {
	var podIP, hostIP string
	if sb != nil {
		podIP, hostIP = sb.PodIP, sb.HostIP
	}
	if k, ok := subscript(path, "metadata.labels"); ok {
		return p.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return p.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		if p.Spec.NodeName != "" {
			return p.Spec.NodeName, nil
		}
		return NodeName(), nil
	case "spec.serviceAccountName":
		if p.Spec.ServiceAccountName != "" {
			return p.Spec.ServiceAccountName, nil
		}
		return "default", nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// resourceFieldValue is ExtractContainerResourceValue with the kubelet's
// defaulting of missing limits to the node's allocatable.
func resourceFieldValue(fs *corev1.ResourceFieldSelector, p *corev1.Pod, c *corev1.Container) (string, error) {
	if fs.ContainerName != "" && fs.ContainerName != c.Name {
		c = findContainer(p, fs.ContainerName)
		if c == nil {
			return "", fmt.Errorf("container %q not found", fs.ContainerName)
		}
	}
	divisor := resource.MustParse("1")
	if !fs.Divisor.IsZero() {
		divisor = fs.Divisor
	}
	cpus, mem := nodeCapacity()
	q := func(list corev1.ResourceList, name corev1.ResourceName, def *resource.Quantity) resource.Quantity {
		if v, ok := list[name]; ok {
			return v
		}
		if def != nil {
			return *def
		}
		return resource.Quantity{}
	}
	nodeCPU := *resource.NewQuantity(int64(cpus), resource.DecimalSI)
	nodeMem := *resource.NewQuantity(mem, resource.BinarySI)
	var v resource.Quantity
	isCPU := false
	switch fs.Resource {
	case "limits.cpu":
		v, isCPU = q(c.Resources.Limits, corev1.ResourceCPU, &nodeCPU), true
	case "requests.cpu":
		v, isCPU = q(c.Resources.Requests, corev1.ResourceCPU, nil), true
	case "limits.memory":
		v = q(c.Resources.Limits, corev1.ResourceMemory, &nodeMem)
	case "requests.memory":
		v = q(c.Resources.Requests, corev1.ResourceMemory, nil)
	case "limits.ephemeral-storage":
		v = q(c.Resources.Limits, corev1.ResourceEphemeralStorage, nil)
	case "requests.ephemeral-storage":
		v = q(c.Resources.Requests, corev1.ResourceEphemeralStorage, nil)
	default:
		return "", fmt.Errorf("unsupported container resource %q", fs.Resource)
	}
	if isCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(v.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(v.Value())/float64(divisor.Value()))), 10), nil
}

func findContainer(p *corev1.Pod, name string) *corev1.Container {
	return podspec.Container(&p.Spec, name)
}

var nodeCap = sync.OnceValues(func() (int, int64) {
	mem, err := cgroups.MemoryCapacity()
	if err != nil {
		slog.Warn("node memory unknown", "err", err)
	}
	return goruntime.NumCPU(), mem
})

// nodeCapacity is this machine's CPUs and memory: the node allocatable a
// kubelet without reservations reports.
func nodeCapacity() (cpus int, memory int64) { return nodeCap() }

// NodeName is the name podrun gives this machine as a node.
func NodeName() string {
	h, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return strings.ToLower(h)
}
