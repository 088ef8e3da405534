package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podrun/podrun/kubeapi"
)

func init() { commands = append(commands, kubeconfigCommand) }

var kubeconfigCommand = &cli.Command{
	Name:  "kubeconfig",
	Usage: "write a kubeconfig for kubectl, Helm and client-go against the daemon's Kubernetes API",
	Description: "Prints a kubeconfig with a \"podrun\" cluster, user and context (the daemon's CA and\n" +
		"client certificate, made by the first \"podrun daemon\"), or writes it to --path with mode 0600.\n" +
		"With --merge, adds them to the kubeconfig at --path (default: the first file of $KUBECONFIG,\n" +
		"else ~/.kube/config), keeping its other entries, and makes podrun its current context.",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "root", Value: "/var/lib/podrun", Usage: "the daemon's state directory", EnvVars: []string{"PODRUN_ROOT"}},
		&cli.StringFlag{Name: "path", Usage: "the kubeconfig file to write"},
		&cli.BoolFlag{Name: "merge", Usage: "merge into the kubeconfig at --path instead of replacing it"},
		&cli.StringFlag{Name: "server", Usage: "the API's URL (default: where the daemon serves it)"},
	},
	Action: func(c *cli.Context) error {
		creds, err := kubeapi.LoadCredentials(filepath.Join(c.String("root"), "kubeapi"))
		if err != nil {
			return cli.Exit(fmt.Sprintf("kubeconfig: %v (has \"podrun daemon\" run with --kube-listen?)", err), 1)
		}
		server := c.String("server")
		if server == "" {
			server = creds.Server()
		}
		if server == "" {
			server = "https://127.0.0.1:6443"
		}
		path := c.String("path")
		if path == "" && c.Bool("merge") {
			path = clientcmd.NewDefaultClientConfigLoadingRules().GetDefaultFilename()
		}
		if path == "" {
			data, err := clientcmd.Write(*creds.Kubeconfig(server))
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(data)
			return err
		}
		if err := creds.WriteKubeconfig(path, server, c.Bool("merge")); err != nil {
			return cli.Exit(fmt.Sprintf("kubeconfig: %v", err), 1)
		}
		fmt.Fprintf(c.App.ErrWriter, "wrote the podrun context to %s\n", path)
		return nil
	},
}
