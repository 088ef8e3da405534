package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/netns"
	"github.com/podrun/podrun/runtime"
)

func init() { commands = append(commands, infoCommand) }

var infoCommand = &cli.Command{
	Name:  "info",
	Usage: "show what podrun finds on this machine (kernel, cgroups, overlay, nftables, DNS) and what is missing",
	Description: "Like podman info: every fact podrun depends on, then each missing requirement as a line\n" +
		"saying what to install or change. Exits 1 when something podrun needs is missing.",
	Flags: nodeFlags(),
	Action: func(c *cli.Context) error {
		h := inspectHost(c.String("root"), c.String("cgroup-driver"), true)
		h.print(c.App.Writer)
		if len(h.missing) > 0 {
			return cli.Exit("", 1)
		}
		return nil
	},
}

// host is what inspectHost found: facts to show, and what podrun needs
// that is missing, each saying what to do about it.
type host struct {
	facts   [][2]string
	missing []string
}

func (h *host) fact(name, format string, args ...any) {
	h.facts = append(h.facts, [2]string{name, fmt.Sprintf(format, args...)})
}

// inspectHost checks every requirement of running pods here; root is the
// state directory (container roots are overlays on its filesystem), driver
// the cgroup driver pods would get. The
// overlay probe mounts one (some 10-20 ms): only with probeOverlay.
func inspectHost(root, driver string, probeOverlay bool) *host {
	h := &host{}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.fact("kernel", "%s %s (%s)", unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Machine[:]))
	}
	if os.Geteuid() != 0 {
		h.missing = append(h.missing, "root: podrun creates containers, namespaces, mounts and cgroups; run it as root (sudo)")
	}
	init, _ := os.ReadFile("/proc/1/comm")
	h.fact("init system", "%s", strings.TrimSpace(string(init)))

	cg := cgroups.HostCgroups()
	h.fact("cgroups", "%s, driver %s; controllers: %s", cg.Version, driver, strings.Join(cg.Controllers, " "))
	if err := cgroups.CheckDriver(driver); err != nil {
		h.missing = append(h.missing, err.Error())
	}
	for _, c := range cg.Missing {
		h.missing = append(h.missing, fmt.Sprintf("cgroup controller %s: not enabled (it carries the pods' limits); enable it in the kernel command line or the cgroup mount", c))
	}

	if !probeOverlay || os.Geteuid() != 0 {
	} else if err := os.MkdirAll(root, 0o711); err != nil {
		h.missing = append(h.missing, fmt.Sprintf("state directory %s: %v", root, err))
	} else if mode, err := image.ProbeOverlay(root); err != nil {
		h.missing = append(h.missing, "overlay: "+err.Error())
	} else {
		h.fact("overlay", "%s (container roots under %s)", mode, root)
	}

	switch err := netns.NFTablesWorks(); {
	case os.Geteuid() != 0:
		h.fact("nftables", "not checked (needs root)")
	case err != nil:
		h.missing = append(h.missing, err.Error()+"; podrun's NAT and hostPorts need it")
	default:
		h.fact("nftables", "yes")
	}
	if on, err := netns.IPForward(); err == nil {
		h.fact("ip_forward", "%v (podrun turns it on with the first pod network and leaves it on)", on)
	}
	if path, servers, err := netns.HostResolvConf(); err != nil {
		h.missing = append(h.missing, "resolv.conf: "+err.Error()+"; pods need the host's resolvers")
	} else {
		h.fact("pod DNS from", "%s (nameservers: %s)", path, strings.Join(servers, " "))
	}
	seccomp := "no: this binary was built without the seccomp tag; seccompProfile RuntimeDefault and Localhost are refused"
	if runtime.SeccompEnabled() {
		seccomp = "yes"
	}
	h.fact("seccomp", "%s", seccomp)
	apparmor := "not enabled: pods asking for an AppArmor profile are refused"
	if runtime.AppArmorEnabled() {
		apparmor = "enabled: RuntimeDefault applies " + runtime.AppArmorDefaultProfile + " (loaded with apparmor_parser), Localhost a loaded profile"
	}
	h.fact("AppArmor", "%s", apparmor)
	return h
}

func (h *host) print(w io.Writer) {
	for _, f := range h.facts {
		fmt.Fprintf(w, "%-14s %s\n", f[0]+":", f[1])
	}
	if len(h.missing) == 0 {
		fmt.Fprintf(w, "%-14s nothing\n", "missing:")
		return
	}
	for _, m := range h.missing {
		fmt.Fprintf(w, "%-14s %s\n", "missing:", m)
	}
}

// requireHost stops verb at once, before any pod is touched, when the host
// lacks something podrun needs. It leaves overlay out: a start proves it,
// and probing costs a pod's startup time.
func requireHost(verb, root, driver string) error {
	h := inspectHost(root, driver, false)
	if len(h.missing) == 0 {
		return nil
	}
	return cli.Exit(fmt.Sprintf("%s: this machine lacks what podrun needs (podrun info shows it all):\n  %s", verb, strings.Join(h.missing, "\n  ")), 1)
}
