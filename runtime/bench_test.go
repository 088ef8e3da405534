package runtime

import (
	"context"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Each benchmark times only its operation and reports the median too
// (ms-median): the mean hides the tail that matters for a pod's start.
func reportMedian(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/float64(time.Millisecond), "ms-median")
	b.ReportMetric(float64(ds[len(ds)*9/10])/float64(time.Millisecond), "ms-p90")
}

// BenchmarkStart: Start until the process runs (create + start).
func BenchmarkStart(b *testing.B) {
	e := newEnv(b)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	base := e.spec(sb, "sleep", "1000")
	var ds []time.Duration
	for b.Loop() {
		s := *base
		s.ID = "c-" + randHex()
		s.CgroupPath = e.cgParent + "/" + sb.ID() + "/" + s.ID
		t0 := time.Now()
		c, err := e.rt.Start(context.Background(), &s)
		ds = append(ds, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
	reportMedian(b, ds)
}

// BenchmarkExecTrue: an exec probe's round trip, `true` started and waited.
func BenchmarkExecTrue(b *testing.B) {
	e := newEnv(b)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	c := e.start(e.spec(sb, "sleep", "1000"))
	var ds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"true"}})
		ds = append(ds, time.Since(t0))
		if err != nil || code != 0 {
			b.Fatal(code, err)
		}
	}
	reportMedian(b, ds)
}

// BenchmarkKill: Signal(SIGKILL), Done, Destroy.
func BenchmarkKill(b *testing.B) {
	e := newEnv(b)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	base := e.spec(sb, "sleep", "1000")
	var ds []time.Duration
	for b.Loop() {
		s := *base
		s.ID = "c-" + randHex()
		s.CgroupPath = e.cgParent + "/" + sb.ID() + "/" + s.ID
		c, err := e.rt.Start(context.Background(), &s)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := c.Signal(unix.SIGKILL); err != nil {
			b.Fatal(err)
		}
		<-c.Done()
		if err := c.Destroy(); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	reportMedian(b, ds)
}

// BenchmarkSandbox: CreateSandbox + Destroy with a pod netns, pinned UTS
// and IPC; /SharePID adds the pause process.
func BenchmarkSandbox(b *testing.B) {
	for _, share := range []bool{false, true} {
		name := "pinned"
		if share {
			name = "SharePID"
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b)
			netns := e.netns()
			var ds []time.Duration
			for b.Loop() {
				id := "sb-" + randHex()
				t0 := time.Now()
				sb, err := e.rt.CreateSandbox(SandboxSpec{ID: id, Hostname: "bench", NetNS: netns, SharePID: share, CgroupPath: e.cgParent + "/" + id})
				if err != nil {
					b.Fatal(err)
				}
				if err := sb.Destroy(); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
			}
			reportMedian(b, ds)
		})
	}
}
