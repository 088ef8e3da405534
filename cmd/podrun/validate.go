package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/manifest"
)

func init() { commands = append(commands, validateCommand) }

var validateCommand = &cli.Command{
	Name:      "validate",
	Usage:     "check manifests as the API server would, and that their ConfigMaps and Secrets are there",
	ArgsUsage: "FILE... (- for standard input; a directory for its .yaml, .yml and .json files)",
	Description: "Prints \"<Kind>/<name> ok\" for each object and exits 0, or prints every problem\n" +
		"as \"<file>:<line>: <Kind>/<name>: <field>: <reason>\" on standard error and exits 1.\n" +
		"Valid features that podrun cannot run are reported as warnings.",
	Action: func(c *cli.Context) error {
		if c.NArg() == 0 {
			return cli.Exit("validate: no files given (use - for standard input)", 2)
		}
		b, err := manifest.Load(c.Args().Slice()...)
		if err != nil {
			var errs manifest.Errors
			if !errors.As(err, &errs) {
				return cli.Exit(err.Error(), 1)
			}
			for _, e := range errs {
				fmt.Fprintln(c.App.ErrWriter, e)
			}
			return cli.Exit("", 1)
		}
		if len(b.Objects) == 0 {
			return cli.Exit("validate: the files hold no objects", 1)
		}
		for _, o := range b.Objects {
			fmt.Fprintf(c.App.Writer, "%s/%s ok\n", o.Kind, o.Name)
		}
		var warns manifest.Errors
		if errors.As(b.Unsupported(), &warns) {
			for _, w := range warns {
				fmt.Fprintf(c.App.ErrWriter, "warning: podrun cannot run this: %v\n", w)
			}
		}
		return nil
	},
}
