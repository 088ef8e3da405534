package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
)

func init() { commands = append(commands, logsCommand) }

var logsCommand = &cli.Command{
	Name:      "logs",
	Usage:     "print the logs of a container of a pod",
	ArgsUsage: "POD",
	Description: "Without -c, the pod's default container (annotation kubectl.kubernetes.io/default-container,\n" +
		"else its first container). With -f the output follows the container across restarts\n" +
		"and ends once the container will not run again.",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "stream the log as it grows"},
		&cli.BoolFlag{Name: "previous", Aliases: []string{"p"}, Usage: "the log of the previous instance of the container"},
		&cli.StringFlag{Name: "container", Aliases: []string{"c"}, Usage: "the container"},
		&cli.BoolFlag{Name: "timestamps", Usage: "prefix each line with its RFC3339 timestamp"},
		&cli.Int64Flag{Name: "tail", Value: -1, Usage: "only the last N lines (-1: all)"},
		&cli.DurationFlag{Name: "since", Usage: "only lines newer than this (e.g. 5s, 2m)"},
		namespaceFlag(), socketFlag(),
	},
	Action: func(c *cli.Context) error {
		pos, _, err := args(c)
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		if len(pos) != 1 {
			return cli.Exit("logs: give one pod", 2)
		}
		name, err := podName(pos[0])
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		cl := newClient(c)
		ns := c.String("namespace")
		o := &corev1.PodLogOptions{Container: c.String("container"), Follow: c.Bool("follow"),
			Previous: c.Bool("previous"), Timestamps: c.Bool("timestamps")}
		if n := c.Int64("tail"); n >= 0 {
			o.TailLines = &n
		}
		if d := c.Duration("since"); d > 0 {
			s := int64((d + 999_999_999) / 1_000_000_000)
			o.SinceSeconds = &s
		}
		if o.Container == "" {
			p, err := cl.Pod(c.Context, ns, name)
			if err != nil {
				return apiError(err)
			}
			o.Container = defaultContainer(p, c.App.ErrWriter)
		}
		rc, err := cl.Logs(c.Context, ns, name, o)
		if err != nil {
			return apiError(err)
		}
		defer rc.Close()
		if _, err := io.Copy(c.App.Writer, rc); err != nil && c.Context.Err() == nil {
			return cli.Exit(fmt.Sprintf("logs: %v", err), 1)
		}
		return nil
	},
}

// defaultContainer is kubectl's choice of container when none is given,
// with its notice when the pod has several.
func defaultContainer(p *corev1.Pod, notice io.Writer) string {
	if n := p.Annotations["kubectl.kubernetes.io/default-container"]; n != "" {
		return n
	}
	if len(p.Spec.Containers) == 0 {
		return ""
	}
	name := p.Spec.Containers[0].Name
	if len(p.Spec.Containers)+len(p.Spec.InitContainers) > 1 {
		var all []string
		for _, c := range p.Spec.Containers {
			all = append(all, c.Name)
		}
		for _, c := range p.Spec.InitContainers {
			all = append(all, c.Name+" (init)")
		}
		fmt.Fprintf(notice, "Defaulted container %q out of: %s\n", name, strings.Join(all, ", "))
	}
	return name
}
