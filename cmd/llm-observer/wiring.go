package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/discover"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/health"
	"github.com/llm-observer/llm-observer/internal/k8s"
	"github.com/llm-observer/llm-observer/internal/observer"
)

// identity names each process by, in order: the service name it gives
// itself, its Kubernetes workload, its executable; and adds its container
// and pod attributes when it runs in one.
func identity(pods *k8s.Cache) observer.Identity {
	return func(p *discover.Process) *export.Process {
		proc := observer.DefaultIdentity(p)
		ct, err := k8s.ParseCgroup(bytes.NewReader(p.Cgroup))
		if err != nil || ct.ID == "" {
			return proc
		}
		id, ok := pods.Lookup(ct)
		if !ok {
			proc.Attributes = append(proc.Attributes, semconv.ContainerID(ct.ID))
			return proc
		}
		proc.Attributes = append(proc.Attributes, id.Attributes()...)
		if p.ServiceName == "" {
			if name := id.ServiceName(); name != "" {
				proc.ServiceName = name
			}
		}
		return proc
	}
}

// startKubernetes watches this node's pods when running in a cluster; outside
// one it returns a cache that finds nothing, silently.
func startKubernetes(ctx context.Context) *k8s.Cache {
	pods, err := k8s.New(ctx, os.Getenv("K8S_NODE_NAME"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "llm-observer: no Kubernetes metadata:", err)
	}
	return pods
}

// promName turns an OTel-style dotted self-metric name into the Prometheus
// name the health registry prefixes with llm_observer_.
func promName(s observer.SelfSample) string {
	name := strings.ReplaceAll(strings.TrimPrefix(s.Name, "llm_observer."), ".", "_")
	if !s.Gauge {
		name += "_total"
	}
	return name
}

// registerHealthMetrics publishes the agent's and the kernel's counters on
// the health server's /metrics.
func registerHealthMetrics(reg *health.Registry, agent *observer.Agent, probe observer.KernelCounters) error {
	var errs []error
	for i, s := range observer.SelfSamples(agent, probe) {
		read := func() float64 {
			samples := observer.SelfSamples(agent, probe)
			if i < len(samples) {
				return samples[i].Value
			}
			return 0
		}
		var labels prometheus.Labels
		if s.Reason != "" {
			labels = prometheus.Labels{"reason": s.Reason}
		}
		if s.Gauge {
			errs = append(errs, reg.GaugeFunc(promName(s), s.Help, labels, read))
		} else {
			errs = append(errs, reg.CounterFunc(promName(s), s.Help, labels, read))
		}
	}
	return errors.Join(errs...)
}

// readiness reports ready once the probes are attached and the data path runs.
type readiness struct{ ready atomic.Bool }

func (r *readiness) check() error {
	if !r.ready.Load() {
		return errors.New("eBPF probes not attached yet")
	}
	return nil
}

var _ observer.KernelCounters = (*capture.Probe)(nil)
