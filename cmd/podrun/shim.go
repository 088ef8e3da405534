package main

import (
	"fmt"
	"log/slog"

	"github.com/podrun/podrun/shim"
	"github.com/urfave/cli/v2"
)

func init() { commands = append(commands, shimCommand) }

var shimCommand = &cli.Command{
	Name:   "shim",
	Usage:  "host one pod's supervisor (started by the daemon, never by hand)",
	Hidden: true,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "dir", Required: true, Usage: "the pod's run directory (<run-root>/pods/<uid>)"},
	},
	Action: func(c *cli.Context) error {
		if err := needRoot("shim"); err != nil {
			return err
		}
		if err := shim.Run(c.Context, c.String("dir"), slog.Default()); err != nil {
			return cli.Exit(fmt.Sprintf("shim: %v", err), 1)
		}
		return nil
	},
}
