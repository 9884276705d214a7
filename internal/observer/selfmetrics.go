package observer

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/llm-observer/llm-observer/internal/capture"
)

// KernelCounters reads the kernel side's totals; *capture.Probe has it.
type KernelCounters interface {
	Counters() (capture.Counters, error)
}

// SelfSample is one of the observer's own measurements.
type SelfSample struct {
	Name   string
	Help   string
	Reason string // set on drop counters: why the data was lost
	Value  float64
	Gauge  bool // a level rather than a running total
}

// SelfSamples reads every health counter of the agent and the kernel side,
// for both the OTLP self-metrics and the Prometheus endpoint.
func SelfSamples(a *Agent, k KernelCounters) []SelfSample {
	st := a.Stats()
	out := []SelfSample{
		{Name: "llm_observer.events", Help: "kernel records handled", Value: float64(st.Events.Load())},
		{Name: "llm_observer.bytes", Help: "payload bytes decoded", Value: float64(st.DataBytes.Load())},
		{Name: "llm_observer.connections.active", Help: "connections followed now", Value: float64(st.Conns.Load()), Gauge: true},
		{Name: "llm_observer.connections", Help: "connections followed since start", Value: float64(st.ConnsOpened.Load())},
		{Name: "llm_observer.calls", Help: "LLM calls exported", Value: float64(st.CallsEnded.Load())},
		{Name: "llm_observer.calls.failed", Help: "LLM calls that ended in an error", Value: float64(st.CallsFailed.Load())},
		{Name: "llm_observer.calls.truncated", Help: "LLM calls whose capture was incomplete", Value: float64(st.CallsTruncated.Load())},
		{Name: "llm_observer.requests.ignored", Help: "HTTP requests on tracked connections that were not LLM calls", Value: float64(st.RequestsIgnored.Load())},
		{Name: "llm_observer.dropped.bytes", Reason: "offset_gap", Help: "bytes lost before decoding", Value: float64(st.GapBytes.Load())},
		{Name: "llm_observer.dropped.bytes", Reason: "duplicate", Help: "bytes lost before decoding", Value: float64(st.OverlapBytes.Load())},
		{Name: "llm_observer.dropped.records", Reason: "open_missed", Help: "records lost or incomplete in the kernel", Value: float64(st.OpensMissed.Load())},
		{Name: "llm_observer.dropped.records", Reason: "stale_connection", Help: "records lost or incomplete in the kernel", Value: float64(st.StaleEvents.Load())},
		{Name: "llm_observer.kernel.connections.forgotten", Help: "kernel connection states freed after their process exited", Value: float64(st.KernelConnsForgotten.Load())},
		{Name: "llm_observer.sweep.errors", Help: "failed walks of the kernel's connection map", Value: float64(st.SweepErrors.Load())},
	}
	if k == nil {
		return out
	}
	c, err := k.Counters()
	if err != nil {
		return out
	}
	return append(out,
		SelfSample{Name: "llm_observer.kernel.records", Help: "ring records written by the kernel", Value: float64(c.Records)},
		SelfSample{Name: "llm_observer.kernel.connections", Help: "connections the kernel classified as LLM traffic", Value: float64(c.ConnsTracked)},
		SelfSample{Name: "llm_observer.dropped.records", Reason: "ring_full", Help: "records lost or incomplete in the kernel", Value: float64(c.RingFull)},
		SelfSample{Name: "llm_observer.dropped.records", Reason: "read_fault", Help: "records lost or incomplete in the kernel", Value: float64(c.ReadFaults)},
		SelfSample{Name: "llm_observer.dropped.records", Reason: "buffer_truncated", Help: "records lost or incomplete in the kernel", Value: float64(c.TruncatedBuffers)},
		SelfSample{Name: "llm_observer.dropped.records", Reason: "conn_map_full", Help: "records lost or incomplete in the kernel", Value: float64(c.ConnMapFull)},
		SelfSample{Name: "llm_observer.dropped.records", Reason: "active_map_full", Help: "records lost or incomplete in the kernel", Value: float64(c.ActiveMapFull)},
		SelfSample{Name: "llm_observer.dropped.bytes", Reason: "ring_full", Help: "bytes lost before decoding", Value: float64(c.RingFullBytes)},
		SelfSample{Name: "llm_observer.dropped.bytes", Reason: "buffer_truncated", Help: "bytes lost before decoding", Value: float64(c.TruncatedBytes)},
	)
}

// RegisterSelfMetrics publishes SelfSamples through meter, read at each
// collection so they cost nothing between exports.
func RegisterSelfMetrics(meter metric.Meter, a *Agent, k KernelCounters) error {
	counters := map[string]metric.Float64Observable{}
	var obs []metric.Observable
	for _, s := range SelfSamples(a, k) {
		name := s.Name
		if counters[name] != nil {
			continue // another reason of the same counter
		}
		var (
			inst metric.Float64Observable
			err  error
		)
		if s.Gauge {
			inst, err = meter.Float64ObservableGauge(name, metric.WithDescription(s.Help))
		} else {
			inst, err = meter.Float64ObservableCounter(name, metric.WithDescription(s.Help))
		}
		if err != nil {
			return fmt.Errorf("self metric %s: %w", name, err)
		}
		counters[name] = inst
		obs = append(obs, inst)
	}
	_, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, s := range SelfSamples(a, k) {
			inst := counters[s.Name]
			if inst == nil {
				continue
			}
			if s.Reason != "" {
				o.ObserveFloat64(inst, s.Value, metric.WithAttributes(attribute.String("reason", s.Reason)))
			} else {
				o.ObserveFloat64(inst, s.Value)
			}
		}
		return nil
	}, obs...)
	if err != nil {
		return fmt.Errorf("register self metrics: %w", err)
	}
	return nil
}
