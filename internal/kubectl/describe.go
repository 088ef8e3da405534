package kubectl

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// describer writes kubectl describe's layout: two spaces per level, "key:\tvalue"
// aligned by a tabwriter (kubectl's tabbedString).
type describer struct {
	w   *tabwriter.Writer
	now time.Time
}

func (d *describer) line(level int, format string, args ...any) {
	fmt.Fprintf(d.w, strings.Repeat("  ", level)+format, args...)
}

// DescribePod writes what `kubectl describe pod` shows: the pod, its
// containers, conditions, volumes and events (describePod).
func DescribePod(out io.Writer, p *corev1.Pod, events []corev1.Event, now time.Time) error {
	d := &describer{w: tabwriter.NewWriter(out, 0, 8, 2, ' ', 0), now: now}
	d.line(0, "Name:\t%s\n", p.Name)
	d.line(0, "Namespace:\t%s\n", p.Namespace)
	if p.Spec.Priority != nil {
		d.line(0, "Priority:\t%d\n", *p.Spec.Priority)
	}
	if p.Spec.PriorityClassName != "" {
		d.line(0, "Priority Class Name:\t%s\n", p.Spec.PriorityClassName)
	}
	if p.Spec.ServiceAccountName != "" {
		d.line(0, "Service Account:\t%s\n", p.Spec.ServiceAccountName)
	}
	if p.Spec.NodeName == "" {
		d.line(0, "Node:\t<none>\n")
	} else {
		d.line(0, "Node:\t%s\n", p.Spec.NodeName+"/"+p.Status.HostIP)
	}
	if p.Status.StartTime != nil {
		d.line(0, "Start Time:\t%s\n", p.Status.StartTime.Time.Format(time.RFC1123Z))
	}
	d.labels("Labels", p.Labels)
	d.labels("Annotations", p.Annotations)
	if p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodFailed && p.Status.Phase != corev1.PodSucceeded {
		d.line(0, "Status:\tTerminating (lasts %s)\n", Since(*p.DeletionTimestamp, now))
		if p.DeletionGracePeriodSeconds != nil {
			d.line(0, "Termination Grace Period:\t%ds\n", *p.DeletionGracePeriodSeconds)
		}
	} else {
		d.line(0, "Status:\t%s\n", p.Status.Phase)
	}
	if p.Status.Reason != "" {
		d.line(0, "Reason:\t%s\n", p.Status.Reason)
	}
	if p.Status.Message != "" {
		d.line(0, "Message:\t%s\n", p.Status.Message)
	}
	d.line(0, "IP:\t%s\n", p.Status.PodIP)
	if len(p.Status.PodIPs) == 0 {
		d.line(0, "IPs:\t<none>\n")
	} else {
		d.line(0, "IPs:\n")
		for _, ip := range p.Status.PodIPs {
			d.line(1, "IP:\t%s\n", ip.IP)
		}
	}
	if ref := metav1.GetControllerOf(p); ref != nil {
		d.line(0, "Controlled By:\t%s/%s\n", ref.Kind, ref.Name)
	}
	if len(p.Spec.InitContainers) > 0 {
		d.containers("Init Containers", p.Spec.InitContainers, p.Status.InitContainerStatuses)
	}
	d.containers("Containers", p.Spec.Containers, p.Status.ContainerStatuses)
	if len(p.Status.Conditions) > 0 {
		d.line(0, "Conditions:\n  Type\tStatus\n")
		for _, c := range p.Status.Conditions {
			d.line(1, "%v \t%v \n", c.Type, c.Status)
		}
	}
	d.volumes(p.Spec.Volumes)
	d.line(0, "QoS Class:\t%s\n", p.Status.QOSClass)
	d.labels("Node-Selectors", p.Spec.NodeSelector)
	d.tolerations(p.Spec.Tolerations)
	d.events(events)
	return d.w.Flush()
}

