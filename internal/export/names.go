package export

import "go.opentelemetry.io/otel/attribute"

// Names the semantic conventions v1.41.0 Go package does not define. Every
// attribute, metric and event name this package invents or takes from a
// convention text lives here and only here, so that the package doc's tables
// can be checked against one file.

// Attribute keys.
const (
	// keyGenAISystem is the deprecated predecessor of gen_ai.provider.name,
	// emitted only on request (Config.EmitGenAISystem).
	keyGenAISystem = attribute.Key("gen_ai.system")

	// keyAPI names the wire format recognised, e.g. "openai.chat_completions".
	keyAPI = attribute.Key("llm_observer.api")
	// keyRequestID is the provider's request id header (x-request-id,
	// request-id, …), what support desks ask for.
	keyRequestID = attribute.Key("llm_observer.request_id")
	// keyTruncated marks a call whose capture lost or cut bytes, so counts
	// and content on it may be incomplete.
	keyTruncated = attribute.Key("llm_observer.truncated")
	// keyContentTruncated marks content attributes cut to the byte cap.
	keyContentTruncated = attribute.Key("llm_observer.content.truncated")
	// keySignal tells on the observer's own health metrics which signal a
	// failure belongs to.
	keySignal = attribute.Key("llm_observer.signal")
	// keyLossReason tells why telemetry never reached the collector; plain
	// "reason", as on the agent's other drop counters.
	keyLossReason = attribute.Key("reason")

	// Timings the model server reported about itself, in seconds, and which
	// fields they came from.
	keyServerTimingSource = attribute.Key("llm_observer.server_timing.source")
	keyServerTimingTTFT   = attribute.Key("llm_observer.server_timing.time_to_first_token")
	keyServerTimingTPOT   = attribute.Key("llm_observer.server_timing.time_per_output_token")
	keyServerTimingTotal  = attribute.Key("llm_observer.server_timing.duration")
)

// eventInferenceDetails is the event (log record) name carrying a call's
// attributes and content when content goes to logs.
const eventInferenceDetails = "gen_ai.client.inference.operation.details"

// Metric names beside the conventions' histograms. Each exists once for the
// client side and once for the server side (prefix + suffix), so a process
// that is both (a proxy) never mixes what it sent with what it served.
const (
	prefixClient = "llm_observer.client."
	prefixServer = "llm_observer.server."

	suffixRequests       = "requests"
	suffixErrors         = "errors"
	suffixActiveRequests = "active_requests"
	suffixStreamChunks   = "stream.chunks"
	suffixThroughput     = "token.throughput"
	suffixMessages       = "request.messages"

	// metricServerTokenUsage is the server-side twin of
	// gen_ai.client.token.usage, which the conventions define for clients only.
	metricServerTokenUsage = "llm_observer.server.token.usage"

	// Health of the observer itself, under its own resource.
	metricExportFailures = "llm_observer.export.failures"
	metricExportDropped  = "llm_observer.export.dropped"
	metricProcesses      = "llm_observer.export.processes"
)

// Values of keySignal.
const (
	signalTraces  = "traces"
	signalMetrics = "metrics"
	signalLogs    = "logs"
)

// scopeName is the instrumentation scope of all telemetry this package makes.
const scopeName = "github.com/llm-observer/llm-observer"
