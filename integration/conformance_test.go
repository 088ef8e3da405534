package integration

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/podrun/podrun/internal/testutil"
)

// TestConformance runs every scenario of conformance/: one pod (or Job)
// per file, written from SEMANTICS.md, whose containers log what they do;
// the expectations are orderings over that log plus the final statuses.
// The file format is described in conformance/README.md.
func TestConformance(t *testing.T) {
	files, err := filepath.Glob("conformance/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in conformance/")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			sc, err := loadConformance(f)
			if err != nil {
				t.Fatal(err)
			}
			testutil.RequiresRoot(t)
			if sc.Host == "without-apparmor" && appArmorEnabled() {
				t.Skip("the host has AppArmor: the pod is admitted and confined (TestAppArmorProfiles)")
			}
			sc.run(t, name)
		})
	}
}

// conformance is one scenario file.
type conformance struct {
	Rule      string          `json:"rule"` // the SEMANTICS.md rule (and e2e case) it checks
	Pod       *corev1.Pod     `json:"pod,omitempty"`
	Job       *batchv1.Job    `json:"job,omitempty"`
	Interrupt *interruptAfter `json:"interrupt,omitempty"`
	Timeout   string          `json:"timeout,omitempty"` // podrun run --timeout; default 90s
	Host      string          `json:"host,omitempty"`    // "without-apparmor": skipped on a host with AppArmor
	Expect    expectations    `json:"expect"`
}

// interruptAfter deletes the pod (Ctrl-C) once an event was logged or a
// line reached podrun's stderr, after an optional delay.
type interruptAfter struct {
	After  string `json:"after,omitempty"`  // "name What" or "name What#n"
	Stderr string `json:"stderr,omitempty"` // a substring of podrun's stderr
	Delay  string `json:"delay,omitempty"`  // e.g. 500ms
}

type expectations struct {
	Exit          *int              `json:"exit,omitempty"`      // podrun's exit status
	Phase         corev1.PodPhase   `json:"phase,omitempty"`     // of every final pod
	PodReason     string            `json:"podReason,omitempty"` // status.reason of every final pod
	Pods          int               `json:"pods,omitempty"`      // number of final pods
	Order         [][]string        `json:"order,omitempty"`     // chains of events, each in this order
	RunTogether   [][]string        `json:"runTogether,omitempty"`
	Restarted     []string          `json:"restarted,omitempty"`
	NotRestarted  []string          `json:"notRestarted,omitempty"`
	RestartCounts map[string]int32  `json:"restartCounts,omitempty"`
	Never         []string          `json:"never,omitempty"`  // events that must not occur
	Counts        map[string]int    `json:"counts,omitempty"` // exact number of an event
	ExitCodes     map[string]int32  `json:"exitCodes,omitempty"`
	Reasons       map[string]string `json:"reasons,omitempty"`  // terminated or waiting reason
	Messages      map[string]string `json:"messages,omitempty"` // substring of the termination message
	Conditions    map[string]string `json:"conditions,omitempty"`
	Stderr        []string          `json:"stderr,omitempty"`
	NotStderr     []string          `json:"notStderr,omitempty"`
	Gaps          []gap             `json:"gaps,omitempty"`
	Between       []between         `json:"between,omitempty"`
	Job           string            `json:"job,omitempty"` // Complete or Failed
}

// gap bounds the seconds from one event to another.
type gap struct {
	From string   `json:"from"`
	To   string   `json:"to"`
	Min  *float64 `json:"min,omitempty"`
	Max  *float64 `json:"max,omitempty"`
}

// between asserts which events happen strictly between two others.
type between struct {
	From   string         `json:"from"`
	To     string         `json:"to"`
	Has    []string       `json:"has,omitempty"`
	HasNot []string       `json:"hasNot,omitempty"`
	Counts map[string]int `json:"counts,omitempty"` // exact number from From to To, both included
	// Slack (s) after From in which HasNot events are still tolerated:
	// one already under way when From happened may land just after it.
	Slack float64 `json:"slack,omitempty"`
}

