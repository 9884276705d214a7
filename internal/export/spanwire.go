package export

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Spans are written straight into OTLP's protobuf encoding, one byte slice
// per span, as the call ends, and handed to the official OTLP trace client
// (gRPC or HTTP, with its endpoint, TLS, header, compression and retry
// settings) as the unknown fields of otherwise empty ResourceSpans
// messages, which protobuf marshals verbatim.
//
// The SDK's path made, per span, a recording span, an attribute snapshot,
// then one OTLP message object per attribute and value, and marshalled
// those by reflection: measured at about a quarter of the observer's CPU
// per non-streamed call. Each span here is one allocation. The rules the
// SDK applied are kept: the parent-based sampler (a span under an
// application's unsampled parent is not recorded), the span limits of
// OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT and OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT
// (with dropped_attributes_count), last-value-wins for a repeated key, and
// the flags' parent-is-remote bits. The encoding test checks the bytes
// against what the SDK's exporter sends for the same span.

// OTLP field numbers (opentelemetry/proto/trace/v1/trace.proto,
// common/v1/common.proto, resource/v1/resource.proto).
const (
	fieldResourceSpansResource  = 1
	fieldResourceSpansScope     = 2
	fieldResourceSpansSchemaURL = 3

	fieldScopeSpansScope     = 1
	fieldScopeSpansSpans     = 2
	fieldScopeSpansSchemaURL = 3

	fieldScopeName = 1

	fieldResourceAttributes = 1

	fieldSpanTraceID      = 1
	fieldSpanSpanID       = 2
	fieldSpanTraceState   = 3
	fieldSpanParentSpanID = 4
	fieldSpanName         = 5
	fieldSpanKind         = 6
	fieldSpanStart        = 7
	fieldSpanEnd          = 8
	fieldSpanAttributes   = 9
	fieldSpanDropped      = 10
	fieldSpanStatus       = 15
	fieldSpanFlags        = 16

	fieldStatusMessage = 2
	fieldStatusCode    = 3
	statusCodeError    = 2

	fieldKVKey   = 1
	fieldKVValue = 2

	fieldAnyString = 1
	fieldAnyBool   = 2
	fieldAnyInt    = 3
	fieldAnyDouble = 4
	fieldAnyArray  = 5
	fieldAnyKVList = 6
	fieldAnyBytes  = 7

	fieldArrayValues = 1 // ArrayValue.values and KeyValueList.values alike

	// Span flags: the low 8 bits are the W3C trace flags; these say
	// whether the parent is known to be remote.
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// spanData is one finished span as the exporter writes it.
type spanData struct {
	name       string
	kind       trace.SpanKind
	start, end time.Time
	// self holds IDs reserved before the span existed, when valid.
	self trace.SpanContext
	// parent is the span this one is under, when valid; it is always another
	// process's or an earlier export's span, so remote.
	parent trace.SpanContext
	attrs  []attribute.KeyValue
	// errMsg, when set, makes the status ERROR with this description.
	errMsg string
}

// spanLimits are the SDK's span limits, read from the environment once.
type spanLimits struct {
	count    int // attributes per span; negative: no limit
	valueLen int // bytes per string value; negative: no limit
}

func newSpanLimits() spanLimits {
	l := sdktrace.NewSpanLimits()
	return spanLimits{count: l.AttributeCountLimit, valueLen: l.AttributeValueLengthLimit}
}

// spanResource is the encoded resource and scope of one process's spans.
type spanResource struct {
	resource []byte // ResourceSpans.resource, tag included
	tail     []byte // ResourceSpans.schema_url, tag included
}

// scopeBytes is ScopeSpans.scope, tag included: the same for every process.
var scopeBytes = func() []byte {
	var scope []byte
	scope = protowire.AppendTag(scope, fieldScopeName, protowire.BytesType)
	scope = protowire.AppendString(scope, scopeName)
	b := protowire.AppendTag(nil, fieldScopeSpansScope, protowire.BytesType)
	return protowire.AppendBytes(b, scope)
}()

// scopeSchemaBytes is ScopeSpans.schema_url, tag included.
var scopeSchemaBytes = func() []byte {
	b := protowire.AppendTag(nil, fieldScopeSpansSchemaURL, protowire.BytesType)
	return protowire.AppendString(b, semconv.SchemaURL)
}()

func newSpanResource(res *resource.Resource) *spanResource {
	var attrs []byte
	for it := res.Iter(); it.Next(); {
		attrs = appendKeyValue(attrs, fieldResourceAttributes, it.Attribute(), -1)
	}
	r := &spanResource{resource: protowire.AppendTag(nil, fieldResourceSpansResource, protowire.BytesType)}
	r.resource = protowire.AppendBytes(r.resource, attrs)
	if url := res.SchemaURL(); url != "" {
		r.tail = protowire.AppendTag(nil, fieldResourceSpansSchemaURL, protowire.BytesType)
		r.tail = protowire.AppendString(r.tail, url)
	}
	return r
}

// encodedSpan is one span's Span message and the process it belongs to.
type encodedSpan struct {
	res  *spanResource
	span []byte
}

// spanBufs recycles the scratch a span is encoded into before it is copied
// out at its exact size.
var spanBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// writeSpan records d as a span of pt's process and returns its context.
func (e *Exporter) writeSpan(pt *processTelemetry, d *spanData) trace.SpanContext {
	cfg := trace.SpanContextConfig{TraceFlags: trace.FlagsSampled}
	if d.parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = d.parent.TraceID(), d.parent.TraceFlags(), d.parent.TraceState()
	} else if d.self.IsValid() {
		cfg.TraceID = d.self.TraceID()
	} else {
		cfg.TraceID = newTraceID()
	}
	if d.self.IsValid() && d.self.TraceID() == cfg.TraceID {
		cfg.SpanID = d.self.SpanID()
	} else {
		cfg.SpanID = newSpanID()
	}
	sc := trace.NewSpanContext(cfg)
	// The parent-based sampler: an application that chose not to sample
	// its trace gets no span in it.
	if !sc.IsSampled() || e.spans == nil || pt.spanRes == nil {
		return sc
	}
	buf := spanBufs.Get().(*[]byte)
	b := appendSpan((*buf)[:0], sc, d, e.limits)
	e.spans.add(encodedSpan{res: pt.spanRes, span: append([]byte(nil), b...)})
	*buf = b[:0]
	spanBufs.Put(buf)
	return sc
}

