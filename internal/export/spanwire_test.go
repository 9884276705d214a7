package export

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	collpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// captureSpans keeps what an OTLP trace client was asked to send.
type captureSpans struct {
	mu sync.Mutex
	rs []*tracepb.ResourceSpans
}

func (c *captureSpans) Start(context.Context) error { return nil }
func (c *captureSpans) Stop(context.Context) error  { return nil }
func (c *captureSpans) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rs = append(c.rs, rs...)
	return nil
}

// wire is what the collector would decode from c's requests.
func (c *captureSpans) wire(t *testing.T) []*tracepb.ResourceSpans {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := proto.Marshal(&collpb.ExportTraceServiceRequest{ResourceSpans: c.rs})
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var req collpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("the encoded spans do not decode: %v", err)
	}
	return req.ResourceSpans
}

// fixedIDs makes the SDK use the IDs the direct encoder chose.
type fixedIDs struct{ sc trace.SpanContext }

func (f fixedIDs) NewIDs(context.Context) (trace.TraceID, trace.SpanID) {
	return f.sc.TraceID(), f.sc.SpanID()
}
func (f fixedIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return f.sc.SpanID() }

// viaSDK is what the SDK and its OTLP exporter send for d with IDs sc.
func viaSDK(t *testing.T, res *resource.Resource, d spanData, sc trace.SpanContext, lim spanLimits) []*tracepb.ResourceSpans {
	t.Helper()
	capture := &captureSpans{}
	exp, err := otlptrace.New(context.Background(), capture)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSyncer(exp),
		sdktrace.WithIDGenerator(fixedIDs{sc}),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{
			AttributeCountLimit: lim.count, AttributeValueLengthLimit: lim.valueLen,
			EventCountLimit: -1, LinkCountLimit: -1, AttributePerEventCountLimit: -1, AttributePerLinkCountLimit: -1,
		}),
	)
	defer tp.Shutdown(context.Background()) //nolint:errcheck // in-memory
	ctx := context.Background()
	if d.parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, d.parent)
	}
	_, span := tp.Tracer(scopeName, trace.WithSchemaURL(semconv.SchemaURL)).
		Start(ctx, d.name, trace.WithSpanKind(d.kind), trace.WithTimestamp(d.start))
	span.SetAttributes(d.attrs...)
	if d.errMsg != "" {
		span.SetStatus(codes.Error, d.errMsg)
	}
	end := d.end
	if end.Before(d.start) {
		end = d.start
	}
	span.End(trace.WithTimestamp(end))
	return capture.wire(t)
}

// viaWire is what the direct encoder sends for d.
func viaWire(t *testing.T, res *resource.Resource, d spanData, lim spanLimits) ([]*tracepb.ResourceSpans, trace.SpanContext) {
	t.Helper()
	capture := &captureSpans{}
	e := &Exporter{limits: lim}
	e.spans = newSpanQueue(capture, QueueConfig{Size: 16, Batch: 16, Delay: time.Hour, Timeout: time.Second},
		&e.lost, newErrorLog(io.Discard, time.Minute), func(context.Context) {})
	defer e.spans.Shutdown(context.Background()) //nolint:errcheck // in-memory
	sc := e.writeSpan(&processTelemetry{spanRes: newSpanResource(res)}, &d)
	if err := e.spans.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return capture.wire(t), sc
}

