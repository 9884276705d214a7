// Package export turns genai Calls into OpenTelemetry telemetry by the GenAI
// semantic conventions (v1.41.0): a span per call, the conventions'
// histograms plus operational counters, and optionally an event record
// carrying message content. It sends them over OTLP (gRPC or HTTP/protobuf)
// under a resource per observed process, and prints a line per call on the
// console when no OTLP endpoint is configured. It knows nothing of the
// kernel or the wire; its input is genai.Call and the Process it belongs to.
//
// # Providers and their cost
//
// Telemetry belongs to the observed process, so each process (keyed by PID,
// start time, executable and service name) gets its own resource, with a
// MeterProvider and a LoggerProvider, created on its first call, retired
// after Config.ProcessIdleTimeout without calls, and at most
// Config.MaxProcesses at once (least recently used goes first). A retired
// process's metrics are collected one last time before its providers shut
// down.
//
// The expensive parts are shared. There is one OTLP client per signal, so
// one connection, and for traces and logs one batch queue that every
// process feeds: a process owns no goroutine, queue or connection, and a
// batch mixes spans of many processes, grouped by resource when sent. Spans
// skip the SDK's span objects altogether: each is encoded into OTLP's
// protobuf form as its call ends (spanwire.go says why and how it keeps the
// SDK's rules) and sent through the official OTLP trace client. Log
// records go through a LoggerProvider per process, whose shared processor's
// Shutdown does nothing. Metrics cannot share a reader (a reader belongs to
// one provider), so each provider has a ManualReader, and one loop collects
// all of them every Config.MetricInterval and exports one request per
// resource. A PeriodicReader per provider would cost a goroutine and a timer
// per process and make the final flush of a retired process harder to order.
//
// # Spans
//
// Name "{gen_ai.operation.name} {gen_ai.request.model}"; kind CLIENT when the
// process made the call, SERVER when it served it; start and end are the
// call's kernel times. Attributes: every conventions attribute the call has
// (operation, provider, models, response id, finish reasons, request
// parameters, gen_ai.request.stream, gen_ai.output.type,
// gen_ai.request.choice.count when not 1, gen_ai.response.time_to_first_chunk,
// the five gen_ai.usage.* counts, gen_ai.conversation.id, server.address and
// server.port (the server the request's Host header names, else the
// connection's), error.type with status Error and the redacted error message,
// http.request.method, http.response.status_code, client.address and
// client.port on SERVER spans, openai.* for provider openai), user.hash from
// Call.EndUserHash (already a salted hash, never the id itself), rate-limit
// and retry-after headers as http.response.header.<name>, and ours, all
// named in names.go:
//
//	llm_observer.api                                    wire format recognised, e.g. openai.chat_completions
//	llm_observer.request_id                             the provider's request id header
//	llm_observer.truncated                              capture lost bytes; counts may be incomplete
//	llm_observer.content.truncated                      a content attribute was cut to the byte cap
//	llm_observer.server_timing.source                   which server-reported fields were used
//	llm_observer.server_timing.time_to_first_token      s, as the server reported it
//	llm_observer.server_timing.time_per_output_token    s
//	llm_observer.server_timing.duration                 s
//
// A call the observer saw only in part (bytes lost, a close it cannot tell
// from a loss, no response seen) keeps the outcome the wire
// showed: status unset and no error.type unless the server said it failed
// (an HTTP status of 400 or more, an error body or stream event, an HTTP/2
// reset), with llm_observer.truncated=true either way.
//
// A valid traceparent (and tracestate) in the request makes the span a child
// in the application's trace. When both ends of an exchange are on this host
// the SERVER span becomes the child of the CLIENT span, whichever end reports
// first; the pairing type explains how.
//
// Tool executions are spans too: the tool calls a response asks for and the
// results a later request of the same process hands back make one
// execute_tool span each (kind INTERNAL, gen_ai.tool.name,
// gen_ai.tool.call.id, gen_ai.tool.type, and with content capture
// gen_ai.tool.call.arguments and gen_ai.tool.call.result), timed from the
// asking response's end to the answering request's start; the toolTracker
// type explains matching and parenting.
//
// Provider names are genai's: the conventions' values where they exist, and
// ollama, vllm, llama_cpp, litellm and openai_compatible where they do not.
//
// # Metrics
//
// The conventions' histograms, with the bucket boundaries the conventions
// advise set explicitly on each instrument:
//
//	gen_ai.client.operation.duration              s        client calls that got a response, with error.type
//	gen_ai.client.token.usage                     {token}  client calls, when usage was observed, gen_ai.token.type
//	gen_ai.client.operation.time_to_first_chunk   s        streamed client calls
//	gen_ai.client.operation.time_per_output_chunk s        one sample per content chunk after the first
//	gen_ai.server.request.duration                s        server calls that sent a response, with error.type; the server's own total when reported
//	gen_ai.server.time_to_first_token             s        successful server calls; reported prompt phase, else first content chunk
//	gen_ai.server.time_per_output_token           s        successful server calls; reported mean, else (t_last-t_first)/(output_tokens-1)
//
// Common attributes: gen_ai.operation.name, gen_ai.provider.name,
// gen_ai.request.model, gen_ai.response.model, server.address, server.port.
// Ours, each once per side (llm_observer.client.* for calls the process made,
// llm_observer.server.* for calls it served, so a proxy never mixes the two),
// with the common attributes:
//
//	<side>.requests          counter        {request}    ended calls, error.type on failures, llm_observer.truncated=true on calls seen in part
//	<side>.errors            counter        {request}    failed calls, by error.type
//	<side>.active_requests   up-down        {request}    +1 at CallStarted, -1 at CallEnded (start-time attributes only)
//	<side>.stream.chunks     counter        {chunk}      stream events of streamed responses
//	<side>.token.throughput  histogram      {token}/s    decode rate: 1/TPOT, or output tokens over the call when not streamed
//	<side>.request.messages  histogram      {message}    messages in a chat request
//	llm_observer.server.token.usage  histogram {token}   the server-side twin of gen_ai.client.token.usage
//
// Under the observer's own resource: llm_observer.export.failures
// ({request}, by llm_observer.signal), llm_observer.export.dropped ({item},
// by llm_observer.signal and reason) and llm_observer.export.processes
// ({process}, gauge), plus whatever the agent records through SelfMeter.
//
// # MCP
//
// A call with genai.Call.MCP set is an MCP message, not an LLM call: its
// span, its histograms (mcp.client.operation.duration and
// mcp.server.operation.duration) and its console line follow the MCP
// conventions instead, as mcp.go describes; pairing and the export queues
// are the same.
//
// # Content
//
// Off by default. When captured, gen_ai.system_instructions,
// gen_ai.input.messages and gen_ai.tool.definitions (input) and
// gen_ai.output.messages (output) are JSON strings in the conventions'
// message schema, on the span, on a gen_ai.client.inference.operation.details
// log record in the span's context, or both. Every string in them (and every
// error message, and the process command line) passes through the redaction
// patterns first: API keys (sk-…, sk-ant-…, AIza…, GitHub tokens, api_key=…),
// bearer tokens, Cookie headers, AWS keys, JWTs, PEM private keys and e-mail
// addresses are always replaced by [REDACTED], and Config.Redact adds more.
// Before any of that, whatever their shape, the request's own credential
// values (genai.Credentials: the Authorization token, and of an AWS SigV4
// one the signature, credential and access key id, api-key headers,
// X-Amz-Security-Token, each cookie value, key= and presigned-URL query
// values) are replaced in every string of the
// call — error message, models, ids, tool calls, content — so a server that
// echoes them (a 401 quoting the key) cannot send them on; this holds for
// spans, metrics, log records and the console line alike. Each attribute is then capped at Config.ContentMaxBytes: the longest texts
// are cut to a common length and end in "…[truncated]", whole old messages
// are dropped when texts would become too short to mean anything, and the
// JSON stays valid.
//
// # Conventions version
//
// The names are those of semantic conventions v1.41.0, the newest with the
// GenAI model (schema URL set on every scope and resource). The deprecated
// gen_ai.system is emitted beside gen_ai.provider.name only when
// Config.EmitGenAISystem asks for it, and never when
// OTEL_SEMCONV_STABILITY_OPT_IN contains gen_ai_latest_experimental, which
// asks for the latest names and none of the old ones.
//
// # Configuration
//
// Config is the exporter's whole input; zero fields take the Default*
// values. internal/config fills it from the OTEL_* and LLM_OBSERVER_*
// variables and their flags, and lists them all. The OTLP exporters
// themselves read OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _INSECURE,
// _COMPRESSION, _CERTIFICATE, _CLIENT_KEY, _CLIENT_CERTIFICATE (and their
// per-signal forms).
//
// # Queues, losses and shutdown
//
// Spans and log records go into one bounded queue per signal (sizes,
// batches, delays and timeouts as OTEL_BSP_* and OTEL_BLRP_* set them),
// exported one request at a time by the queue's goroutine; adding never
// blocks. Metrics are collected every MetricInterval in one pass whose
// exports share one MetricTimeout, stopping at the first failure (readers
// not collected keep their data for the next pass). Whatever does not reach
// the collector is counted by signal and reason (queue_full,
// collector_down, timeout, export_failed, shutdown): Exporter.Losses, and
// llm_observer.export.dropped under the observer's own resource. Export
// failures are written to Config.ErrorWriter at most once a minute per
// signal, with the count of those held back. Shutdown returns by its
// context's deadline whatever the collector does: the loops stop first,
// then spans, logs and the last metrics are flushed side by side, and what
// is still queued at the deadline is counted lost.
package export