// appendSpan appends the Span message of d, with context sc, to b.
func appendSpan(b []byte, sc trace.SpanContext, d *spanData, lim spanLimits) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	b = protowire.AppendTag(b, fieldSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, tid[:])
	b = protowire.AppendTag(b, fieldSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = protowire.AppendTag(b, fieldSpanTraceState, protowire.BytesType)
		b = protowire.AppendString(b, ts.String())
	}
	flags := uint32(sc.TraceFlags()) | flagHasIsRemote
	if d.parent.IsValid() {
		psid := d.parent.SpanID()
		b = protowire.AppendTag(b, fieldSpanParentSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, psid[:])
		flags |= flagIsRemote
	}
	b = protowire.AppendTag(b, fieldSpanName, protowire.BytesType)
	b = protowire.AppendString(b, d.name)
	if d.kind != trace.SpanKindUnspecified {
		b = protowire.AppendTag(b, fieldSpanKind, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d.kind))
	}
	b = protowire.AppendTag(b, fieldSpanStart, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, unixNano(d.start))
	end := d.end
	if end.Before(d.start) {
		end = d.start
	}
	b = protowire.AppendTag(b, fieldSpanEnd, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, unixNano(end))

	// As the SDK: an invalid attribute is dropped and counted, a repeated
	// key keeps its first place and its last value, and keys beyond the
	// count limit are dropped and counted.
	kept, dropped := 0, 0
	repeats := repeatedKeys(d.attrs)
	for i, kv := range d.attrs {
		if !kv.Valid() {
			dropped++
			continue
		}
		if repeats {
			if seenKey(d.attrs[:i], kv.Key) {
				continue
			}
			kv = lastValue(d.attrs[i:], kv)
		}
		if lim.count >= 0 && kept >= lim.count {
			dropped++
			continue
		}
		kept++
		b = appendKeyValue(b, fieldSpanAttributes, kv, lim.valueLen)
	}
	if dropped > 0 {
		b = protowire.AppendTag(b, fieldSpanDropped, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(dropped))
	}
	// The SDK's exporter always writes a status, empty when unset.
	b = protowire.AppendTag(b, fieldSpanStatus, protowire.BytesType)
	if d.errMsg == "" {
		b = protowire.AppendVarint(b, 0)
	} else {
		msg := d.errMsg // not an attribute: no value limit, as in the SDK
		b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fieldStatusMessage)+protowire.SizeBytes(len(msg))+
			protowire.SizeTag(fieldStatusCode)+protowire.SizeVarint(statusCodeError)))
		b = protowire.AppendTag(b, fieldStatusMessage, protowire.BytesType)
		b = protowire.AppendString(b, msg)
		b = protowire.AppendTag(b, fieldStatusCode, protowire.VarintType)
		b = protowire.AppendVarint(b, statusCodeError)
	}
	b = protowire.AppendTag(b, fieldSpanFlags, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, flags)
}

