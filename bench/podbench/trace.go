package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
)

// The scenarios whose `podrun run --trace` files the report breaks down
// by phase, in column order.
const (
	traceStart1   = "1-container pod"
	traceSidecars = "init + 2 sidecars + app"
	traceFirstPod = "1-container pod, the node's first"
)

var traceScenarios = []string{traceStart1, traceSidecars, traceFirstPod}

// Labels of the phases the benchmark adds to the trace's own.
const (
	phaseExec = "exec → podrun's trace starts (process start, Go runtime)"
	phaseCPU  = "CPU time of the podrun process, whole run (user + sys)"
)

type traceRecord struct {
	Phase, Pod, Container string
	StartMs               float64 `json:"start_ms"`
	Ms                    float64
	OriginBoottimeNs      int64   `json:"origin_boottime_ns"`
	UserMs                float64 `json:"cpu_user_ms"`
	SysMs                 float64 `json:"cpu_sys_ms"`
}

// addTrace adds one run's trace file: each phase's duration (summed when
// it occurs more than once in the run, as "status" does), the time from
// exec to the trace's origin, and the process's CPU time.
func (r *results) addTrace(scenario, file string, execAt float64) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sums := map[string]float64{}
	var order []string
	first := map[string]float64{}
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan(); i++ {
		var rec traceRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if i == 0 {
			sums[phaseExec] = float64(rec.OriginBoottimeNs)/1e6 - execAt*1000
			sums[phaseCPU] = rec.UserMs + rec.SysMs
			order = append(order, phaseExec)
			first[phaseExec] = -1e9
			continue
		}
		label := rec.Phase
		if rec.Container != "" {
			label += " (" + rec.Container + ")"
		}
		if _, seen := sums[label]; !seen {
			order = append(order, label)
			first[label] = rec.StartMs
		}
		sums[label] += rec.Ms
	}
	if err := sc.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Trace == nil {
		r.Trace = map[string]map[string][]float64{}
		r.TraceStart = map[string]float64{}
	}
	if r.Trace[scenario] == nil {
		r.Trace[scenario] = map[string][]float64{}
	}
	for _, l := range append(order, phaseCPU) {
		r.Trace[scenario][l] = append(r.Trace[scenario][l], sums[l])
		if _, ok := r.TraceStart[l]; !ok || first[l] < r.TraceStart[l] {
			r.TraceStart[l] = first[l]
		}
	}
	r.TraceStart[phaseCPU] = 1e12
	return nil
}

// traceTable is the per-phase breakdown: one row per phase, ordered by
// when it first started, one column per scenario.
func (r *results) traceTable() string {
	if len(r.Trace) == 0 {
		return ""
	}
	var labels []string
	for l := range r.TraceStart {
		labels = append(labels, l)
	}
	slices.SortStableFunc(labels, func(a, b string) int {
		switch {
		case r.TraceStart[a] < r.TraceStart[b]:
			return -1
		case r.TraceStart[a] > r.TraceStart[b]:
			return 1
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	b.WriteString("### Where the time goes: `podrun run --trace`\n\n")
	b.WriteString("Each run of the rows above wrote `--trace FILE`; per phase, the median and p10 – p90 over the runs of its\n")
	b.WriteString("duration in ms (a phase that occurs several times in a run, as `status`, summed). Phases overlap: `sandbox`\n")
	b.WriteString("holds `cgroups`, `netns`, `volumes`, `etc files` and `namespaces` (`netns` runs beside `cgroups` and\n")
	b.WriteString("`volumes`); `container (c)` holds that container's `rootfs`, `spec`, `create` and `start`; `running (c)` is\n")
	b.WriteString("the instant the supervisor saw it run, so its figure is 0 and its place in the order is what counts. The\n")
	b.WriteString("phases after `running` are the teardown after Ctrl-C.\n\n")
	b.WriteString("| phase |")
	sep := "|---|"
	var cols []string
	for _, s := range traceScenarios {
		if r.Trace[s] != nil {
			cols = append(cols, s)
			b.WriteString(" " + s + ": median | p10 – p90 | n |")
			sep += "--:|--:|--:|"
		}
	}
	b.WriteString("\n" + sep + "\n")
	for _, l := range labels {
		row := "| " + l + " |"
		any := false
		for _, s := range cols {
			v := r.Trace[s][l]
			if len(v) == 0 {
				row += " | | |"
				continue
			}
			any = true
			sm := summarize(v)
			row += fmt.Sprintf(" %s | %s – %s | %d |", num(sm.median, "ms"), num(sm.p10, "ms"), num(sm.p90, "ms"), sm.n)
		}
		if any {
			b.WriteString(row + "\n")
		}
	}
	b.WriteString("\n")
	return b.String()
}