func TestSpanEncodingMatchesSDK(t *testing.T) {
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName("curl"), semconv.ProcessPID(4242), semconv.HostName("testhost"),
		attribute.StringSlice("k8s.labels", []string{"a", "b"}))
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ts, err := trace.ParseTraceState("vendor=opaque,other=x")
	if err != nil {
		t.Fatal(err)
	}
	withState := parent.WithTraceState(ts)
	unsampled := parent.WithTraceFlags(0)
	reserved := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled})
	start := time.Date(2025, 3, 14, 19, 4, 5, 123_456_789, time.UTC)
	long := strings.Repeat("é", 10) + "tail"
	noLimits := spanLimits{count: -1, valueLen: -1}

	cases := []struct {
		name string
		d    spanData
		lim  spanLimits
	}{
		{"root client span", spanData{
			name: "chat gpt-4o", kind: trace.SpanKindClient, start: start, end: start.Add(1234 * time.Millisecond),
			attrs: []attribute.KeyValue{
				semconv.GenAIOperationNameChat, semconv.GenAIRequestModel("gpt-4o"),
				semconv.GenAIUsageInputTokens(24), attribute.Int64("negative", -7),
				attribute.Float64("gen_ai.response.time_to_first_chunk", 0.0123), attribute.Bool("llm_observer.truncated", true),
				attribute.String("empty", ""),
			},
		}, noLimits},
		{"reserved IDs, no parent", spanData{name: "chat", kind: trace.SpanKindClient, start: start, end: start, self: reserved}, noLimits},
		{"server span under a remote parent with trace state, error status", spanData{
			name: "chat llama3", kind: trace.SpanKindServer, start: start, end: start.Add(time.Second), parent: withState,
			attrs:  []attribute.KeyValue{semconv.ErrorTypeKey.String("429")},
			errMsg: "rate limited",
		}, noLimits},
		{"reserved IDs from another trace than the parent", spanData{
			name: "execute_tool get_weather", kind: trace.SpanKindInternal, start: start, end: start.Add(time.Millisecond),
			parent: parent, self: reserved,
		}, noLimits},
		{"every value type", spanData{
			name: "chat", kind: trace.SpanKindClient, start: start, end: start.Add(time.Millisecond),
			attrs: []attribute.KeyValue{
				attribute.StringSlice("gen_ai.response.finish_reasons", []string{"stop", "length"}),
				attribute.BoolSlice("bools", []bool{true, false}),
				attribute.Int64Slice("ints", []int64{1, -2, 1 << 40}),
				attribute.Float64Slice("floats", []float64{0.5, -1e300}),
				attribute.StringSlice("no strings", nil),
				attribute.ByteSlice("bytes", []byte{0, 1, 2, 255}),
				attribute.Slice("mixed", attribute.StringValue("a"), attribute.IntValue(3)),
				attribute.Map("map", attribute.String("k", "v"), attribute.Int("n", 2)),
			},
		}, noLimits},
		{"invalid and repeated attributes", spanData{
			name: "chat", kind: trace.SpanKindClient, start: start, end: start.Add(time.Millisecond),
			attrs: []attribute.KeyValue{
				attribute.String("a", "first"), {Key: "", Value: attribute.StringValue("no key")},
				attribute.String("b", "b"), attribute.Int("a", 2), {Key: "c"}, attribute.String("a", "last"),
			},
		}, noLimits},
		{"count and length limits", spanData{
			name: "chat", kind: trace.SpanKindClient, start: start, end: start.Add(time.Millisecond),
			attrs: []attribute.KeyValue{
				attribute.String("long", long), attribute.StringSlice("longs", []string{long, "ok"}),
				attribute.ByteSlice("bytes", []byte("0123456789")), attribute.String("dropped", "x"),
				attribute.String("long", long+"again"),
			},
			errMsg: "not cut: the status is not an attribute " + long,
		}, spanLimits{count: 3, valueLen: 5}},
		{"end before start", spanData{name: "chat", kind: trace.SpanKindClient, start: start, end: start.Add(-time.Second)}, noLimits},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, sc := viaWire(t, res, tc.d, tc.lim)
			want := viaSDK(t, res, tc.d, sc, tc.lim)
			if len(want) != 1 || len(got) != 1 {
				t.Fatalf("got %d resource spans, the SDK %d; want 1 each", len(got), len(want))
			}
			if !proto.Equal(want[0], got[0]) {
				t.Errorf("differs from the SDK's:\nSDK:    %s\ndirect: %s", prototext.Format(want[0]), prototext.Format(got[0]))
			}
		})
	}

	t.Run("unsampled parent", func(t *testing.T) {
		d := spanData{name: "chat", kind: trace.SpanKindServer, start: start, end: start, parent: unsampled}
		got, sc := viaWire(t, res, d, noLimits)
		want := viaSDK(t, res, d, sc, noLimits)
		if len(got) != 0 || len(want) != 0 {
			t.Fatalf("got %d resource spans, the SDK %d; want none", len(got), len(want))
		}
		if sc.IsSampled() || sc.TraceID() != parent.TraceID() {
			t.Errorf("span context %v: want the parent's trace, unsampled", sc)
		}
	})
}

