package main

import (
	"bufio"
	"cmp"
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
		r.TraceStart = map[string]map[string][]float64{}
	}
	if r.Trace[scenario] == nil {
		r.Trace[scenario] = map[string][]float64{}
		r.TraceStart[scenario] = map[string][]float64{}
	}
	first[phaseCPU] = 1e12
	for _, l := range append(order, phaseCPU) {
		r.Trace[scenario][l] = append(r.Trace[scenario][l], sums[l])
		r.TraceStart[scenario][l] = append(r.TraceStart[scenario][l], first[l])
	}
	return nil
}

// traceTable is the per-phase breakdown: one table per scenario, a row
// per phase in the order of its median start.
func (r *results) traceTable() string {
	if len(r.Trace) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("### Where the time goes: `podrun run --trace`\n\n")
	b.WriteString("Each run of the `podrun run` rows above wrote `--trace FILE`. Per phase: when it started (ms after the\n")
	b.WriteString("trace's origin, early in the process's start; median) and its duration in ms (median, p10 – p90; a phase\n")
	b.WriteString("that occurs several times in a run, as `status`, summed). Phases nest and overlap: `gc` holds `gc network`\n")
	b.WriteString("and `gc cgroups`; `sandbox` holds `cgroups`, `netns`, `volumes`, `etc files` and `namespaces` (`netns` runs\n")
	b.WriteString("beside `cgroups` and `volumes`); `container (c)` holds that container's `rootfs`, `spec`, `create` (libcontainer\n")
	b.WriteString("create + start: the runc init re-exec up to its exec fifo) and `start` (exec of the process); `running (c)`\n")
	b.WriteString("and `exited (c)` are instants the supervisor saw. After `running` of the last container comes the teardown\n")
	b.WriteString("after Ctrl-C. CPU time is getrusage(RUSAGE_SELF) of the podrun process as it exits: the runc inits, its\n")
	b.WriteString("children, are not in it.\n\n")
	for _, s := range traceScenarios {
		if r.Trace[s] == nil {
			continue
		}
		starts := map[string]float64{}
		var labels []string
		for l, v := range r.TraceStart[s] {
			starts[l] = summarize(v).median
			labels = append(labels, l)
		}
		slices.SortFunc(labels, func(a, b string) int {
			if c := cmp.Compare(starts[a], starts[b]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		fmt.Fprintf(&b, "#### %s\n\n| phase | starts at | median | p10 – p90 | n |\n|---|--:|--:|--:|--:|\n", s)
		for _, l := range labels {
			sm := summarize(r.Trace[s][l])
			at := num(starts[l], "ms")
			if l == phaseExec || l == phaseCPU {
				at = ""
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s – %s | %d |\n", l, at, num(sm.median, "ms"), num(sm.p10, "ms"), num(sm.p90, "ms"), sm.n)
		}
		b.WriteString("\n")
	}
	return b.String()
}
