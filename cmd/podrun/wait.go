package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

func init() { commands = append(commands, waitCommand) }

var waitCommand = &cli.Command{
	Name:      "wait",
	Usage:     "wait until objects have a condition, or are deleted",
	ArgsUsage: "--for=condition=COND[=VALUE]|--for=delete TYPE/NAME... | TYPE NAME...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "for", Required: true, Usage: "condition=Ready (a status condition, value true unless given) or delete"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after this long"},
		namespaceFlag(), socketFlag(),
	},
	Action: waitAction,
}

func waitAction(c *cli.Context) error {
	pos, _, err := args(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	refs, err := objectRefs(pos, "")
	if err != nil {
		return cli.Exit("wait: "+err.Error(), 2)
	}
	cond, value, forDelete := "", "true", false
	switch f := c.String("for"); {
	case f == "delete":
		forDelete = true
	case strings.HasPrefix(f, "condition="):
		cond = strings.TrimPrefix(f, "condition=")
		if n, v, ok := strings.Cut(cond, "="); ok {
			cond, value = n, v
		}
		if cond == "" {
			return cli.Exit("wait: --for=condition= needs a condition name", 2)
		}
	default:
		return cli.Exit(fmt.Sprintf("wait: --for=%s: want condition=NAME[=VALUE] or delete", f), 2)
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	cl := newClient(c)
	ns := c.String("namespace")
	for _, ref := range refs {
		tn := typeName(ref.r, ref.name)
		if forDelete {
			if err := waitGone(ctx, c, ref.r, ns, ref.name); err != nil {
				if ctx.Err() != nil && c.Context.Err() == nil {
					return cli.Exit(fmt.Sprintf("timed out waiting for the condition on %s", plural(ref.r, ref.name)), 1)
				}
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s condition met\n", tn)
			continue
		}
		var o struct{}
		if err := cl.Get(ctx, ref.r, ns, ref.name, &o); err != nil {
			return apiError(err)
		}
		errDeleted := errors.New("deleted")
		err := cl.Watch(ctx, ref.r, ns, client.Selector{Field: "metadata.name=" + ref.name}, func(ev api.WatchEvent) error {
			if ev.Type == "DELETED" {
				return errDeleted
			}
			var obj struct {
				Status struct {
					Conditions []struct{ Type, Status string }
				}
			}
			if err := json.Unmarshal(ev.Object, &obj); err != nil {
				return err
			}
			for _, cd := range obj.Status.Conditions {
				if strings.EqualFold(cd.Type, cond) && strings.EqualFold(cd.Status, value) {
					return client.ErrStopWatch
				}
			}
			return nil
		})
		switch {
		case err == nil:
			fmt.Fprintf(c.App.Writer, "%s condition met\n", tn)
		case errors.Is(err, errDeleted):
			return cli.Exit(fmt.Sprintf("%s was deleted while waiting for condition %s", tn, cond), 1)
		case ctx.Err() != nil && c.Context.Err() == nil:
			return cli.Exit(fmt.Sprintf("timed out waiting for the condition on %s", plural(ref.r, ref.name)), 1)
		default:
			return apiError(err)
		}
	}
	return nil
}

// plural names an object as kubectl's wait messages do: pods/x.
func plural(r api.Resource, name string) string {
	if r.Group != "" {
		return r.Name + "." + r.Group + "/" + name
	}
	return r.Name + "/" + name
}
