package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxLogLine is containerd's max_container_log_line_size: longer lines are
// split into partial (P) records.
const maxLogLine = 16 << 10

// logSink receives the records of a container's output streams: a CRI log
// file (shared by stdout and stderr) and the optional Output tee.
type logSink struct {
	mu     sync.Mutex // serialises records of the two streams; guards f, size
	f      *os.File   // nil: no log file
	tee    func(stream, line string)
	raw    func(stream string, p []byte)
	id     string
	failed bool // a write failed once (logged once)

	// Rotation (maxSize 0: none): before a record would take the file past
	// maxSize bytes it is renamed <path>.<timestamp> and a new one opened;
	// of the rotated files the newest maxFiles-1 are kept.
	path     string
	size     int64
	maxSize  int64
	maxFiles int
}

// The kubelet's containerLogMaxSize and containerLogMaxFiles defaults.
const (
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 5
)

// rotatedSuffix is the timestamp of a rotated log's name: the kubelet's
// (20060102-150405) with nanoseconds, since podrun rotates as it writes and
// may rotate twice in a second.
const rotatedSuffix = "20060102-150405.000000000"

// LogFiles lists a container's log files oldest first: the rotated
// <path>.<timestamp> files, then path itself if it exists. Reading them in
// this order gives the container's whole retained output.
func LogFiles(path string) ([]string, error) {
	rotated, err := filepath.Glob(globEscape(path) + ".*")
	if err != nil {
		return nil, err
	}
	rotated = slices.DeleteFunc(rotated, func(p string) bool {
		_, err := time.Parse(rotatedSuffix, strings.TrimPrefix(p, path+"."))
		return err != nil
	})
	slices.Sort(rotated) // fixed-width timestamps sort by time
	if _, err := os.Stat(path); err == nil {
		rotated = append(rotated, path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return rotated, nil
}

// globEscape quotes filepath.Match's special characters.
func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// rotate renames the full log file aside, drops the oldest rotated files
// beyond maxFiles-1 and opens a new file. Called with mu held.
func (s *logSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return err
	}
	s.f = nil
	if err := os.Rename(s.path, s.path+"."+time.Now().UTC().Format(rotatedSuffix)); err != nil {
		return err
	}
	files, err := LogFiles(s.path)
	if err != nil {
		return err
	}
	// files are the rotated ones now: the current one is being replaced.
	for len(files) > s.maxFiles-1 {
		if err := os.Remove(files[0]); err != nil {
			return err
		}
		files = files[1:]
	}
	f, _, err := openLog(s.path)
	if err != nil {
		return err
	}
	s.f, s.size = f, 0
	return nil
}

// openLog opens (appends to) a CRI log file, creating it 0640 with its
// parent directories. created tells whether it did not exist before.
func openLog(path string) (f *os.File, created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, fmt.Errorf("log directory: %w", err)
	}
	f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		return f, false, err
	} else if err != nil {
		return nil, false, err
	}
	// 0640 whatever the umask.
	if err := f.Chmod(0o640); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, err
	}
	return f, true, nil
}

// record writes one CRI log line: "<RFC3339Nano> <stream> <F|P> <text>\n",
// as one write so that the two streams' records never interleave.
func (s *logSink) record(stream string, tag byte, text []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		b := make([]byte, 0, len(time.RFC3339Nano)+len(stream)+len(text)+8)
		b = time.Now().AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
		b = append(b, stream...)
		b = append(b, ' ', tag, ' ')
		b = append(b, text...)
		b = append(b, '\n')
		var err error
		if s.maxSize > 0 && s.size > 0 && s.size+int64(len(b)) > s.maxSize {
			err = s.rotate()
		}
		if s.f != nil {
			var n int
			n, err = s.f.Write(b)
			s.size += int64(n)
		}
		// Keep draining on error: a full disk must not block the container.
		if err != nil && !s.failed {
			s.failed = true
			slog.Warn("writing container log", "container", s.id, "path", s.path, "err", err)
		}
	}
	if s.tee != nil {
		s.tee(stream, string(text))
	}
}

// copyStream turns r into records until EOF (or until r is closed). Lines
// end with \n (a trailing \r is dropped); a line longer than maxLogLine
// becomes P records of maxLogLine bytes followed by the F remainder; an
// unterminated last line is a P record, as containerd does.
func (s *logSink) copyStream(stream string, r io.Reader) {
	if s.raw != nil {
		r = io.TeeReader(r, rawWriter{stream, s.raw})
	}
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
			s.record(stream, 'F', line)
		case errors.Is(err, bufio.ErrBufferFull):
			s.record(stream, 'P', line)
		default:
			if len(line) > 0 {
				s.record(stream, 'P', line)
			}
			return
		}
	}
}

// LogRecord is one line of a CRI log file as record writes it.
type LogRecord struct {
	Time    string // RFC3339Nano, as written
	Stream  string // stdout or stderr
	Partial bool   // P: the text continues in the stream's next record
	Text    string
}

// ParseLogRecord parses one CRI log line (without its newline); ok is false
// for a line that is not one.
func ParseLogRecord(line string) (r LogRecord, ok bool) {
	parts := strings.SplitN(line, " ", 4)
	if len(parts) < 3 {
		return r, false
	}
	r.Time, r.Stream, r.Partial = parts[0], parts[1], parts[2] == "P"
	if len(parts) == 4 {
		r.Text = parts[3]
	}
	return r, true
}

// ReadTail returns the last limit bytes of the file at path (all of it
// when shorter), reading only those: the kubelet's tail.ReadAtMost, for the
// termination message. A file growing meanwhile still gives at most limit
// bytes; one that is not a regular file gives its first limit bytes.
func ReadTail(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if off := fi.Size() - limit; fi.Mode().IsRegular() && off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, io.LimitReader(f, limit))
	return buf.Bytes(), err
}

// rawWriter passes what a copier reads to logSink.raw.
type rawWriter struct {
	stream string
	f      func(stream string, p []byte)
}

func (w rawWriter) Write(p []byte) (int, error) {
	w.f(w.stream, p)
	return len(p), nil
}
