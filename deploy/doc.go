// Package deploy holds the tests of the deployment files: the Dockerfile,
// the container image layout, the Kubernetes manifests, the systemd unit and
// the monitoring rules. It is a module of its own so that the libraries
// those tests parse with (BuildKit, go-containerregistry, the Kubernetes API
// types, Prometheus) never enter approvebot's own module graph.
package deploy
