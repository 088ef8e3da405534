package volumes

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/internal/testutil"
)

// objects is a map-backed Objects.
type objects struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (o objects) ConfigMap(ns, name string) *corev1.ConfigMap { return o.cms[ns+"/"+name] }
func (o objects) Secret(ns, name string) *corev1.Secret       { return o.secrets[ns+"/"+name] }

func ptr[T any](v T) *T { return &v }

func testPod(vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "team", UID: "1234-abcd",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": "say \"hi\"\n"},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
			}}},
			Volumes: vols,
		},
	}
}

// volumesDir returns a fresh pod volumes directory (named podrun-* so a
// leaked mount shows in the leak check) and checks afterwards that nothing
// under it is mounted or left.
func volumesDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "podrun-volumes-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Teardown(base); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return filepath.Join(base, "volumes")
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func expectMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModePerm | fs.ModeSticky); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

func TestValidatePath(t *testing.T) {
	for p, ok := range map[string]bool{
		"a": true, "a/b/c": true, "a..b": true, ".hidden": true,
		"": false, "/abs": false, "a/../b": false, "..": false, "..data": false, "..x/y": false,
		strings.Repeat("x", 256): false,
	} {
		if err := validatePath(p); (err == nil) != ok {
			t.Errorf("validatePath(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func TestPodField(t *testing.T) {
	p := testPod()
	for path, want := range map[string]string{
		"metadata.name":              "web",
		"metadata.namespace":         "team",
		"metadata.uid":               "1234-abcd",
		"metadata.labels":            "app=\"web\"\ntier=\"front\"",
		"metadata.annotations":       `note="say \"hi\"\n"`,
		"metadata.labels['tier']":    "front",
		"metadata.labels['missing']": "",
	} {
		got, err := podField(p, path)
		if err != nil || got != want {
			t.Errorf("podField(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{"status.podIP", "spec.nodeName", "metadata.name['x']"} {
		if _, err := podField(p, path); err == nil {
			t.Errorf("podField(%q): want an error", path)
		}
	}
}

func TestContainerResource(t *testing.T) {
	p := testPod()
	dir := t.TempDir()
	for _, tc := range []struct {
		resource, divisor, want string
	}{
		{"requests.cpu", "", "1"}, // 250m rounded up to whole CPUs
		{"requests.cpu", "1m", "250"},
		{"limits.memory", "1Mi", "64"},
		{"requests.memory", "", "0"}, // the pod was not defaulted: no request
	} {
		sel := &corev1.ResourceFieldSelector{ContainerName: "app", Resource: tc.resource}
		if tc.divisor != "" {
			sel.Divisor = resource.MustParse(tc.divisor)
		}
		got, err := containerResource(p, sel, dir)
		if err != nil || got != tc.want {
			t.Errorf("%s / %q = %q, %v; want %q", tc.resource, tc.divisor, got, err, tc.want)
		}
	}
	// An unset limit reads as the node's capacity.
	got, err := containerResource(p, &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu"}, dir)
	if err != nil || got == "0" || got == "" {
		t.Errorf("limits.cpu without a limit = %q, %v; want the node's CPUs", got, err)
	}
	if _, err := containerResource(p, &corev1.ResourceFieldSelector{ContainerName: "nope", Resource: "limits.cpu"}, dir); err == nil {
		t.Error("unknown container: want an error")
	}
}

func TestHostPathTypes(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "d")
	file := filepath.Join(base, "f")
	sock := filepath.Join(base, "s")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	block := firstBlockDevice(t)

	type check struct {
		path string
		typ  corev1.HostPathType
		ok   bool
	}
	checks := []check{
		{filepath.Join(base, "missing"), corev1.HostPathUnset, true},
		{dir, corev1.HostPathDirectory, true},
		{file, corev1.HostPathDirectory, false},
		{filepath.Join(base, "missing"), corev1.HostPathDirectory, false},
		{file, corev1.HostPathFile, true},
		{sock, corev1.HostPathFile, true}, // anything but a directory passes for a file
		{dir, corev1.HostPathFile, false},
		{filepath.Join(base, "missing"), corev1.HostPathFile, false},
		{sock, corev1.HostPathSocket, true},
		{file, corev1.HostPathSocket, false},
		{"/dev/null", corev1.HostPathCharDev, true},
		{file, corev1.HostPathCharDev, false},
		{"/dev/null", corev1.HostPathBlockDev, false},
		{filepath.Join(base, "made", "deep"), corev1.HostPathDirectoryOrCreate, true},
		{file, corev1.HostPathDirectoryOrCreate, false},
		{filepath.Join(base, "new-file"), corev1.HostPathFileOrCreate, true},
		{filepath.Join(base, "no-parent", "file"), corev1.HostPathFileOrCreate, false},
		{dir, corev1.HostPathFileOrCreate, false},
		{dir, "Nonsense", false},
	}
	if block != "" {
		checks = append(checks, check{block, corev1.HostPathBlockDev, true}, check{block, corev1.HostPathCharDev, false})
	}
	for _, c := range checks {
		p := testPod(corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: c.path, Type: ptr(c.typ)}}})
		s, err := Setup(filepath.Join(base, "vols"), p, nil, nil)
		if (err == nil) != c.ok {
			t.Errorf("hostPath %s type %q: err %v, want ok=%v", c.path, c.typ, err, c.ok)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), `volume "host"`) || !strings.Contains(err.Error(), c.path) && c.typ != "Nonsense" {
				t.Errorf("error %q names neither the volume nor the path", err)
			}
			continue
		}
		if s.Path("host") != c.path || s.ReadOnly("host") {
			t.Errorf("Path = %q ReadOnly = %v, want %q, false", s.Path("host"), s.ReadOnly("host"), c.path)
		}
	}
	expectMode(t, filepath.Join(base, "made", "deep"), 0o755)
	expectMode(t, filepath.Join(base, "made"), 0o755)
	expectMode(t, filepath.Join(base, "new-file"), 0o644)

	for _, bad := range []string{"relative/path", "/a/../b"} {
		p := testPod(corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: bad}}})
		if _, err := Setup(filepath.Join(base, "vols"), p, nil, nil); err == nil {
			t.Errorf("hostPath %q: want an error", bad)
		}
	}
}

