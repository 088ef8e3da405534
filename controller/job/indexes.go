package job

import (
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// indexSet is a set of completion indexes.
type indexSet map[int]bool

// String is the API's form of a set of indexes: increasing, runs of three
// or more as "first-last", "1,3-5,7".
func (s indexSet) String() string {
	ixs := make([]int, 0, len(s))
	for ix := range s {
		ixs = append(ixs, ix)
	}
	slices.Sort(ixs)
	var b strings.Builder
	for i := 0; i < len(ixs); {
		j := i
		for j+1 < len(ixs) && ixs[j+1] == ixs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ixs[i]))
		switch {
		case j == i+1:
			b.WriteString("," + strconv.Itoa(ixs[j]))
		case j > i+1:
			b.WriteString("-" + strconv.Itoa(ixs[j]))
		}
		i = j + 1
	}
	return b.String()
}

// parseIndexes reads the API's form of a set of indexes, keeping those
// below completions and skipping what does not parse (as the controller
// does with a corrupted status).
func parseIndexes(s string, completions int) indexSet {
	set := indexSet{}
	if s == "" {
		return set
	}
	for _, part := range strings.Split(s, ",") {
		first, last, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(first)
		if err != nil || a < 0 {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(last); err != nil {
				continue
			}
		}
		for ix := a; ix <= b && ix < completions; ix++ {
			set[ix] = true
		}
	}
	return set
}

// completionIndex is a pod's batch.kubernetes.io/job-completion-index
// annotation, -1 when it has none that is valid.
func completionIndex(p *corev1.Pod) int {
	return annotationInt(p, batchv1.JobCompletionIndexAnnotation, -1)
}

func annotationInt(p *corev1.Pod, key string, missing int) int {
	v, ok := p.Annotations[key]
	if !ok {
		return missing
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return missing
	}
	return n
}
