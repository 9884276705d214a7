package export

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/genaiconv"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// Bucket boundaries. The conventions give them as advice; they are set on
// each instrument so a backend never falls back to the SDK's defaults, which
// are far too coarse below a second.
var (
	// durationBuckets serve every duration histogram in seconds except TTFT
	// and TPOT on the server.
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	tpotBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}

	// Ours: decode rates from a slow CPU (1/s) to a fast GPU batch, and
	// conversation lengths up to agent loops.
	throughputBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}
	messageBuckets    = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
)

// instruments are the metric instruments of one observed process.
type instruments struct {
	clientDuration genaiconv.ClientOperationDuration
	clientTokens   genaiconv.ClientTokenUsage
	clientTTFC     genaiconv.ClientOperationTimeToFirstChunk
	clientTPOC     genaiconv.ClientOperationTimePerOutputChunk
	serverDuration genaiconv.ServerRequestDuration
	serverTTFT     genaiconv.ServerTimeToFirstToken
	serverTPOT     genaiconv.ServerTimePerOutputToken
	serverTokens   metric.Int64Histogram

	client, server sideInstruments
	mcp            mcpInstruments

	sets setCache
}

// sideInstruments are the operational instruments kept once per side.
type sideInstruments struct {
	requests   metric.Int64Counter
	errors     metric.Int64Counter
	active     metric.Int64UpDownCounter
	chunks     metric.Int64Counter
	throughput metric.Float64Histogram
	messages   metric.Int64Histogram
}