// labels is printLabelsMultiline.
func (d *describer) labels(title string, m map[string]string) {
	d.line(0, "%s:\t", title)
	if len(m) == 0 {
		d.line(0, "<none>\n")
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != corev1.LastAppliedConfigAnnotation {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		d.line(0, "<none>\n")
	}
	for i, k := range keys {
		if i > 0 {
			d.line(0, "\t")
		}
		d.line(0, "%s=%s\n", k, m[k])
	}
}

func (d *describer) tolerations(ts []corev1.Toleration) {
	d.line(0, "Tolerations:\t")
	if len(ts) == 0 {
		d.line(0, "<none>\n")
		return
	}
	for i, t := range ts {
		if i > 0 {
			d.line(0, "\t")
		}
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		if t.Effect != "" {
			s += ":" + string(t.Effect)
		}
		if t.Operator == corev1.TolerationOpExists && t.Value == "" {
			if t.Key != "" || t.Effect != "" {
				s += " op=Exists"
			} else {
				s += "op=Exists"
			}
		}
		if t.TolerationSeconds != nil {
			s += fmt.Sprintf(" for %ds", *t.TolerationSeconds)
		}
		d.line(0, "%s\n", s)
	}
}

// containers is describeContainers.
func (d *describer) containers(label string, cs []corev1.Container, statuses []corev1.ContainerStatus) {
	byName := map[string]corev1.ContainerStatus{}
	for _, s := range statuses {
		byName[s.Name] = s
	}
	if len(cs) == 0 {
		d.line(0, "%s: <none>\n", label)
		return
	}
	d.line(0, "%s:\n", label)
	for _, c := range cs {
		st, ok := byName[c.Name]
		d.line(1, "%s:\n", c.Name)
		if ok {
			d.line(2, "Container ID:\t%s\n", st.ContainerID)
		}
		d.line(2, "Image:\t%s\n", c.Image)
		if ok {
			d.line(2, "Image ID:\t%s\n", st.ImageID)
		}
		d.ports(c.Ports)
		for _, cmd := range []struct {
			title string
			args  []string
		}{{"Command", c.Command}, {"Args", c.Args}} {
			if len(cmd.args) > 0 {
				d.line(2, "%s:\n", cmd.title)
				for _, a := range cmd.args {
					for _, l := range strings.Split(a, "\n") {
						d.line(3, "%s\n", l)
					}
				}
			}
		}
		if ok {
			d.state("State", st.State)
			if st.LastTerminationState.Terminated != nil {
				d.state("Last State", st.LastTerminationState)
			}
			d.line(2, "Ready:\t%s\n", boolString(st.Ready))
			d.line(2, "Restart Count:\t%d\n", st.RestartCount)
		}
		d.resources(c.Resources)
		for _, pr := range []struct {
			title string
			p     *corev1.Probe
		}{{"Liveness", c.LivenessProbe}, {"Readiness", c.ReadinessProbe}, {"Startup", c.StartupProbe}} {
			if pr.p != nil {
				d.line(2, "%s:\t%s\n", pr.title, probe(pr.p))
			}
		}
		d.env(c)
		if len(c.VolumeMounts) == 0 {
			d.line(2, "Mounts:\t<none>\n")
		} else {
			d.line(2, "Mounts:\n")
			mounts := append([]corev1.VolumeMount{}, c.VolumeMounts...)
			sort.Slice(mounts, func(i, j int) bool { return mounts[i].MountPath < mounts[j].MountPath })
			for _, m := range mounts {
				flags := []string{"rw"}
				if m.ReadOnly {
					flags[0] = "ro"
				}
				if m.SubPath != "" {
					flags = append(flags, fmt.Sprintf("path=%q", m.SubPath))
				}
				d.line(3, "%s from %s (%s)\n", m.MountPath, m.Name, strings.Join(flags, ","))
			}
		}
	}
}

func (d *describer) ports(ports []corev1.ContainerPort) {
	var cps, hps []string
	for _, p := range ports {
		cp, hp := fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol), fmt.Sprintf("%d/%s", p.HostPort, p.Protocol)
		if p.Name != "" {
			cp, hp = fmt.Sprintf("%s (%s)", cp, p.Name), fmt.Sprintf("%s (%s)", hp, p.Name)
		}
		cps, hps = append(cps, cp), append(hps, hp)
	}
	for _, x := range []struct {
		one, many string
		list      []string
	}{{"Port", "Ports", cps}, {"Host Port", "Host Ports", hps}} {
		switch {
		case len(x.list) > 1:
			d.line(2, "%s:\t%s\n", x.many, strings.Join(x.list, ", "))
		case len(x.list) == 1:
			d.line(2, "%s:\t%s\n", x.one, x.list[0])
		default:
			d.line(2, "%s:\t<none>\n", x.one)
		}
	}
}

