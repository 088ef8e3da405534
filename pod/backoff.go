package pod

import "time"

// Crash-loop and image-pull back-off constants (kubelet.go): 10 s doubling
// to 300 s, no jitter; an entry expires after twice the cap without update.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 300 * time.Second
)

// backoff is client-go's flowcontrol.Backoff as the kubelet configures it.
// Only the pod's owner goroutine uses it.
type backoff struct {
	entries map[string]*backoffEntry
}

type backoffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
}

func newBackoff() *backoff { return &backoff{entries: map[string]*backoffEntry{}} }

func expired(eventTime, lastUpdate time.Time) bool {
	return eventTime.Sub(lastUpdate) > 2*backoffMax
}

// inBackoffSince reports whether a start must wait, counting from
// eventTime (the last exit); until is when the wait ends.
func (b *backoff) inBackoffSince(key string, eventTime, now time.Time) (until time.Time, in bool) {
	e, ok := b.entries[key]
	if !ok || expired(eventTime, e.lastUpdate) {
		return time.Time{}, false
	}
	until = eventTime.Add(e.delay)
	return until, now.Before(until)
}

// inBackoffSinceUpdate is the image-pull variant: counted from the last
// failure recorded with next.
func (b *backoff) inBackoffSinceUpdate(key string, now time.Time) (until time.Time, in bool) {
	e, ok := b.entries[key]
	if !ok {
		return time.Time{}, false
	}
	until = e.lastUpdate.Add(e.delay)
	return until, now.Before(until)
}

// next records an attempt: the first (or first after expiry) arms 10 s,
// each further one doubles up to the cap.
func (b *backoff) next(key string, eventTime, now time.Time) {
	e, ok := b.entries[key]
	if !ok || expired(eventTime, e.lastUpdate) {
		e = &backoffEntry{delay: backoffInitial}
		b.entries[key] = e
	} else {
		e.delay = min(2*e.delay, backoffMax)
	}
	e.lastUpdate = now
}

func (b *backoff) get(key string) time.Duration {
	if e, ok := b.entries[key]; ok {
		return e.delay
	}
	return 0
}

func (b *backoff) reset(key string) { delete(b.entries, key) }
