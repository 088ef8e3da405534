package cgroups

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	dbus "github.com/godbus/dbus/v5"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/podspec"
)

// KeepOOMGroups keeps memory.oom.group at 1 in the container scopes of the
// pods hosted returns, under the systemd driver on cgroup v2, until ctx is
// done. systemd before 253 has no OOMPolicy= for scopes (libcontainer sets
// OOMPolicy=kill from 253 on, which systemd then applies itself), and every
// `systemctl daemon-reload` has it write memory.oom.group=0 into each scope
// again: so after each reload the value is written back. Under cgroupfs, or
// on v1, it returns at once.
func (t Tree) KeepOOMGroups(ctx context.Context, hosted func() []*corev1.Pod) {
	if !t.systemd() || !t.v2() {
		return
	}
	err := watchSystemdReloads(ctx, func() {
		for _, p := range hosted() {
			for _, c := range podspec.Containers(&p.Spec) {
				dir := t.dir("memory", t.ContainerPath(p, c.Name))
				if _, err := os.Stat(filepath.Join(dir, "memory.oom.group")); err != nil {
					continue // not running
				}
				if err := t.write(dir, "memory.oom.group", "1"); err != nil {
					slog.Warn("cgroups: memory.oom.group after a systemd reload", "pod", p.Namespace+"/"+p.Name, "container", c.Name, "err", err)
				}
			}
		}
	})
	if err != nil && ctx.Err() == nil {
		slog.Warn("cgroups: not watching systemd reloads: after a daemon-reload, an OOM kill takes one process, not the whole container", "err", err)
	}
}

// watchSystemdReloads calls fn each time systemd finishes a reload, until
// ctx is done. It listens on systemd's private socket, a direct
// connection to which systemd sends its signals unconditionally; systemd
// realises the units' cgroups again before it signals the reload's end.
func watchSystemdReloads(ctx context.Context, fn func()) error {
	conn, err := dbus.Dial("unix:path=/run/systemd/private")
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		return fmt.Errorf("authenticate to systemd: %w", err)
	}
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-signals:
			if !ok {
				return errors.New("systemd closed the connection")
			}
			if s.Name == "org.freedesktop.systemd1.Manager.Reloading" && len(s.Body) == 1 && s.Body[0] == false {
				fn()
			}
		}
	}
}
