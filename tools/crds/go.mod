// The upstream modules whose CustomResourceDefinitions the tests validate against: fetch.py
// downloads them (go.sum pins each module's content) and extracts the CRDs it names.
module roadbike/tools/crds

go 1.26.0

require (
	github.com/argoproj/argo-rollouts v1.9.1
	github.com/cert-manager/cert-manager v1.21.1
	github.com/chaos-mesh/chaos-mesh v0.9.1-0.20260902003049-47411975a8cb
	github.com/prometheus-operator/prometheus-operator v0.93.0
	github.com/sigstore/policy-controller v0.15.1
)