func loadConformance(file string) (*conformance, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var sc conformance
	if err := yaml.UnmarshalStrict(b, &sc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if (sc.Pod == nil) == (sc.Job == nil) {
		return nil, fmt.Errorf("%s: give exactly one of pod and job", file)
	}
	if sc.Host != "" && sc.Host != "without-apparmor" {
		return nil, fmt.Errorf("%s: unknown host %q", file, sc.Host)
	}
	if sc.Rule == "" {
		return nil, fmt.Errorf("%s: no rule: say which SEMANTICS.md rule the scenario checks", file)
	}
	if i := sc.Interrupt; i != nil && (i.After == "") == (i.Stderr == "") {
		return nil, fmt.Errorf("%s: interrupt needs exactly one of after and stderr", file)
	}
	return &sc, nil
}

// conformancePrelude extends the harness's log() with the shell helpers
// the scenarios' scripts use.
const conformancePrelude = prelude + `
# serve [code] [stop]: run until TERM, then log Exiting, take stop seconds, log Exited and exit code
serve() { trap "log Exiting; sleep ${2:-0}; log Exited; exit ${1:-0}" TERM; log Starting; log Started; while true; do sleep 1 & wait; done; }
# stubborn: PID 1 without a TERM handler, which ignores TERM
stubborn() { log Starting; log Started; while true; do sleep 1; done; }
# run secs code: log Starting, sleep, log Exiting, exit code
run() { log Starting; sleep $1; log Exiting; exit $2; }
# attempt: N becomes this container's run number (1, 2, ...), kept in /log across restarts
# (shell builtins only: a fork here would let the next container log before this one)
attempt() { N=0; [ -f /log/attempt.$NAME ] && read N < /log/attempt.$NAME; N=$((N + 1)); echo $N > /log/attempt.$NAME; }
`

// prepare fills in what every scenario container shares: the busybox
// image, the log volume, NAME, and the prelude before each "sh -c" script
// (the entrypoint, exec hooks and exec probes).
func prepare(spec *corev1.PodSpec, dir string) {
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "log", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: dir}}})
	if spec.TerminationGracePeriodSeconds == nil {
		tgps := int64(30)
		spec.TerminationGracePeriodSeconds = &tgps
	}
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			c := &list[i]
			if c.Image == "" {
				c.Image = "busybox"
			}
			if c.ImagePullPolicy == "" {
				c.ImagePullPolicy = corev1.PullIfNotPresent
			}
			c.Env = append(c.Env, corev1.EnvVar{Name: "NAME", Value: c.Name})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "log", MountPath: "/log"})
			withPrelude(c.Command, "")
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p != nil && p.Exec != nil {
					withPrelude(p.Exec.Command, c.Name)
				}
			}
			if l := c.Lifecycle; l != nil {
				for _, h := range []*corev1.LifecycleHandler{l.PostStart, l.PreStop} {
					if h != nil && h.Exec != nil {
						withPrelude(h.Exec.Command, c.Name)
					}
				}
			}
		}
	}
}

func withPrelude(cmd []string, name string) {
	if len(cmd) == 3 && cmd[0] == "sh" && cmd[1] == "-c" {
		if name != "" {
			cmd[2] = "NAME=" + name + "\n" + cmd[2]
		}
		cmd[2] = conformancePrelude + cmd[2]
	}
}

func (sc *conformance) run(t *testing.T, name string) {
	dir := t.TempDir()
	var obj any
	if sc.Pod != nil {
		p := sc.Pod
		p.APIVersion, p.Kind = "v1", "Pod"
		if p.Name == "" {
			p.Name = name
		}
		prepare(&p.Spec, dir)
		obj = p
	} else {
		j := sc.Job
		j.APIVersion, j.Kind = "batch/v1", "Job"
		if j.Name == "" {
			j.Name = name
		}
		prepare(&j.Spec.Template.Spec, dir)
		obj = j
	}
	timeout := sc.Timeout
	if timeout == "" {
		timeout = "90s"
	}
	bg := startObjects(t, dir, []any{obj}, "--timeout", timeout)
	if i := sc.Interrupt; i != nil {
		if i.After != "" {
			n, w, k := parseRef(t, i.After)
			bg.waitEventN(n, w, k)
		} else {
			bg.waitStderr(i.Stderr)
		}
		if i.Delay != "" {
			d, err := time.ParseDuration(i.Delay)
			if err != nil {
				t.Fatalf("interrupt delay: %v", err)
			}
			time.Sleep(d)
		}
		mark(t, dir, "Interrupt")
		if err := bg.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
	}
	<-bg.done
	mark(t, dir, "Exited")
	r := bg.wait()
	sc.Expect.check(t, r)
}

