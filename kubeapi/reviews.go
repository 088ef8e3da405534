package kubeapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/podrun/podrun/api"
)

// The self-subject reviews kubectl auth can-i and auth whoami create.
var (
	accessReviews = api.Resource{Name: "selfsubjectaccessreviews", Group: authorizationv1.GroupName, Version: "v1",
		Kind: "SelfSubjectAccessReview"}
	rulesReviews = api.Resource{Name: "selfsubjectrulesreviews", Group: authorizationv1.GroupName, Version: "v1",
		Kind: "SelfSubjectRulesReview"}
	subjectReviews = api.Resource{Name: "selfsubjectreviews", Group: authenticationv1.GroupName, Version: "v1",
		Kind: "SelfSubjectReview"}
)

func isReview(k *kind) bool {
	return k.Resource == accessReviews || k.Resource == rulesReviews || k.Resource == subjectReviews
}

type userKey struct{}

// withUser is r with the user that Authenticate found.
func withUser(r *http.Request, u authenticationv1.UserInfo) *http.Request {
	u.Groups = append(u.Groups, "system:authenticated")
	return r.WithContext(context.WithValue(r.Context(), userKey{}, u))
}

// certUser is the user a client certificate names, as the API server
// reads it: the common name, and the organizations as groups.
func certUser(c *x509.Certificate) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: c.Subject.CommonName, Groups: append([]string(nil), c.Subject.Organization...)}
}

// tokenUser is the user of the bearer token: the admin the client
// certificate names too.
func tokenUser() authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: ClientUser, Groups: []string{"system:masters"}}
}

// review answers a self-subject review. There is no authorization: an
// authenticated user may do everything, so every access is allowed.
func (s *server) review(w http.ResponseWriter, r *http.Request, t target) {
	data, out, err := readBody(r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	var obj runtime.Object
	switch t.k.Resource {
	case accessReviews:
		v := &authorizationv1.SelfSubjectAccessReview{}
		err = json.Unmarshal(data, v)
		v.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "podrun authorizes every authenticated user"}
		obj = v
	case rulesReviews:
		v := &authorizationv1.SelfSubjectRulesReview{}
		err = json.Unmarshal(data, v)
		v.Status = authorizationv1.SubjectRulesReviewStatus{
			ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
			NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}}}
		obj = v
	case subjectReviews:
		u, _ := r.Context().Value(userKey{}).(authenticationv1.UserInfo)
		obj = &authenticationv1.SelfSubjectReview{Status: authenticationv1.SelfSubjectReviewStatus{UserInfo: u}}
	}
	if err != nil {
		api.WriteError(w, apierrors.NewBadRequest("the body is not a "+t.k.Kind+": "+err.Error()))
		return
	}
	obj.GetObjectKind().SetGroupVersionKind(t.k.gvk())
	if m, ok := obj.(metav1.Object); ok {
		m.SetCreationTimestamp(metav1.NewTime(s.cfg.Now()))
	}
	writeObject(w, out, http.StatusCreated, obj)
}
