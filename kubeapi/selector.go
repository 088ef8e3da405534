package kubeapi

import (
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/podrun/podrun/api"
)

// selector reads labelSelector and fieldSelector. A field selector may
// name only the fields the API server indexes for that kind and podrun
// keeps; any other is a 400, as the API server answers.
func selector(k *kind, q url.Values) (func(api.Object) bool, error) {
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	for _, req := range fs.Requirements() {
		if _, ok := fieldSet(k, nil)[req.Field]; !ok {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
		}
	}
	return func(o api.Object) bool {
		return ls.Matches(labels.Set(o.GetLabels())) && fs.Matches(fieldSet(k, o))
	}, nil
}

// fieldSet is what a field selector can select on; with o nil it only
// names the fields (all empty).
func fieldSet(k *kind, o api.Object) fields.Set {
	set := fields.Set{"metadata.name": "", "metadata.namespace": ""}
	if o != nil {
		set["metadata.name"], set["metadata.namespace"] = o.GetName(), o.GetNamespace()
	}
	switch k.Resource {
	case api.Pods:
		p, _ := o.(*corev1.Pod)
		if p == nil {
			p = &corev1.Pod{}
		}
		set["spec.nodeName"] = p.Spec.NodeName
		set["status.phase"] = string(p.Status.Phase)
	case api.Secrets:
		s, _ := o.(*corev1.Secret)
		if s == nil {
			s = &corev1.Secret{}
		}
		set["type"] = string(s.Type)
	case api.Events:
		e, _ := o.(*corev1.Event)
		if e == nil {
			e = &corev1.Event{}
		}
		set["involvedObject.kind"] = e.InvolvedObject.Kind
		set["involvedObject.namespace"] = e.InvolvedObject.Namespace
		set["involvedObject.name"] = e.InvolvedObject.Name
		set["involvedObject.uid"] = string(e.InvolvedObject.UID)
		set["involvedObject.apiVersion"] = e.InvolvedObject.APIVersion
		set["involvedObject.resourceVersion"] = e.InvolvedObject.ResourceVersion
		set["involvedObject.fieldPath"] = e.InvolvedObject.FieldPath
		set["reason"] = e.Reason
		set["reportingComponent"] = e.ReportingController
		set["source"] = e.Source.Component
		set["type"] = e.Type
	case namespacesResource:
		n, _ := o.(*corev1.Namespace)
		if n == nil {
			n = &corev1.Namespace{}
		}
		set["status.phase"] = string(n.Status.Phase)
	}
	return set
}
