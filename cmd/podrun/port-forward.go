package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
)

func init() { commands = append(commands, portForwardCommand) }

var portForwardCommand = &cli.Command{
	Name:      "port-forward",
	Usage:     "forward local ports to ports on a pod's 127.0.0.1",
	ArgsUsage: "POD [LOCAL_PORT:]REMOTE_PORT...",
	Description: "Each connection to LOCAL_PORT (default: REMOTE_PORT; empty, as in :80, a free port) is\n" +
		"connected to REMOTE_PORT from inside the pod's network namespace, so a server bound to the\n" +
		"pod's loopback is reachable. Runs until interrupted.",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "address", Value: cli.NewStringSlice("localhost"), Usage: "local addresses to listen on (localhost: 127.0.0.1 and ::1)"},
		namespaceFlag(), socketFlag(),
	},
	Action: portForwardAction,
}

func portForwardAction(c *cli.Context) error {
	pos, _, err := args(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if len(pos) < 2 {
		return cli.Exit("port-forward: usage: podrun port-forward POD [LOCAL_PORT:]REMOTE_PORT...", 2)
	}
	name, err := podName(pos[0])
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	cl := newClient(c)
	ns := c.String("namespace")
	p, err := cl.Pod(c.Context, ns, name)
	if err != nil {
		return apiError(err)
	}
	if p.Status.Phase != corev1.PodRunning {
		return cli.Exit(fmt.Sprintf("unable to forward port because pod is not running. Current status=%v", p.Status.Phase), 1)
	}
	var addrs []string
	for _, a := range c.StringSlice("address") {
		if a == "localhost" {
			addrs = append(addrs, "127.0.0.1", "::1")
		} else {
			addrs = append(addrs, a)
		}
	}
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for _, spec := range pos[1:] {
		local, remote, err := portPair(spec)
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		for i, a := range addrs {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(local)))
			if err != nil {
				if a == "::1" && i > 0 {
					continue // no IPv6 loopback here
				}
				return cli.Exit(fmt.Sprintf("unable to listen on port %d: %v", local, err), 1)
			}
			listeners = append(listeners, l)
			local = l.Addr().(*net.TCPAddr).Port // the same port on every address
			fmt.Fprintf(c.App.Writer, "Forwarding from %s -> %d\n", l.Addr(), remote)
			go func() {
				for {
					conn, err := l.Accept()
					if err != nil {
						return
					}
					fmt.Fprintf(c.App.Writer, "Handling connection for %d\n", local)
					go func() {
						defer conn.Close()
						up, err := cl.PortForward(c.Context, ns, name, remote)
						if err != nil {
							fmt.Fprintf(c.App.ErrWriter, "E: an error occurred forwarding %d -> %d: %v\n", local, remote, err)
							return
						}
						defer up.Close()
						api.Pipe(conn, conn, up)
					}()
				}
			}()
		}
	}
	<-c.Context.Done()
	return nil
}

// portPair reads [LOCAL:]REMOTE; an empty LOCAL is a free port.
func portPair(s string) (local, remote int, err error) {
	l, r, ok := strings.Cut(s, ":")
	if !ok {
		l, r = s, s
	}
	if remote, err = strconv.Atoi(r); err != nil || remote < 1 || remote > 65535 {
		return 0, 0, fmt.Errorf("%q: the remote port must be a number from 1 to 65535", s)
	}
	if l == "" {
		return 0, remote, nil
	}
	if local, err = strconv.Atoi(l); err != nil || local < 0 || local > 65535 {
		return 0, 0, fmt.Errorf("%q: the local port must be a number from 0 to 65535", s)
	}
	return local, remote, nil
}
