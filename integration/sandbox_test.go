package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/internal/testutil"
)

func TestPodSharesShmAndProcesses(t *testing.T) {
	// With shareProcessNamespace the containers see each other's processes;
	// /dev/shm is the pod's, shared by all its containers.
	s := newScenario(t, "shared", corev1.RestartPolicyNever).
		app(container("writer", `echo hello > /dev/shm/note; log Wrote; exec sleep 30`)).
		app(container("reader", `until [ -f /dev/shm/note ]; do sleep 0.1; done; log Read $(cat /dev/shm/note)
log SeesWriter $(ps | grep -c "[s]leep 30")`))
	share := true
	s.pod.Spec.ShareProcessNamespace = &share
	bg := s.start()
	bg.waitEvent("reader", "SeesWriter 1")
	r := bg.interrupt()
	if len(r.ev.all("reader", "Read hello")) != 1 {
		t.Errorf("the reader did not see the writer's /dev/shm:\n%s", r.ev)
	}
}

func TestEmptyDirSurvivesRestart(t *testing.T) {
	// The first run writes a file in the emptyDir and fails; the restart
	// (OnFailure) finds it and succeeds.
	app := container("app", `if [ -f /data/mark ]; then log Found; exit 0; fi; touch /data/mark; log Marked; exit 1`)
	app.VolumeMounts = append(app.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
	s := newScenario(t, "emptydir", corev1.RestartPolicyOnFailure).app(app)
	s.pod.Spec.Volumes = append(s.pod.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	r := s.run()
	r.ev.order(t, "app Marked", "app Found")
	if p := r.pod(t); p.Status.Phase != corev1.PodSucceeded || status(p, "app").RestartCount != 1 {
		t.Errorf("phase %s, restarts %d; want Succeeded after 1 restart", p.Status.Phase, status(p, "app").RestartCount)
	}
}

func TestConfigAndSecurity(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newScenario(t, "config", corev1.RestartPolicyNever)
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data:       map[string]string{"greeting": "hi", "file.txt": "from a file"},
	}
	app := container("app", `log Env $GREETING $POD_NAME; log File $(cat /etc/settings/file.txt); log Id $(id -u):$(id -g)
touch /tmp/x 2>/dev/null || log ReadOnlyRoot; echo done > /dev/termination-log; exit 2`)
	app.Env = append(app.Env,
		corev1.EnvVar{Name: "GREETING", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "greeting"}}},
		corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}})
	app.VolumeMounts = append(app.VolumeMounts, corev1.VolumeMount{Name: "settings", MountPath: "/etc/settings"})
	uid, yes := int64(1000), true
	app.SecurityContext = &corev1.SecurityContext{RunAsUser: &uid, RunAsNonRoot: &yes, ReadOnlyRootFilesystem: &yes}
	s.app(app)
	// As root, so that only the mount can refuse the write.
	etc := container("etc", `for f in hosts resolv.conf hostname; do (echo >> /etc/$f) 2>&1 | grep -q "Read-only file system" && log ReadOnly $f || log NotReadOnly $f; done`)
	etc.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: &yes}
	s.app(etc)
	s.pod.Spec.Volumes = append(s.pod.Spec.Volumes, corev1.Volume{Name: "settings", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}})
	r := podrun(t, s.dir, []any{cm, s.pod}, "--quiet")
	for _, w := range []string{"Env hi config", "File from a file", "Id 1000:1000", "ReadOnlyRoot"} {
		if len(r.ev.all("app", w)) != 1 {
			t.Errorf("no %q:\n%s", w, r.ev)
		}
	}
	// containerd: resolv.conf and hostname read-only with the root; the
	// kubelet's own /etc/hosts mount is writable.
	for _, w := range []string{"NotReadOnly hosts", "ReadOnly resolv.conf", "ReadOnly hostname"} {
		if len(r.ev.all("etc", w)) != 1 {
			t.Errorf("no %q:\n%s", w, r.ev)
		}
	}
	term := status(r.pod(t), "app").State.Terminated
	if term == nil || term.ExitCode != 2 || strings.TrimSpace(term.Message) != "done" {
		t.Errorf("terminated %+v, want exit 2 with message \"done\"", term)
	}
}

