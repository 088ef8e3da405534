package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/internal/buildinfo"
)

func init() { commands = append(commands, versionCommand) }

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print the client's version and, when a daemon answers, the server's (like kubectl version)",
	Flags: []cli.Flag{socketFlag(), &cli.BoolFlag{Name: "client", Usage: "the client's version only"}},
	Action: func(c *cli.Context) error {
		fmt.Fprintf(c.App.Writer, "Client Version: %s\n", buildinfo.String())
		if c.Bool("client") {
			return nil
		}
		ctx, cancel := context.WithTimeout(c.Context, 5*time.Second)
		defer cancel()
		v, err := newClient(c).ServerVersion(ctx)
		if err != nil {
			// As kubectl: the client's version stands, the error says why no server's.
			fmt.Fprintf(os.Stderr, "%v\n", err)
			return cli.Exit("", 1)
		}
		fmt.Fprintf(c.App.Writer, "Server Version: %s\n", v)
		return nil
	},
}