// repeatedKeys reports whether a key occurs twice in attrs. The spans'
// builders never repeat one, so this is the common answer made cheap: a
// 256-bit filter on a few bytes of each key, and a scan only for keys whose
// bit was already set.
func repeatedKeys(attrs []attribute.KeyValue) bool {
	var seen [4]uint64
	for i, kv := range attrs {
		k := kv.Key
		if k == "" {
			continue
		}
		h := uint(len(k))*0x9e37 ^ uint(k[0])<<3 ^ uint(k[len(k)-1])*0x85 ^ uint(k[len(k)/2])*0x1f
		w, bit := (h>>6)&3, uint64(1)<<(h&63)
		if seen[w]&bit != 0 && seenKey(attrs[:i], k) {
			return true
		}
		seen[w] |= bit
	}
	return false
}

// seenKey reports whether an attribute before this one had key. Spans
// carry a few dozen attributes, so a scan costs less than a set.
func seenKey(before []attribute.KeyValue, key attribute.Key) bool {
	for _, kv := range before {
		if len(kv.Key) == len(key) && kv.Key == key && kv.Valid() {
			return true
		}
	}
	return false
}

// lastValue is kv with the value of the last valid attribute of its key in
// from, which starts with kv.
func lastValue(from []attribute.KeyValue, kv attribute.KeyValue) attribute.KeyValue {
	for _, later := range from[1:] {
		if len(later.Key) == len(kv.Key) && later.Key == kv.Key && later.Valid() {
			kv = later
		}
	}
	return kv
}

func unixNano(t time.Time) uint64 {
	if n := t.UnixNano(); n > 0 {
		return uint64(n)
	}
	return 0
}

// truncateValue cuts s to at most limit characters, as the SDK's
// OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT does; a negative limit keeps it
// whole. (The SDK also drops invalid UTF-8 from a value it cuts; here the
// cut keeps such bytes, each counting as a character.)
func truncateValue(s string, limit int) string {
	if limit < 0 || len(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}

// truncateBytes cuts a byte slice value to at most limit bytes.
func truncateBytes(b []byte, limit int) []byte {
	if limit < 0 || len(b) <= limit {
		return b
	}
	return b[:limit]
}

// appendKeyValue appends kv as field num (a KeyValue message) to b.
func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue, valueLen int) []byte {
	if kv.Value.Type() == attribute.STRINGSLICE {
		// Each AsStringSlice is a copy; take it once.
		return appendStringsKeyValue(b, num, kv.Key, kv.Value.AsStringSlice(), valueLen)
	}
	vs := sizeAnyValue(kv.Value, valueLen)
	b = appendKeyValueHead(b, num, kv.Key, vs)
	return appendAnyValueBody(b, kv.Value, valueLen)
}

func appendKeyValueHead(b []byte, num protowire.Number, key attribute.Key, valueSize int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fieldKVKey)+protowire.SizeBytes(len(key))+
		protowire.SizeTag(fieldKVValue)+protowire.SizeBytes(valueSize)))
	b = protowire.AppendTag(b, fieldKVKey, protowire.BytesType)
	b = protowire.AppendString(b, string(key))
	b = protowire.AppendTag(b, fieldKVValue, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(valueSize))
}

// appendStringsKeyValue appends a string slice attribute.
func appendStringsKeyValue(b []byte, num protowire.Number, key attribute.Key, ss []string, valueLen int) []byte {
	list := 0
	for _, s := range ss {
		list += protowire.SizeTag(fieldArrayValues) + protowire.SizeBytes(protowire.SizeTag(fieldAnyString)+protowire.SizeBytes(len(truncateValue(s, valueLen))))
	}
	b = appendKeyValueHead(b, num, key, protowire.SizeTag(fieldAnyArray)+protowire.SizeBytes(list))
	b = protowire.AppendTag(b, fieldAnyArray, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(list))
	for _, s := range ss {
		s = truncateValue(s, valueLen)
		b = protowire.AppendTag(b, fieldArrayValues, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fieldAnyString)+protowire.SizeBytes(len(s))))
		b = protowire.AppendTag(b, fieldAnyString, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	return b
}

