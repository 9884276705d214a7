package otlptest

import (
	"time"

	"go.opentelemetry.io/otel/trace"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Attributes is an OTLP attribute list as a map of plain Go values: string,
// bool, int64, float64, []byte, []any or map[string]any.
type Attributes map[string]any

// Has reports whether key is present.
func (a Attributes) Has(key string) bool {
	_, ok := a[key]
	return ok
}

// Str returns the value of key when it is a string, else "".
func (a Attributes) Str(key string) string {
	s, _ := a[key].(string)
	return s
}

// Int returns the value of key when it is an integer, and whether it was.
func (a Attributes) Int(key string) (int64, bool) {
	v, ok := a[key].(int64)
	return v, ok
}

// Float returns the value of key when it is a double, and whether it was.
func (a Attributes) Float(key string) (float64, bool) {
	v, ok := a[key].(float64)
	return v, ok
}

// Strs returns the value of key when it is an array of strings, else nil.
func (a Attributes) Strs(key string) []string {
	arr, ok := a[key].([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(arr))
	for _, v := range arr {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// Span is one received span with its resource and instrumentation scope.
type Span struct {
	Protocol     Protocol // the transport it arrived on
	Resource     Attributes
	Scope        string // instrumentation scope name
	Name         string
	Kind         tracepb.Span_SpanKind
	TraceID      trace.TraceID
	SpanID       trace.SpanID
	ParentSpanID trace.SpanID // zero for a root span
	TraceState   string
	Start, End   time.Time
	Attributes   Attributes
	Status       tracepb.Status_StatusCode
	StatusMsg    string
	Proto        *tracepb.Span // everything else: events, links, flags
}

// MetricType is the shape of a metric's data.
type MetricType string

// The metric shapes OTLP carries.
const (
	Histogram            MetricType = "histogram"
	Sum                  MetricType = "sum"
	Gauge                MetricType = "gauge"
	ExponentialHistogram MetricType = "exponential_histogram"
	Summary              MetricType = "summary"
)

// DataPoint is one received metric data point, flattened with its metric's
// identity and resource. Fields not meaningful for Type are zero.
type DataPoint struct {
	Protocol    Protocol
	Request     int // sequence number of the export request that carried it
	Resource    Attributes
	Scope       string
	Metric      string
	Description string
	Unit        string
	Type        MetricType
	Temporality metricspb.AggregationTemporality
	Monotonic   bool
	Attributes  Attributes
	Start, Time time.Time

	// Histogram points.
	Count        uint64
	Sum          float64
	Bounds       []float64
	BucketCounts []uint64

	// Sum and gauge points; Value holds an integer point converted too.
	Value    float64
	IntValue int64
	IsInt    bool
}

// LogRecord is one received log record with its resource and scope.
type LogRecord struct {
	Protocol     Protocol // the transport it arrived on
	Resource     Attributes
	Scope        string // instrumentation scope name
	EventName    string // set on event records
	Time         time.Time
	ObservedTime time.Time
	Severity     logspb.SeverityNumber
	SeverityText string
	Body         any
	Attributes   Attributes
	TraceID      trace.TraceID // zero when emitted outside a span
	SpanID       trace.SpanID
	Proto        *logspb.LogRecord
}

// Spans returns every span received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// SpansNamed returns the spans called name.
func (r *Receiver) SpansNamed(name string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// SpansOfKind returns the spans of kind k.
func (r *Receiver) SpansOfKind(k tracepb.Span_SpanKind) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.Kind == k {
			out = append(out, s)
		}
	}
	return out
}

// DataPoints returns every data point of the named metric, in arrival order.
func (r *Receiver) DataPoints(metric string) []DataPoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []DataPoint
	for _, p := range r.points {
		if p.Metric == metric {
			out = append(out, p)
		}
	}
	return out
}

// MetricNames returns the names of all metrics received, once each.
func (r *Receiver) MetricNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, p := range r.points {
		if !seen[p.Metric] {
			seen[p.Metric] = true
			out = append(out, p.Metric)
		}
	}
	return out
}

// Logs returns every log record received so far, in arrival order.
func (r *Receiver) Logs() []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]LogRecord(nil), r.logs...)
}

func (r *Receiver) addTraces(p Protocol, req *coltracepb.ExportTraceServiceRequest) {
	var spans []Span
	for _, rs := range req.GetResourceSpans() {
		res := attributes(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			scope := ss.GetScope().GetName()
			for _, s := range ss.GetSpans() {
				spans = append(spans, Span{
					Protocol:     p,
					Resource:     res,
					Scope:        scope,
					Name:         s.GetName(),
					Kind:         s.GetKind(),
					TraceID:      trace.TraceID(pad16(s.GetTraceId())),
					SpanID:       trace.SpanID(pad8(s.GetSpanId())),
					ParentSpanID: trace.SpanID(pad8(s.GetParentSpanId())),
					TraceState:   s.GetTraceState(),
					Start:        unixNano(s.GetStartTimeUnixNano()),
					End:          unixNano(s.GetEndTimeUnixNano()),
					Attributes:   attributes(s.GetAttributes()),
					Status:       s.GetStatus().GetCode(),
					StatusMsg:    s.GetStatus().GetMessage(),
					Proto:        s,
				})
			}
		}
	}
	r.record(p, Traces, func(int) { r.spans = append(r.spans, spans...) })
}

