package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/controller/job"
	"github.com/podrun/podrun/internal/kubectl"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/manifest"
	"github.com/podrun/podrun/node"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/shim"
)

func init() { commands = append(commands, runCommand) }

// Exit statuses of `podrun run`.
const (
	exitFailed    = 1
	exitTimeout   = 124
	exitInterrupt = 130
)

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "run the pods of FILEs in the foreground until they finish",
	ArgsUsage: "FILE... (- for standard input)",
	Description: "Runs every Pod, Deployment and Job of the files with the kubelet's semantics and exits when\n" +
		"they are all done: 0 when every pod (and Job) succeeded, 1 when any failed, 124 when --timeout\n" +
		"ended them, 130 after Ctrl-C or SIGTERM (pods are then terminated the kubelet way first).\n" +
		"Container output is streamed as \"pod/container | line\" and status changes go to stderr,\n" +
		"unless -o is given: then stdout holds only the final pods, as a v1 List.",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Usage: "print the defaulted pods that would run, as a v1 List, and exit"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "yaml or json: print the final pods (or with --dry-run the defaulted ones)"},
		&cli.DurationFlag{Name: "timeout", Usage: "terminate the pods after this long (0: no limit)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "do not print status changes and events"},
		&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "read the files again at each change and apply it (changed pods replaced, ConfigMaps and Secrets projected into the running pods' volumes) until Ctrl-C"},
		&cli.DurationFlag{Name: "top", Usage: "every this long, print each running container's CPU and memory use (like kubectl top pod --containers) on stderr"},
		&cli.StringFlag{Name: "trace", Usage: "write each phase of the run (decode, sandbox, network, each container's create and start...) to `FILE`, one JSON object a line"},
	}, nodeFlags()...),
	Action: runAction,
}

func runAction(c *cli.Context) (retErr error) {
	rec, closeTrace, err := openTrace(c.String("trace"))
	if err != nil {
		return err
	}
	defer func() {
		if err := closeTrace(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	tctx := trace.With(c.Context, rec, "")
	if c.NArg() == 0 {
		return cli.Exit("run: no files given (use - for standard input)", 2)
	}
	format := c.String("output")
	if format != "" && format != "yaml" && format != "json" {
		return cli.Exit(fmt.Sprintf("run: -o %q: must be yaml or json", format), 2)
	}
	sp := trace.Start(tctx, "decode")
	b, err := manifest.Load(c.Args().Slice()...)
	sp.End()
	if err != nil {
		return manifestErrors(c, err)
	}
	if err := b.Unsupported(); err != nil {
		return manifestErrors(c, err)
	}
	if c.Bool("dry-run") {
		if format == "" {
			format = "yaml"
		}
		var pods []*corev1.Pod
		for _, p := range b.Pods {
			pods = append(pods, p.Pod)
		}
		return manifest.WriteList(c.App.Writer, pods, format)
	}
	if len(b.Pods) == 0 && len(b.Jobs) == 0 {
		return cli.Exit("run: the files hold no Pod, Deployment or Job", 1)
	}
	n, err := openRunNode(tctx, c)
	if err != nil {
		return err
	}

	out := &console{w: c.App.Writer, errw: c.App.ErrWriter, quiet: c.Bool("quiet"), streams: format == ""}
	r := &runner{node: n, bundle: b, out: out, trace: rec}
	if every := c.Duration("top"); every > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go r.top(nodeConfig(c).Cgroups, every, stop)
	}

	// Ctrl-C or SIGTERM cancel c.Context: every pod is then deleted and
	// terminated the kubelet way. --timeout does the same.
	ctx := c.Context
	timedOut := false
	if d := c.Duration("timeout"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var failed bool
	if c.Bool("watch") {
		if failed, err = r.runWatch(ctx, c.Args().Slice()); err != nil {
			return cli.Exit("run --watch: "+err.Error(), 2)
		}
	} else {
		failed = r.run(ctx)
	}
	if ctx.Err() != nil && c.Context.Err() == nil {
		timedOut = true
	}

	if format != "" {
		if err := manifest.WriteList(c.App.Writer, r.finalPods(), format); err != nil {
			return err
		}
	}
	switch {
	case c.Context.Err() != nil:
		return cli.Exit("", exitInterrupt)
	case timedOut:
		return cli.Exit("", exitTimeout)
	case failed:
		return cli.Exit("", exitFailed)
	}
	return nil
}

// openRunNode checks the host and opens the node podrun run runs pods on,
// after cleaning up what an earlier run killed with SIGKILL left behind.
func openRunNode(tctx context.Context, c *cli.Context) (*node.Node, error) {
	if err := checkNodeFlags(c); err != nil {
		return nil, err
	}
	if err := requireHost("run", c.String("root"), c.String("cgroup-driver")); err != nil {
		return nil, err
	}
	sp := trace.Start(tctx, "node open")
	n, err := node.New(nodeConfig(c))
	sp.End()
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("run: %v", err), 1)
	}
	go n.KeepOOMGroups(c.Context)
	// What an earlier podrun killed with SIGKILL left behind goes first;
	// pods a daemon's shim checkpointed are the daemon's to restore.
	sp = trace.Start(tctx, "gc")
	if err := n.GC(tctx, shim.Checkpointed(c.String("run-root"))); err != nil {
		slog.Warn("cleaning up after earlier runs", "err", err)
	}
	sp.End()
	return n, nil
}

