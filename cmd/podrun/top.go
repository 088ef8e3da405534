package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

func init() { commands = append(commands, topCommand) }

var topCommand = &cli.Command{
	Name:  "top",
	Usage: "show the CPU and memory use of pods, read from their cgroups",
	Subcommands: []*cli.Command{{
		Name:      "pod",
		Aliases:   []string{"pods", "po"},
		Usage:     "CPU (cores, over half a second) and memory (working set) of running pods",
		ArgsUsage: "[NAME]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "containers", Usage: "one line per container"},
			namespaceFlag(), socketFlag(),
		},
		Action: topPod,
	}},
}

func topPod(c *cli.Context) error {
	pos, _, err := args(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	cl := newClient(c)
	ns := c.String("namespace")
	var names []string
	if len(pos) > 0 {
		names = pos
	} else {
		var list corev1.PodList
		if err := cl.List(c.Context, api.Pods, ns, client.Selector{Field: "status.phase=Running"}, &list); err != nil {
			return apiError(err)
		}
		for _, p := range list.Items {
			names = append(names, p.Name)
		}
		if len(names) == 0 {
			fmt.Fprintf(c.App.ErrWriter, "No resources found in %s namespace.\n", ns)
			return nil
		}
	}
	tw := tabwriter.NewWriter(c.App.Writer, 6, 4, 3, ' ', 0)
	if c.Bool("containers") {
		fmt.Fprintln(tw, "POD\tNAME\tCPU(cores)\tMEMORY(bytes)")
	} else {
		fmt.Fprintln(tw, "NAME\tCPU(cores)\tMEMORY(bytes)")
	}
	for _, n := range names {
		m, err := cl.Metrics(c.Context, ns, n)
		if err != nil {
			return apiError(err)
		}
		var cpu, mem resource.Quantity
		for _, cm := range m.Containers {
			cc, cmem := cm.Usage[corev1.ResourceCPU], cm.Usage[corev1.ResourceMemory]
			if c.Bool("containers") {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, cm.Name, cores(cc), mebibytes(cmem))
			}
			cpu.Add(cc)
			mem.Add(cmem)
		}
		if !c.Bool("containers") {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Name, cores(cpu), mebibytes(mem))
		}
	}
	return tw.Flush()
}

// cores and mebibytes are kubectl top's units: 12m, 34Mi.
func cores(q resource.Quantity) string { return fmt.Sprintf("%dm", q.MilliValue()) }

func mebibytes(q resource.Quantity) string { return fmt.Sprintf("%dMi", q.Value()/(1024*1024)) }