func (r *Receiver) addMetrics(p Protocol, req *colmetricspb.ExportMetricsServiceRequest) {
	r.record(p, Metrics, func(seq int) {
		for _, rm := range req.GetResourceMetrics() {
			res := attributes(rm.GetResource().GetAttributes())
			for _, sm := range rm.GetScopeMetrics() {
				scope := sm.GetScope().GetName()
				for _, m := range sm.GetMetrics() {
					base := DataPoint{
						Protocol: p, Request: seq, Resource: res, Scope: scope,
						Metric: m.GetName(), Description: m.GetDescription(), Unit: m.GetUnit(),
					}
					r.points = append(r.points, dataPoints(base, m)...)
				}
			}
		}
	})
}

func dataPoints(base DataPoint, m *metricspb.Metric) []DataPoint {
	var out []DataPoint
	switch d := m.GetData().(type) {
	case *metricspb.Metric_Histogram:
		base.Type = Histogram
		base.Temporality = d.Histogram.GetAggregationTemporality()
		for _, dp := range d.Histogram.GetDataPoints() {
			p := base
			p.Attributes = attributes(dp.GetAttributes())
			p.Start, p.Time = unixNano(dp.GetStartTimeUnixNano()), unixNano(dp.GetTimeUnixNano())
			p.Count, p.Sum = dp.GetCount(), dp.GetSum()
			p.Bounds, p.BucketCounts = dp.GetExplicitBounds(), dp.GetBucketCounts()
			out = append(out, p)
		}
	case *metricspb.Metric_Sum:
		base.Type = Sum
		base.Temporality = d.Sum.GetAggregationTemporality()
		base.Monotonic = d.Sum.GetIsMonotonic()
		out = numberPoints(base, d.Sum.GetDataPoints())
	case *metricspb.Metric_Gauge:
		base.Type = Gauge
		out = numberPoints(base, d.Gauge.GetDataPoints())
	case *metricspb.Metric_ExponentialHistogram:
		base.Type = ExponentialHistogram
		base.Temporality = d.ExponentialHistogram.GetAggregationTemporality()
		for _, dp := range d.ExponentialHistogram.GetDataPoints() {
			p := base
			p.Attributes = attributes(dp.GetAttributes())
			p.Count, p.Sum = dp.GetCount(), dp.GetSum()
			out = append(out, p)
		}
	case *metricspb.Metric_Summary:
		base.Type = Summary
		for _, dp := range d.Summary.GetDataPoints() {
			p := base
			p.Attributes = attributes(dp.GetAttributes())
			p.Count, p.Sum = dp.GetCount(), dp.GetSum()
			out = append(out, p)
		}
	}
	return out
}

func numberPoints(base DataPoint, dps []*metricspb.NumberDataPoint) []DataPoint {
	out := make([]DataPoint, 0, len(dps))
	for _, dp := range dps {
		p := base
		p.Attributes = attributes(dp.GetAttributes())
		p.Start, p.Time = unixNano(dp.GetStartTimeUnixNano()), unixNano(dp.GetTimeUnixNano())
		switch v := dp.GetValue().(type) {
		case *metricspb.NumberDataPoint_AsInt:
			p.IntValue, p.IsInt, p.Value = v.AsInt, true, float64(v.AsInt)
		case *metricspb.NumberDataPoint_AsDouble:
			p.Value = v.AsDouble
		}
		out = append(out, p)
	}
	return out
}

func (r *Receiver) addLogs(p Protocol, req *collogspb.ExportLogsServiceRequest) {
	var logs []LogRecord
	for _, rl := range req.GetResourceLogs() {
		res := attributes(rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			scope := sl.GetScope().GetName()
			for _, l := range sl.GetLogRecords() {
				logs = append(logs, LogRecord{
					Protocol:     p,
					Resource:     res,
					Scope:        scope,
					EventName:    l.GetEventName(),
					Time:         unixNano(l.GetTimeUnixNano()),
					ObservedTime: unixNano(l.GetObservedTimeUnixNano()),
					Severity:     l.GetSeverityNumber(),
					SeverityText: l.GetSeverityText(),
					Body:         anyValue(l.GetBody()),
					Attributes:   attributes(l.GetAttributes()),
					TraceID:      trace.TraceID(pad16(l.GetTraceId())),
					SpanID:       trace.SpanID(pad8(l.GetSpanId())),
					Proto:        l,
				})
			}
		}
	}
	r.record(p, Logs, func(int) { r.logs = append(r.logs, logs...) })
}

func attributes(kvs []*commonpb.KeyValue) Attributes {
	out := make(Attributes, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = anyValue(kv.GetValue())
	}
	return out
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		arr := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			arr = append(arr, anyValue(e))
		}
		return arr
	case *commonpb.AnyValue_KvlistValue:
		m := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			m[kv.GetKey()] = anyValue(kv.GetValue())
		}
		return m
	}
	return nil
}

func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

// pad16 and pad8 turn an ID field into a fixed array; a missing or malformed
// ID becomes the zero (invalid) ID rather than a panic.
func pad16(b []byte) (out [16]byte) {
	if len(b) == 16 {
		copy(out[:], b)
	}
	return out
}

func pad8(b []byte) (out [8]byte) {
	if len(b) == 8 {
		copy(out[:], b)
	}
	return out
}