// state is describeStatus.
func (d *describer) state(name string, s corev1.ContainerState) {
	switch {
	case s.Running != nil:
		d.line(2, "%s:\tRunning\n", name)
		d.line(3, "Started:\t%s\n", s.Running.StartedAt.Time.Format(time.RFC1123Z))
	case s.Terminated != nil:
		t := s.Terminated
		d.line(2, "%s:\tTerminated\n", name)
		if t.Reason != "" {
			d.line(3, "Reason:\t%s\n", t.Reason)
		}
		if t.Message != "" {
			d.line(3, "Message:\t%s\n", t.Message)
		}
		d.line(3, "Exit Code:\t%d\n", t.ExitCode)
		if t.Signal > 0 {
			d.line(3, "Signal:\t%d\n", t.Signal)
		}
		d.line(3, "Started:\t%s\n", t.StartedAt.Time.Format(time.RFC1123Z))
		d.line(3, "Finished:\t%s\n", t.FinishedAt.Time.Format(time.RFC1123Z))
	default:
		d.line(2, "%s:\tWaiting\n", name)
		if s.Waiting != nil && s.Waiting.Reason != "" {
			d.line(3, "Reason:\t%s\n", s.Waiting.Reason)
		}
	}
}

func (d *describer) resources(r corev1.ResourceRequirements) {
	for _, x := range []struct {
		title string
		list  corev1.ResourceList
	}{{"Limits", r.Limits}, {"Requests", r.Requests}} {
		if len(x.list) == 0 {
			continue
		}
		d.line(2, "%s:\n", x.title)
		names := make([]string, 0, len(x.list))
		for n := range x.list {
			names = append(names, string(n))
		}
		sort.Strings(names)
		for _, n := range names {
			q := x.list[corev1.ResourceName(n)]
			d.line(3, "%s:\t%s\n", n, q.String())
		}
	}
}

// probe is DescribeProbe.
func probe(p *corev1.Probe) string {
	attrs := fmt.Sprintf("delay=%ds timeout=%ds period=%ds successThreshold=%d failureThreshold=%d",
		p.InitialDelaySeconds, p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold)
	switch {
	case p.Exec != nil:
		return fmt.Sprintf("exec %v %s", p.Exec.Command, attrs)
	case p.HTTPGet != nil:
		u := &url.URL{Scheme: strings.ToLower(string(p.HTTPGet.Scheme)), Path: p.HTTPGet.Path,
			Host: net.JoinHostPort(p.HTTPGet.Host, p.HTTPGet.Port.String())}
		return fmt.Sprintf("http-get %s %s", u, attrs)
	case p.TCPSocket != nil:
		return fmt.Sprintf("tcp-socket %s:%s %s", p.TCPSocket.Host, p.TCPSocket.Port.String(), attrs)
	case p.GRPC != nil:
		svc := ""
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		return fmt.Sprintf("grpc <pod>:%d %s %s", p.GRPC.Port, svc, attrs)
	}
	return "unknown " + attrs
}

func (d *describer) env(c corev1.Container) {
	if len(c.EnvFrom) > 0 {
		d.line(2, "Environment Variables from:\n")
		for _, e := range c.EnvFrom {
			from, name, optional := "ConfigMap", "", false
			if e.ConfigMapRef != nil {
				name, optional = e.ConfigMapRef.Name, e.ConfigMapRef.Optional != nil && *e.ConfigMapRef.Optional
			} else if e.SecretRef != nil {
				from, name, optional = "Secret", e.SecretRef.Name, e.SecretRef.Optional != nil && *e.SecretRef.Optional
			}
			if e.Prefix == "" {
				d.line(3, "%s\t%s\tOptional: %t\n", name, from, optional)
			} else {
				d.line(3, "%s\t%s with prefix '%s'\tOptional: %t\n", name, from, e.Prefix, optional)
			}
		}
	}
	if len(c.Env) == 0 {
		d.line(2, "Environment:\t<none>\n")
		return
	}
	d.line(2, "Environment:\n")
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			for i, s := range strings.Split(e.Value, "\n") {
				if i == 0 {
					d.line(3, "%s:\t%s\n", e.Name, s)
				} else {
					d.line(3, "\t%s\n", s)
				}
			}
		case e.ValueFrom.FieldRef != nil:
			d.line(3, "%s:\t (%s:%s)\n", e.Name, e.ValueFrom.FieldRef.APIVersion, e.ValueFrom.FieldRef.FieldPath)
		case e.ValueFrom.ResourceFieldRef != nil:
			d.line(3, "%s:\t (%s)\n", e.Name, e.ValueFrom.ResourceFieldRef.Resource)
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			d.line(3, "%s:\t<set to the key '%s' in secret '%s'>\tOptional: %t\n", e.Name, r.Key, r.Name, r.Optional != nil && *r.Optional)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			d.line(3, "%s:\t<set to the key '%s' of config map '%s'>\tOptional: %t\n", e.Name, r.Key, r.Name, r.Optional != nil && *r.Optional)
		}
	}
}

