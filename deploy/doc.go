// Package deploy holds what runs llm-observer for real: the Kubernetes
// manifests, the systemd unit, and tests that check them and the
// Dockerfile against what the agent needs. It has no code of its own.
package deploy
