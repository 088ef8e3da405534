package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/netns"
	"github.com/podrun/podrun/node"
)

// nodeFlags configure where pods run: the directories and the pod network.
// Every role that runs pods (run, daemon, shim) takes them.
func nodeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "root", Value: "/var/lib/podrun", Usage: "state directory (images, pod volumes)", EnvVars: []string{"PODRUN_ROOT"}},
		&cli.StringFlag{Name: "run-root", Value: "/run/podrun", Usage: "runtime state directory (containers, sandboxes)", EnvVars: []string{"PODRUN_RUN_ROOT"}},
		&cli.StringFlag{Name: "log-dir", Value: "/var/log/pods", Usage: "container log directory", EnvVars: []string{"PODRUN_LOG_DIR"}},
		&cli.StringFlag{Name: "bridge", Value: netns.DefaultBridge, Usage: "pod network bridge (also the name of podrun's nftables table)", EnvVars: []string{"PODRUN_BRIDGE"}},
		&cli.StringFlag{Name: "subnet", Value: netns.DefaultSubnet, Usage: "pod network IPv4 subnet", EnvVars: []string{"PODRUN_SUBNET"}},
		&cli.StringFlag{Name: "cgroup-root", Value: "podrun", Usage: "top-level cgroup of podrun's pods", EnvVars: []string{"PODRUN_CGROUP_ROOT"}},
		&cli.StringFlag{Name: "seccomp-root", Usage: "directory of the Localhost seccomp profiles (default <root>/seccomp)", EnvVars: []string{"PODRUN_SECCOMP_ROOT"}},
		&cli.BoolFlag{Name: "seccomp-default", Usage: "RuntimeDefault seccomp for containers whose pod says nothing (the kubelet's seccompDefault)", EnvVars: []string{"PODRUN_SECCOMP_DEFAULT"}},
		&cli.StringSliceFlag{Name: "allowed-unsafe-sysctls", Usage: "unsafe sysctls or sysctl patterns (ending in *) pods may set, comma-separated (the kubelet's --allowed-unsafe-sysctls)", EnvVars: []string{"PODRUN_ALLOWED_UNSAFE_SYSCTLS"}},
		&cli.StringFlag{Name: "cgroup-driver", Value: cgroups.DefaultDriver(), Usage: "systemd (cgroups as systemd units, through D-Bus) or cgroupfs; the default is systemd when systemd is PID 1 (the kubelet's --cgroup-driver)", EnvVars: []string{"PODRUN_CGROUP_DRIVER"}},
		&cli.Int64Flag{Name: "pod-pids-limit", Value: -1, Usage: "pids.max of each pod cgroup (-1: unlimited, like the kubelet's default)"},
		&cli.StringFlag{Name: "container-log-max-size", Value: "10Mi", Usage: "rotate a container's log before it grows past this (the kubelet's containerLogMaxSize)"},
		&cli.IntFlag{Name: "container-log-max-files", Value: 5, Usage: "log files kept per container instance, the current one included (the kubelet's containerLogMaxFiles; at least 2)"},
	}
}

func nodeConfig(c *cli.Context) node.Config {
	// Checked by checkNodeFlags before any role starts.
	size, _ := resource.ParseQuantity(c.String("container-log-max-size"))
	return node.Config{
		ContainerLogMaxSize:  size.Value(),
		ContainerLogMaxFiles: c.Int("container-log-max-files"),
		Root:                 c.String("root"),
		RunRoot:              c.String("run-root"),
		LogDir:               c.String("log-dir"),
		Network:              netns.Config{Bridge: c.String("bridge"), Subnet: c.String("subnet")},
		Cgroups:              cgroups.Tree{Root: c.String("cgroup-root"), PidsLimit: c.Int64("pod-pids-limit"), Driver: c.String("cgroup-driver")},

		SeccompRoot:    c.String("seccomp-root"),
		SeccompDefault: c.Bool("seccomp-default"),

		AllowedUnsafeSysctls: c.StringSlice("allowed-unsafe-sysctls"),
	}
}

// needRoot refuses early and clearly instead of failing half way.
// checkNodeFlags refuses node flags that would fail later, naming the flag.
func checkNodeFlags(c *cli.Context) error {
	size, err := resource.ParseQuantity(c.String("container-log-max-size"))
	if err != nil || size.Value() <= 0 {
		return cli.Exit(fmt.Sprintf("--container-log-max-size %q: want a positive quantity such as 10Mi", c.String("container-log-max-size")), 2)
	}
	if err := cgroups.CheckDriver(c.String("cgroup-driver")); err != nil {
		return cli.Exit("--cgroup-driver: "+err.Error(), 2)
	}
	if n := c.Int("container-log-max-files"); n < 2 {
		return cli.Exit(fmt.Sprintf("--container-log-max-files %d: want at least 2 (the current file and one rotated)", n), 2)
	}
	return nil
}

func needRoot(verb string) error {
	if os.Geteuid() != 0 {
		return cli.Exit(fmt.Sprintf("%s: podrun must run as root to create containers, namespaces and cgroups", verb), 1)
	}
	return nil
}
