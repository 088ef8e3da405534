package cgroups

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is what a cgroup uses right now, measured the way the kubelet
// (through cAdvisor) measures it.
type Usage struct {
	// CPUNanos is the CPU time used since the cgroup was created.
	CPUNanos uint64
	// MemoryBytes is all memory charged, page cache included.
	MemoryBytes uint64
	// WorkingSetBytes is MemoryBytes minus the inactive file cache: what
	// kubectl top shows and eviction compares against.
	WorkingSetBytes uint64
}

// NanoCores is the CPU rate between two readings of CPUNanos taken d
// apart: billionths of a core, as metrics.k8s.io reports it. A counter that
// went back (a new cgroup of the same name) reads as no use.
func NanoCores(before, after uint64, d time.Duration) int64 {
	if after < before || d <= 0 {
		return 0
	}
	return int64(float64(after-before) / d.Seconds())
}

// Usage reads the usage of the cgroup at path (an absolute cgroup path such
// as ContainerPath or PodPath returns).
func (t Tree) Usage(path string) (Usage, error) {
	var u Usage
	var inactive uint64
	if t.v2() {
		dir := t.dir("", path)
		cpu, err := keyedValue(dir, "cpu.stat", "usage_usec")
		if err != nil {
			return u, err
		}
		u.CPUNanos = cpu * 1000
		if u.MemoryBytes, err = singleValue(dir, "memory.current"); err != nil {
			return u, err
		}
		if inactive, err = keyedValue(dir, "memory.stat", "inactive_file"); err != nil {
			return u, err
		}
	} else {
		var err error
		if u.CPUNanos, err = singleValue(t.dir("cpuacct", path), "cpuacct.usage"); err != nil {
			return u, err
		}
		mem := t.dir("memory", path)
		if u.MemoryBytes, err = singleValue(mem, "memory.usage_in_bytes"); err != nil {
			return u, err
		}
		if inactive, err = keyedValue(mem, "memory.stat", "total_inactive_file"); err != nil {
			return u, err
		}
	}
	if u.MemoryBytes > inactive {
		u.WorkingSetBytes = u.MemoryBytes - inactive
	}
	return u, nil
}

func singleValue(dir, file string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", filepath.Join(dir, file), err)
	}
	return v, nil
}

// keyedValue reads the value of key from a flat-keyed file ("key value"
// lines, such as memory.stat).
func keyedValue(dir, file, key string) (uint64, error) {
	p := filepath.Join(dir, file)
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s in %s: %w", key, p, err)
		}
		return n, nil
	}
	if err := s.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", p, err)
	}
	return 0, fmt.Errorf("no %s in %s", key, p)
}
