package runtime

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// criLine is one CRI log record.
var criLine = regexp.MustCompile(`^(\S+) (stdout|stderr) ([FP]) (.*)$`)

type record struct{ stream, tag, text string }

func parseLog(t *testing.T, log string) []record {
	t.Helper()
	var recs []record
	for _, line := range strings.SplitAfter(log, "\n") {
		if line == "" {
			continue
		}
		m := criLine.FindStringSubmatch(strings.TrimSuffix(line, "\n"))
		if m == nil || !strings.HasSuffix(line, "\n") {
			t.Fatalf("not a CRI log line: %q", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Fatalf("timestamp of %q: %v", line, err)
		}
		recs = append(recs, record{m[2], m[3], m[4]})
	}
	return recs
}

func TestCopyStream(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "0.log")
	f, created, err := openLog(path)
	if err != nil || !created {
		t.Fatalf("openLog = %v, %v", created, err)
	}
	if fi, _ := f.Stat(); fi.Mode().Perm() != 0o640 {
		t.Errorf("log mode %v, want 0640", fi.Mode().Perm())
	}
	var mu sync.Mutex
	var tee []string
	sink := &logSink{f: f, tee: func(stream, line string) {
		mu.Lock()
		defer mu.Unlock()
		tee = append(tee, stream+":"+line)
	}}
	long := strings.Repeat("x", maxLogLine+10)
	input := "one\r\ntwo\n\n" + long + "\nlast without newline"
	sink.copyStream("stderr", strings.NewReader(input))
	f.Close()
	b, _ := os.ReadFile(path)
	got := parseLog(t, string(b))
	want := []record{
		{"stderr", "F", "one"}, {"stderr", "F", "two"}, {"stderr", "F", ""},
		{"stderr", "P", long[:maxLogLine]}, {"stderr", "F", "xxxxxxxxxx"},
		{"stderr", "P", "last without newline"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records:\n%q\nwant\n%q", got, want)
	}
	if len(tee) != len(want) || tee[0] != "stderr:one" || tee[5] != "stderr:last without newline" {
		t.Errorf("tee: %q", tee)
	}
	// Reopening appends.
	f, created, err = openLog(path)
	if err != nil || created {
		t.Fatalf("reopen = %v, %v", created, err)
	}
	(&logSink{f: f}).copyStream("stdout", strings.NewReader("again\n"))
	f.Close()
	b, _ = os.ReadFile(path)
	if recs := parseLog(t, string(b)); len(recs) != len(want)+1 || recs[len(want)] != (record{"stdout", "F", "again"}) {
		t.Errorf("after append: %q", recs)
	}
}

func TestContainerLogs(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sh", "-c", `echo out; echo err >&2; head -c 40000 /dev/zero | tr '\0' a; echo; printf 'no newline'`)
	var mu sync.Mutex
	var tee []string
	s.Output = func(stream, line string) {
		mu.Lock()
		defer mu.Unlock()
		tee = append(tee, stream+":"+line)
	}
	exit, log := e.run(s)
	if exit.Code != 0 {
		t.Fatalf("exit %+v", exit)
	}
	recs := parseLog(t, log)
	var stdout []record
	for _, r := range recs {
		if r.stream == "stdout" {
			stdout = append(stdout, r)
		}
	}
	a := strings.Repeat("a", 40000)
	want := []record{
		{"stdout", "F", "out"},
		{"stdout", "P", a[:maxLogLine]}, {"stdout", "P", a[:maxLogLine]}, {"stdout", "F", a[:40000-2*maxLogLine]},
		{"stdout", "P", "no newline"},
	}
	if fmt.Sprint(stdout) != fmt.Sprint(want) {
		t.Errorf("stdout records: %d, want %d:\n%.300q", len(stdout), len(want), stdout)
	}
	if !strings.Contains(log, " stderr F err\n") {
		t.Errorf("no stderr record in\n%.300s", log)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tee) != len(recs) || !strings.Contains(strings.Join(tee, "|"), "stderr:err") {
		t.Errorf("tee got %d records, log %d", len(tee), len(recs))
	}
	if fi, err := os.Stat(s.LogPath); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("log file: %v %v", fi.Mode(), err)
	}
}