func firstBlockDevice(t *testing.T) string {
	entries, _ := os.ReadDir("/dev")
	for _, e := range entries {
		fi, err := os.Stat("/dev/" + e.Name())
		if err == nil && fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0 {
			return "/dev/" + e.Name()
		}
	}
	t.Log("no block device in /dev: BlockDevice accepted case not checked")
	return ""
}

var tsDir = regexp.MustCompile(`^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+$`)

func TestConfigMapAtomicLayout(t *testing.T) {
	dir := volumesDir(t)
	objs := objects{cms: map[string]*corev1.ConfigMap{"team/conf": {
		Data:       map[string]string{"a.conf": "A", "b.conf": "B"},
		BinaryData: map[string][]byte{"bin": {0, 1, 2}},
	}}}
	p := testPod(
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}, DefaultMode: ptr(int32(0o600))}}},
		corev1.Volume{Name: "items", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "conf"},
			Items:                []corev1.KeyToPath{{Key: "a.conf", Path: "etc/app/a.conf"}, {Key: "bin", Path: "bin", Mode: ptr(int32(0o755))}}}}},
	)
	s, err := Setup(dir, p, objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	all, items := s.Path("all"), s.Path("items")
	if all != filepath.Join(dir, "all") || !s.ReadOnly("all") {
		t.Errorf("Path = %q, ReadOnly = %v", all, s.ReadOnly("all"))
	}
	if read(t, filepath.Join(all, "a.conf")) != "A" || !bytes.Equal([]byte(read(t, filepath.Join(all, "bin"))), []byte{0, 1, 2}) {
		t.Error("configMap content differs")
	}
	expectMode(t, filepath.Join(all, "a.conf"), 0o600)
	expectMode(t, all, 0o777)
	if read(t, filepath.Join(items, "etc/app/a.conf")) != "A" {
		t.Error("item content differs")
	}
	expectMode(t, filepath.Join(items, "etc/app/a.conf"), 0o644)
	expectMode(t, filepath.Join(items, "bin"), 0o755)
	if _, err := os.Stat(filepath.Join(items, "b.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b.conf was not listed in items but exists (err %v)", err)
	}

	// The AtomicWriter layout.
	data, err := os.Readlink(filepath.Join(items, "..data"))
	if err != nil || !tsDir.MatchString(data) {
		t.Fatalf("..data -> %q, %v; want a timestamped directory", data, err)
	}
	expectMode(t, filepath.Join(items, data), 0o755)
	for name, target := range map[string]string{"etc": "..data/etc", "bin": "..data/bin"} {
		if got, err := os.Readlink(filepath.Join(items, name)); err != nil || got != target {
			t.Errorf("%s -> %q, %v; want %q", name, got, err, target)
		}
	}

	// Setting up again rewrites the projection in place.
	delete(objs.cms["team/conf"].Data, "b.conf")
	objs.cms["team/conf"].Data["a.conf"] = "A2"
	if _, err := Setup(dir, p, objs, nil); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(all, "a.conf")) != "A2" {
		t.Error("a.conf not rewritten")
	}
	if _, err := os.Lstat(filepath.Join(all, "b.conf")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b.conf left after its key went (err %v)", err)
	}
	entries, _ := os.ReadDir(all)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // ..<ts>, ..data, a.conf, bin
		t.Errorf("entries after rewrite: %v", names)
	}
}

