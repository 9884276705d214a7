package health

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
)

// metricPrefix puts the observer's own series under one name, apart from
// the GenAI metrics it exports for the processes it watches.
const metricPrefix = "llm_observer_"

// Registry holds the observer's own metrics and is the Gatherer that Start
// serves on /metrics. Besides what the agent registers it carries the Go
// runtime and process collectors, so memory and CPU of the agent itself can
// be watched without anything else.
type Registry struct {
	reg *prometheus.Registry
}

// NewRegistry returns a Registry with the Go runtime and process metrics in
// it.
func NewRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &Registry{reg: reg}
}

// CounterFunc adds a counter whose value read returns at each scrape, so the
// agent keeps counting in its own atomics on the hot path and pays nothing
// per event for Prometheus. The name gets the "llm_observer_" prefix and
// should end in "_total". labels are fixed for this series; register the
// same name once per label value to split a count, as in
//
//	r.CounterFunc("events_dropped_total", help, prometheus.Labels{"reason": "ring_full"}, ringFull)
//	r.CounterFunc("events_dropped_total", help, prometheus.Labels{"reason": "map_full"}, mapFull)
//
// It fails on an invalid name or a series registered twice.
func (r *Registry) CounterFunc(name, help string, labels prometheus.Labels, read func() float64) error {
	if err := checkNames(name, labels); err != nil {
		return err
	}
	return r.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: metricPrefix + name, Help: help, ConstLabels: labels,
	}, read))
}

// GaugeFunc adds a gauge whose value read returns at each scrape, for levels
// that go up and down, such as connections being tracked. Naming and labels
// work as for CounterFunc.
func (r *Registry) GaugeFunc(name, help string, labels prometheus.Labels, read func() float64) error {
	if err := checkNames(name, labels); err != nil {
		return err
	}
	return r.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: metricPrefix + name, Help: help, ConstLabels: labels,
	}, read))
}

// Register adds a collector of the agent's own making, for example the
// OpenTelemetry Prometheus exporter's, to be served on the same /metrics.
func (r *Registry) Register(c prometheus.Collector) error {
	return r.reg.Register(c)
}

// Gather implements prometheus.Gatherer.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	return r.reg.Gather()
}

// checkNames holds the agent's own series to the classic character set,
// which every scraper and query language accepts unquoted; the client
// library alone would also take names that need UTF-8 quoting.
func checkNames(name string, labels prometheus.Labels) error {
	if !model.LegacyValidation.IsValidMetricName(metricPrefix + name) {
		return fmt.Errorf("metric name %q: use letters, digits and underscores", name)
	}
	for l := range labels {
		if !model.LegacyValidation.IsValidLabelName(l) {
			return fmt.Errorf("metric %q: label name %q: use letters, digits and underscores", name, l)
		}
	}
	return nil
}
