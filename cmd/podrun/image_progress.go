package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/image"
)

// progressPrinter shows layer progress: on a terminal one bar per layer,
// redrawn in place at most every 100 ms; otherwise a plain line per change
// of phase.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	order []string
	state map[string]image.Progress
	drawn int // lines of the last redraw
	last  time.Time
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	if w == nil {
		w = os.Stderr
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = err == nil
	}
	return &progressPrinter{w: w, tty: tty, state: map[string]image.Progress{}}
}

func (p *progressPrinter) update(ev image.Progress) {
	prev, seen := p.state[ev.Layer]
	if !seen {
		p.order = append(p.order, ev.Layer)
	}
	p.state[ev.Layer] = ev
	changed := !seen || prev.Phase != ev.Phase
	if !p.tty {
		if changed && ev.Phase != image.PhaseWaiting {
			fmt.Fprintf(p.w, "%s: %s\n", ev.Layer, phaseText(ev, false))
		}
		return
	}
	if changed || time.Since(p.last) >= 100*time.Millisecond {
		p.redraw()
	}
}

func (p *progressPrinter) finish() {
	if p.tty && len(p.order) > 0 {
		p.redraw()
	}
}

func (p *progressPrinter) redraw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, id := range p.order {
		fmt.Fprintf(&b, "\r\x1b[K%s: %s\n", id, phaseText(p.state[id], true))
	}
	io.WriteString(p.w, b.String())
	p.drawn, p.last = len(p.order), time.Now()
}

func phaseText(ev image.Progress, bar bool) string {
	switch ev.Phase {
	case image.PhaseWaiting:
		return "Waiting"
	case image.PhaseDownloading:
		if !bar {
			return "Downloading " + humanSize(ev.Total)
		}
		const width = 30
		n := 0
		if ev.Total > 0 {
			n = int(min(ev.Current, ev.Total) * width / ev.Total)
		}
		return fmt.Sprintf("Downloading [%s>%s] %s/%s", strings.Repeat("=", n), strings.Repeat(" ", width-n),
			humanSize(ev.Current), humanSize(ev.Total))
	case image.PhaseUnpacking:
		return "Unpacking"
	case image.PhaseDone:
		return "Done"
	case image.PhaseExists:
		return "Already exists"
	}
	return ev.Phase
}