func newInstruments(m metric.Meter) (*instruments, error) {
	var ins instruments
	var errs [8]error
	ins.clientDuration, errs[0] = genaiconv.NewClientOperationDuration(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	ins.clientTokens, errs[1] = genaiconv.NewClientTokenUsage(m, metric.WithExplicitBucketBoundaries(tokenBuckets...))
	ins.clientTTFC, errs[2] = genaiconv.NewClientOperationTimeToFirstChunk(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	ins.clientTPOC, errs[3] = genaiconv.NewClientOperationTimePerOutputChunk(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	ins.serverDuration, errs[4] = genaiconv.NewServerRequestDuration(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	ins.serverTTFT, errs[5] = genaiconv.NewServerTimeToFirstToken(m, metric.WithExplicitBucketBoundaries(ttftBuckets...))
	ins.serverTPOT, errs[6] = genaiconv.NewServerTimePerOutputToken(m, metric.WithExplicitBucketBoundaries(tpotBuckets...))
	ins.serverTokens, errs[7] = m.Int64Histogram(metricServerTokenUsage,
		metric.WithDescription("Number of input and output tokens of requests the observed process served."),
		metric.WithUnit("{token}"),
		metric.WithExplicitBucketBoundaries(tokenBuckets...))
	client, errC := newSideInstruments(m, prefixClient, "made")
	server, errS := newSideInstruments(m, prefixServer, "served")
	ins.client, ins.server = client, server
	var errM error
	ins.mcp, errM = newMCPInstruments(m)
	return &ins, errors.Join(append(errs[:], errC, errS, errM)...)
}

func newSideInstruments(m metric.Meter, prefix, verb string) (sideInstruments, error) {
	var s sideInstruments
	var errs [6]error
	s.requests, errs[0] = m.Int64Counter(prefix+suffixRequests,
		metric.WithDescription("GenAI requests the observed process "+verb+", by outcome: error.type when the wire said it failed, llm_observer.truncated when capture saw it only in part."),
		metric.WithUnit("{request}"))
	s.errors, errs[1] = m.Int64Counter(prefix+suffixErrors,
		metric.WithDescription("GenAI requests the observed process "+verb+" that failed, by error.type."),
		metric.WithUnit("{request}"))
	s.active, errs[2] = m.Int64UpDownCounter(prefix+suffixActiveRequests,
		metric.WithDescription("GenAI requests the observed process "+verb+" that have started and not yet ended."),
		metric.WithUnit("{request}"))
	s.chunks, errs[3] = m.Int64Counter(prefix+suffixStreamChunks,
		metric.WithDescription("Stream events (SSE events or NDJSON lines) of streamed responses."),
		metric.WithUnit("{chunk}"))
	s.throughput, errs[4] = m.Float64Histogram(prefix+suffixThroughput,
		metric.WithDescription("Output tokens per second of generation (the decode rate)."),
		metric.WithUnit("{token}/s"),
		metric.WithExplicitBucketBoundaries(throughputBuckets...))
	s.messages, errs[5] = m.Int64Histogram(prefix+suffixMessages,
		metric.WithDescription("Messages in a chat request, including earlier turns of the conversation."),
		metric.WithUnit("{message}"),
		metric.WithExplicitBucketBoundaries(messageBuckets...))
	return s, errors.Join(errs[:]...)
}

// metricAttrs are the conventions' common metric attributes of a call.
// Response model and error type are left out at start, when they are not
// known yet. Whatever it reads of the call must be in setKey too.
func (e *Exporter) metricAttrs(dst []attribute.KeyValue, c *genai.Call, ended bool) []attribute.KeyValue {
	dst = append(dst, semconv.GenAIOperationNameKey.String(operationName(c)), semconv.GenAIProviderNameKey.String(c.Provider))
	if e.emitSystem {
		dst = append(dst, keyGenAISystem.String(c.Provider))
	}
	if c.RequestModel != "" {
		dst = append(dst, semconv.GenAIRequestModelKey.String(c.RequestModel))
	}
	if ended && c.ResponseModel != "" {
		dst = append(dst, semconv.GenAIResponseModelKey.String(c.ResponseModel))
	}
	addr, port := serverAddress(c)
	if addr != "" {
		dst = append(dst, semconv.ServerAddressKey.String(addr))
	}
	if port > 0 {
		dst = append(dst, semconv.ServerPortKey.Int(port))
	}
	return dst
}

// serverAddress is the server the request named (its Host header, as genai
// read it), falling back to the connection's server end.
func serverAddress(c *genai.Call) (string, int) {
	addr, port := c.ServerAddress, c.ServerPort
	if addr == "" {
		addr = c.Endpoint.ServerAddress
	}
	if port <= 0 {
		port = c.Endpoint.ServerPort
	}
	return addr, port
}

func (ins *instruments) side(c *genai.Call) *sideInstruments {
	if c.Endpoint.ClientSide {
		return &ins.client
	}
	return &ins.server
}

// record adds one ended call to the process's instruments.
func (e *Exporter) record(ins *instruments, c *genai.Call) {
	if c.MCP != nil {
		recordMCP(ins, c)
		return
	}
	ctx := context.Background()
	sets := ins.sets.get(e, c)
	set, withErr := sets.common.rec, sets.withErr.rec

	side := ins.side(c)
	side.requests.Add(ctx, 1, sets.outcome.add...)
	if c.ErrorType != "" {
		side.errors.Add(ctx, 1, sets.withErr.add...)
	}
	if c.Stream && c.Chunks > 0 {
		side.chunks.Add(ctx, int64(c.Chunks), sets.common.add...)
	}
	if c.Messages > 0 {
		side.messages.Record(ctx, int64(c.Messages), set...)
	}
	if rate, ok := decodeRate(c); ok {
		side.throughput.Record(ctx, rate, set...)
	}

	// A call cut before any response has no operation duration to speak
	// of, only how long its request took to send.
	timed := c.Status != 0 || !c.Truncated
	tokens := ins.clientTokens.Inst()
	if c.Endpoint.ClientSide {
		if timed {
			ins.clientDuration.Inst().Record(ctx, c.Duration().Seconds(), withErr...)
		}
		if ttfc, ok := c.TimeToFirstChunk(); ok {
			ins.clientTTFC.Inst().Record(ctx, ttfc.Seconds(), set...)
		}
		for i := 1; i < len(c.ContentChunks); i++ {
			if gap := c.ContentChunks[i].Sub(c.ContentChunks[i-1]); gap >= 0 {
				ins.clientTPOC.Inst().Record(ctx, gap.Seconds(), set...)
			}
		}
	} else {
		tokens = ins.serverTokens
		if timed {
			ins.serverDuration.Inst().Record(ctx, serverDuration(c).Seconds(), withErr...)
		}
		if c.ErrorType == "" {
			if ttft, ok := serverTTFT(c); ok {
				ins.serverTTFT.Inst().Record(ctx, ttft.Seconds(), set...)
			}
			if tpot, ok := serverTPOT(c); ok {
				ins.serverTPOT.Inst().Record(ctx, tpot.Seconds(), set...)
			}
		}
	}
	if n := c.Usage.InputTokens; n != nil && *n >= 0 {
		tokens.Record(ctx, *n, sets.input.rec...)
	}
	if n := c.Usage.OutputTokens; n != nil && *n >= 0 {
		tokens.Record(ctx, *n, sets.output.rec...)
	}
}

// callSets are the attribute sets one call's measurements are recorded
// with, as ready option lists. Calls to the same model and server share
// them, so they are built once and kept: building a set sorts, copies and
// hashes its attributes, and each option, and each option list passed to
// an instrument, is an allocation.
type callSets struct {
	common  setOptions // the conventions' common attributes
	withErr setOptions // common, and error.type when the call failed
	outcome setOptions // withErr, and llm_observer.truncated when it was cut
	input   setOptions // common and gen_ai.token.type=input
	output  setOptions // common and gen_ai.token.type=output
}

// setOptions is one attribute set as the option lists instruments take.
type setOptions struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func optionsOf(set attribute.Set) setOptions {
	o := metric.WithAttributeSet(set)
	return setOptions{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}}
}

// setKey is what the sets depend on.
type setKey struct {
	clientSide                                        bool
	op, provider, requestModel, responseModel, server string
	port                                              int
	errorType                                         string
	truncated                                         bool
}

// maxCachedSets bounds the cache; past it, it starts again empty. The
// metric SDK's own cardinality limit bounds the useful combinations anyway.
const maxCachedSets = 512

// setCache holds callSets by setKey. record may run on several goroutines.
type setCache struct {
	mu     sync.Mutex
	sets   map[setKey]*callSets
	active map[setKey]activeSet // by the key of a call not yet ended
}

// activeSet is the option carrying the set an active-request count is kept
// under; the decrement at a call's end reuses its increment's.
type activeSet struct {
	add []metric.AddOption
}

// activeOf is the set a started call is counted active under: the common
// attributes known at its start (no response model yet).
func (sc *setCache) activeOf(e *Exporter, c *genai.Call) activeSet {
	addr, port := serverAddress(c)
	k := setKey{clientSide: c.Endpoint.ClientSide, op: operationName(c), provider: c.Provider, requestModel: c.RequestModel, server: addr, port: port}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if a, ok := sc.active[k]; ok {
		return a
	}
	if sc.active == nil || len(sc.active) >= maxCachedSets {
		sc.active = make(map[setKey]activeSet)
	}
	var buf [8]attribute.KeyValue
	set := attribute.NewSet(e.metricAttrs(buf[:0], c, false)...)
	a := activeSet{add: []metric.AddOption{metric.WithAttributeSet(set)}}
	sc.active[k] = a
	return a
}

func (sc *setCache) get(e *Exporter, c *genai.Call) *callSets {
	addr, port := serverAddress(c)
	k := setKey{c.Endpoint.ClientSide, operationName(c), c.Provider, c.RequestModel, c.ResponseModel, addr, port, c.ErrorType, c.Truncated}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s, ok := sc.sets[k]; ok {
		return s
	}
	if sc.sets == nil || len(sc.sets) >= maxCachedSets {
		sc.sets = make(map[setKey]*callSets)
	}
	var buf [10]attribute.KeyValue
	common := e.metricAttrs(buf[:0], c, true)
	set := attribute.NewSet(common...)
	withErr := set
	if c.ErrorType != "" {
		withErr = extendSet(common, semconv.ErrorTypeKey.String(c.ErrorType))
	}
	outcome := withErr
	if c.Truncated {
		outcome = attribute.NewSet(append(withErr.ToSlice(), keyTruncated.Bool(true))...)
	}
	s := &callSets{
		common:  optionsOf(set),
		withErr: optionsOf(withErr),
		outcome: optionsOf(outcome),
		input:   optionsOf(extendSet(common, semconv.GenAITokenTypeInput)),
		output:  optionsOf(extendSet(common, semconv.GenAITokenTypeOutput)),
	}
	sc.sets[k] = s
	return s
}

// extendSet is the set of common plus kv. It copies: attribute.NewSet sorts
// the slice it is given in place, so appending to common and passing that
// would let one set's sorting overwrite the next one's attributes.
func extendSet(common []attribute.KeyValue, kv attribute.KeyValue) attribute.Set {
	var buf [12]attribute.KeyValue
	return attribute.NewSet(append(append(buf[:0], common...), kv)...)
}

// serverDuration prefers the server's own account of the request, which
// excludes the time the response spent in socket buffers.
func serverDuration(c *genai.Call) time.Duration {
	if c.ServerTiming.Total > 0 {
		return c.ServerTiming.Total
	}
	return c.Duration()
}

// serverTTFT prefers the server's prompt phase (Ollama load + prompt eval,
// llama.cpp prompt_ms, as genai chose) over the first content chunk it wrote.
func serverTTFT(c *genai.Call) (time.Duration, bool) {
	if c.ServerTiming.TimeToFirstToken > 0 {
		return c.ServerTiming.TimeToFirstToken, true
	}
	return c.TimeToFirstChunk()
}

// serverTPOT prefers the server's mean inter-token time, else spreads the time
// between the first and last content chunks over the tokens after the first:
// a chunk may carry several tokens, so the chunk count would overstate it.
func serverTPOT(c *genai.Call) (time.Duration, bool) {
	if c.ServerTiming.TimePerOutputToken > 0 {
		return c.ServerTiming.TimePerOutputToken, true
	}
	n := len(c.ContentChunks)
	out := c.Usage.OutputTokens
	if n < 2 || out == nil || *out < 2 {
		return 0, false
	}
	span := c.ContentChunks[n-1].Sub(c.ContentChunks[0])
	if span <= 0 {
		return 0, false
	}
	return span / time.Duration(*out-1), true
}

// decodeRate is output tokens per second of generation: the inverse of TPOT
// where that is known, else output tokens over the whole call for a response
// that came in one piece (prompt time included, so a lower bound).
func decodeRate(c *genai.Call) (float64, bool) {
	out := c.Usage.OutputTokens
	if out == nil || *out <= 0 {
		return 0, false
	}
	if tpot, ok := serverTPOT(c); ok {
		return 1 / tpot.Seconds(), true
	}
	if len(c.ContentChunks) >= 2 {
		return 0, false // streamed, but the chunks gave no usable interval
	}
	if d := c.Duration(); d > 0 {
		return float64(*out) / d.Seconds(), true
	}
	return 0, false
}

func operationName(c *genai.Call) string {
	if c.Operation == "" {
		return "_OTHER"
	}
	return c.Operation
}