func TestRunAsNonRootRefusesRoot(t *testing.T) {
	app := container("app", runExit("0", 0))
	yes := true
	app.SecurityContext = &corev1.SecurityContext{RunAsNonRoot: &yes}
	s := newScenario(t, "nonroot", corev1.RestartPolicyNever).app(app)
	bg := s.start()
	bg.waitStderr("CreateContainerConfigError")
	r := bg.interrupt()
	if !strings.Contains(r.stderr, "runAsNonRoot") {
		t.Errorf("the error does not say why:\n%s", r.stderr)
	}
}

func TestTerminationMessageFallbackToLogs(t *testing.T) {
	app := container("app", `echo first; echo last words; exit 3`)
	app.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	s := newScenario(t, "fallback", corev1.RestartPolicyNever).app(app)
	r := s.run()
	term := status(r.pod(t), "app").State.Terminated
	if term == nil || term.Message != "first\nlast words\n" {
		t.Errorf("terminated %+v, want the log as the message", term)
	}
}

func TestLeftoversOfAKilledRunAreCleaned(t *testing.T) {
	const marker = "# killed-run-marker"
	s := newScenario(t, "killed", corev1.RestartPolicyAlways).
		sidecar(container("sidecar", serve+"\n"+marker)).
		app(container("app", serve+"\n"+marker))
	bg := s.start()
	bg.waitEvent("app", "Started")
	cg := podCgroup(t, "memory")
	uid := cgroupPodUID(cg)
	// SIGKILL: podrun cannot clean up; its containers run on.
	if err := bg.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-bg.done
	if countProcs(marker) == 0 {
		t.Fatal("expected the killed run's containers to still run")
	}
	if _, err := os.Stat(netnsFile(uid)); err != nil {
		t.Fatalf("expected the killed run's netns to remain: %v", err)
	}
	// The next run cleans what nobody supervises any more, then runs its pod.
	next := newScenario(t, "next", corev1.RestartPolicyNever).app(container("app", runExit("0", 0)))
	if r := next.run(); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if n := countProcs(marker); n != 0 {
		t.Errorf("%d processes of the killed run's containers survive", n)
	}
	if _, err := os.Stat(cg); err == nil {
		t.Errorf("cgroup %s survives", cg)
	}
	if _, err := os.Stat(netnsFile(uid)); err == nil {
		t.Errorf("netns of %s survives", uid)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), uid) {
		t.Errorf("mounts of %s survive", uid)
	}
}

// The CRI log rotates as the kubelet bounds it: at --container-log-max-size,
// keeping --container-log-max-files files, the newest output in <n>.log.
func TestContainerLogRotation(t *testing.T) {
	app := container("app", `head -c 2000000 /dev/zero | tr '\0' x | fold -w 1000; echo END`)
	s := newScenario(t, "log-rotation", corev1.RestartPolicyNever).app(app)
	r := s.run("--container-log-max-size", "256Ki", "--container-log-max-files", "3")
	p := r.pod(t)
	dir := filepath.Join(nodeFlag("log-dir"), fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), "app")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 256<<10 {
			t.Errorf("%s has %d bytes, over the 256 KiB limit", e.Name(), fi.Size())
		}
	}
	if len(names) != 3 || !slices.Contains(names, "0.log") {
		t.Errorf("log files %v, want 0.log and two rotated ones", names)
	}
	current, err := os.ReadFile(filepath.Join(dir, "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(current), "END\n") {
		t.Errorf("0.log does not end with the last line: ...%q", current[max(0, len(current)-80):])
	}
}

