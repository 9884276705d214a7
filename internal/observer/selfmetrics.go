package observer

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"unicode"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/decode"
	"github.com/llm-observer/llm-observer/internal/genai"
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
	out = appendLosses(out, a)
	out = append(out,
		SelfSample{Name: "llm_observer.http2.dropped", Help: "HTTP/2 connections found not to carry LLM calls (gRPC, other paths) and dropped", Value: float64(st.HTTP2Dropped.Load())},
		SelfSample{Name: "llm_observer.dropped.records", Reason: "lost_unknown_size", Help: "records lost or incomplete in the kernel", Value: float64(st.LostUnknown.Load())},
	)
	for _, f := range a.samplers {
		out = append(out, f()...)
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
		SelfSample{Name: "llm_observer.dropped.records", Reason: "tls_call_map_full", Help: "records lost or incomplete in the kernel", Value: float64(c.TLSCallMapFull)},
		SelfSample{Name: "llm_observer.kernel.fd_reused", Help: "connection states dropped because their fd came to name another file", Value: float64(c.FDReused)},
		SelfSample{Name: "llm_observer.tls.calls", Help: "SSL_read/SSL_write calls seen by the TLS probes", Value: float64(c.TLSCalls)},
		SelfSample{Name: "llm_observer.dropped.records", Reason: "notice_ring_full", Help: "records lost or incomplete in the kernel", Value: float64(c.NoticesLost)},
		SelfSample{Name: "llm_observer.kernel.joined_midway", Help: "connections first seen in a response: the exchange in progress then is not reported", Value: float64(c.JoinedMidway)},
		SelfSample{Name: "llm_observer.kernel.verdict_dropped", Help: "HTTP/2 connections dropped on the agent's verdict: not LLM traffic", Value: float64(c.VerdictDropped)},
		SelfSample{Name: "llm_observer.tls.no_socket", Help: "TLS records sent without knowing their connection's socket (no addresses, no pairing)", Value: float64(c.TLSNoSocket)},
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

// lossTotals keeps the decoders' and assemblers' counters of connections
// already closed, so that totals survive the connections that made them.
type lossTotals struct {
	decode decode.Stats
	genai  genai.Stats
}

func (t *lossTotals) add(c *conn) {
	addCounters(&t.decode, c.dec.Stats())
	addCounters(&t.genai, c.asm.Stats())
}

// Losses returns the decode and genai counters summed over every
// connection since start, closed ones included.
func (a *Agent) Losses() (decode.Stats, genai.Stats) {
	// Only copies under the lock, which the ring reader takes for every
	// record: summing by reflection over 2,000 connections took 4 ms.
	a.mu.Lock()
	t := a.closed
	dec := make([]decode.Stats, 0, len(a.conns))
	gen := make([]genai.Stats, 0, len(a.conns))
	for _, c := range a.conns {
		dec = append(dec, c.dec.Stats())
		gen = append(gen, c.asm.Stats())
	}
	a.mu.Unlock()
	for i := range dec {
		addCounters(&t.decode, dec[i])
		addCounters(&t.genai, gen[i])
	}
	return t.decode, t.genai
}

// addCounters adds every integer counter of src into dst, nested structs
// included, so counters added to the Stats types are summed without
// touching this code. dst points to a struct of src's type.
func addCounters[T any](dst *T, src T) {
	addValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src))
}

func addValue(dst, src reflect.Value) {
	switch dst.Kind() {
	case reflect.Struct:
		for i := range dst.NumField() {
			if dst.Type().Field(i).IsExported() {
				addValue(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		dst.SetInt(dst.Int() + src.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		dst.SetUint(dst.Uint() + src.Uint())
	}
}

// Names of the loss counters of decode and genai, labelled by reason.
const (
	decodeLosses    = "llm_observer.decode.losses"
	decodeLostBytes = "llm_observer.decode.lost.bytes"
	genaiRequests   = "llm_observer.genai.requests"
	genaiLosses     = "llm_observer.genai.losses"
)

// appendLosses adds one sample per counter of decode.Stats and
// genai.Stats, with the counter's name as the reason: byte counts
// (decode's Bytes* fields) under decodeLostBytes, message counts under
// decodeLosses, nested groups (HTTP/2) with their group as a prefix. genai's
// request tallies (calls, ignored, and among the ignored the hops of a
// model server to its own worker) are outcomes rather than losses and go
// apart.
func appendLosses(out []SelfSample, a *Agent) []SelfSample {
	d, g := a.Losses()
	eachCounter(reflect.ValueOf(d), "", func(group, name string, v float64) {
		if r, ok := strings.CutPrefix(name, "bytes_"); ok {
			out = append(out, SelfSample{Name: decodeLostBytes, Reason: group + r, Help: "bytes the HTTP decoder could not place in a message it handed on", Value: v})
			return
		}
		out = append(out, SelfSample{Name: decodeLosses, Reason: group + name, Help: "messages, bodies and events the HTTP decoder could not hand on whole", Value: v})
	})
	eachCounter(reflect.ValueOf(g), "", func(group, name string, v float64) {
		reason := group + name
		switch reason {
		case "requests":
			// Calls plus ignored; the two below say it.
		case "calls", "ignored", "worker_hops":
			out = append(out, SelfSample{Name: genaiRequests, Reason: reason, Help: "HTTP requests by what the LLM-call parser made of them", Value: v})
		default:
			out = append(out, SelfSample{Name: genaiLosses, Reason: reason, Help: "bodies, events and exchanges the LLM-call parser could not use", Value: v})
		}
	})
	return out
}

// eachCounter calls f for every integer field of the struct v, its name in
// snake case, and group the names of the structs holding it ("http2_").
func eachCounter(v reflect.Value, group string, f func(group, name string, v float64)) {
	t := v.Type()
	for i := range t.NumField() {
		if !t.Field(i).IsExported() {
			continue
		}
		name := snake(t.Field(i).Name)
		switch fv := v.Field(i); fv.Kind() {
		case reflect.Struct:
			eachCounter(fv, group+name+"_", f)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f(group, name, float64(fv.Int()))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f(group, name, float64(fv.Uint()))
		}
	}
}

// snake turns a Go field name into a label value: HeadersTooLarge is
// headers_too_large, HTTP2 is http2.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
