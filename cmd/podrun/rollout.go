package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

// scale and rollout change a Deployment the way kubectl's do, by applying
// the Deployment again with the change: the daemon rolls it out.

func init() { commands = append(commands, scaleCommand, rolloutCommand) }

var scaleCommand = &cli.Command{
	Name:      "scale",
	Usage:     "set a Deployment's replicas",
	ArgsUsage: "deployment/NAME --replicas N",
	Flags:     []cli.Flag{&cli.IntFlag{Name: "replicas", Value: -1, Usage: "the new number of replicas"}, namespaceFlag(), socketFlag()},
	Action: func(c *cli.Context) error {
		name, err := deploymentArg(c)
		if err != nil {
			return err
		}
		n := c.Int("replicas")
		if n < 0 {
			return cli.Exit("scale: give --replicas N", 2)
		}
		return changeDeployment(c, name, "scaled", func(d *appsv1.Deployment, _ []appsv1.ReplicaSet) error {
			r := int32(n)
			d.Spec.Replicas = &r
			return nil
		})
	},
}

var rolloutCommand = &cli.Command{
	Name:  "rollout",
	Usage: "follow, restart or undo a Deployment's rollout",
	Subcommands: []*cli.Command{
		{
			Name: "status", Usage: "wait until the Deployment has rolled out", ArgsUsage: "deployment/NAME",
			Flags:  []cli.Flag{&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up after this long"}, namespaceFlag(), socketFlag()},
			Action: rolloutStatus,
		},
		{
			Name: "restart", Usage: "roll every pod of the Deployment anew", ArgsUsage: "deployment/NAME",
			Flags: []cli.Flag{namespaceFlag(), socketFlag()},
			Action: func(c *cli.Context) error {
				name, err := deploymentArg(c)
				if err != nil {
					return err
				}
				return changeDeployment(c, name, "restarted", restartedAt)
			},
		},
		{
			Name: "undo", Usage: "roll back to the previous revision (or --to-revision)", ArgsUsage: "deployment/NAME",
			Flags: []cli.Flag{&cli.Int64Flag{Name: "to-revision", Usage: "the revision to go back to (0: the previous one)"}, namespaceFlag(), socketFlag()},
			Action: func(c *cli.Context) error {
				name, err := deploymentArg(c)
				if err != nil {
					return err
				}
				return changeDeployment(c, name, "rolled back", func(d *appsv1.Deployment, sets []appsv1.ReplicaSet) error {
					rs, err := revisionOf(d, sets, c.Int64("to-revision"))
					if err != nil {
						return err
					}
					t := rs.Spec.Template.DeepCopy()
					delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
					d.Spec.Template = *t
					return nil
				})
			},
		},
	},
}

// deploymentArg takes "deployment/NAME" or "deployment NAME".
func deploymentArg(c *cli.Context) (string, error) {
	pos, _, err := args(c)
	if err != nil {
		return "", cli.Exit(err.Error(), 2)
	}
	if len(pos) == 1 {
		pos = strings.SplitN(pos[0], "/", 2)
	}
	if len(pos) != 2 {
		return "", cli.Exit(c.Command.FullName()+": give deployment/NAME", 2)
	}
	if r, err := resourceNamed(pos[0]); err != nil || r != api.Deployments {
		return "", cli.Exit(c.Command.FullName()+": only Deployments: "+pos[0], 2)
	}
	return pos[1], nil
}

// changeDeployment gets the Deployment and its ReplicaSets, changes it
// and applies it again.
func changeDeployment(c *cli.Context, name, did string, change func(*appsv1.Deployment, []appsv1.ReplicaSet) error) error {
	err := modifyDeployment(c.Context, newClient(c), c.String("namespace"), name, change)
	var ce changeError
	if errors.As(err, &ce) {
		return cli.Exit(c.Command.FullName()+": "+ce.err.Error(), 1)
	}
	if err != nil {
		return apiError(err)
	}
	fmt.Fprintf(c.App.Writer, "%s %s\n", typeName(api.Deployments, name), did)
	return nil
}

// changeError is a refusal of a change function, not of the API.
type changeError struct{ err error }

func (e changeError) Error() string { return e.err.Error() }

// restartedAt is rollout restart's change: a new template annotation.
func restartedAt(d *appsv1.Deployment, _ []appsv1.ReplicaSet) error {
	if d.Spec.Template.Annotations == nil {
		d.Spec.Template.Annotations = map[string]string{}
	}
	d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = time.Now().Format(time.RFC3339)
	return nil
}

// modifyDeployment applies change to the Deployment (given its ReplicaSets).
func modifyDeployment(ctx context.Context, cl *client.Client, ns, name string, change func(*appsv1.Deployment, []appsv1.ReplicaSet) error) error {
	var d appsv1.Deployment
	if err := cl.Get(ctx, api.Deployments, ns, name, &d); err != nil {
		return err
	}
	var sets appsv1.ReplicaSetList
	if err := cl.List(ctx, api.ReplicaSets, ns, client.Selector{}, &sets); err != nil {
		return err
	}
	var own []appsv1.ReplicaSet
	for _, rs := range sets.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			own = append(own, rs)
		}
	}
	n := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: d.Labels, Annotations: d.Annotations},
		Spec:       *d.Spec.DeepCopy(),
	}
	if err := change(n, own); err != nil {
		return changeError{err}
	}
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, err = cl.Apply(ctx, "deployment/"+name, data)
	return err
}