// mark logs "test <what>" in the event log, on the containers' clock.
func mark(t *testing.T, dir, what string) {
	t.Helper()
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	at, _, _ := strings.Cut(string(up), " ")
	f, err := os.OpenFile(filepath.Join(dir, "events"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s test %s\n", at, what); err != nil {
		t.Fatal(err)
	}
}

var refRE = regexp.MustCompile(`^(\S+) (.+?)(?:#(\d+|last))?$`)

// parseRef splits "name What#n" (n counts from 1; 0 means last).
func parseRef(t *testing.T, ref string) (name, what string, n int) {
	t.Helper()
	m := refRE.FindStringSubmatch(ref)
	if m == nil {
		t.Fatalf("bad event reference %q: want \"name What\" or \"name What#n\"", ref)
	}
	switch m[3] {
	case "":
		n = 1
	case "last":
		n = 0
	default:
		n, _ = strconv.Atoi(m[3])
	}
	return m[1], m[2], n
}

// at returns the time of the referenced event, or NaN when it did not happen.
func at(t *testing.T, ev *events, ref string) float64 {
	t.Helper()
	name, what, n := parseRef(t, ref)
	all := ev.all(name, what)
	switch {
	case len(all) == 0 || n > len(all):
		return math.NaN()
	case n == 0:
		return all[len(all)-1]
	}
	return all[n-1]
}

func (e expectations) check(t *testing.T, r result) {
	t.Helper()
	ev := r.ev
	if e.Exit != nil && r.code != *e.Exit {
		t.Errorf("podrun exited %d, want %d", r.code, *e.Exit)
	}
	if e.Pods != 0 && len(r.pods) != e.Pods {
		t.Errorf("%d final pods, want %d", len(r.pods), e.Pods)
	}
	if len(r.pods) == 0 {
		t.Fatalf("no final pods")
	}
	for _, chain := range e.Order {
		prev, prevRef := math.Inf(-1), ""
		for _, ref := range chain {
			a := at(t, ev, ref)
			switch {
			case math.IsNaN(a):
				t.Errorf("order: %q never happened", ref)
			case a < prev:
				t.Errorf("order: %q (%.2f) happened before %q (%.2f)", ref, a, prevRef, prev)
			}
			if !math.IsNaN(a) {
				prev, prevRef = a, ref
			}
		}
	}
	end := at(t, ev, "test Exited")
	for _, group := range e.RunTogether {
		latestStart, earliestEnd := math.Inf(-1), math.Inf(1)
		for _, c := range group {
			s := at(t, ev, c+" Starting")
			if math.IsNaN(s) {
				t.Errorf("runTogether: %s never started", c)
				continue
			}
			stop := at(t, ev, c+" Exiting#last")
			if math.IsNaN(stop) {
				stop = end
			}
			latestStart, earliestEnd = max(latestStart, s), min(earliestEnd, stop)
		}
		if latestStart >= earliestEnd {
			t.Errorf("runTogether: %v were never all running at once", group)
		}
	}
	for _, ref := range e.Never {
		if a := at(t, ev, ref); !math.IsNaN(a) {
			t.Errorf("%q happened (at %.2f); it must not", ref, a)
		}
	}
	for ref, want := range e.Counts {
		name, what, _ := parseRef(t, ref)
		if got := len(ev.all(name, what)); got != want {
			t.Errorf("%q happened %d times, want %d", ref, got, want)
		}
	}
	for _, g := range e.Gaps {
		from, to := at(t, ev, g.From), at(t, ev, g.To)
		if math.IsNaN(from) || math.IsNaN(to) {
			t.Errorf("gap %q → %q: an event is missing", g.From, g.To)
			continue
		}
		d := to - from
		if (g.Min != nil && d < *g.Min) || (g.Max != nil && d > *g.Max) {
			t.Errorf("gap %q → %q is %.2f s, want within [%v, %v]", g.From, g.To, d, deref(g.Min), deref(g.Max))
		}
	}
	for _, b := range e.Between {
		from, to := at(t, ev, b.From), at(t, ev, b.To)
		if math.IsNaN(from) || math.IsNaN(to) {
			t.Errorf("between %q and %q: an event is missing", b.From, b.To)
			continue
		}
		count := func(ref string, lo float64) int {
			name, what, _ := parseRef(t, ref)
			n := 0
			for _, a := range ev.all(name, what) {
				if a > lo && a < to {
					n++
				}
			}
			return n
		}
		for _, ref := range b.Has {
			if count(ref, from) == 0 {
				t.Errorf("no %q between %q and %q", ref, b.From, b.To)
			}
		}
		for _, ref := range b.HasNot {
			if n := count(ref, from+b.Slack); n != 0 {
				t.Errorf("%q happened %d times between %q (+%.1f s) and %q", ref, n, b.From, b.Slack, b.To)
			}
		}
		for ref, want := range b.Counts {
			// Inclusive: with 10 ms stamps an event and its effect may tie.
			name, what, _ := parseRef(t, ref)
			n := 0
			for _, a := range ev.all(name, what) {
				if a >= from && a <= to {
					n++
				}
			}
			if n != want {
				t.Errorf("%q happened %d times between %q and %q, want %d", ref, n, b.From, b.To, want)
			}
		}
	}
	for _, s := range e.Stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("podrun's stderr lacks %q", s)
		}
	}
	for _, s := range e.NotStderr {
		if strings.Contains(r.stderr, s) {
			t.Errorf("podrun's stderr has %q", s)
		}
	}
	if e.Job != "" {
		if want := ": " + e.Job + " ("; !strings.Contains(r.stderr, want) {
			t.Errorf("the Job did not end %s", e.Job)
		}
	}
	for i := range r.pods {
		e.checkPod(t, &r.pods[i], ev)
	}
}

