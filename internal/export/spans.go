package export

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// spanName is "{operation} {request model}", or the operation alone.
func spanName(c *genai.Call) string {
	op := operationName(c)
	if c.RequestModel == "" {
		return op
	}
	return op + " " + c.RequestModel
}

// attrBufs recycles the slices callAttributes fills: the span is encoded and
// a log record copies its attributes before emit returns, so one per call in
// flight is enough.
var attrBufs = sync.Pool{New: func() any { s := make([]attribute.KeyValue, 0, 64); return &s }}

// callAttributes appends to a the attributes of a call's span and of its
// event record: everything the conventions define that the call has, then
// ours.
func (e *Exporter) callAttributes(a []attribute.KeyValue, c *genai.Call) []attribute.KeyValue {
	a = e.metricAttrs(a, c, true)

	if c.ResponseID != "" {
		a = append(a, semconv.GenAIResponseIDKey.String(c.ResponseID))
	}
	if len(c.FinishReasons) > 0 {
		a = append(a, semconv.GenAIResponseFinishReasonsKey.StringSlice(c.FinishReasons))
	}
	if c.MaxTokens != nil {
		a = append(a, semconv.GenAIRequestMaxTokensKey.Int64(*c.MaxTokens))
	}
	for _, f := range []struct {
		key attribute.Key
		v   *float64
	}{
		{semconv.GenAIRequestTemperatureKey, c.Temperature},
		{semconv.GenAIRequestTopPKey, c.TopP},
		{semconv.GenAIRequestTopKKey, c.TopK},
		{semconv.GenAIRequestFrequencyPenaltyKey, c.FrequencyPenalty},
		{semconv.GenAIRequestPresencePenaltyKey, c.PresencePenalty},
	} {
		if f.v != nil {
			a = append(a, f.key.Float64(*f.v))
		}
	}
	if len(c.StopSequences) > 0 {
		a = append(a, semconv.GenAIRequestStopSequencesKey.StringSlice(c.StopSequences))
	}
	if c.Seed != nil {
		a = append(a, semconv.GenAIRequestSeedKey.Int64(*c.Seed))
	}
	if c.ChoiceCount != 0 && c.ChoiceCount != 1 {
		a = append(a, semconv.GenAIRequestChoiceCountKey.Int(c.ChoiceCount))
	}
	if c.Stream {
		a = append(a, semconv.GenAIRequestStreamKey.Bool(true))
	}
	if c.OutputType != "" {
		a = append(a, semconv.GenAIOutputTypeKey.String(c.OutputType))
	}
	if ttfc, ok := c.TimeToFirstChunk(); ok {
		a = append(a, semconv.GenAIResponseTimeToFirstChunkKey.Float64(ttfc.Seconds()))
	}
	for _, u := range []struct {
		key attribute.Key
		v   *int64
	}{
		{semconv.GenAIUsageInputTokensKey, c.Usage.InputTokens},
		{semconv.GenAIUsageOutputTokensKey, c.Usage.OutputTokens},
		{semconv.GenAIUsageCacheReadInputTokensKey, c.Usage.CacheReadInputTokens},
		{semconv.GenAIUsageCacheCreationInputTokensKey, c.Usage.CacheCreationInputTokens},
		{semconv.GenAIUsageReasoningOutputTokensKey, c.Usage.ReasoningOutputTokens},
	} {
		if u.v != nil {
			a = append(a, u.key.Int64(*u.v))
		}
	}
	if c.ConversationID != "" {
		a = append(a, semconv.GenAIConversationIDKey.String(c.ConversationID))
	}
	if c.ErrorType != "" {
		a = append(a, semconv.ErrorTypeKey.String(c.ErrorType))
	}
	if c.Method != "" {
		a = append(a, semconv.HTTPRequestMethodKey.String(c.Method))
	}
	if c.Status != 0 {
		a = append(a, semconv.HTTPResponseStatusCodeKey.Int(c.Status))
	}
	if !c.Endpoint.ClientSide {
		if c.Endpoint.ClientAddress != "" {
			a = append(a, semconv.ClientAddressKey.String(c.Endpoint.ClientAddress))
		}
		if c.Endpoint.ClientPort > 0 {
			a = append(a, semconv.ClientPortKey.Int(c.Endpoint.ClientPort))
		}
	}
	if c.Provider == genai.ProviderOpenAI {
		a = appendOpenAI(a, c)
	}
	if c.EndUserHash != "" {
		a = append(a, semconv.UserHashKey.String(c.EndUserHash))
	}

	if c.API != "" {
		a = append(a, keyAPI.String(c.API))
	}
	if c.RequestID != "" {
		a = append(a, keyRequestID.String(c.RequestID))
	}
	if c.Truncated {
		a = append(a, keyTruncated.Bool(true))
	}
	if st := c.ServerTiming; st.Source != "" {
		a = append(a, keyServerTimingSource.String(st.Source))
		for _, t := range []struct {
			key attribute.Key
			d   time.Duration
		}{{keyServerTimingTTFT, st.TimeToFirstToken}, {keyServerTimingTPOT, st.TimePerOutputToken}, {keyServerTimingTotal, st.Total}} {
			if t.d > 0 {
				a = append(a, t.key.Float64(t.d.Seconds()))
			}
		}
	}
	for name, v := range c.RateLimit {
		a = append(a, semconv.HTTPResponseHeader(strings.ToLower(name), v))
	}
	return a
}