func TestConfigMapMissing(t *testing.T) {
	dir := volumesDir(t)
	objs := objects{cms: map[string]*corev1.ConfigMap{"team/conf": {Data: map[string]string{"a": "A"}}}}
	vol := func(name string, optional bool, items ...corev1.KeyToPath) corev1.Volume {
		return corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: ptr(optional), Items: items}}}
	}
	for _, tc := range []struct {
		name  string
		vol   corev1.Volume
		err   string
		files []string
	}{
		{"missing configMap", vol("nope", false), `configMap "nope" not found in namespace "team"`, nil},
		{"missing optional configMap", vol("nope", true), "", nil},
		{"missing key", vol("conf", false, corev1.KeyToPath{Key: "b", Path: "b"}), `configMap "conf" has no key "b"`, nil},
		{"missing optional key", vol("conf", true, corev1.KeyToPath{Key: "b", Path: "b"}, corev1.KeyToPath{Key: "a", Path: "x"}), "", []string{"x"}},
	} {
		s, err := Setup(dir, testPod(tc.vol), objs, nil)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), `volume "v"`) {
				t.Errorf("%s: err = %v, want one with %q", tc.name, err, tc.err)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: the failed Setup left %s behind", tc.name, dir)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for _, f := range tc.files {
			if _, err := os.Stat(filepath.Join(s.Path("v"), f)); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		if err := Teardown(dir); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnsupported(t *testing.T) {
	dir := volumesDir(t)
	for _, tc := range []struct {
		vol  corev1.Volume
		want string
	}{
		{corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}, "persistentVolumeClaim volumes are not supported"},
		{corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}}, "emptyDir medium HugePages is not supported"},
		{corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: "HugePages-2Mi"}}}, "emptyDir medium HugePages-2Mi is not supported"},
		{corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}, "serviceAccountToken sources are not supported"},
		{corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Path: "b"}}}}}}, "clusterTrustBundle sources are not supported"},
	} {
		if _, err := Setup(dir, testPod(tc.vol), nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

// mountOf returns the filesystem type and options of the mount at p.
func mountOf(t *testing.T, p string) (fstype, opts string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || f[4] != p {
			continue
		}
		g := strings.Fields(post)
		return g[0], g[2]
	}
	return "", ""
}

func TestEmptyDir(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := volumesDir(t)
	p := testPod(
		corev1.Volume{Name: "disk", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("8Mi"))}}},
	)
	memSize := func(v *corev1.Volume) int64 { return v.EmptyDir.SizeLimit.Value() }
	s, err := Setup(dir, p, nil, memSize)
	if err != nil {
		t.Fatal(err)
	}
	expectMode(t, s.Path("disk"), 0o777)
	if typ, _ := mountOf(t, s.Path("disk")); typ != "" {
		t.Errorf("disk emptyDir is a %s mount", typ)
	}
	typ, opts := mountOf(t, s.Path("mem"))
	if typ != "tmpfs" || !strings.Contains(opts, "size=8192k") {
		t.Errorf("memory emptyDir: mount %q %q, want tmpfs size=8192k", typ, opts)
	}
	expectMode(t, s.Path("mem"), 0o777|fs.ModeSticky)
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.Path("mem"), &st); err != nil || st.Blocks*uint64(st.Bsize) != 8<<20 {
		t.Errorf("tmpfs size %d, %v; want 8 MiB", st.Blocks*uint64(st.Bsize), err)
	}
	if s.ReadOnly("disk") || s.ReadOnly("mem") {
		t.Error("emptyDir reported read-only")
	}
	// Content survives a second Setup (a restarted supervisor), with no
	// second mount stacked.
	for _, v := range []string{"disk", "mem"} {
		if err := os.WriteFile(filepath.Join(s.Path(v), "keep"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Setup(dir, p, nil, memSize); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"disk", "mem"} {
		if read(t, filepath.Join(s.Path(v), "keep")) != "x" {
			t.Errorf("%s lost its content", v)
		}
	}
	if m, _ := mountsUnder(dir); len(m) != 1 {
		t.Errorf("mounts under %s: %v, want one", dir, m)
	}

	if err := Teardown(dir); err != nil {
		t.Fatal(err)
	}
	if m, _ := mountsUnder(dir); len(m) != 0 {
		t.Errorf("still mounted after Teardown: %v", m)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left after Teardown", dir)
	}
	if err := Teardown(dir); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

func TestSecretAndDownwardAPI(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := volumesDir(t)
	objs := objects{
		secrets: map[string]*corev1.Secret{"team/creds": {
			Data:       map[string][]byte{"user": []byte("admin")},
			StringData: map[string]string{"pass": "s3cret"},
		}},
		cms: map[string]*corev1.ConfigMap{"team/conf": {Data: map[string]string{"mode": "fast"}}},
	}
	p := testPod(
		corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr(int32(0o400))}}},
		corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "meta/annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}, Mode: ptr(int32(0o600))},
			{Path: "mem_mib", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		}}}},
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: ptr(int32(0o440)), Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Items: []corev1.KeyToPath{{Key: "user", Path: "creds/user"}}}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr(true)}},
		}}}},
	)
	s, err := Setup(dir, p, objs, func(*corev1.Volume) int64 { return 1 << 20 })
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"creds", "info", "all"} {
		if typ, opts := mountOf(t, s.Path(v)); typ != "tmpfs" || !strings.Contains(opts, "size=1024k") {
			t.Errorf("%s: mount %q %q, want a 1 MiB tmpfs", v, typ, opts)
		}
		if !s.ReadOnly(v) {
			t.Errorf("%s not read-only", v)
		}
	}
	creds := s.Path("creds")
	if read(t, filepath.Join(creds, "user")) != "admin" || read(t, filepath.Join(creds, "pass")) != "s3cret" {
		t.Error("secret content differs")
	}
	expectMode(t, filepath.Join(creds, "pass"), 0o400)

	info := s.Path("info")
	for f, want := range map[string]string{
		"name":             "web",
		"labels":           "app=\"web\"\ntier=\"front\"",
		"meta/annotations": `note="say \"hi\"\n"`,
		"mem_mib":          "64",
	} {
		if got := read(t, filepath.Join(info, f)); got != want {
			t.Errorf("downwardAPI %s = %q, want %q", f, got, want)
		}
	}
	expectMode(t, filepath.Join(info, "name"), 0o644)
	expectMode(t, filepath.Join(info, "meta/annotations"), 0o600)

	all := s.Path("all")
	for f, want := range map[string]string{"creds/user": "admin", "mode": "fast", "ns": "team"} {
		if got := read(t, filepath.Join(all, f)); got != want {
			t.Errorf("projected %s = %q, want %q", f, got, want)
		}
		expectMode(t, filepath.Join(all, f), 0o440)
	}

	// A missing secret fails Setup and leaves nothing mounted or on disk.
	if err := Teardown(dir); err != nil {
		t.Fatal(err)
	}
	bad := testPod(
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: "nope", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "nope"}}},
	)
	if _, err := Setup(dir, bad, objs, nil); err == nil || !strings.Contains(err.Error(), `secret "nope" not found`) {
		t.Errorf("missing secret: err = %v", err)
	}
	if m, _ := mountsUnder(dir); len(m) != 0 {
		t.Errorf("a failed Setup left mounts: %v", m)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed Setup left %s", dir)
	}
}

