package job

import (
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/podspec"
)

// verdict is what the Job's podFailurePolicy says of one failed pod.
type verdict struct {
	action *batchv1.PodFailurePolicyAction // the matched rule's action, nil when none matched
	count  bool                            // counts against backoffLimit (and backoffLimitPerIndex)
	msg    string                          // for FailJob: the Job's condition message
}

// judge matches a failed pod against the rules in order; the first rule
// that matches decides. Without a policy, or when no rule matches, the
// failure counts. An onExitCodes rule looks at terminated containers with a
// non-zero exit code, app containers before init containers; an
// onPodConditions rule at the pod's conditions.
func judge(policy *batchv1.PodFailurePolicy, p *corev1.Pod) verdict {
	if policy == nil {
		return verdict{count: true}
	}
	for i, rule := range policy.Rules {
		var msg string
		switch {
		case rule.OnExitCodes != nil:
			cs := matchExitCodes(&p.Status, rule.OnExitCodes)
			if cs == nil {
				continue
			}
			msg = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %d matching %s rule at index %d",
				cs.Name, p.Namespace, p.Name, cs.State.Terminated.ExitCode, rule.Action, i)
		case rule.OnPodConditions != nil:
			c := matchConditions(&p.Status, rule.OnPodConditions)
			if c == nil {
				continue
			}
			msg = fmt.Sprintf("Pod %s/%s has condition %s matching %s rule at index %d", p.Namespace, p.Name, c.Type, rule.Action, i)
		default:
			continue
		}
		a := rule.Action
		v := verdict{action: &a, count: a != batchv1.PodFailurePolicyActionIgnore}
		if a == batchv1.PodFailurePolicyActionFailJob {
			v.msg = msg
		}
		return v
	}
	return verdict{count: true}
}

func matchExitCodes(st *corev1.PodStatus, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{st.ContainerStatuses, st.InitContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 || req.ContainerName != nil && *req.ContainerName != cs.Name {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			switch req.Operator {
			case batchv1.PodFailurePolicyOnExitCodesOpIn:
				if in {
					return cs
				}
			case batchv1.PodFailurePolicyOnExitCodesOpNotIn:
				if !in {
					return cs
				}
			}
		}
	}
	return nil
}

func matchConditions(st *corev1.PodStatus, pats []batchv1.PodFailurePolicyOnPodConditionsPattern) *corev1.PodCondition {
	for i := range st.Conditions {
		for _, pat := range pats {
			if st.Conditions[i].Type == pat.Type && st.Conditions[i].Status == pat.Status {
				return &st.Conditions[i]
			}
		}
	}
	return nil
}

// successMet matches the succeeded indexes against an Indexed Job's
// successPolicy: the first rule met gives the SuccessCriteriaMet message.
// A rule with succeededIndexes is met when all of them succeeded, or
// succeededCount of them; a rule with succeededCount alone when that many
// indexes succeeded.
func successMet(policy *batchv1.SuccessPolicy, completions int, succeeded indexSet) (string, bool) {
	if policy == nil || len(succeeded) == 0 {
		return "", false
	}
	for i, rule := range policy.Rules {
		if rule.SucceededIndexes != nil {
			want := parseIndexes(*rule.SucceededIndexes, completions)
			if len(want) == 0 {
				continue
			}
			n := 0
			for ix := range want {
				if succeeded[ix] {
					n++
				}
			}
			if n == len(want) || rule.SucceededCount != nil && n >= int(*rule.SucceededCount) {
				return fmt.Sprintf("Matched rules at index %d", i), true
			}
		} else if rule.SucceededCount != nil && len(succeeded) >= int(*rule.SucceededCount) {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}

// restarts is the sum of a pod's container restart counts.
func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range podspec.Statuses(&p.Status) {
		n += cs.RestartCount
	}
	return n
}

func podReady(p *corev1.Pod) bool { return podspec.Ready(p) }