// openTrace starts the recorder of --trace FILE (none without the flag);
// closing it writes the file.
func openTrace(path string) (*trace.Recorder, func() error, error) {
	if path == "" {
		return nil, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, cli.Exit(fmt.Sprintf("run: --trace: %v", err), 2)
	}
	rec := trace.New(f, nil)
	return rec, func() error {
		if err := errors.Join(rec.Close(), f.Close()); err != nil {
			return cli.Exit(fmt.Sprintf("run: --trace: %v", err), 1)
		}
		return nil
	}, nil
}

// manifestErrors prints every problem of the input, one per line.
func manifestErrors(c *cli.Context, err error) error {
	var errs manifest.Errors
	if !errors.As(err, &errs) {
		return cli.Exit(err.Error(), 1)
	}
	for _, e := range errs {
		fmt.Fprintln(c.App.ErrWriter, e)
	}
	return cli.Exit("", 1)
}

// runner supervises every pod and Job of one `podrun run`.
type runner struct {
	node   *node.Node
	bundle *manifest.Bundle
	out    *console
	trace  *trace.Recorder

	mu   sync.Mutex // guards sups, jobs and bundle (which --watch replaces)
	sups []*pod.Supervisor
	jobs []*batchv1.Job
}

// run starts everything and waits until it is all done; it reports
// whether anything failed.
func (r *runner) run(ctx context.Context) (failed bool) {
	var wg sync.WaitGroup
	for _, p := range r.bundle.Pods {
		if p.Job != nil {
			continue
		}
		s := r.start(ctx, p.Pod)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-s.Done()
		}()
	}
	finalJobs := r.startJobs(ctx, &wg)
	wg.Wait()
	return r.collect(finalJobs)
}

// startJobs runs a controller per Job; each sends its final Job on the
// channel, closed once wg is done.
func (r *runner) startJobs(ctx context.Context, wg *sync.WaitGroup) <-chan *batchv1.Job {
	jobPods := map[*batchv1.Job][]*corev1.Pod{}
	for _, p := range r.bundle.Pods {
		if p.Job != nil {
			jobPods[p.Job] = append(jobPods[p.Job], p.Pod)
		}
	}
	finalJobs := make(chan *batchv1.Job, len(r.bundle.Jobs))
	var jobs sync.WaitGroup
	for _, j := range r.bundle.Jobs {
		jc := &job.Controller{
			Job:    j,
			Pods:   jobPods[j],
			NewPod: func(ix int) *corev1.Pod { return manifest.NewJobPod(j, ix) },
			Start:  func(p *corev1.Pod) job.PodHandle { return r.start(ctx, p) },
			OnStatus: func(j *batchv1.Job) {
				r.out.job(j)
			},
		}
		wg.Add(1)
		jobs.Add(1)
		go func() {
			defer wg.Done()
			defer jobs.Done()
			finalJobs <- jc.Run(ctx)
		}()
	}
	go func() {
		jobs.Wait()
		close(finalJobs)
	}()
	return finalJobs
}

