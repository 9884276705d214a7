package otlptest

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// sendAll sends one span, one histogram and one log record over p.
func sendAll(t *testing.T, r *Receiver, p Protocol) {
	t.Helper()
	ctx := context.Background()
	res := resource.NewSchemaless(attribute.String("service.name", "svc-"+string(p)))
	var (
		spanExp   sdktrace.SpanExporter
		metricExp sdkmetric.Exporter
		logExp    sdklog.Exporter
		err       error
		errs      [3]error
	)
	if p == GRPC {
		url := r.Endpoint(GRPC)
		spanExp, errs[0] = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(url), otlptracegrpc.WithCompressor("gzip"))
		metricExp, errs[1] = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(url))
		logExp, errs[2] = otlploggrpc.New(ctx, otlploggrpc.WithEndpointURL(url))
	} else {
		base := r.Endpoint(HTTPProtobuf)
		spanExp, errs[0] = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(base+"/v1/traces"), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		metricExp, errs[1] = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(base+"/v1/metrics"))
		logExp, errs[2] = otlploghttp.New(ctx, otlploghttp.WithEndpointURL(base+"/v1/logs"))
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(spanExp))
	_, span := tp.Tracer("scope-t").Start(ctx, "op", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.StringSlice("list", []string{"a", "b"}), attribute.Int("n", 3)))
	span.End()

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
	h, _ := mp.Meter("scope-m").Float64Histogram("latency", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 1))
	h.Record(ctx, 0.5, metric.WithAttributes(attribute.String("k", "v")))
	h.Record(ctx, 2)
	c, _ := mp.Meter("scope-m").Int64Counter("hits")
	c.Add(ctx, 4)

	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewSimpleProcessor(logExp)))
	var rec otellog.Record
	rec.SetEventName("happened")
	rec.SetBody(attribute.StringValue("body"))
	rec.AddAttributes(attribute.Bool("flag", true))
	lp.Logger("scope-l").Emit(ctx, rec)

	var rm metricdata.ResourceMetrics
	if err = reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if err = metricExp.Export(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(context.Context) error{tp.Shutdown, mp.Shutdown, lp.Shutdown, metricExp.Shutdown} {
		if err := f(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReceiver(t *testing.T) {
	for _, p := range []Protocol{GRPC, HTTPProtobuf} {
		t.Run(string(p), func(t *testing.T) {
			r := Start(t)
			sendAll(t, r, p)

			spans := r.WaitSpans(t, 1, 5*time.Second)
			s := spans[0]
			if s.Protocol != p || s.Name != "op" || s.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.Scope != "scope-t" {
				t.Errorf("span: %+v", s)
			}
			if s.Resource.Str("service.name") != "svc-"+string(p) || !slices.Equal(s.Attributes.Strs("list"), []string{"a", "b"}) {
				t.Errorf("span resource %v attributes %v", s.Resource, s.Attributes)
			}
			if n, _ := s.Attributes.Int("n"); n != 3 || !s.TraceID.IsValid() || s.ParentSpanID.IsValid() || s.End.Before(s.Start) {
				t.Errorf("span fields: %+v", s)
			}
			if len(r.SpansNamed("op")) != 1 || len(r.SpansOfKind(tracepb.Span_SPAN_KIND_SERVER)) != 0 {
				t.Error("span queries disagree")
			}

			pts := r.WaitDataPoints(t, "latency", 2, 5*time.Second)
			for _, pt := range pts {
				if pt.Type != Histogram || pt.Unit != "s" || !slices.Equal(pt.Bounds, []float64{0.1, 1}) || len(pt.BucketCounts) != 3 {
					t.Errorf("histogram point: %+v", pt)
				}
			}
			if hits := r.DataPoints("hits"); len(hits) != 1 || !hits[0].IsInt || hits[0].IntValue != 4 || !hits[0].Monotonic {
				t.Errorf("counter points: %+v", hits)
			}
			if !slices.Contains(r.MetricNames(), "hits") {
				t.Errorf("metric names %v", r.MetricNames())
			}

			logs := r.WaitLogs(t, 1, 5*time.Second)
			if l := logs[0]; l.EventName != "happened" || l.Body != "body" || l.Attributes["flag"] != true || l.Scope != "scope-l" {
				t.Errorf("log record: %+v", l)
			}
			for _, sig := range []Signal{Traces, Metrics, Logs} {
				if r.Requests(p, sig) == 0 {
					t.Errorf("no %s requests counted over %s", sig, p)
				}
			}

			r.Reset()
			if len(r.Spans()) != 0 || len(r.Logs()) != 0 || len(r.DataPoints("hits")) != 0 || r.Requests(p, Traces) != 0 {
				t.Error("Reset kept data")
			}
		})
	}
}

func TestReceiverJSONAndErrors(t *testing.T) {
	r := Start(t)
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "json-span", TraceId: make([]byte, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}}}}},
	}}}
	body, _ := protojson.Marshal(req)
	resp, err := http.Post(r.Endpoint(HTTPProtobuf)+"/v1/traces", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("JSON request answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if len(r.SpansNamed("json-span")) != 1 {
		t.Error("JSON span not recorded")
	}

	resp, err = http.Post(r.Endpoint(HTTPProtobuf)+"/v1/traces", "application/x-protobuf", bytes.NewReader([]byte{0xff, 0xff}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage answered %d, want 400", resp.StatusCode)
	}
	good, _ := proto.Marshal(req)
	resp, err = http.Post(r.Endpoint(HTTPProtobuf)+"/v1/elsewhere", "application/x-protobuf", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path answered %d", resp.StatusCode)
	}
}

func TestWaitTimesOut(t *testing.T) {
	r := Start(t)
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { recover() }() //nolint:errcheck // fakeTB.Fatalf stops the goroutine with a panic
		r.WaitSpans(ft, 1, 20*time.Millisecond)
	}()
	<-done
	if !ft.failed {
		t.Error("waiting for spans that never come did not fail")
	}
}

type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