// seccompProfile through the binary: RuntimeDefault is containerd's
// profile (unshare(CLONE_NEWUSER) refused, as in a cluster), Unconfined
// none, and a Localhost profile that is not there a CreateContainerError.
func TestSeccompProfiles(t *testing.T) {
	profile := func(typ corev1.SeccompProfileType, localhost string) *corev1.SecurityContext {
		sp := &corev1.SeccompProfile{Type: typ}
		if localhost != "" {
			sp.LocalhostProfile = &localhost
		}
		return &corev1.SecurityContext{SeccompProfile: sp}
	}
	try := `if unshare -U true 2>/dev/null; then log ALLOWED; else log DENIED; fi`
	def := container("def", try)
	def.SecurityContext = profile(corev1.SeccompProfileTypeRuntimeDefault, "")
	unconf := container("unconf", try)
	unconf.SecurityContext = profile(corev1.SeccompProfileTypeUnconfined, "")
	s := newScenario(t, "seccomp", corev1.RestartPolicyNever).app(def).app(unconf)
	r := s.run()
	if got := r.ev.all("def", "DENIED"); len(got) != 1 {
		t.Errorf("RuntimeDefault: unshare -U was not refused (events %v)", r.ev.lines)
	}
	if got := r.ev.all("unconf", "ALLOWED"); len(got) != 1 {
		t.Errorf("Unconfined: unshare -U was refused (events %v)", r.ev.lines)
	}

	missing := container("app", runExit("0", 0))
	missing.SecurityContext = profile(corev1.SeccompProfileTypeLocalhost, "profiles/absent.json")
	s = newScenario(t, "seccomp-missing", corev1.RestartPolicyNever).app(missing)
	r = s.run("--timeout", "3s")
	if r.code != 124 {
		t.Errorf("podrun run exit %d, want 124 (the container can never start)", r.code)
	}
	// The status line while it waited (the final status is the
	// termination's): kubectl's STATUS column and the Failed event.
	if !strings.Contains(r.stderr, "CreateContainerError") || !strings.Contains(r.stderr, "absent.json") {
		t.Errorf("no CreateContainerError naming the profile in:\n%s", r.stderr)
	}
}

// With shareProcessNamespace, PID 1 is podrun's pause process: from a
// container, even with CAP_SYS_PTRACE, /proc/1 shows no host socket, no
// host mount and no host file.
func TestSharedPIDNamespaceHidesTheHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := fmt.Sprintf("%04X", ln.Addr().(*net.TCPAddr).Port)
	script := fmt.Sprintf(`if grep -qi ':%s ' /proc/1/net/tcp; then log HOSTSOCKET; fi
log MOUNTS $(wc -l < /proc/1/mountinfo)
if ls /proc/1/root/ 2>/dev/null | grep -q .; then log ROOTLISTED; fi
if [ -e /proc/1/root/etc/hostname ]; then log HOSTFILE; fi
log Done`, port)
	plain := container("plain", script)
	ptrace := container("ptrace", script)
	ptrace.SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE"}}}
	s := newScenario(t, "share-pid", corev1.RestartPolicyNever).app(plain).app(ptrace)
	share := true
	s.pod.Spec.ShareProcessNamespace = &share
	r := s.run()
	for _, c := range []string{"plain", "ptrace"} {
		if len(r.ev.all(c, "Done")) != 1 {
			t.Fatalf("%s did not finish: %v", c, r.ev.lines)
		}
		for _, bad := range []string{"HOSTSOCKET", "ROOTLISTED", "HOSTFILE"} {
			if len(r.ev.all(c, bad)) != 0 {
				t.Errorf("%s: %s through /proc/1", c, bad)
			}
		}
		if m := r.ev.all(c, "MOUNTS 1"); len(m) != 1 {
			t.Errorf("%s: the pause process has more than its own root mounted: %v", c, r.ev.lines)
		}
	}
}