// TestSpanBatchGroupsByProcess: a batch of spans from several processes
// goes out as one ResourceSpans per process, each with its spans in order.
func TestSpanBatchGroupsByProcess(t *testing.T) {
	capture := &captureSpans{}
	e := &Exporter{limits: spanLimits{count: -1, valueLen: -1}}
	e.spans = newSpanQueue(capture, QueueConfig{Size: 64, Batch: 64, Delay: time.Hour, Timeout: time.Second},
		&e.lost, newErrorLog(io.Discard, time.Minute), func(context.Context) {})
	defer e.spans.Shutdown(context.Background()) //nolint:errcheck // in-memory
	procs := []*processTelemetry{
		{spanRes: newSpanResource(resource.NewSchemaless(semconv.ServiceName("a")))},
		{spanRes: newSpanResource(resource.NewSchemaless(semconv.ServiceName("b")))},
	}
	for i := range 6 {
		e.writeSpan(procs[i%2], &spanData{name: "span" + string(rune('0'+i)), kind: trace.SpanKindClient, start: t0, end: t0})
	}
	if err := e.spans.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rs := range capture.wire(t) {
		var names []string
		for _, ss := range rs.ScopeSpans {
			if ss.Scope.GetName() != scopeName || ss.SchemaUrl != semconv.SchemaURL {
				t.Errorf("scope %v, schema %q", ss.Scope, ss.SchemaUrl)
			}
			for _, sp := range ss.Spans {
				names = append(names, sp.Name)
			}
		}
		got = append(got, rs.Resource.Attributes[0].Value.GetStringValue()+":"+strings.Join(names, ","))
	}
	want := []string{"a:span0,span2,span4", "b:span1,span3,span5"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// BenchmarkSpanEncoding compares, per span of a typical chat call, the
// SDK's path (recording span, snapshot, conversion to OTLP messages,
// marshalling) with the direct encoding (one buffer, grouping, marshalling
// of the request that carries it), in one run.
func BenchmarkSpanEncoding(b *testing.B) {
	red, err := newRedactor(nil)
	if err != nil {
		b.Fatal(err)
	}
	e := &Exporter{cfg: Config{EmitGenAISystem: true}, limits: spanLimits{count: 128, valueLen: -1}}
	e.content.redactor = red
	c := chatStreamCall()
	attrs := e.callAttributes(nil, c)
	res := e.processResource(curl)
	d := spanData{name: spanName(c), kind: trace.SpanKindClient, start: c.Start, end: c.End, attrs: attrs}
	const batch = 512
	marshal := func(rs []*tracepb.ResourceSpans) {
		if _, err := proto.Marshal(&collpb.ExportTraceServiceRequest{ResourceSpans: rs}); err != nil {
			b.Fatal(err)
		}
	}
	sink := marshalSpans{marshal: marshal}
	b.Run("sdk", func(b *testing.B) {
		exp, err := otlptrace.New(context.Background(), &sink)
		if err != nil {
			b.Fatal(err)
		}
		bsp := sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithMaxExportBatchSize(batch), sdktrace.WithMaxQueueSize(8*batch), sdktrace.WithBlocking())
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(bsp))
		tracer := tp.Tracer(scopeName, trace.WithSchemaURL(semconv.SchemaURL))
		b.ReportAllocs()
		for b.Loop() {
			_, span := tracer.Start(context.Background(), d.name, trace.WithSpanKind(d.kind), trace.WithTimestamp(d.start))
			span.SetAttributes(d.attrs...)
			span.End(trace.WithTimestamp(d.end))
		}
		tp.Shutdown(context.Background()) //nolint:errcheck // in-memory
	})
	b.Run("direct", func(b *testing.B) {
		e.spans = newSpanQueue(&sink, QueueConfig{Size: 8 * batch, Batch: batch, Delay: time.Hour, Timeout: time.Second},
			&e.lost, newErrorLog(io.Discard, time.Minute), func(context.Context) {})
		pt := &processTelemetry{spanRes: newSpanResource(res)}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e.writeSpan(pt, &d)
			if i++; i%batch == 0 {
				e.spans.ForceFlush(context.Background()) //nolint:errcheck // in-memory
			}
		}
		e.spans.Shutdown(context.Background()) //nolint:errcheck // in-memory
	})
}

// marshalSpans marshals what it is sent, as the gRPC client would, and
// keeps nothing.
type marshalSpans struct {
	marshal func([]*tracepb.ResourceSpans)
}

func (m *marshalSpans) Start(context.Context) error { return nil }
func (m *marshalSpans) Stop(context.Context) error  { return nil }
func (m *marshalSpans) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	m.marshal(rs)
	return nil
}
