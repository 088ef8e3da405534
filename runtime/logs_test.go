package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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
