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
func startKubernetes(ctx context.Context, nodeName string) *k8s.Cache {
	pods, err := k8s.New(ctx, nodeName)
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

// selfCollector serves the agent's and the kernel's counters on the health
// server's /metrics, reading them all once per scrape.
type selfCollector struct {
	agent *observer.Agent
	probe observer.KernelCounters
	descs map[string]*prometheus.Desc // by Prometheus name
}

func newSelfCollector(agent *observer.Agent, probe observer.KernelCounters) *selfCollector {
	c := &selfCollector{agent: agent, probe: probe, descs: map[string]*prometheus.Desc{}}
	for _, s := range observer.SelfSamples(agent, probe) {
		name := promName(s)
		if c.descs[name] != nil {
			continue
		}
		var labels []string
		if s.Reason != "" {
			labels = []string{"reason"}
		}
		c.descs[name] = prometheus.NewDesc("llm_observer_"+name, s.Help, labels, nil)
	}
	return c
}

func (c *selfCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *selfCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range observer.SelfSamples(c.agent, c.probe) {
		d := c.descs[promName(s)]
		if d == nil {
			continue
		}
		kind := prometheus.CounterValue
		if s.Gauge {
			kind = prometheus.GaugeValue
		}
		var labels []string
		if s.Reason != "" {
			labels = []string{s.Reason}
		}
		ch <- prometheus.MustNewConstMetric(d, kind, s.Value, labels...)
	}
}

// lossCollector serves the exporter's loss counters on /metrics as
// llm_observer_export_dropped_total{signal,reason}: spans, metric data
// points and log records that never reached the collector.
type lossCollector struct {
	exp  *export.Exporter
	desc *prometheus.Desc
}

func newLossCollector(exp *export.Exporter) *lossCollector {
	return &lossCollector{exp: exp, desc: prometheus.NewDesc("llm_observer_export_dropped_total",
		"Telemetry that never reached the collector: spans, metric data points or log records, by signal and reason.",
		[]string{"signal", "reason"}, nil)}
}

func (c *lossCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *lossCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.exp.Losses() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(l.Count), l.Signal, l.Reason)
	}
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

// tlsSamples reports TLS probing for the self-metrics; every failure
// reason is always present, so a dashboard sees zeros rather than gaps.
func tlsSamples(st discover.TLSStats) []observer.SelfSample {
	out := []observer.SelfSample{
		{Name: "llm_observer.tls.files_probed", Help: "files (libssl, executables carrying OpenSSL) with TLS probes now", Value: float64(st.FilesProbed), Gauge: true},
		{Name: "llm_observer.tls.processes", Help: "processes whose TLS library is probed now", Value: float64(st.Processes), Gauge: true},
		{Name: "llm_observer.tls.attaches", Help: "files given TLS probes since start", Value: float64(st.Attaches)},
		{Name: "llm_observer.tls.detaches", Help: "files whose TLS probes went with their last process", Value: float64(st.Detaches)},
	}
	for _, reason := range []string{"open_failed", "attach_failed", "go_too_old", "go_no_struct_layout", "go_unexpected_code"} {
		out = append(out, observer.SelfSample{Name: "llm_observer.tls.probe_failures", Reason: reason,
			Help: "files carrying OpenSSL or Go crypto/tls that could not be probed", Value: float64(st.Failures[reason])})
	}
	return out
}

// toolSamples reports the matching of tool calls with their results, which
// makes the execute_tool spans: calls never answered, pushed out unanswered,
// and results that answered no call the observer saw.
func toolSamples(st export.ToolStats) []observer.SelfSample {
	const help = "tool calls and results the execute_tool matching could not pair"
	return []observer.SelfSample{
		{Name: "llm_observer.tool_calls.executions", Help: "execute_tool spans made from a tool call and the request carrying its result", Value: float64(st.Executions)},
		{Name: "llm_observer.tool_calls.unmatched", Reason: "unanswered", Help: help, Value: float64(st.Unanswered)},
		{Name: "llm_observer.tool_calls.unmatched", Reason: "evicted", Help: help, Value: float64(st.Evicted)},
		{Name: "llm_observer.tool_calls.unmatched", Reason: "orphan_result", Help: help, Value: float64(st.Orphaned)},
	}
}
