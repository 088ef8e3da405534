package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/image"
)

func init() { commands = append(commands, imageCommand) }

func rootFlag() cli.Flag {
	return &cli.StringFlag{Name: "root", Value: "/var/lib/podrun", EnvVars: []string{"PODRUN_ROOT"}, Usage: "state root; images live in <root>/images"}
}

var imageCommand = &cli.Command{
	Name:  "image",
	Usage: "manage the local image store",
	Flags: []cli.Flag{rootFlag()},
	Subcommands: []*cli.Command{
		{
			Name:      "pull",
			Usage:     "pull an image from its registry, for this machine's platform",
			ArgsUsage: "REF",
			Flags: []cli.Flag{rootFlag(), &cli.StringSliceFlag{
				Name: "insecure-registry", Usage: "registry (host[:port]) that may be reached over plain HTTP (loopback ones always may)",
			}},
			Action: imagePull,
		},
		{
			Name:  "load",
			Usage: "load images from a docker save tarball, an OCI layout directory or an OCI archive, or by name from a local Docker Engine or podman",
			Flags: []cli.Flag{rootFlag(),
				&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "the archive or layout directory (- or none: standard input, as docker load reads it)"},
				&cli.StringSliceFlag{Name: "from-daemon", Usage: "load this image by name from the Docker Engine API of DOCKER_HOST, else /var/run/docker.sock, else podman's /run/podman/podman.sock (as kind load docker-image does)"},
			},
			Action: imageLoad,
		},
		{
			Name:      "import",
			Usage:     "make a one-layer image from a root filesystem tar (- for standard input)",
			ArgsUsage: "ROOTFS.tar --name REF",
			Flags:     []cli.Flag{rootFlag(), &cli.StringFlag{Name: "name", Usage: "the new image's reference"}},
			Action:    imageImport,
		},
		{
			Name:    "ls",
			Aliases: []string{"list"},
			Usage:   "list images",
			Flags:   []cli.Flag{rootFlag(), &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only image IDs"}},
			Action:  imageList,
		},
		{
			Name:      "rm",
			Usage:     "remove image references (or images by ID) and the layers nothing uses any more",
			ArgsUsage: "REF|ID...",
			Flags:     []cli.Flag{rootFlag()},
			Action:    imageRemove,
		},
		{
			Name:   "prune",
			Usage:  "delete layers and blobs no image and no container uses",
			Flags:  []cli.Flag{rootFlag()},
			Action: imagePrune,
		},
	},
}

// openStore opens <root>/images, with --root taken from the innermost
// command that was given it (podrun image --root X ls, or ls --root X).
func openStore(c *cli.Context, opts ...image.Option) (*image.Store, error) {
	root := c.String("root")
	for _, cc := range c.Lineage() {
		if slices.Contains(cc.LocalFlagNames(), "root") {
			root = cc.String("root")
			break
		}
	}
	return image.Open(filepath.Join(root, "images"), opts...)
}

func imagePull(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("image pull: want one REF, got %d arguments", c.NArg())
	}
	s, err := openStore(c, image.WithInsecureRegistries(c.StringSlice("insecure-registry")...))
	if err != nil {
		return err
	}
	start := time.Now()
	p := newProgressPrinter(c.App.ErrWriter)
	img, err := s.Pull(c.Context, c.Args().First(), image.PullOptions{Progress: p.update})
	p.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "Pulled %s in %s\nDigest: %s\nImage ID: %s\n", img.Ref, time.Since(start).Round(time.Millisecond), img.RepoDigest, img.ID)
	return nil
}