// collect records the final Jobs and reports whether a Job or a pod of
// its own failed.
func (r *runner) collect(finalJobs <-chan *batchv1.Job) (failed bool) {
	for j := range finalJobs {
		r.jobs = append(r.jobs, j)
		for _, c := range j.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				failed = true
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sups {
		p := s.Pod()
		if _, isJob := p.Labels[batchv1.JobNameLabel]; isJob {
			continue // a Job's failed pods are its business (backoffLimit)
		}
		if p.Status.Phase != corev1.PodSucceeded {
			failed = true
		}
	}
	return failed
}

// start runs one pod; cancelling ctx deletes it.
func (r *runner) start(ctx context.Context, p *corev1.Pod) *pod.Supervisor {
	r.mu.Lock()
	objs := r.bundle
	r.mu.Unlock()
	s := pod.New(p, pod.Options{
		Host:     r.node,
		Objects:  objs,
		Log:      slog.Default(),
		OnEvent:  r.out.event,
		OnStatus: r.out.status,
		Output:   r.out.line,

		AllowedUnsafeSysctls: r.node.AllowedUnsafeSysctls(),
		Trace:                r.trace,
	})
	r.mu.Lock()
	r.sups = append(r.sups, s)
	r.mu.Unlock()
	go func() { _ = s.Run(ctx) }()
	return s
}

// top prints the CPU (over the last interval) and memory (working set) of
// every running container, as kubectl top pod --containers does.
func (r *runner) top(tree cgroups.Tree, every time.Duration, stop <-chan struct{}) {
	type sample struct {
		cpu uint64
		at  time.Time
	}
	last := map[string]sample{} // by container ID
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var rows []string
		for _, p := range r.finalPods() {
			for _, cs := range podspec.Statuses(&p.Status) {
				if cs.State.Running == nil {
					continue
				}
				u, err := tree.Usage(tree.ContainerPath(p, cs.Name))
				if err != nil {
					continue
				}
				now := time.Now()
				cpu := "-"
				if prev, ok := last[cs.ContainerID]; ok {
					cpu = fmt.Sprintf("%dm", cgroups.NanoCores(prev.cpu, u.CPUNanos, now.Sub(prev.at))/1e6)
				}
				last[cs.ContainerID] = sample{u.CPUNanos, now}
				rows = append(rows, fmt.Sprintf("%-40s %-20s %-11s %dMi", p.Name, cs.Name, cpu, u.WorkingSetBytes>>20))
			}
		}
		r.out.table(fmt.Sprintf("%-40s %-20s %-11s %s", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"), rows)
	}
}

func (r *runner) finalPods() []*corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	pods := make([]*corev1.Pod, 0, len(r.sups))
	for _, s := range r.sups {
		pods = append(pods, s.Pod())
	}
	sort.SliceStable(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods
}

// console serialises what the pods print: container lines on stdout, status
// changes and warnings on stderr.
type console struct {
	mu      sync.Mutex
	w, errw io.Writer
	quiet   bool
	streams bool // print container output
	header  bool
	last    map[string]string // last printed row per pod
}

func (o *console) line(p *corev1.Pod, container, stream, text string) {
	if !o.streams {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, "%s/%s | %s\n", p.Name, container, strings.TrimRight(text, "\n"))
}

func (o *console) status(p *corev1.Pod) {
	if o.quiet {
		return
	}
	r := kubectl.Row(p, time.Now())
	row := fmt.Sprintf("%-40s %-7s %-24s %-10s", r.Name, r.Ready, r.Status, r.Restarts)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.last == nil {
		o.last = map[string]string{}
	}
	if o.last[p.Name] == row {
		return
	}
	o.last[p.Name] = row
	if !o.header {
		fmt.Fprintf(o.errw, "%-40s %-7s %-24s %-10s %s\n", "NAME", "READY", "STATUS", "RESTARTS", "AGE")
		o.header = true
	}
	fmt.Fprintf(o.errw, "%s %s\n", row, r.Age)
}

func (o *console) table(header string, rows []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintln(o.errw, header)
	for _, r := range rows {
		fmt.Fprintln(o.errw, r)
	}
}

func (o *console) event(p *corev1.Pod, e pod.Event) {
	// Every pod gets MissingClusterDNS on podrun (there is no cluster DNS):
	// it stays in the pod's events but is no news on the console.
	if o.quiet || e.Type != "Warning" || e.Reason == "MissingClusterDNS" {
		return
	}
	obj := "pod/" + p.Name
	if e.Container != "" {
		obj += "/" + e.Container
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.errw, "%s: %s %s: %s\n", obj, e.Type, e.Reason, e.Message)
}

func (o *console) job(j *batchv1.Job) {
	if o.quiet {
		return
	}
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			line := fmt.Sprintf("job.batch/%s: %s (%s): succeeded %d, failed %d", j.Name, c.Type, c.Reason, j.Status.Succeeded, j.Status.Failed)
			if j.Status.CompletedIndexes != "" {
				line += ", completed indexes " + j.Status.CompletedIndexes
			}
			if fi := j.Status.FailedIndexes; fi != nil && *fi != "" {
				line += ", failed indexes " + *fi
			}
			if c.Message != "" {
				line += ": " + c.Message
			}
			o.mu.Lock()
			fmt.Fprintln(o.errw, line)
			// The daemon deletes a finished Job after its TTL; here nothing
			// outlives the run.
			if ttl := j.Spec.TTLSecondsAfterFinished; ttl != nil {
				fmt.Fprintf(o.errw, "job.batch/%s: ttlSecondsAfterFinished %d: the daemon would delete the Job and its pods %ds after it finished; podrun run keeps nothing\n", j.Name, *ttl, *ttl)
			}
			o.mu.Unlock()
		}
	}
}
