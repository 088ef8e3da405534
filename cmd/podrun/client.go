package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

// What the client verbs share: the daemon's socket, the namespace, and
// kubectl's habits (flags after arguments, TYPE/NAME, its error lines).

func socketFlag() cli.Flag {
	return &cli.StringFlag{Name: "socket", Value: client.DefaultSocket, Usage: "the podrun daemon's API socket", EnvVars: []string{"PODRUN_SOCKET"}}
}

func namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", Usage: "the namespace"}
}

func newClient(c *cli.Context) *client.Client { return client.New(c.String("socket")) }

// args returns the positional arguments after taking the flags kubectl
// users put after them ("get pods -o wide"), which urfave/cli leaves
// unparsed; everything after "--" stays an argument, and rest is it.
func args(c *cli.Context) (pos, rest []string, err error) {
	in := c.Args().Slice()
	bools := map[string]bool{}
	known := map[string]bool{}
	aliases := map[string][]string{} // every name of a flag, by each of its names
	for _, f := range c.Command.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			known[n], bools[n], aliases[n] = true, isBool, f.Names()
		}
	}
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			return pos, in[i+1:], nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var names []string
		switch {
		case known[name]:
			names = []string{name}
		case !strings.HasPrefix(a, "--") && !hasValue:
			// combined short options: -it
			for _, r := range name {
				names = append(names, string(r))
			}
		default:
			return nil, nil, fmt.Errorf("unknown flag %s", a)
		}
		for j, n := range names {
			switch {
			case !known[n]:
				return nil, nil, fmt.Errorf("unknown flag %s", a)
			case bools[n]:
				if !hasValue {
					value = "true"
				}
			case hasValue:
			case j == len(names)-1 && i+1 < len(in):
				i++
				value = in[i]
			default:
				return nil, nil, fmt.Errorf("flag %s needs a value", a)
			}
			for _, alias := range aliases[n] {
				if err := c.Set(alias, value); err != nil {
					return nil, nil, fmt.Errorf("flag %s: %w", a, err)
				}
			}
		}
	}
	return pos, nil, nil
}

// resources maps kubectl's names and short names to the API's.
var resourceNames = map[string]api.Resource{
	"pod": api.Pods, "pods": api.Pods, "po": api.Pods,
	"deployment": api.Deployments, "deployments": api.Deployments, "deploy": api.Deployments,
	"deployment.apps": api.Deployments, "deployments.apps": api.Deployments,
	"replicaset": api.ReplicaSets, "replicasets": api.ReplicaSets, "rs": api.ReplicaSets,
	"replicaset.apps": api.ReplicaSets, "replicasets.apps": api.ReplicaSets,
	"job": api.Jobs, "jobs": api.Jobs, "job.batch": api.Jobs, "jobs.batch": api.Jobs,
	"configmap": api.ConfigMaps, "configmaps": api.ConfigMaps, "cm": api.ConfigMaps,
	"secret": api.Secrets, "secrets": api.Secrets,
	"event": api.Events, "events": api.Events, "ev": api.Events,
}

func resourceNamed(name string) (api.Resource, error) {
	r, ok := resourceNames[strings.ToLower(name)]
	if !ok {
		return api.Resource{}, fmt.Errorf("the server doesn't have a resource type %q", name)
	}
	return r, nil
}

// kindResource is the resource of an object's kind (as in a manifest).
func kindResource(kind string) (api.Resource, bool) {
	for _, r := range api.Resources {
		if r.Kind == kind {
			return r, true
		}
	}
	return api.Resource{}, false
}

// typeName is how kubectl names an object in its messages: pod/x,
// deployment.apps/x, job.batch/x.
func typeName(r api.Resource, name string) string {
	t := strings.ToLower(r.Kind)
	if r.Group != "" {
		t += "." + r.Group
	}
	return t + "/" + name
}

// objectRefs reads "TYPE NAME..." or "TYPE/NAME..." (defaultType when the
// arguments are bare names and it is not empty).
func objectRefs(pos []string, defaultType string) (refs []objectRef, err error) {
	if len(pos) == 0 {
		return nil, errors.New("no object named (TYPE NAME or TYPE/NAME)")
	}
	if strings.Contains(pos[0], "/") {
		for _, a := range pos {
			t, n, ok := strings.Cut(a, "/")
			if !ok || n == "" {
				return nil, fmt.Errorf("%q: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form", a)
			}
			r, err := resourceNamed(t)
			if err != nil {
				return nil, err
			}
			refs = append(refs, objectRef{r, n})
		}
		return refs, nil
	}
	if r, err := resourceNamed(pos[0]); err == nil {
		for _, n := range pos[1:] {
			refs = append(refs, objectRef{r, n})
		}
		if len(refs) == 0 {
			return nil, fmt.Errorf("no %s named", r.Name)
		}
		return refs, nil
	}
	if defaultType == "" {
		return nil, fmt.Errorf("the server doesn't have a resource type %q", pos[0])
	}
	r, _ := resourceNamed(defaultType)
	for _, n := range pos {
		refs = append(refs, objectRef{r, n})
	}
	return refs, nil
}

type objectRef struct {
	r    api.Resource
	name string
}

// podName takes POD or pod/POD.
func podName(a string) (string, error) {
	if t, n, ok := strings.Cut(a, "/"); ok {
		if r, err := resourceNamed(t); err != nil || r != api.Pods {
			return "", fmt.Errorf("%q: only pods are supported here", a)
		}
		return n, nil
	}
	return a, nil
}

// apiError is how kubectl prints an error: "Error from server (NotFound):
// pods "x" not found" for the server's, the error itself for the others.
func apiError(err error) error {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		return cli.Exit(fmt.Sprintf("Error from server (%s): %s", st.Reason, st.Message), 1)
	}
	return cli.Exit(err.Error(), 1)
}
