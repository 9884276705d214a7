package export

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"reflect"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// waitLong bounds every wait for the receiver; exports normally land in
// milliseconds, the margin is for a loaded machine.
const waitLong = 10 * time.Second

var protocols = []otlptest.Protocol{otlptest.GRPC, otlptest.HTTPProtobuf}

func i64(v int64) *int64     { return &v }
func f64(v float64) *float64 { return &v }
func at(ms int) time.Time    { return t0.Add(time.Duration(ms) * time.Millisecond) }
func secs(ms int) float64    { return (time.Duration(ms) * time.Millisecond).Seconds() }
func chunksAt(ms ...int) []time.Time {
	out := make([]time.Time, len(ms))
	for i, m := range ms {
		out[i] = at(m)
	}
	return out
}

// t0 is in the past on purpose: span times must be the call's, not the
// export's.
var t0 = time.Date(2025, 3, 14, 19, 4, 5, 123_000_000, time.Local)

var (
	curl   = &Process{PID: 4242, ExecutableName: "curl", ExecutablePath: "/usr/bin/curl", Command: "curl -H 'Authorization: Bearer sk-proj-abcdefghijklmnopqrstuvwx' http://localhost:11434/api/chat", ServiceName: "curl", StartTime: t0.Add(-time.Minute)}
	ollama = &Process{PID: 812, ExecutableName: "ollama", ExecutablePath: "/usr/local/bin/ollama", ServiceName: "ollama", Attributes: []attribute.KeyValue{attribute.String("k8s.pod.name", "ollama-0")}}
)

// newTestExporter starts a receiver and an exporter sending to it over proto.
func newTestExporter(t testing.TB, proto otlptest.Protocol, mutate func(*Config)) (*Exporter, *otlptest.Receiver) {
	t.Helper()
	rcv := otlptest.Start(t)
	cfg := Config{
		Endpoint:        rcv.Endpoint(proto),
		TracesProtocol:  Protocol(proto),
		MetricsProtocol: Protocol(proto),
		LogsProtocol:    Protocol(proto),
		HostName:        "testhost",
		ConsoleWriter:   io.Discard,
		MetricInterval:  time.Hour, // tests flush explicitly
		PairWait:        300 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) }) //nolint:errcheck // tests that care call Shutdown themselves
	return e, rcv
}

func shutdown(t testing.TB, e *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func flush(t testing.TB, e *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := e.ForceFlush(ctx); err != nil {
		t.Fatalf("ForceFlush: %v", err)
	}
}

// end sends a call through both hooks, as the agent does.
func end(e *Exporter, p *Process, c *genai.Call) {
	e.CallStarted(p, c)
	e.CallEnded(p, c)
}

// checkAttrs compares want against got, numbers by value whatever their Go type.
func checkAttrs(t *testing.T, what string, got otlptest.Attributes, want map[string]any) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: attribute %s missing (want %v)", what, k, w)
			continue
		}
		if !sameValue(g, w) {
			t.Errorf("%s: attribute %s = %#v, want %#v", what, k, g, w)
		}
	}
}

func checkAbsent(t *testing.T, what string, got otlptest.Attributes, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := got[k]; ok {
			t.Errorf("%s: attribute %s = %#v, want it absent", what, k, v)
		}
	}
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case int:
		g, ok := got.(int64)
		return ok && g == int64(w)
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(g-w) < 1e-9
	case []string:
		arr, ok := got.([]any)
		if !ok || len(arr) != len(w) {
			return false
		}
		for i := range w {
			if arr[i] != w[i] {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
}

// validJSONString decodes s, failing the test when it is not JSON.
func validJSONString(t *testing.T, what, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s is not valid JSON (%v): %s", what, err, s)
	}
	return v
}

// discardSpans is a span client that sends nothing, for benchmarks of the
// data path alone.
type discardSpans struct{}

func (discardSpans) UploadTraces(context.Context, []*tracepb.ResourceSpans) error { return nil }
func (discardSpans) Stop(context.Context) error                                   { return nil }
