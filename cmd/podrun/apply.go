package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
)

func init() { commands = append(commands, applyCommand) }

var applyCommand = &cli.Command{
	Name:      "apply",
	Usage:     "create or update the objects of manifests in the daemon",
	ArgsUsage: "-f FILE... (- for standard input; a directory for its .yaml, .yml and .json files)",
	Description: "Prints \"<type>/<name> created|configured|unchanged\" per object. An existing pod may get new\n" +
		"images (that container restarts), labels and annotations; a Deployment may change (a new\n" +
		"template rolls out); a suspended Job may be resumed; other changes are refused. Problems are printed like \"podrun validate\" prints them, and then\n" +
		"nothing of that file is applied.",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "manifest to apply"},
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
		failed := false
		for _, f := range files {
			data, err := readManifest(f)
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			items, err := cl.Apply(c.Context, f, data)
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
	},
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
