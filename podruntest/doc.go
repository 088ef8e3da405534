// Package podruntest runs Kubernetes pods from Go tests, with the
// kubelet's semantics (init containers, sidecars, probes, ordered
// termination) and no cluster:
//
//	func TestMain(m *testing.M) { podruntest.Main(m) }
//
//	func TestAPI(t *testing.T) {
//		t.Parallel()
//		env := podruntest.New(t)
//		env.Busybox(t) // or env.LoadImage(t, "app.tar"), env.PullImage(t, ref)
//		db := env.StartFile(t, "testdata/db.yaml").Pod("db")
//		db.Wait(podruntest.Ready(), 30*time.Second)
//		conn, err := net.Dial("tcp", db.Addr(5432))
//		...
//	}
//
// Start, StartFile and StartPods run Pods, Deployments, Jobs, ConfigMaps and
// Secrets in a namespace of the test's own (objects of the default
// namespace move there), so parallel tests can run the same manifest. When
// the test ends, whether it passed, failed or panicked, t.Cleanup deletes
// every pod and Job, terminates it the kubelet's way (give test pods a
// short terminationGracePeriodSeconds: a PID 1 without a SIGTERM handler
// waits out the whole grace period) and waits until nothing of it is left.
//
// Waits (Pod.Wait, Job.Wait) react to the pod's status changes and output,
// never poll, and on failure report the pod's kubectl get line, each
// container's state, the pod's events and the last lines of each
// container's log. WaitErr returns that report instead of failing the test.
//
// # Backends
//
// By default pods run in the test process, with the engine of `podrun
// run` (node.Node, pod.Supervisor, the Job controller): the test binary
// must run as root (it creates containers, network namespaces, a bridge,
// nftables rules, cgroups and mounts) and be built with cgo (and with
// -tags=seccomp for seccomp profiles). Importing the package makes the test
// binary libcontainer's container init and locks its main goroutine to the
// main thread. Main is required: it removes the node's state once the
// tests are done. The node is one per process, shared by every test, and
// its places are podruntest's own, apart from a user's podrun: images and
// pods in /var/lib/podruntest ($PODRUNTEST_ROOT), /run/podruntest,
// /var/log/podruntest, the bridge podruntest0 on 10.254.0.0/20
// ($PODRUNTEST_SUBNET) and the cgroup root podruntest. Test processes share
// them too: images stay cached between runs, and what a killed test process
// left behind is removed by the next one.
//
// With $PODRUNTEST_DAEMON set to a socket (or with Daemon), pods run on
// that podrun daemon through its API instead; its images are its own
// (podrun image load), so LoadImage, PullImage and Busybox fail there.
//
// A backend on the Kubernetes API (client-go, a kubeconfig) is absent: the
// daemon does not serve the real Kubernetes API yet. The package keeps the
// backends behind one small internal interface so that one can be added.
//
// # Absent
//
// A Deployment's pods are not kept at their replica count in-process (as
// with podrun run) and not listed by Set.Pods on a daemon. Logs in-process
// are the containers' output kept in memory, every instance in one stream.
package podruntest