func deref(f *float64) any {
	if f == nil {
		return "-"
	}
	return *f
}

func (e expectations) checkPod(t *testing.T, p *corev1.Pod, ev *events) {
	t.Helper()
	if e.Phase != "" && p.Status.Phase != e.Phase {
		t.Errorf("pod %s: phase %s, want %s", p.Name, p.Status.Phase, e.Phase)
	}
	if e.PodReason != "" && p.Status.Reason != e.PodReason {
		t.Errorf("pod %s: reason %q, want %q", p.Name, p.Status.Reason, e.PodReason)
	}
	st := func(c string) *corev1.ContainerStatus {
		s := status(p, c)
		if s == nil {
			t.Errorf("pod %s has no status of container %s", p.Name, c)
		}
		return s
	}
	for _, c := range e.Restarted {
		if s := st(c); s != nil && s.RestartCount < 1 {
			t.Errorf("%s: restartCount %d, want ≥ 1", c, s.RestartCount)
		}
	}
	for _, c := range e.NotRestarted {
		if s := st(c); s != nil && s.RestartCount != 0 {
			t.Errorf("%s: restartCount %d, want 0", c, s.RestartCount)
		}
		if n := len(ev.all(c, "Starting")); n > 1 {
			t.Errorf("%s started %d times, want once", c, n)
		}
	}
	for c, want := range e.RestartCounts {
		if s := st(c); s != nil && s.RestartCount != want {
			t.Errorf("%s: restartCount %d, want %d", c, s.RestartCount, want)
		}
	}
	terminated := func(s *corev1.ContainerStatus) *corev1.ContainerStateTerminated {
		if s.State.Terminated != nil {
			return s.State.Terminated
		}
		return s.LastTerminationState.Terminated
	}
	for c, want := range e.ExitCodes {
		s := st(c)
		if s == nil {
			continue
		}
		if term := terminated(s); term == nil || term.ExitCode != want {
			t.Errorf("%s: state %s, want terminated with %d", c, stateString(s), want)
		}
	}
	for c, want := range e.Reasons {
		s := st(c)
		if s == nil {
			continue
		}
		var got []string
		if term := terminated(s); term != nil {
			got = append(got, term.Reason)
		}
		if w := s.State.Waiting; w != nil {
			got = append(got, w.Reason)
		}
		if !slices.Contains(got, want) {
			t.Errorf("%s: state %s, want reason %s", c, stateString(s), want)
		}
	}
	for c, want := range e.Messages {
		s := st(c)
		if s == nil {
			continue
		}
		if term := terminated(s); term == nil || !strings.Contains(term.Message, want) {
			t.Errorf("%s: state %s, want a termination message with %q", c, stateString(s), want)
		}
	}
	for typ, want := range e.Conditions {
		wantStatus, wantReason, _ := strings.Cut(want, "/")
		var found *corev1.PodCondition
		for i := range p.Status.Conditions {
			if string(p.Status.Conditions[i].Type) == typ {
				found = &p.Status.Conditions[i]
			}
		}
		switch {
		case found == nil:
			t.Errorf("pod %s has no condition %s", p.Name, typ)
		case string(found.Status) != wantStatus || (wantReason != "" && found.Reason != wantReason):
			t.Errorf("pod %s: condition %s is %s/%s, want %s", p.Name, typ, found.Status, found.Reason, want)
		}
	}
}

func stateString(s *corev1.ContainerStatus) string {
	b, _ := yaml.Marshal(struct {
		State     corev1.ContainerState `json:"state"`
		LastState corev1.ContainerState `json:"lastState"`
		Restarts  int32                 `json:"restartCount"`
	}{s.State, s.LastTerminationState, s.RestartCount})
	return "\n" + string(b)
}
