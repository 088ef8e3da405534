package shim

import "testing"

// TestAttachmentsFanOutAndDropTheSlow: each client of a container gets its
// output, copied; one that lags attachBuffer chunks behind is dropped (its
// channel closes) while the others keep theirs.
func TestAttachmentsFanOutAndDropTheSlow(t *testing.T) {
	var a attachments
	fast, cancelFast := a.subscribe("app")
	slow, cancelSlow := a.subscribe("app")
	other, cancelOther := a.subscribe("side")
	defer cancelOther()
	buf := []byte("hello")
	a.write("app", "stdout", buf)
	buf[0] = 'j' // the writer reuses its buffer
	if c := <-fast; c.stream != "stdout" || string(c.p) != "hello" {
		t.Errorf("fast client got %q on %s", c.p, c.stream)
	}
	for range attachBuffer {
		a.write("app", "stderr", []byte("x"))
		<-fast
	}
	n := 0
	for range slow {
		n++
	}
	if n != attachBuffer {
		t.Errorf("the slow client got %d chunks before it was dropped, want %d", n, attachBuffer)
	}
	cancelSlow() // after the drop: a no-op
	a.write("app", "stdout", []byte("still here"))
	if c := <-fast; string(c.p) != "still here" {
		t.Errorf("fast client after the drop: %q", c.p)
	}
	if len(other) != 0 {
		t.Errorf("another container's client got %d chunks", len(other))
	}
	cancelFast()
	if _, ok := <-fast; ok {
		t.Error("a cancelled subscription's channel is still open")
	}
}
