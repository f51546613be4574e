// Package deploy holds QuantaSeal's deployment manifests and no code: Kubernetes (Envoy
// sidecar in the application's pod, a shared quantaseal Deployment, an Istio egress
// gateway), a compose file for a laptop and a hardened systemd unit. See docs/deploy.md.
//
// Its test decodes every manifest strictly into its typed object (k8s.io/api for
// Kubernetes kinds, istio.io/api protos through protojson for Istio kinds), checks the
// security baseline (non-root, read-only root filesystem, no capabilities, resources,
// probes, a PodDisruptionBudget per Deployment), checks that every QUANTASEAL_* variable
// is one the gateway knows, and regenerates the embedded Envoy bootstraps to catch drift
// (rewrite them with `go test ./deploy -update`).
package deploy
