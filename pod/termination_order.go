package pod

import (
	"sync"
	"time"
)

// ordering is the kubelet's terminationOrdering: each sidecar waits for
// every app container and for the sidecar declared after it; containers
// that are not running count as terminated.
type ordering struct {
	mu         sync.Mutex // guards terminated
	terminated map[string]chan struct{}
	prereqs    map[string][]chan struct{}
}

func newOrdering(st *podState, running map[string]bool) *ordering {
	o := &ordering{terminated: map[string]chan struct{}{}, prereqs: map[string][]chan struct{}{}}
	mk := func(name string) chan struct{} {
		ch := make(chan struct{})
		if !running[name] {
			close(ch)
		}
		o.terminated[name] = ch
		return ch
	}
	var apps []chan struct{}
	for _, c := range st.apps {
		apps = append(apps, mk(c.spec.Name))
	}
	var later chan struct{}
	for i := len(st.init) - 1; i >= 0; i-- {
		c := st.init[i]
		ch := mk(c.spec.Name)
		if c.role != roleSidecar {
			continue
		}
		o.prereqs[c.spec.Name] = append(o.prereqs[c.spec.Name], apps...)
		if later != nil {
			o.prereqs[c.spec.Name] = append(o.prereqs[c.spec.Name], later)
		}
		later = ch
	}
	return o
}

// waitForTurn blocks until name may stop or grace seconds passed, and
// returns how long it waited.
func (o *ordering) waitForTurn(name string, grace int64) time.Duration {
	start := time.Now()
	t := time.NewTimer(time.Duration(grace) * time.Second)
	defer t.Stop()
	for _, ch := range o.prereqs[name] {
		select {
		case <-ch:
		case <-t.C:
			return time.Since(start)
		}
	}
	return time.Since(start)
}

func (o *ordering) done(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ch, ok := o.terminated[name]; ok {
		close(ch)
		delete(o.terminated, name)
	}
}