// sizeAnyValue is the encoded size of v's AnyValue message body.
func sizeAnyValue(v attribute.Value, valueLen int) int {
	switch v.Type() {
	case attribute.BOOL:
		return protowire.SizeTag(fieldAnyBool) + 1
	case attribute.INT64:
		return protowire.SizeTag(fieldAnyInt) + protowire.SizeVarint(uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return protowire.SizeTag(fieldAnyDouble) + 8
	case attribute.STRING:
		return protowire.SizeTag(fieldAnyString) + protowire.SizeBytes(len(truncateValue(v.AsString(), valueLen)))
	case attribute.BYTESLICE:
		return protowire.SizeTag(fieldAnyBytes) + protowire.SizeBytes(len(truncateBytes(v.AsByteSlice(), valueLen)))
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE, attribute.SLICE, attribute.MAP:
		return protowire.SizeTag(fieldAnyArray) + protowire.SizeBytes(sizeListBody(v, valueLen))
	}
	return 0
}

// sizeListBody is the encoded size of the ArrayValue or KeyValueList body
// of a slice or map value.
func sizeListBody(v attribute.Value, valueLen int) int {
	n := 0
	elem := func(size int) { n += protowire.SizeTag(fieldArrayValues) + protowire.SizeBytes(size) }
	switch v.Type() {
	case attribute.BOOLSLICE:
		for range v.AsBoolSlice() {
			elem(protowire.SizeTag(fieldAnyBool) + 1)
		}
	case attribute.INT64SLICE:
		for _, x := range v.AsInt64Slice() {
			elem(protowire.SizeTag(fieldAnyInt) + protowire.SizeVarint(uint64(x)))
		}
	case attribute.FLOAT64SLICE:
		for range v.AsFloat64Slice() {
			elem(protowire.SizeTag(fieldAnyDouble) + 8)
		}
	case attribute.STRINGSLICE:
		for _, s := range v.AsStringSlice() {
			elem(protowire.SizeTag(fieldAnyString) + protowire.SizeBytes(len(truncateValue(s, valueLen))))
		}
	case attribute.SLICE:
		for _, x := range v.AsSlice() {
			elem(sizeAnyValue(x, valueLen))
		}
	case attribute.MAP:
		for _, kv := range v.AsMap() {
			vs := sizeAnyValue(kv.Value, valueLen)
			elem(protowire.SizeTag(fieldKVKey) + protowire.SizeBytes(len(kv.Key)) + protowire.SizeTag(fieldKVValue) + protowire.SizeBytes(vs))
		}
	}
	return n
}

// appendAnyValueBody appends the body of v's AnyValue message.
func appendAnyValueBody(b []byte, v attribute.Value, valueLen int) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendTag(b, fieldAnyBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, fieldAnyInt, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, fieldAnyDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = protowire.AppendTag(b, fieldAnyString, protowire.BytesType)
		return protowire.AppendString(b, truncateValue(v.AsString(), valueLen))
	case attribute.BYTESLICE:
		b = protowire.AppendTag(b, fieldAnyBytes, protowire.BytesType)
		return protowire.AppendBytes(b, truncateBytes(v.AsByteSlice(), valueLen))
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE, attribute.SLICE, attribute.MAP:
		field := protowire.Number(fieldAnyArray)
		if v.Type() == attribute.MAP {
			field = fieldAnyKVList
		}
		b = protowire.AppendTag(b, field, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(sizeListBody(v, valueLen)))
		return appendListBody(b, v, valueLen)
	}
	return b
}

func appendListBody(b []byte, v attribute.Value, valueLen int) []byte {
	switch v.Type() {
	case attribute.BOOLSLICE:
		for _, x := range v.AsBoolSlice() {
			b = appendArrayElem(b, attribute.BoolValue(x), valueLen)
		}
	case attribute.INT64SLICE:
		for _, x := range v.AsInt64Slice() {
			b = appendArrayElem(b, attribute.Int64Value(x), valueLen)
		}
	case attribute.FLOAT64SLICE:
		for _, x := range v.AsFloat64Slice() {
			b = appendArrayElem(b, attribute.Float64Value(x), valueLen)
		}
	case attribute.STRINGSLICE:
		for _, x := range v.AsStringSlice() {
			b = appendArrayElem(b, attribute.StringValue(x), valueLen)
		}
	case attribute.SLICE:
		for _, x := range v.AsSlice() {
			b = appendArrayElem(b, x, valueLen)
		}
	case attribute.MAP:
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, fieldArrayValues, kv, valueLen)
		}
	}
	return b
}