// teardownEnv makes the test binary run Teardown on a directory and exit,
// standing in for a supervisor started after a crash.
const teardownEnv = "PODRUN_VOLUMES_TEST_TEARDOWN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(teardownEnv); dir != "" {
		if err := Teardown(dir); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestTeardownAfterCrash(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := volumesDir(t)
	objs := objects{secrets: map[string]*corev1.Secret{"team/creds": {Data: map[string][]byte{"k": []byte("v")}}}}
	p := testPod(
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
		corev1.Volume{Name: "disk", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	)
	if _, err := Setup(dir, p, objs, nil); err != nil {
		t.Fatal(err)
	}
	// A nested mount, as a stacked one after a crash might be.
	if err := syscall.Mount("tmpfs", filepath.Join(dir, "mem"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if m, _ := mountsUnder(dir); len(m) != 3 {
		t.Fatalf("mounts before teardown: %v", m)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), teardownEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Teardown in a fresh process: %v: %s", err, out)
	}
	if m, _ := mountsUnder(dir); len(m) != 0 {
		t.Errorf("still mounted: %v", m)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left", dir)
	}
}

// A volumes directory reached through a symlink is found in mountinfo
// under its real path.
func TestSymlinkedDir(t *testing.T) {
	testutil.RequiresRoot(t)
	real := volumesDir(t)
	if err := os.MkdirAll(real, 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(filepath.Dir(real), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(link, "pod")
	p := testPod(corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	for range 2 {
		if _, err := Setup(dir, p, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := mountsUnder(dir); len(m) != 1 || m[0] != filepath.Join(real, "pod", "mem") {
		t.Errorf("mounts: %v, want one at the real path", m)
	}
	if err := Teardown(dir); err != nil {
		t.Fatal(err)
	}
	if m, _ := mountsUnder(real); len(m) != 0 {
		t.Errorf("still mounted: %v", m)
	}
}

// BenchmarkSetupTeardown times the volumes of a typical pod: an emptyDir on
// disk and one in memory, a configMap and a secret.
func BenchmarkSetupTeardown(b *testing.B) {
	testutil.RequiresRoot(b)
	base, err := os.MkdirTemp("", "podrun-volumes-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(base)
	objs := objects{
		cms:     map[string]*corev1.ConfigMap{"team/conf": {Data: map[string]string{"a": "A", "b": "B"}}},
		secrets: map[string]*corev1.Secret{"team/creds": {Data: map[string][]byte{"k": []byte("v")}}},
	}
	p := testPod(
		corev1.Volume{Name: "disk", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}},
		corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
	)
	dir := filepath.Join(base, "volumes")
	for b.Loop() {
		if _, err := Setup(dir, p, objs, nil); err != nil {
			b.Fatal(err)
		}
		if err := Teardown(dir); err != nil {
			b.Fatal(err)
		}
	}
}
