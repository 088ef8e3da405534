package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/filewatch"
	"github.com/podrun/podrun/manifest"
)

func init() { commands = append(commands, applyCommand) }

var applyCommand = &cli.Command{
	Name:      "apply",
	Usage:     "create or update the objects of manifests in the daemon",
	ArgsUsage: "-f FILE... (- for standard input; a directory for its .yaml, .yml and .json files)",
	Description: "Prints \"<type>/<name> created|configured|unchanged|replaced\" per object. An existing pod may get new\n" +
		"images (that container restarts), labels and annotations; a Deployment may change (a new\n" +
		"template rolls out); a suspended Job may be resumed; a changed ConfigMap or Secret reaches the\n" +
		"running pods' volumes (not their env); other changes are refused, unless --force replaces the\n" +
		"pod (deleted, then created once gone). Problems are printed like \"podrun validate\" prints them,\n" +
		"and then nothing of that file is applied. --watch applies the files again at every change\n" +
		"(with --force) until Ctrl-C.",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "manifest to apply"},
		&cli.BoolFlag{Name: "force", Usage: "replace a pod that cannot be updated: delete it, then create it once it is gone"},
		&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "apply the files again each time one changes (implies --force), and restart the users of an image whose tag moved in the local Docker Engine or podman, until Ctrl-C"},
		rootFlag(),
		socketFlag(),
	},
	Action: func(c *cli.Context) error {
		pos, _, err := args(c)
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		files := c.StringSlice("filename")
		if len(pos) > 0 || len(files) == 0 {
			return cli.Exit("apply: give the manifests with -f FILE", 2)
		}
		files, err = manifestFiles(files)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		cl := newClient(c)
		apply := cl.Apply
		if c.Bool("force") || c.Bool("watch") {
			apply = cl.ApplyForce
		}
		if !c.Bool("watch") {
			return applyFiles(c, apply, files)
		}
		return watchApply(c, apply, c.StringSlice("filename"), files)
	},
}

type applyFunc func(ctx context.Context, file string, data []byte) ([]api.Applied, error)

// applyFiles applies each file; a file with problems is reported and the
// others still applied (exit 1).
func applyFiles(c *cli.Context, apply applyFunc, files []string) error {
	failed := false
	for _, f := range files {
		data, err := readManifest(f)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		items, err := apply(c.Context, f, data)
		if apierrors.IsInvalid(err) {
			for _, p := range api.Problems(err) {
				fmt.Fprintln(c.App.ErrWriter, p)
			}
			failed = true
			continue
		}
		if err != nil {
			return apiError(err)
		}
		for _, it := range items {
			r, _ := kindResource(it.Kind)
			fmt.Fprintf(c.App.Writer, "%s %s\n", typeName(r, it.Name), it.Action)
		}
	}
	if failed {
		return cli.Exit("", 1)
	}
	return nil
}

// watchApply applies the files, then again after each change, until
// Ctrl-C; a failed round is reported and the loop goes on. With a local
// Docker Engine or podman, an image podrun loaded whose tag moved there is
// loaded again and its users restarted (imageMoved).
func watchApply(c *cli.Context, apply applyFunc, paths, files []string) error {
	w, err := filewatch.New(paths)
	if err != nil {
		return cli.Exit("apply --watch: "+err.Error(), 2)
	}
	defer w.Close()
	changes := w.Changes(c.Context)
	note := func(format string, args ...any) { fmt.Fprintf(c.App.ErrWriter, format+"\n", args...) }
	var iw *imageWatch
	if s, err := openStore(c); err == nil {
		iw = newImageWatch(s, note)
		defer iw.Close()
	}
	poll, stopPoll := iw.ticks()
	defer stopPoll()
	for {
		if err := applyFiles(c, apply, files); err != nil && c.Context.Err() == nil {
			if msg := err.Error(); msg != "" {
				note("%s", msg)
			}
		}
		note("apply --watch: waiting for changes (Ctrl-C to stop)")
		if !nextRound(c, changes, poll, iw, files, note) {
			return nil
		}
		if files, err = manifestFiles(paths); err != nil {
			note("%v", err)
		}
	}
}

// nextRound waits until the files changed or an image moved (true), or
// the loop ends (false).
func nextRound(c *cli.Context, changes <-chan struct{}, poll <-chan time.Time, iw *imageWatch, files []string, note func(string, ...any)) bool {
	for {
		select {
		case _, ok := <-changes:
			return ok
		case <-poll:
			if imageMoved(c, iw, files, note) {
				return true
			}
		}
	}
}

// imageMoved reloads the images of the files' pods whose tag moved in the
// daemon and restarts their users the way a cluster would: a Deployment
// by rollout restart, a bare pod by deletion (it is applied again, with
// force, once it is gone). It reports whether anything was restarted.
func imageMoved(c *cli.Context, iw *imageWatch, files []string, note func(string, ...any)) bool {
	b, err := manifest.Load(files...)
	if err != nil {
		return false // the next save reports it
	}
	moved := iw.reload(c.Context, podImages(bundlePods(b)))
	if len(moved) == 0 {
		return false
	}
	cl := newClient(c)
	for _, d := range b.Deployments {
		if usesAny(&corev1.Pod{Spec: d.Spec.Template.Spec}, moved) {
			if err := modifyDeployment(c.Context, cl, d.Namespace, d.Name, restartedAt); err != nil {
				note("apply --watch: restarting deployment %s: %v", d.Name, err)
			}
		}
	}
	for _, p := range b.Pods {
		if p.Deployment == nil && p.Job == nil && usesAny(p.Pod, moved) {
			if err := cl.Delete(c.Context, api.Pods, p.Namespace, p.Name, nil); err != nil && !apierrors.IsNotFound(err) {
				note("apply --watch: deleting pod %s: %v", p.Name, err)
			}
		}
	}
	return true
}

// manifestFiles expands directories into their manifests, as podrun run does.
func manifestFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == "-" {
			out = append(out, p)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					names = append(names, filepath.Join(p, e.Name()))
				}
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files", p)
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out, nil
}

func readManifest(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the path %q does not exist", path)
	}
	return b, err
}
