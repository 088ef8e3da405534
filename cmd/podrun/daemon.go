package main

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/daemon"
)

func init() { commands = append(commands, daemonCommand) }

var daemonCommand = &cli.Command{
	Name:  "daemon",
	Usage: "serve the API on a unix socket and run applied pods in the background",
	Description: "Runs each pod in its own \"podrun shim\" process, so that pods keep running when the\n" +
		"daemon stops (SIGTERM), crashes or is upgraded; a new daemon takes them over. The socket is\n" +
		"root's with mode 0600: whoever can reach it can run anything as root.",
	Flags: append([]cli.Flag{socketFlag(),
		&cli.StringFlag{Name: "kube-listen", Value: "127.0.0.1:6443", EnvVars: []string{"PODRUN_KUBE_LISTEN"},
			Usage: "host:port of the Kubernetes-compatible HTTPS API for kubectl (\"\" serves none); see podrun kubeconfig"},
	}, nodeFlags()...),
	Action: func(c *cli.Context) error {
		if err := checkNodeFlags(c); err != nil {
			return err
		}
		if err := requireHost("daemon", c.String("root"), c.String("cgroup-driver")); err != nil {
			return err
		}
		err := daemon.Run(c.Context, daemon.Config{
			Socket:     c.String("socket"),
			KubeListen: c.String("kube-listen"),
			Node:       nodeConfig(c),
			LogLevel:   c.String("log-level"),
			Log:        slog.Default(),
		})
		if err != nil {
			return cli.Exit(fmt.Sprintf("daemon: %v", err), 1)
		}
		return nil
	},
}
