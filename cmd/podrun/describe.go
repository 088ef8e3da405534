package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/kubectl"
)

func init() { commands = append(commands, describeCommand) }

var describeCommand = &cli.Command{
	Name:      "describe",
	Usage:     "show a pod in detail as kubectl describe does: containers, conditions, volumes, events",
	ArgsUsage: "pod NAME... | pod/NAME...",
	Flags:     []cli.Flag{namespaceFlag(), socketFlag()},
	Action: func(c *cli.Context) error {
		pos, _, err := args(c)
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		refs, err := objectRefs(pos, "")
		if err != nil {
			return cli.Exit("describe: "+err.Error(), 2)
		}
		cl := newClient(c)
		ns := c.String("namespace")
		for i, ref := range refs {
			if ref.r != api.Pods {
				return cli.Exit("describe: podrun describes pods only", 2)
			}
			p, err := cl.Pod(c.Context, ns, ref.name)
			if err != nil {
				return apiError(err)
			}
			events, err := cl.Events(c.Context, ns, ref.name)
			if err != nil {
				return apiError(err)
			}
			if i > 0 {
				c.App.Writer.Write([]byte("\n\n"))
			}
			if err := kubectl.DescribePod(c.App.Writer, p, events, time.Now()); err != nil {
				return err
			}
		}
		return nil
	},
}