// volumes is describeVolumes, for the volume types podrun runs.
func (d *describer) volumes(vs []corev1.Volume) {
	if len(vs) == 0 {
		d.line(0, "Volumes:\t<none>\n")
		return
	}
	d.line(0, "Volumes:\n")
	for _, v := range vs {
		d.line(1, "%s:\n", v.Name)
		switch s := v.VolumeSource; {
		case s.HostPath != nil:
			t := "<none>"
			if s.HostPath.Type != nil {
				t = string(*s.HostPath.Type)
			}
			d.line(2, "Type:\tHostPath (bare host directory volume)\n")
			d.line(2, "Path:\t%s\n", s.HostPath.Path)
			d.line(2, "HostPathType:\t%s\n", t)
		case s.EmptyDir != nil:
			limit := "<unset>"
			if s.EmptyDir.SizeLimit != nil && s.EmptyDir.SizeLimit.Cmp(resource.Quantity{}) > 0 {
				limit = s.EmptyDir.SizeLimit.String()
			}
			d.line(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n")
			d.line(2, "Medium:\t%s\n", s.EmptyDir.Medium)
			d.line(2, "SizeLimit:\t%s\n", limit)
		case s.ConfigMap != nil:
			d.line(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n")
			d.line(2, "Name:\t%s\n", s.ConfigMap.Name)
			d.line(2, "Optional:\t%t\n", s.ConfigMap.Optional != nil && *s.ConfigMap.Optional)
		case s.Secret != nil:
			d.line(2, "Type:\tSecret (a volume populated by a Secret)\n")
			d.line(2, "SecretName:\t%s\n", s.Secret.SecretName)
			d.line(2, "Optional:\t%t\n", s.Secret.Optional != nil && *s.Secret.Optional)
		case s.DownwardAPI != nil:
			d.line(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n")
			d.line(2, "Items:\n")
			for _, it := range s.DownwardAPI.Items {
				if it.FieldRef != nil {
					d.line(3, "%s -> %s\n", it.FieldRef.FieldPath, it.Path)
				}
				if it.ResourceFieldRef != nil {
					d.line(3, "%s -> %s\n", it.ResourceFieldRef.Resource, it.Path)
				}
			}
		case s.Projected != nil:
			d.line(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n")
			for _, src := range s.Projected.Sources {
				switch {
				case src.Secret != nil:
					d.line(2, "SecretName:\t%s\n", src.Secret.Name)
					d.line(2, "Optional:\t%t\n", src.Secret.Optional != nil && *src.Secret.Optional)
				case src.ConfigMap != nil:
					d.line(2, "ConfigMapName:\t%s\n", src.ConfigMap.Name)
					d.line(2, "Optional:\t%t\n", src.ConfigMap.Optional != nil && *src.ConfigMap.Optional)
				case src.DownwardAPI != nil:
					d.line(2, "DownwardAPI:\ttrue\n")
				case src.ServiceAccountToken != nil:
					d.line(2, "TokenExpirationSeconds:\t%d\n", ptrOr(src.ServiceAccountToken.ExpirationSeconds, 0))
				}
			}
		default:
			d.line(2, "<unknown>\n")
		}
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// events is DescribeEvents.
func (d *describer) events(evs []corev1.Event) {
	if len(evs) == 0 {
		d.line(0, "Events:\t<none>\n")
		return
	}
	evs = append([]corev1.Event{}, evs...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].LastTimestamp.Before(&evs[j].LastTimestamp) })
	d.line(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
	d.line(1, "----\t------\t----\t----\t-------\n")
	for _, e := range evs {
		age := Since(e.FirstTimestamp, d.now)
		if e.Count > 1 {
			age = fmt.Sprintf("%s (x%d over %s)", Since(e.LastTimestamp, d.now), e.Count, age)
		}
		from := e.Source.Component
		if from == "" {
			from = e.ReportingController
		}
		d.line(1, "%s\t%s\t%s\t%s\t%s\n", e.Type, e.Reason, age, from, strings.TrimSpace(e.Message))
	}
}

func boolString(b bool) string {
	if b {
		return "True"
	}
	return "False"
}
