package export

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/semconv/v1.41.0/mcpconv"
	"go.opentelemetry.io/otel/trace"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// MCP messages (genai.Call with MCP set) follow the conventions' MCP
// semantic conventions (v1.41.0, docs/gen-ai/mcp.md) instead of the GenAI
// client spans: a span per JSON-RPC request or notification, CLIENT in the
// agent and SERVER in the MCP server, the server one the child of the
// client one when both are on this host (paired like LLM calls, by
// connection), named "{mcp.method.name} {target}" where the target is the
// tool (tools/call) or prompt (prompts/get) name, and the method alone
// otherwise (a resource URI is too varied for a span name). Attributes:
// mcp.method.name, jsonrpc.request.id (requests only), mcp.session.id,
// mcp.protocol.version, jsonrpc.protocol.version when not "2.0",
// gen_ai.tool.name and gen_ai.operation.name=execute_tool on tools/call,
// gen_ai.prompt.name, mcp.resource.uri, error.type with
// rpc.response.status_code (the JSON-RPC error code) or "tool_error" (a
// tools/call result with isError), network.transport=tcp,
// network.protocol.name=http and its version, server.address and
// server.port, client.address and client.port on SERVER spans, and ours:
// http.response.status_code, llm_observer.api=mcp and
// llm_observer.truncated. Status ERROR with the JSON-RPC error message
// exactly when error.type is set.
//
// Metrics: mcp.client.operation.duration and mcp.server.operation.duration
// (s) with the conventions' bucket boundaries, by mcp.method.name,
// error.type, rpc.response.status_code, gen_ai.tool.name,
// gen_ai.prompt.name, gen_ai.operation.name, mcp.protocol.version and the
// network attributes (server.address and server.port on the client one).
// The GenAI instruments count no MCP message.

// mcpDurationBuckets are the boundaries the conventions give both MCP
// operation durations.
var mcpDurationBuckets = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}

// mcpInstruments are the MCP histograms of one process.
type mcpInstruments struct {
	client mcpconv.ClientOperationDuration
	server mcpconv.ServerOperationDuration
}

func newMCPInstruments(m metric.Meter) (mcpInstruments, error) {
	var ins mcpInstruments
	var errC, errS error
	ins.client, errC = mcpconv.NewClientOperationDuration(m, metric.WithExplicitBucketBoundaries(mcpDurationBuckets...))
	ins.server, errS = mcpconv.NewServerOperationDuration(m, metric.WithExplicitBucketBoundaries(mcpDurationBuckets...))
	return ins, errors.Join(errC, errS)
}

// mcpSpanName is "{mcp.method.name} {target}", or the method alone.
func mcpSpanName(c *genai.Call) string {
	m := c.MCP
	switch {
	case m.ToolName != "":
		return m.Method + " " + m.ToolName
	case m.PromptName != "":
		return m.Method + " " + m.PromptName
	}
	return m.Method
}

// mcpUnderTool puts an MCP message the agent sends while one of its tool
// executions runs (a tools/call of that tool, or the initialize and
// tools/list before it) under that execute_tool span, as a traceparent
// would: the MCP server's span follows it there through pairing. A request
// with a traceparent of its own keeps it.
func (e *Exporter) mcpUnderTool(p *Process, c *genai.Call) {
	if c.MCP == nil || !c.Endpoint.ClientSide || c.TraceParent != "" {
		return
	}
	if sc, ok := e.runningTool(p, c.MCP.ToolName, c.Start); ok {
		adoptToolParent(c, sc)
	}
}

// mcpAttributes appends what spans and metrics share: the conventions'
// metric attributes of the message.
func mcpAttributes(a []attribute.KeyValue, c *genai.Call) []attribute.KeyValue {
	m := c.MCP
	a = append(a, semconv.McpMethodNameKey.String(m.Method))
	if c.ErrorType != "" {
		a = append(a, semconv.ErrorTypeKey.String(c.ErrorType))
	}
	if m.ErrorCode != "" {
		a = append(a, semconv.RPCResponseStatusCodeKey.String(m.ErrorCode))
	}
	if m.ToolName != "" {
		a = append(a, semconv.GenAIToolNameKey.String(m.ToolName))
	}
	if m.PromptName != "" {
		a = append(a, semconv.GenAIPromptNameKey.String(m.PromptName))
	}
	if c.Operation != "" {
		a = append(a, semconv.GenAIOperationNameKey.String(c.Operation))
	}
	if m.JSONRPCVersion != "" && m.JSONRPCVersion != "2.0" {
		a = append(a, semconv.JSONRPCProtocolVersionKey.String(m.JSONRPCVersion))
	}
	if m.ProtocolVersion != "" {
		a = append(a, semconv.McpProtocolVersionKey.String(m.ProtocolVersion))
	}
	a = append(a, semconv.NetworkTransportTCP, semconv.NetworkProtocolNameKey.String("http"))
	if c.HTTP2Stream != 0 {
		a = append(a, semconv.NetworkProtocolVersionKey.String("2"))
	} else {
		a = append(a, semconv.NetworkProtocolVersionKey.String("1.1"))
	}
	if c.Endpoint.ClientSide {
		a = appendServer(a, c)
	}
	return a
}

