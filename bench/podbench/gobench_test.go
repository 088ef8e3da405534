package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/podrun/podrun/runtime
cpu: Intel(R) Xeon(R) Processor
BenchmarkStart-2      	      20	  17130015 ns/op	        14.31 ms-median	        27.91 ms-p90
BenchmarkSandbox
BenchmarkSandbox/pinned-2         	      20	    604352 ns/op	         0.5004 ms-median	         0.8309 ms-p90
PASS
ok  	github.com/podrun/podrun/runtime	1.060s
pkg: github.com/podrun/podrun/probes
BenchmarkTCPProbe-2    	      20	     33102 ns/op	        28.00 median-µs	    1768 B/op	      32 allocs/op
BenchmarkPodNetwork/first-pod-2 	      20	  82641900 ns/op	         3.793 setup-ms
`
	got, err := parseGoBench([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []goBench{
		{Pkg: "runtime", Name: "Start", N: 20, NsPerOp: 17130015, Metrics: []goMetric{{14.31, "ms-median"}, {27.91, "ms-p90"}}},
		{Pkg: "runtime", Name: "Sandbox/pinned", N: 20, NsPerOp: 604352, Metrics: []goMetric{{0.5004, "ms-median"}, {0.8309, "ms-p90"}}},
		{Pkg: "probes", Name: "TCPProbe", N: 20, NsPerOp: 33102, Metrics: []goMetric{{28, "median-µs"}}},
		{Pkg: "probes", Name: "PodNetwork/first-pod", N: 20, NsPerOp: 82641900, Metrics: []goMetric{{3.793, "setup-ms"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", got, want)
	}

	for _, bad := range []string{"--- SKIP: BenchmarkPullBusybox\n    needs root", "--- FAIL: BenchmarkStart-2\n"} {
		if _, err := parseGoBench([]byte("pkg: x/image\n" + bad)); err == nil || !strings.Contains(err.Error(), "image") {
			t.Errorf("%q: err %v, want an error naming the package", bad, err)
		}
	}
}

func TestGoBenchFormatting(t *testing.T) {
	for ns, want := range map[float64]string{17130015: "17.1 ms", 604352: "604 µs", 33102: "33.1 µs", 950: "950 ns", 1.5e9: "1500 ms"} {
		if got := duration(ns); got != want {
			t.Errorf("duration(%v) = %q, want %q", ns, got, want)
		}
	}
	if got := shellJoin([]string{"test", "-run", "^$", "./x/"}); got != "test -run '^$' ./x/" {
		t.Errorf("shellJoin: %q", got)
	}
}
