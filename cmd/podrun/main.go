// Command podrun runs Kubernetes Pod YAML on one Linux machine with the
// kubelet's semantics. One binary plays every role: the foreground runner,
// the daemon, the per-pod shim, the client verbs, and libcontainer's init.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	goruntime "runtime"
	"sort"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/internal/buildinfo"
	_ "github.com/podrun/podrun/runtime/reexec"
)

func init() {
	// libcontainer re-executes this binary as "podrun init" inside every new
	// container: the blank import of runtime/reexec handles that (and never
	// returns) before most packages are initialised.
	//
	// Keep the main goroutine on the main thread for the life of the process,
	// so no namespace-switching goroutine can ever be scheduled on (and wedge)
	// the thread-group leader. See DESIGN.md "hard-won facts".
	goruntime.LockOSThread()
}

// commands is filled by the init() of each command's file, one command per file.
var commands []*cli.Command

func main() {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	app := &cli.App{
		Name:                 "podrun",
		Usage:                "run Kubernetes Pod YAML on this machine, with the kubelet's semantics",
		Version:              buildinfo.String(),
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"PODRUN_LOG_LEVEL"}},
		},
		Before: func(c *cli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
		Commands: commands,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunContext(ctx, os.Args); err != nil {
		code := 1
		if e, ok := err.(cli.ExitCoder); ok {
			code = e.ExitCode()
			if msg := e.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "podrun:", msg)
			}
		} else {
			fmt.Fprintln(os.Stderr, "podrun:", err)
		}
		os.Exit(code)
	}
}
