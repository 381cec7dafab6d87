// Package kubernetes holds the manifests that run wa-sidecar's cluster
// mode on Kubernetes (a StatefulSet of supervisors, their Services, the
// config and keys, an etcd); see README.md. Its test decodes every
// manifest strictly into the Kubernetes API types, so a typo fails the
// build instead of a rollout, and loads the embedded config.toml as the
// supervisor would. Only this package pulls k8s.io/api.
package kubernetes