func appendOpenAI(a []attribute.KeyValue, c *genai.Call) []attribute.KeyValue {
	switch apiType, _ := strings.CutPrefix(c.API, "openai."); apiType {
	case "chat_completions", "responses":
		a = append(a, semconv.OpenAIAPITypeKey.String(apiType))
	}
	if c.ServiceTier != "" {
		a = append(a, semconv.OpenAIRequestServiceTierKey.String(c.ServiceTier))
	}
	if c.ResponseServiceTier != "" {
		a = append(a, semconv.OpenAIResponseServiceTierKey.String(c.ResponseServiceTier))
	}
	if c.SystemFingerprint != "" {
		a = append(a, semconv.OpenAIResponseSystemFingerprintKey.String(c.SystemFingerprint))
	}
	return a
}

// traceContext is the W3C propagator; only its Extract is used, on the
// request's own traceparent and tracestate headers.
var traceContext propagation.TraceContext

// parentSpanContext is the span a call's span goes under: the client span
// of the same exchange when pairing found one, else the application's span
// from the request's traceparent header, else none (a new trace).
func parentSpanContext(c *genai.Call, paired trace.SpanContext) trace.SpanContext {
	if paired.IsValid() {
		return paired
	}
	return requestSpanContext(c)
}

// requestSpanContext is the span context the request's traceparent names,
// invalid when it has none or a malformed one.
func requestSpanContext(c *genai.Call) trace.SpanContext {
	if c.TraceParent == "" {
		return trace.SpanContext{}
	}
	carrier := propagation.MapCarrier{"traceparent": c.TraceParent}
	if c.TraceState != "" {
		carrier["tracestate"] = c.TraceState
	}
	return trace.SpanContextFromContext(traceContext.Extract(context.Background(), carrier))
}

// emit writes a call's span and, when content goes to logs, its event
// record. self, when valid, holds the IDs pairing reserved for a client
// span; parent, when valid, is the client span a server span belongs under.
// It returns the span's context.
func (e *Exporter) emit(pt *processTelemetry, c *genai.Call, self, parent trace.SpanContext) trace.SpanContext {
	if c.MCP != nil {
		return e.emitMCP(pt, c, self, parent)
	}
	buf := attrBufs.Get().(*[]attribute.KeyValue)
	attrs := e.callAttributes((*buf)[:0], c)
	content := e.content.attributes(c)
	spanAttrs := attrs
	if e.content.dest.toSpan() {
		spanAttrs = append(attrs, content...)
	}
	defer func() {
		clear(spanAttrs) // keep no call's strings alive in the pool
		*buf = spanAttrs[:0]
		attrBufs.Put(buf)
	}()

	d := spanData{
		name: spanName(c), kind: trace.SpanKindServer,
		start: c.Start, end: c.End,
		self: self, parent: parentSpanContext(c, parent),
		attrs: spanAttrs,
	}
	if c.Endpoint.ClientSide {
		d.kind = trace.SpanKindClient
	}
	// Status ERROR only for what the wire said (error.type); a call the
	// observer saw only in part keeps status unset and says so with
	// llm_observer.truncated.
	if c.ErrorType != "" {
		d.errMsg = e.content.redactor.redact(c.ErrorMessage)
		if d.errMsg == "" {
			d.errMsg = c.ErrorType
		}
	}
	sc := e.writeSpan(pt, &d)

	if len(content) > 0 && e.content.dest.toLog() && pt.logger != nil {
		end := c.End
		if end.Before(c.Start) {
			end = c.Start
		}
		var rec otellog.Record
		rec.SetEventName(eventInferenceDetails)
		rec.SetTimestamp(end)
		rec.SetObservedTimestamp(time.Now())
		rec.SetSeverity(otellog.SeverityInfo)
		rec.AddAttributes(attrs...)
		rec.AddAttributes(content...)
		pt.logger.Emit(trace.ContextWithSpanContext(context.Background(), sc), rec)
	}
	return sc
}

func newTraceID() (id trace.TraceID) {
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() (id trace.SpanID) {
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
