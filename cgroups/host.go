package cgroups

import (
	"bufio"
	"os"
	"slices"
	"strings"
)

// Host describes the machine's cgroups as podrun uses them.
type Host struct {
	Version     string   // "v2", "v1 (hybrid)" or "v1"
	Controllers []string // enabled controllers
	Missing     []string // controllers podrun needs that are not enabled
}

// needed are the controllers the kubelet's values are written to.
var needed = []string{"cpu", "memory", "pids"}

// HostCgroups reads how the machine's cgroups are mounted and which
// controllers are enabled.
func HostCgroups() Host {
	var h Host
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		h.Version = "v2"
		h.Controllers = strings.Fields(string(b))
	} else {
		h.Version = "v1"
		if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.controllers"); err == nil {
			h.Version = "v1 (hybrid)"
		}
		h.Controllers = v1Controllers()
	}
	for _, c := range needed {
		if !slices.Contains(h.Controllers, c) {
			h.Missing = append(h.Missing, c)
		}
	}
	return h
}

// v1Controllers are the enabled controllers of /proc/cgroups
// ("subsys_name hierarchy num_cgroups enabled").
func v1Controllers() []string {
	f, err := os.Open("/proc/cgroups")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[3] == "1" {
			out = append(out, f[0])
		}
	}
	return out
}