// revisionOf is the ReplicaSet of revision rev, or of the one before the
// current when rev is 0.
func revisionOf(d *appsv1.Deployment, sets []appsv1.ReplicaSet, rev int64) (*appsv1.ReplicaSet, error) {
	revOf := func(rs *appsv1.ReplicaSet) int64 {
		n, _ := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
		return n
	}
	sort.Slice(sets, func(i, j int) bool { return revOf(&sets[i]) > revOf(&sets[j]) })
	if rev == 0 {
		if len(sets) < 2 {
			return nil, fmt.Errorf("no rollout history found for deployment %q", d.Name)
		}
		return &sets[1], nil
	}
	for i := range sets {
		if revOf(&sets[i]) == rev {
			return &sets[i], nil
		}
	}
	return nil, fmt.Errorf("unable to find specified revision %d in history", rev)
}

// rolloutStatus prints kubectl's rollout-status messages until the
// Deployment has rolled out.
func rolloutStatus(c *cli.Context) error {
	name, err := deploymentArg(c)
	if err != nil {
		return err
	}
	cl, ns := newClient(c), c.String("namespace")
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	last := ""
	for {
		var d appsv1.Deployment
		if err := cl.Get(ctx, api.Deployments, ns, name, &d); err != nil {
			return apiError(err)
		}
		msg, done, err := statusMessage(&d)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		if msg != last {
			fmt.Fprintln(c.App.Writer, msg)
			last = msg
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return cli.Exit("rollout status: timed out waiting for the condition", 1)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// statusMessage is kubectl's DeploymentStatusViewer.
func statusMessage(d *appsv1.Deployment) (string, bool, error) {
	if d.Generation > d.Status.ObservedGeneration {
		return "Waiting for deployment spec update to be observed...", false, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return "", false, fmt.Errorf("deployment %q exceeded its progress deadline", d.Name)
		}
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case st.UpdatedReplicas < want:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", d.Name, st.UpdatedReplicas, want), false, nil
	case st.Replicas > st.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", d.Name, st.Replicas-st.UpdatedReplicas), false, nil
	case st.AvailableReplicas < st.UpdatedReplicas:
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", d.Name, st.AvailableReplicas, st.UpdatedReplicas), false, nil
	}
	return fmt.Sprintf("deployment %q successfully rolled out", d.Name), true, nil
}
