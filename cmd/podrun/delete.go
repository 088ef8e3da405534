package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

func init() { commands = append(commands, deleteCommand) }

var deleteCommand = &cli.Command{
	Name:      "delete",
	Usage:     "delete objects; a running pod is terminated the kubelet's way first",
	ArgsUsage: "TYPE NAME... | TYPE/NAME... | -f FILE...",
	Description: "A running pod's containers are stopped in the kubelet's order (apps, then sidecars in\n" +
		"reverse order) within its grace period; the command waits until the objects are gone\n" +
		"(--wait=false does not). Deleting a Deployment or a Job deletes its pods.",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "delete the objects of this manifest"},
		&cli.Int64Flag{Name: "grace-period", Value: -1, Usage: "seconds the pods get to stop (-1: their own terminationGracePeriodSeconds)"},
		&cli.BoolFlag{Name: "now", Usage: "--grace-period=1"},
		&cli.BoolFlag{Name: "wait", Value: true, Usage: "wait until the objects are gone"},
		&cli.BoolFlag{Name: "ignore-not-found", Usage: "an object that does not exist is not an error"},
		namespaceFlag(), socketFlag(),
	},
	Action: deleteAction,
}

func deleteAction(c *cli.Context) error {
	pos, _, err := args(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	type target struct {
		objectRef
		ns string
	}
	var targets []target
	ns := c.String("namespace")
	if files := c.StringSlice("filename"); len(files) > 0 {
		if len(pos) > 0 {
			return cli.Exit("delete: give either -f FILE or TYPE NAME, not both", 2)
		}
		if files, err = manifestFiles(files); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		for _, f := range files {
			data, err := readManifest(f)
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			refs, err := api.Refs(data)
			if err != nil {
				return cli.Exit(fmt.Sprintf("%s: %v", f, err), 1)
			}
			for _, r := range refs {
				res, ok := kindResource(r.Kind)
				if !ok || r.Name == "" {
					continue // kinds podrun does not keep, generated names
				}
				t := target{objectRef{res, r.Name}, r.Namespace}
				if t.ns == "" {
					t.ns = ns
				}
				targets = append(targets, t)
			}
		}
	} else {
		refs, err := objectRefs(pos, "")
		if err != nil {
			return cli.Exit("delete: "+err.Error(), 2)
		}
		for _, r := range refs {
			targets = append(targets, target{r, ns})
		}
	}
	var grace *int64
	if g := c.Int64("grace-period"); g >= 0 {
		grace = &g
	}
	if c.Bool("now") {
		one := int64(1)
		grace = &one
	}
	cl := newClient(c)
	var failed error
	var deleted []target
	for _, t := range targets {
		err := cl.Delete(c.Context, t.r, t.ns, t.name, grace)
		if apierrors.IsNotFound(err) {
			if !c.Bool("ignore-not-found") {
				fmt.Fprintf(c.App.ErrWriter, "Error from server (NotFound): %s\n", api.Problems(err)[0])
				failed = cli.Exit("", 1)
			}
			continue
		}
		if err != nil {
			return apiError(err)
		}
		deleted = append(deleted, t)
		tn := typeName(t.r, t.name)
		fmt.Fprintf(c.App.Writer, "%s %q deleted\n", tn[:strings.Index(tn, "/")], t.name)
	}
	if c.Bool("wait") {
		for _, t := range deleted {
			if err := waitGone(c.Context, c, t.r, t.ns, t.name); err != nil {
				return err
			}
		}
	}
	return failed
}

// waitGone waits until an object no longer exists: a watch sees its
// DELETED at once; a Get every second covers an object gone before the
// watch started (which then reports nothing).
func waitGone(ctx context.Context, c *cli.Context, r api.Resource, ns, name string) error {
	cl := newClient(c)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gone := make(chan error, 2)
	go func() {
		errDeleted := errors.New("deleted")
		err := cl.Watch(ctx, r, ns, client.Selector{Field: "metadata.name=" + name}, func(ev api.WatchEvent) error {
			if ev.Type == "DELETED" {
				return errDeleted
			}
			return nil
		})
		if errors.Is(err, errDeleted) {
			gone <- nil
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var o struct{}
		err := cl.Get(ctx, r, ns, name, &o)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil && ctx.Err() == nil:
			return apiError(err)
		}
		select {
		case <-gone:
			return nil
		case <-ctx.Done():
			return cli.Exit(fmt.Sprintf("interrupted while waiting for %s to be deleted", typeName(r, name)), 130)
		case <-tick.C:
		}
	}
}
