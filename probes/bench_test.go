package probes

import (
	"context"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// benchProbe runs p b.N times and reports the median round trip besides
// the mean (ns/op).
func benchProbe(b *testing.B, p *corev1.Probe, t Target) {
	b.Helper()
	took := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, out, err := Run(context.Background(), p, t)
		took = append(took, time.Since(start))
		if res != Success || err != nil {
			b.Fatalf("got (%v, %q, %v)", res, out, err)
		}
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "median-µs")
}

func BenchmarkHTTPProbe(b *testing.B) {
	target, _ := serve(b, func(w http.ResponseWriter, r *http.Request) {})
	benchProbe(b, httpProbe("/healthz", intstr.FromString("http")), target)
}

func BenchmarkTCPProbe(b *testing.B) {
	benchProbe(b, tcpProbe(intstr.FromInt32(int32(listen(b)))), Target{Host: "127.0.0.1"})
}

func BenchmarkGRPCProbe(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	b.Cleanup(srv.Stop)
	benchProbe(b, grpcProbe(int32(ln.Addr().(*net.TCPAddr).Port), ""), Target{Host: "127.0.0.1"})
}
