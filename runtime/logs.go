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
	mu     sync.Mutex // serialises records of the two streams
	f      *os.File   // nil: no log file
	tee    func(stream, line string)
	id     string
	failed bool // a write failed once (logged once)
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
		// Keep draining on error: a full disk must not block the container.
		if _, err := s.f.Write(b); err != nil && !s.failed {
			s.failed = true
			slog.Warn("writing container log", "container", s.id, "path", s.f.Name(), "err", err)
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
