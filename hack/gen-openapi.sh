#!/bin/bash
# Regenerates kubeapi/openapi-schemas.json: the OpenAPI v3 schemas of the
# kinds kubeapi serves, from k8s.io/api's sources at the version of go.mod,
# through kube-openapi's openapi-gen and builder3 (hack/openapi, a module of
# its own so that its generator dependencies stay out of podrun's).
set -euo pipefail
cd "$(dirname "$0")/openapi"
export GOFLAGS=-mod=mod
go build -o generated/openapi-gen k8s.io/kube-openapi/cmd/openapi-gen
: >generated/header.txt
generated/openapi-gen --output-dir generated --output-pkg podrun.dev/hack/openapi/generated \
  --output-file zz_generated.openapi.go --go-header-file generated/header.txt -r generated/violations.txt \
  k8s.io/api/core/v1 k8s.io/api/apps/v1 k8s.io/api/batch/v1 k8s.io/api/autoscaling/v1 \
  k8s.io/api/scheduling/v1alpha3 \
  k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version \
  k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/util/intstr
go run . ../../kubeapi/openapi-schemas.json
rm -rf generated
