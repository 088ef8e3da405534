package manifest

import (
	"fmt"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The API server's limits on a Job's policies.
const (
	maxPodFailurePolicyRules   = 20
	maxExitCodeValues          = 255
	maxPodConditionPatterns    = 20
	maxSuccessPolicyRules      = 20
	maxSuccessPolicyIndexChars = 64 * 1024
)

// validatePodFailurePolicy is ValidateJobSpec's part for spec.podFailurePolicy.
func validatePodFailurePolicy(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	rp := p.Child("rules")
	if len(s.PodFailurePolicy.Rules) > maxPodFailurePolicyRules {
		errs = append(errs, field.TooMany(rp, len(s.PodFailurePolicy.Rules), maxPodFailurePolicyRules))
	}
	names := map[string]bool{}
	for _, c := range append(append([]corev1.Container{}, s.Template.Spec.InitContainers...), s.Template.Spec.Containers...) {
		names[c.Name] = true
	}
	actions := []batchv1.PodFailurePolicyAction{batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyActionCount}
	if s.BackoffLimitPerIndex != nil {
		actions = append(actions, batchv1.PodFailurePolicyActionFailIndex)
	}
	for i, r := range s.PodFailurePolicy.Rules {
		p := rp.Index(i)
		errs = append(errs, validateEnum(p.Child("action"), r.Action, actions...)...)
		switch {
		case r.OnExitCodes != nil && r.OnPodConditions != nil:
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, "specifying both OnExitCodes and OnPodConditions is not supported"))
		case r.OnExitCodes != nil:
			errs = append(errs, validateOnExitCodes(r.OnExitCodes, names, p.Child("onExitCodes"))...)
		case r.OnPodConditions != nil:
			cp := p.Child("onPodConditions")
			if len(r.OnPodConditions) > maxPodConditionPatterns {
				errs = append(errs, field.TooMany(cp, len(r.OnPodConditions), maxPodConditionPatterns))
			}
			for k, pat := range r.OnPodConditions {
				errs = append(errs, validateEnum(cp.Index(k).Child("status"), pat.Status, corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown)...)
				if pat.Type == "" {
					errs = append(errs, field.Required(cp.Index(k).Child("type"), ""))
				}
			}
		default:
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, "specifying one of OnExitCodes and OnPodConditions is required"))
		}
	}
	return errs
}

func validateOnExitCodes(req *batchv1.PodFailurePolicyOnExitCodesRequirement, names map[string]bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if req.ContainerName != nil && !names[*req.ContainerName] {
		errs = append(errs, field.Invalid(p.Child("containerName"), *req.ContainerName, "must be one of the container or initContainer names in the pod template"))
	}
	errs = append(errs, validateEnum(p.Child("operator"), req.Operator, batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn)...)
	vp := p.Child("values")
	switch {
	case len(req.Values) == 0:
		errs = append(errs, field.Invalid(vp, req.Values, "at least one value is required"))
	case len(req.Values) > maxExitCodeValues:
		errs = append(errs, field.TooMany(vp, len(req.Values), maxExitCodeValues))
	}
	seen := map[int32]bool{}
	for i, v := range req.Values {
		switch {
		case req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0:
			errs = append(errs, field.Invalid(vp.Index(i), v, "must not be 0 for the In operator"))
		case seen[v]:
			errs = append(errs, field.Duplicate(vp.Index(i), v))
		case i > 0 && req.Values[i-1] > v:
			errs = append(errs, field.Invalid(vp.Index(i), v, "must be ordered"))
		}
		seen[v] = true
	}
	return errs
}

// validateSuccessPolicy is ValidateJobSpec's part for spec.successPolicy
// of an Indexed Job.
func validateSuccessPolicy(s *batchv1.JobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	rp := p.Child("rules")
	rules := s.SuccessPolicy.Rules
	switch {
	case len(rules) == 0:
		errs = append(errs, field.Required(rp, "at least one rules must be specified when the successPolicy is specified"))
	case len(rules) > maxSuccessPolicyRules:
		errs = append(errs, field.TooMany(rp, len(rules), maxSuccessPolicyRules))
	}
	completions := 0
	if s.Completions != nil {
		completions = int(*s.Completions)
	}
	for i, r := range rules {
		p := rp.Index(i)
		if r.SucceededIndexes == nil && r.SucceededCount == nil {
			errs = append(errs, field.Required(p, "at least one of succeededCount or succeededIndexes must be specified"))
			continue
		}
		size := -1
		if r.SucceededIndexes != nil {
			ip := p.Child("succeededIndexes")
			n, err := countIndexes(*r.SucceededIndexes, completions)
			switch {
			case len(*r.SucceededIndexes) > maxSuccessPolicyIndexChars:
				errs = append(errs, field.TooLong(ip, *r.SucceededIndexes, maxSuccessPolicyIndexChars))
			case err != nil:
				errs = append(errs, field.Invalid(ip, *r.SucceededIndexes, "error parsing succeededIndexes: "+err.Error()))
			default:
				size = n
			}
		}
		if c := r.SucceededCount; c != nil {
			cp := p.Child("succeededCount")
			switch {
			case *c < 0:
				errs = append(errs, field.Invalid(cp, *c, "must be greater than or equal to 0"))
			case int(*c) > completions:
				errs = append(errs, field.Invalid(cp, *c, fmt.Sprintf("must be less than or equal to %d (the number of specified completions)", completions)))
			case size >= 0 && int(*c) > size:
				errs = append(errs, field.Invalid(cp, *c, fmt.Sprintf("must be less than or equal to %d (the number of indexes in the specified succeededIndexes field)", size)))
			}
		}
	}
	return errs
}

// countIndexes checks a set of indexes ("1,3-5") as the API server does:
// increasing, non-overlapping intervals below completions; it returns how
// many indexes it holds.
func countIndexes(s string, completions int) (int, error) {
	n, last := 0, -1
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(a)
		if err != nil {
			return 0, fmt.Errorf("cannot convert string to integer for index: %q", a)
		}
		end := first
		if isRange {
			if end, err = strconv.Atoi(b); err != nil {
				return 0, fmt.Errorf("cannot convert string to integer for index: %q", b)
			}
		}
		switch {
		case first < 0 || end >= completions:
			return 0, fmt.Errorf("too large index: %q", part)
		case end < first:
			return 0, fmt.Errorf("non-increasing order, previous: %d, current: %d", first, end)
		case first <= last:
			return 0, fmt.Errorf("overlapping or non-increasing intervals, previous: %d, current: %d", last, first)
		}
		n += end - first + 1
		last = end
	}
	return n, nil
}