func appendServer(a []attribute.KeyValue, c *genai.Call) []attribute.KeyValue {
	addr, port := serverAddress(c)
	if addr != "" {
		a = append(a, semconv.ServerAddressKey.String(addr))
	}
	if port > 0 {
		a = append(a, semconv.ServerPortKey.Int(port))
	}
	return a
}

// mcpSpanAttributes are the attributes of an MCP message's span.
func (e *Exporter) mcpSpanAttributes(a []attribute.KeyValue, c *genai.Call) []attribute.KeyValue {
	m := c.MCP
	a = mcpAttributes(a, c)
	if !c.Endpoint.ClientSide {
		a = appendServer(a, c)
		if c.Endpoint.ClientAddress != "" {
			a = append(a, semconv.ClientAddressKey.String(c.Endpoint.ClientAddress))
		}
		if c.Endpoint.ClientPort > 0 {
			a = append(a, semconv.ClientPortKey.Int(c.Endpoint.ClientPort))
		}
	}
	if m.RequestID != "" {
		a = append(a, semconv.JSONRPCRequestIDKey.String(m.RequestID))
	}
	if m.SessionID != "" {
		a = append(a, semconv.McpSessionIDKey.String(m.SessionID))
	}
	if m.ResourceURI != "" {
		// A URI may carry a token in its query: the redaction patterns
		// run over it as over any text from the wire.
		a = append(a, semconv.McpResourceURIKey.String(e.content.redactor.redact(m.ResourceURI)))
	}
	if c.Status != 0 {
		a = append(a, semconv.HTTPResponseStatusCodeKey.Int(c.Status))
	}
	a = append(a, keyAPI.String(c.API))
	if c.Truncated {
		a = append(a, keyTruncated.Bool(true))
	}
	return a
}

// emitMCP writes the span of an MCP message; self and parent as for emit.
func (e *Exporter) emitMCP(pt *processTelemetry, c *genai.Call, self, parent trace.SpanContext) trace.SpanContext {
	var buf [24]attribute.KeyValue
	d := spanData{
		name: mcpSpanName(c), kind: trace.SpanKindServer,
		start: c.Start, end: c.End,
		self: self, parent: parentSpanContext(c, parent),
		attrs: e.mcpSpanAttributes(buf[:0], c),
	}
	if c.Endpoint.ClientSide {
		d.kind = trace.SpanKindClient
	}
	if c.ErrorType != "" {
		d.errMsg = e.content.redactor.redact(c.ErrorMessage)
		if d.errMsg == "" {
			d.errMsg = c.ErrorType
		}
	}
	return e.writeSpan(pt, &d)
}

// recordMCP records an MCP message's duration. A message cut before any
// answer has no operation duration to speak of.
func recordMCP(ins *instruments, c *genai.Call) {
	if c.Status == 0 && c.Truncated {
		return
	}
	var buf [16]attribute.KeyValue
	set := attribute.NewSet(mcpAttributes(buf[:0], c)...)
	d := c.Duration().Seconds()
	if c.Endpoint.ClientSide {
		ins.mcp.client.Inst().Record(context.Background(), d, metric.WithAttributeSet(set))
	} else {
		ins.mcp.server.Inst().Record(context.Background(), d, metric.WithAttributeSet(set))
	}
}

// appendMCPLine ends a console line for an MCP message:
//
//	19:04:05.123 python3[4242] mcp tools/call get_weather dur=3.1ms ok
func appendMCPLine(b []byte, c *genai.Call) []byte {
	b = appendField(b, "mcp ", mcpSpanName(c))
	b = appendDuration(append(b, " dur="...), c.Duration())
	if c.ErrorType != "" {
		b = appendField(b, "error=", c.ErrorType)
	} else {
		b = append(b, " ok"...)
	}
	if c.Truncated {
		b = append(b, " truncated"...)
	}
	return append(b, '\n')
}
