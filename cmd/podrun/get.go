package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
	"github.com/podrun/podrun/internal/kubectl"
)

func init() { commands = append(commands, getCommand) }

var getCommand = &cli.Command{
	Name:      "get",
	Usage:     "list pods, deployments, jobs, configmaps, secrets or events as kubectl does",
	ArgsUsage: "TYPE [NAME...] | TYPE/NAME...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "wide, json, yaml or name"},
		&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "after listing, print each change"},
		&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "every namespace"},
		&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "label selector (k=v,k!=v,k in (a,b))"},
		&cli.StringFlag{Name: "field-selector", Usage: "field selector (metadata.name=x, status.phase=Running)"},
		&cli.BoolFlag{Name: "show-managed-fields", Usage: "with -o json or yaml, keep metadata.managedFields (kubectl drops them by default)"},
		namespaceFlag(), socketFlag(),
	},
	Action: getAction,
}

func getAction(c *cli.Context) error {
	pos, _, err := args(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if len(pos) == 0 {
		return cli.Exit("get: you must specify the type of resource to get (pods, deployments, jobs, configmaps, secrets, events)", 2)
	}
	format := c.String("output")
	switch format {
	case "", "wide", "json", "yaml", "name":
	default:
		return cli.Exit(fmt.Sprintf("get: -o %q: must be wide, json, yaml or name", format), 2)
	}
	var r api.Resource
	var names []string
	if strings.Contains(pos[0], "/") {
		refs, err := objectRefs(pos, "")
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		r = refs[0].r
		for _, ref := range refs {
			if ref.r != r {
				return cli.Exit("get: TYPE/NAME arguments must all be of one type here", 2)
			}
			names = append(names, ref.name)
		}
	} else {
		if r, err = resourceNamed(pos[0]); err != nil {
			return cli.Exit(err.Error(), 2)
		}
		names = pos[1:]
	}
	ns := c.String("namespace")
	if c.Bool("all-namespaces") {
		ns = ""
	}
	p := &printer{r: r, format: format, allNS: ns == "", now: time.Now(), managed: c.Bool("show-managed-fields")}
	cl := newClient(c)
	sel := client.Selector{Label: c.String("selector"), Field: c.String("field-selector")}
	if c.Bool("watch") {
		if len(names) > 1 {
			return cli.Exit("get: -w watches one name or all", 2)
		}
		if len(names) == 1 {
			sel.Field = joinSelector(sel.Field, "metadata.name="+names[0])
		}
		err := cl.Watch(c.Context, r, ns, sel, func(ev api.WatchEvent) error {
			p.now = time.Now()
			return p.watchRow(c.App.Writer, ev.Object)
		})
		if err != nil && c.Context.Err() == nil {
			return apiError(err)
		}
		return nil
	}

	var items []json.RawMessage
	var failed error
	if len(names) == 0 {
		var list struct{ Items []json.RawMessage }
		if err := cl.List(c.Context, r, ns, sel, &list); err != nil {
			return apiError(err)
		}
		items = list.Items
	}
	for _, n := range names {
		var raw json.RawMessage
		if err := cl.Get(c.Context, r, c.String("namespace"), n, &raw); err != nil {
			if !apierrors.IsNotFound(err) {
				return apiError(err)
			}
			fmt.Fprintf(c.App.ErrWriter, "Error from server (NotFound): %s\n", api.Problems(err)[0])
			failed = cli.Exit("", 1)
			continue
		}
		items = append(items, raw)
	}
	if len(items) == 0 {
		if failed == nil && format != "json" && format != "yaml" {
			where := fmt.Sprintf("in %s namespace", ns)
			if ns == "" {
				where = ""
			}
			fmt.Fprintln(c.App.ErrWriter, strings.TrimSpace("No resources found "+where)+".")
			return nil
		}
		if failed != nil {
			return failed
		}
	}
	if err := p.print(c.App.Writer, items, len(names) == 1); err != nil {
		return err
	}
	return failed
}

func joinSelector(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

// printer prints objects of one resource the way kubectl get does.
type printer struct {
	r      api.Resource
	format string
	allNS  bool
	now    time.Time
	header bool  // printed (watch)
	widths []int // column widths so far (watch)
	// managed keeps metadata.managedFields in json and yaml output.
	managed bool
}

func (p *printer) print(w io.Writer, items []json.RawMessage, single bool) error {
	switch p.format {
	case "json", "yaml":
		if single && len(items) == 1 {
			return writeObject(w, items[0], p.format, p.managed)
		}
		return writeList(w, items, p.format, p.managed)
	case "name":
		for _, raw := range items {
			var o struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			_ = json.Unmarshal(raw, &o)
			fmt.Fprintln(w, typeName(p.r, o.Metadata.Name))
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(p.columns(), "\t"))
	for _, raw := range items {
		row, err := p.row(raw)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// watchRow prints one row as it comes; columns only widen.
func (p *printer) watchRow(w io.Writer, raw json.RawMessage) error {
	switch p.format {
	case "json", "yaml":
		return writeObject(w, raw, p.format, p.managed)
	case "name":
		return p.print(w, []json.RawMessage{raw}, true)
	}
	row, err := p.row(raw)
	if err != nil {
		return err
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, cell := range cells {
			for len(p.widths) <= i {
				p.widths = append(p.widths, 0)
			}
			p.widths[i] = max(p.widths[i], len(cell)+3)
			if i == len(cells)-1 {
				b.WriteString(cell)
			} else {
				fmt.Fprintf(&b, "%-*s", p.widths[i], cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	cols := p.columns()
	for i, c := range cols {
		for len(p.widths) <= i {
			p.widths = append(p.widths, 0)
		}
		p.widths[i] = max(p.widths[i], len(c)+3, len(row[i])+3)
	}
	if !p.header {
		line(cols)
		p.header = true
	}
	line(row)
	return nil
}

func (p *printer) columns() []string {
	var cols []string
	switch p.r {
	case api.Pods:
		cols = []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
		if p.format == "wide" {
			cols = append(cols, "IP", "NODE", "NOMINATED NODE", "READINESS GATES")
		}
	case api.Deployments:
		cols = kubectl.DeploymentColumns
	case api.Jobs:
		cols = kubectl.JobColumns
	case api.ReplicaSets:
		cols = kubectl.ReplicaSetColumns
	case api.ConfigMaps:
		cols = kubectl.ConfigMapColumns
	case api.Secrets:
		cols = kubectl.SecretColumns
	case api.Events:
		cols = []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}
	}
	if p.allNS {
		cols = append([]string{"NAMESPACE"}, cols...)
	}
	return cols
}

func (p *printer) row(raw json.RawMessage) ([]string, error) {
	var row []string
	var ns string
	decode := func(v interface{ GetNamespace() string }) error {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("decoding a %s: %w", p.r.Kind, err)
		}
		ns = v.GetNamespace()
		return nil
	}
	switch p.r {
	case api.Pods:
		var o corev1.Pod
		if err := decode(&o); err != nil {
			return nil, err
		}
		pr := kubectl.Row(&o, p.now)
		row = []string{pr.Name, pr.Ready, pr.Status, pr.Restarts, pr.Age}
		if p.format == "wide" {
			gates := "<none>"
			if n := len(o.Spec.ReadinessGates); n > 0 {
				ok := 0
				for _, g := range o.Spec.ReadinessGates {
					for _, cond := range o.Status.Conditions {
						if cond.Type == g.ConditionType && cond.Status == corev1.ConditionTrue {
							ok++
						}
					}
				}
				gates = fmt.Sprintf("%d/%d", ok, n)
			}
			row = append(row, pr.IP, pr.Node, "<none>", gates)
		}
	case api.Deployments:
		var o appsv1.Deployment
		if err := decode(&o); err != nil {
			return nil, err
		}
		row = kubectl.DeploymentRow(&o, p.now)
	case api.Jobs:
		var o batchv1.Job
		if err := decode(&o); err != nil {
			return nil, err
		}
		row = kubectl.JobRow(&o, p.now)
	case api.ReplicaSets:
		var o appsv1.ReplicaSet
		if err := decode(&o); err != nil {
			return nil, err
		}
		row = kubectl.ReplicaSetRow(&o, p.now)
	case api.ConfigMaps:
		var o corev1.ConfigMap
		if err := decode(&o); err != nil {
			return nil, err
		}
		row = kubectl.ConfigMapRow(&o, p.now)
	case api.Secrets:
		var o corev1.Secret
		if err := decode(&o); err != nil {
			return nil, err
		}
		row = kubectl.SecretRow(&o, p.now)
	case api.Events:
		var o corev1.Event
		if err := decode(&o); err != nil {
			return nil, err
		}
		obj := strings.ToLower(o.InvolvedObject.Kind) + "/" + o.InvolvedObject.Name
		row = []string{kubectl.Since(o.LastTimestamp, p.now), o.Type, o.Reason, obj, strings.TrimSpace(o.Message)}
	}
	if p.allNS {
		row = append([]string{ns}, row...)
	}
	return row, nil
}

// writeObject prints one object as kubectl -o json|yaml does: keys sorted,
// JSON indented by four spaces, managedFields left out unless managed.
func writeObject(w io.Writer, raw json.RawMessage, format string, managed bool) error {
	m, err := decodeObject(raw, managed)
	if err != nil {
		return err
	}
	return encode(w, m, format)
}

// writeList prints objects as a v1 List, the way kubectl prints several
// (manifest.WriteList's shape, for any kind).
func writeList(w io.Writer, items []json.RawMessage, format string, managed bool) error {
	list := map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{"resourceVersion": ""}}
	objs := make([]any, 0, len(items))
	for _, raw := range items {
		m, err := decodeObject(raw, managed)
		if err != nil {
			return err
		}
		objs = append(objs, m)
	}
	list["items"] = objs
	return encode(w, list, format)
}

// decodeObject decodes raw keeping numbers as written. Without managed it
// drops metadata.managedFields, as kubectl's --show-managed-fields=false.
func decodeObject(raw json.RawMessage, managed bool) (any, error) {
	var m any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if obj, ok := m.(map[string]any); ok && !managed {
		if md, ok := obj["metadata"].(map[string]any); ok {
			delete(md, "managedFields")
		}
	}
	return m, nil
}

func encode(w io.Writer, v any, format string) error {
	if format == "yaml" {
		b, err := sigsyaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}
