package pod

import (
	"fmt"
	"sync"
	"time"
)

// Event is a Kubernetes-style event about the pod or one of its containers.
type Event struct {
	Type      string // Normal or Warning
	Reason    string
	Message   string
	Container string // "" when the event is about the pod
	FieldPath string // spec.containers{name} or spec.initContainers{name}
	First     time.Time
	Last      time.Time
	Count     int32
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"

	normal  = EventNormal
	warning = EventWarning
)

// recorder keeps a pod's events, aggregating repeats the way the event
// correlator does (same object, reason and message: count and last time).
// Any goroutine may record.
type recorder struct {
	mu     sync.Mutex // guards events
	events []Event
	notify func(Event)
}

const maxEvents = 256

func (r *recorder) record(c *ctr, typ, reason, format string, args ...any) {
	e := Event{Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...), Count: 1}
	e.First = time.Now()
	e.Last = e.First
	if c != nil {
		e.Container = c.spec.Name
		e.FieldPath = fmt.Sprintf("spec.containers{%s}", c.spec.Name)
		if c.role != roleApp {
			e.FieldPath = fmt.Sprintf("spec.initContainers{%s}", c.spec.Name)
		}
	}
	r.mu.Lock()
	merged := false
	for i := range r.events {
		old := &r.events[i]
		if old.Container == e.Container && old.Reason == e.Reason && old.Message == e.Message && old.Type == e.Type {
			old.Count++
			old.Last = e.Last
			e = *old
			merged = true
			break
		}
	}
	if !merged {
		if len(r.events) == maxEvents {
			r.events = r.events[1:]
		}
		r.events = append(r.events, e)
	}
	notify := r.notify
	r.mu.Unlock()
	if notify != nil {
		notify(e)
	}
}

func (r *recorder) list() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}