func imageLoad(c *cli.Context) error {
	if names := c.StringSlice("from-daemon"); len(names) > 0 {
		if c.IsSet("input") {
			return errors.New("image load: --from-daemon and --input exclude each other")
		}
		return loadFromDaemon(c, names)
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	in := c.String("input")
	if in == "" {
		in = "-"
	}
	if in == "-" {
		// docker load refuses a terminal too: nobody types an archive.
		if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return errors.New("image load: no --input, and standard input is a terminal: give -i FILE or pipe an archive in")
		}
	}
	p := newProgressPrinter(c.App.ErrWriter)
	imgs, err := s.Load(c.Context, in, p.update)
	p.finish()
	for _, img := range imgs {
		if img.Ref != "" {
			fmt.Fprintln(c.App.Writer, "Loaded image:", img.Ref)
		} else {
			fmt.Fprintln(c.App.Writer, "Loaded image ID:", img.ID)
		}
	}
	return err
}

// loadFromDaemon loads images by name from a Docker Engine API, found
// before the store is opened: a missing daemon leaves nothing behind.
func loadFromDaemon(c *cli.Context, names []string) error {
	d, err := image.OpenDaemon("")
	if err != nil {
		return fmt.Errorf("image load: %w", err)
	}
	defer d.Close()
	s, err := openStore(c)
	if err != nil {
		return err
	}
	for _, name := range names {
		p := newProgressPrinter(c.App.ErrWriter)
		img, err := s.LoadFromDaemon(c.Context, d, name, p.update)
		p.finish()
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "Loaded image: %s (from %s)\n", img.Ref, d.Host)
	}
	return nil
}

func imageImport(c *cli.Context) error {
	// urfave/cli stops at the first argument, so "ROOTFS.tar --name REF"
	// leaves --name among the arguments: take it from there too.
	args, ref := c.Args().Slice(), c.String("name")
	for i := 0; i < len(args); i++ {
		if v, ok := strings.CutPrefix(args[i], "--name="); ok {
			ref = v
			args = slices.Delete(args, i, i+1)
			i--
		} else if args[i] == "--name" && i+1 < len(args) {
			ref = args[i+1]
			args = slices.Delete(args, i, i+2)
			i--
		}
	}
	if len(args) == 2 && ref == "" {
		ref, args = args[1], args[:1]
	}
	if len(args) != 1 || ref == "" {
		return errors.New("image import: want ROOTFS.tar (or -) and --name REF")
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	img, err := s.Import(c.Context, args[0], ref, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, img.ID)
	return nil
}

func imageList(c *cli.Context) error {
	s, err := openStore(c)
	if err != nil {
		return err
	}
	imgs, err := s.List()
	if err != nil {
		return err
	}
	// Digest references show only for images no tag names, as <none>.
	tagged := map[string]bool{}
	for _, img := range imgs {
		if _, tag := image.RepoTag(img.Ref); tag != "<none>" {
			tagged[img.ID] = true
		}
	}
	if c.Bool("quiet") {
		seen := map[string]bool{}
		for _, img := range imgs {
			if !seen[img.ID] {
				seen[img.ID] = true
				fmt.Fprintln(c.App.Writer, shortID(img.ID))
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tSIZE")
	shown := map[string]bool{}
	for _, img := range imgs {
		repo, tag := image.RepoTag(img.Ref)
		if tag == "<none>" && (tagged[img.ID] || shown[img.ID]) {
			continue
		}
		shown[img.ID] = true
		if repo == "" {
			repo = "<none>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", repo, tag, shortID(img.ID), humanSize(img.Size))
	}
	return tw.Flush()
}

func imageRemove(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("image rm: want at least one REF or image ID")
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range c.Args().Slice() {
		did, err := s.Remove(c.Context, ref)
		for _, line := range did {
			fmt.Fprintln(c.App.Writer, line)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func imagePrune(c *cli.Context) error {
	s, err := openStore(c)
	if err != nil {
		return err
	}
	p, err := s.Prune(c.Context)
	fmt.Fprintf(c.App.Writer, "Deleted %d layers and %d blobs, reclaimed %s\n", p.Snapshots, p.Blobs, humanSize(p.Bytes))
	return err
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

// humanSize in decimal units, as docker shows sizes.
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f, i := float64(n), 0
	for f >= 1000 && i < len(units)-1 {
		f, i = f/1000, i+1
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}