// Output written just before the container is killed is all in the log.
func TestLogsSurviveKill(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	const n = 20000
	s := e.spec(sb, "sh", "-c", fmt.Sprintf("seq 1 %d; echo done; sleep 1000", n))
	done := make(chan struct{})
	var once sync.Once
	s.Output = func(_, line string) {
		if line == "done" {
			once.Do(func() { close(done) })
		}
	}
	// Slow the copier down so that the pipe still holds data at the kill.
	var slow sync.Once
	var seen atomic.Int64
	out := s.Output
	s.Output = func(stream, line string) {
		slow.Do(func() { time.Sleep(50 * time.Millisecond) })
		seen.Add(1)
		out(stream, line)
	}
	c := e.start(s)
	// Kill as soon as everything is written: once sleep runs.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.ContainsFunc(pidsInNamespaceOf(c.Pid()), func(pid int) bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		return string(b) == "sleep\n"
	}) {
		if time.Now().After(deadline) {
			t.Fatal("sleep never started")
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d records read when the container was killed", seen.Load(), n+1)
	wait(t, c, 10*time.Second)
	select {
	case <-done:
	default:
		t.Error("the last line never reached Output")
	}
	b, _ := os.ReadFile(s.LogPath)
	got := texts(string(b))
	if len(got) != n+1 || got[0] != "1" || got[n-1] != fmt.Sprint(n) || got[n] != "done" {
		t.Errorf("log has %d records, want %d (first %q)", len(got), n+1, got[:min(3, len(got))])
	}
}

func TestContainerTTYAndStdin(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sh", "-c", `read line; echo "got $line"; tty; stty size`)
	s.TTY, s.Stdin = true, true
	c := e.start(s)
	if err := c.Resize(80, 25); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stdin().Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if exit := wait(t, c, 10*time.Second); exit.Code != 0 {
		t.Errorf("exit %+v", exit)
	}
	b, _ := os.ReadFile(s.LogPath)
	got := strings.Join(texts(string(b)), "|")
	if !regexp.MustCompile(`^hello\|got hello\|/dev/pts/\d+\|25 80$`).MatchString(got) {
		t.Errorf("terminal output %q", got)
	}

	s = e.spec(sb, "sh", "-c", `cat; echo end`)
	s.Stdin = true
	c = e.start(s)
	c.Stdin().Write([]byte("piped\n"))
	c.Stdin().Close()
	wait(t, c, 10*time.Second)
	b, _ = os.ReadFile(s.LogPath)
	if got := strings.Join(texts(string(b)), "|"); got != "piped|end" {
		t.Errorf("stdin pipe output %q", got)
	}
}

// Several times maxSize of output: at most maxFiles files of at most
// maxSize bytes each, listed oldest first by LogFiles, whose records follow
// each other without a gap since the oldest kept. The sizes are small so
// that the test stays quick in an emulated guest (70 MiB took a minute
// there); the kubelet's defaults are checked apart.
func TestLogRotation(t *testing.T) {
	if DefaultLogMaxSize != 10<<20 || DefaultLogMaxFiles != 5 {
		t.Errorf("defaults %d bytes, %d files: the kubelet's are 10Mi and 5", DefaultLogMaxSize, DefaultLogMaxFiles)
	}
	const maxSize, maxFiles = 64 << 10, 5
	path := filepath.Join(t.TempDir(), "0.log")
	f, _, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	sink := &logSink{f: f, path: path, maxSize: maxSize, maxFiles: maxFiles}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() { sink.copyStream("stdout", pr); close(done) }()
	line := strings.Repeat("y", 200)
	const lines = 7_000 // ~1.7 MiB of records: ~27 rotations
	for i := range lines {
		fmt.Fprintf(pw, "%08d %s\n", i, line)
	}
	pw.Close()
	<-done
	sink.f.Close()

	files, err := LogFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != maxFiles || files[len(files)-1] != path {
		t.Fatalf("log files %v, want %d ending with %s", files, maxFiles, path)
	}
	next := -1
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > maxSize {
			t.Errorf("%s: %v bytes, %v", p, fi.Size(), err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range parseLog(t, string(b)) {
			n, _ := strconv.Atoi(strings.Fields(r.text)[0])
			if next >= 0 && n != next {
				t.Fatalf("%s: record %d after %d", p, n, next-1)
			}
			next = n + 1
		}
	}
	if next != lines {
		t.Errorf("last record %d, want %d", next-1, lines-1)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != maxFiles {
		t.Errorf("files in the log directory: %v", entries)
	}
}

// ReadTail reads the last bytes of a file, without reading the rest: a
// 256 MiB termination log (sparse) costs 4 KiB.
func TestReadTail(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("short message"), 0o644)
	if b, err := ReadTail(small, 4096); err != nil || string(b) != "short message" {
		t.Errorf("small: %q %v", b, err)
	}
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	tail := strings.Repeat("z", 4000) + "the end"
	if _, err := f.WriteAt([]byte(tail), 256<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	b, err := ReadTail(big, 4096)
	goruntime.ReadMemStats(&after)
	if err != nil || len(b) != 4096 || !strings.HasSuffix(string(b), "the end") {
		t.Errorf("big: %d bytes %v", len(b), err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
		t.Errorf("reading the tail of 256 MiB allocated %d bytes", grown)
	}
	if _, err := ReadTail(filepath.Join(dir, "missing"), 4096); !os.IsNotExist(err) {
		t.Errorf("missing: %v", err)
	}
}