func appendArrayElem(b []byte, v attribute.Value, valueLen int) []byte {
	b = protowire.AppendTag(b, fieldArrayValues, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sizeAnyValue(v, valueLen)))
	return appendAnyValueBody(b, v, valueLen)
}

// spanClient is the part of the OTLP trace client the queue uses.
type spanClient interface {
	UploadTraces(ctx context.Context, rs []*tracepb.ResourceSpans) error
	Stop(ctx context.Context) error
}

var _ spanClient = otlptrace.Client(nil)

// spanQueue batches encoded spans for the OTLP trace client.
type spanQueue struct {
	q *batchQueue[encodedSpan]
	// raw is reused by each export request's ResourceSpans: the queue
	// sends one request at a time, and the client has marshalled the
	// request when UploadTraces returns.
	raw []byte
}

func newSpanQueue(client spanClient, cfg QueueConfig, lost *losses, log *errorLog, failed func(context.Context)) *spanQueue {
	s := &spanQueue{}
	upload := func(ctx context.Context, batch []encodedSpan) error {
		var rs []*tracepb.ResourceSpans
		rs, s.raw = resourceSpans(batch, s.raw[:0])
		err := client.UploadTraces(ctx, rs)
		if cap(s.raw) > maxKeptBatchBytes {
			s.raw = nil // one huge batch must not pin its buffer
		}
		return err
	}
	s.q = newBatchQueue(signalTraces, cfg, upload, client.Stop, lost, log, failed)
	return s
}

// maxKeptBatchBytes bounds the request buffer kept between exports.
const maxKeptBatchBytes = 4 << 20

func (s *spanQueue) add(sp encodedSpan)                   { s.q.add(sp) }
func (s *spanQueue) ForceFlush(ctx context.Context) error { return s.q.flush(ctx) }
func (s *spanQueue) Shutdown(ctx context.Context) error   { return s.q.shutdown(ctx) }

// resourceSpans groups a batch by process, in order of first appearance,
// into one ResourceSpans each, carried as unknown fields whose bytes are
// laid out in raw (grown as needed and returned).
func resourceSpans(batch []encodedSpan, raw []byte) ([]*tracepb.ResourceSpans, []byte) {
	// Batches are mostly of one process or a few: a linear list of groups
	// beats a map.
	type group struct {
		res   *spanResource
		spans []int
		scope int // ScopeSpans body size
	}
	var groups []group
	total := 0
	for i, s := range batch {
		g := -1
		for j := range groups {
			if groups[j].res == s.res {
				g = j
				break
			}
		}
		if g < 0 {
			g = len(groups)
			groups = append(groups, group{res: s.res, scope: len(scopeBytes) + len(scopeSchemaBytes)})
		}
		groups[g].spans = append(groups[g].spans, i)
		groups[g].scope += protowire.SizeTag(fieldScopeSpansSpans) + protowire.SizeBytes(len(s.span))
	}
	for _, g := range groups {
		total += len(g.res.resource) + protowire.SizeTag(fieldResourceSpansScope) + protowire.SizeBytes(g.scope) + len(g.res.tail)
	}
	// Sized once, so that no append below moves what earlier groups point to.
	raw = slices.Grow(raw[:0], total)
	out := make([]*tracepb.ResourceSpans, 0, len(groups))
	for _, g := range groups {
		from := len(raw)
		raw = append(raw, g.res.resource...)
		raw = protowire.AppendTag(raw, fieldResourceSpansScope, protowire.BytesType)
		raw = protowire.AppendVarint(raw, uint64(g.scope))
		raw = append(raw, scopeBytes...)
		for _, i := range g.spans {
			raw = protowire.AppendTag(raw, fieldScopeSpansSpans, protowire.BytesType)
			raw = protowire.AppendBytes(raw, batch[i].span)
		}
		raw = append(raw, scopeSchemaBytes...)
		raw = append(raw, g.res.tail...)
		rs := &tracepb.ResourceSpans{}
		rs.ProtoReflect().SetUnknown(protoreflect.RawFields(raw[from:len(raw):len(raw)]))
		out = append(out, rs)
	}
	return out, raw
}
