package export

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

var (
	agentProc = &Process{PID: 5150, ExecutableName: "python3", ExecutablePath: "/usr/bin/python3", ServiceName: "agent"}
	mcpProc   = &Process{PID: 5151, ExecutableName: "mcpserver", ExecutablePath: "/opt/mcpserver", ServiceName: "weather-mcp"}
)

// mcpCall is one MCP message seen from one end of a loopback connection.
func mcpCall(client bool, startMs, endMs int, m genai.MCP) *genai.Call {
	c := &genai.Call{
		API:           "mcp",
		Endpoint:      genai.Endpoint{ClientSide: client, ServerAddress: "127.0.0.1", ServerPort: 8931, ClientAddress: "127.0.0.1", ClientPort: 40022},
		ServerAddress: "localhost",
		ServerPort:    8931,
		Method:        "POST",
		Path:          "/mcp",
		Status:        200,
		Start:         at(startMs),
		End:           at(endMs),
		MCP:           &m,
	}
	if m.Method == "tools/call" {
		c.Operation = "execute_tool"
	}
	return c
}

// TestMCPSpans sends MCP messages of both ends through the real exporter
// and checks names, kinds, attributes, status, pairing and the duration
// histograms with the conventions' buckets.
func TestMCPSpans(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	const session = "4NBZQ5VXQ2ZKBFZ7M5LWJ3XKQH"
	cases := []struct {
		name      string
		m         genai.MCP
		errType   string
		errMsg    string
		wantName  string
		wantAttrs map[string]any
		absent    []string
		wantMsg   string
	}{
		{name: "initialize", m: genai.MCP{Method: "initialize", RequestID: "0", SessionID: session, ProtocolVersion: "2025-06-18", JSONRPCVersion: "2.0", Answered: true},
			wantName:  "initialize",
			wantAttrs: map[string]any{"mcp.method.name": "initialize", "jsonrpc.request.id": "0", "mcp.session.id": session, "mcp.protocol.version": "2025-06-18"},
			absent:    []string{"gen_ai.tool.name", "gen_ai.operation.name", "error.type", "jsonrpc.protocol.version", "gen_ai.provider.name"}},
		{name: "notification", m: genai.MCP{Method: "notifications/initialized", SessionID: session, JSONRPCVersion: "2.0", Answered: true},
			wantName:  "notifications/initialized",
			wantAttrs: map[string]any{"mcp.method.name": "notifications/initialized", "mcp.session.id": session},
			absent:    []string{"jsonrpc.request.id"}},
		{name: "tool call", m: genai.MCP{Method: "tools/call", RequestID: "call-7", SessionID: session, ToolName: "get_weather", JSONRPCVersion: "2.0", Answered: true},
			wantName: "tools/call get_weather",
			wantAttrs: map[string]any{"mcp.method.name": "tools/call", "gen_ai.tool.name": "get_weather", "gen_ai.operation.name": "execute_tool",
				"jsonrpc.request.id": "call-7", "network.transport": "tcp", "network.protocol.name": "http", "network.protocol.version": "1.1",
				"server.address": "localhost", "server.port": 8931, "llm_observer.api": "mcp", "http.response.status_code": 200},
			absent: []string{"error.type", "rpc.response.status_code"}},
		{name: "tool error", m: genai.MCP{Method: "tools/call", RequestID: "8", SessionID: session, ToolName: "get_weather", JSONRPCVersion: "2.0", Answered: true},
			errType: genai.ErrorTypeToolError, wantName: "tools/call get_weather", wantMsg: "tool_error",
			wantAttrs: map[string]any{"error.type": "tool_error"}, absent: []string{"rpc.response.status_code"}},
		{name: "rpc error", m: genai.MCP{Method: "tools/call", RequestID: "9", SessionID: session, ToolName: "launch_rocket", ErrorCode: "-32602", JSONRPCVersion: "1.0", Answered: true},
			errType: "-32602", errMsg: "unknown tool", wantName: "tools/call launch_rocket", wantMsg: "unknown tool",
			wantAttrs: map[string]any{"error.type": "-32602", "rpc.response.status_code": "-32602", "jsonrpc.protocol.version": "1.0"}},
		{name: "prompt", m: genai.MCP{Method: "prompts/get", RequestID: "10", PromptName: "summarise", Answered: true},
			wantName: "prompts/get summarise", wantAttrs: map[string]any{"gen_ai.prompt.name": "summarise"}, absent: []string{"mcp.session.id"}},
		{name: "resource", m: genai.MCP{Method: "resources/read", RequestID: "11", ResourceURI: "https://files.internal/q3.md?api_key=sk-proj-abcdefghijklmnopqrstuvwx", Answered: true},
			wantName: "resources/read", wantAttrs: map[string]any{"mcp.method.name": "resources/read"}},
	}
	for i, tc := range cases {
		start := i * 100
		client := mcpCall(true, start, start+20, tc.m)
		server := mcpCall(false, start+1, start+19, tc.m)
		for _, c := range []*genai.Call{client, server} {
			c.ErrorType, c.ErrorMessage = tc.errType, tc.errMsg
		}
		// The server's end often reports first.
		e.CallStarted(agentProc, client)
		end(e, mcpProc, server)
		e.CallEnded(agentProc, client)
	}
	flush(t, e)
	spans := rcv.WaitSpans(t, 2*len(cases), waitLong)
	for i, tc := range cases {
		var cl, sv *otlptest.Span
		for j := range spans {
			s := &spans[j]
			if s.Start.Equal(at(i*100)) && s.Kind == tracepb.Span_SPAN_KIND_CLIENT {
				cl = s
			}
			if s.Start.Equal(at(i*100+1)) && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
				sv = s
			}
		}
		if cl == nil || sv == nil {
			t.Fatalf("%s: client %v server %v spans missing", tc.name, cl != nil, sv != nil)
		}
		for _, s := range []*otlptest.Span{cl, sv} {
			what := tc.name + " " + s.Kind.String()
			if s.Name != tc.wantName {
				t.Errorf("%s: name %q, want %q", what, s.Name, tc.wantName)
			}
			checkAttrs(t, what, s.Attributes, tc.wantAttrs)
			checkAbsent(t, what, s.Attributes, tc.absent...)
			checkAbsent(t, what, s.Attributes, "gen_ai.provider.name", "gen_ai.request.model")
			if tc.errType != "" {
				if s.Status != tracepb.Status_STATUS_CODE_ERROR || s.StatusMsg != tc.wantMsg {
					t.Errorf("%s: status %v %q, want ERROR %q", what, s.Status, s.StatusMsg, tc.wantMsg)
				}
			} else if s.Status == tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("%s: status ERROR without error.type", what)
			}
			if uri := s.Attributes.Str("mcp.resource.uri"); tc.m.ResourceURI != "" && (uri == "" || strings.Contains(uri, "sk-proj")) {
				t.Errorf("%s: mcp.resource.uri %q, want it present and redacted", what, uri)
			}
		}
		if sv.TraceID != cl.TraceID || sv.ParentSpanID != cl.SpanID {
			t.Errorf("%s: server span is not the child of the client span", tc.name)
		}
		checkAttrs(t, tc.name+" server", sv.Attributes, map[string]any{"client.address": "127.0.0.1", "client.port": 40022})
		checkAbsent(t, tc.name+" client", cl.Attributes, "client.address")
	}

	e.collectAll(t.Context()) //nolint:errcheck // checked through what arrives
	for _, name := range []string{"mcp.client.operation.duration", "mcp.server.operation.duration"} {
		dps := rcv.WaitDataPoints(t, name, 1, waitLong)
		last := 0 // cumulative points: the last export holds them all
		for _, dp := range dps {
			last = max(last, dp.Request)
		}
		var calls uint64
		for _, dp := range dps {
			if dp.Request != last {
				continue
			}
			if dp.Unit != "s" || !slices.Equal(dp.Bounds, mcpDurationBuckets) {
				t.Errorf("%s: unit %q bounds %v, want s and %v", name, dp.Unit, dp.Bounds, mcpDurationBuckets)
			}
			if dp.Attributes.Str("mcp.method.name") == "" || dp.Attributes.Has("jsonrpc.request.id") || dp.Attributes.Has("mcp.session.id") {
				t.Errorf("%s: attributes %v: want mcp.method.name and no per-message ids", name, dp.Attributes)
			}
			if dp.Attributes.Str("mcp.method.name") == "tools/call" && dp.Attributes.Str("gen_ai.tool.name") == "get_weather" && dp.Attributes.Str("error.type") == "" {
				if dp.Sum <= 0 {
					t.Errorf("%s: tools/call get_weather sum %v", name, dp.Sum)
				}
			}
			calls += dp.Count
		}
		if calls != uint64(len(cases)) {
			t.Errorf("%s: %d messages recorded, want %d", name, calls, len(cases))
		}
	}
	for _, name := range rcv.MetricNames() {
		if strings.HasPrefix(name, "gen_ai.") || strings.HasPrefix(name, "llm_observer.client.") || strings.HasPrefix(name, "llm_observer.server.") {
			for _, dp := range rcv.DataPoints(name) {
				if dp.Resource.Str("service.name") == "agent" || dp.Resource.Str("service.name") == "weather-mcp" {
					t.Errorf("MCP message counted in the GenAI instrument %s", name)
				}
			}
		}
	}
}

// TestMCPConsoleLine: the console shows the span's name for an MCP message.
func TestMCPConsoleLine(t *testing.T) {
	c := mcpCall(true, 0, 3, genai.MCP{Method: "tools/call", RequestID: "1", ToolName: "get_weather", Answered: true})
	c.ErrorType = genai.ErrorTypeToolError
	line := ConsoleLine(agentProc, c)
	if !strings.HasSuffix(line, "python3[5150] mcp tools/call get_weather dur=3.0ms error=tool_error") {
		t.Errorf("console line %q", line)
	}
	var buf bytes.Buffer
	buf.WriteString(ConsoleLine(mcpProc, mcpCall(false, 0, 2, genai.MCP{Method: "initialize", RequestID: "0"})))
	if !strings.Contains(buf.String(), "(server) mcp initialize dur=2.0ms ok") {
		t.Errorf("server console line %q", buf.String())
	}
}

// TestMCPUnderToolExecution: an MCP tools/call the agent sends while it
// runs that tool goes under its execute_tool span, and the MCP server's span
// under it, in one trace with the chats. A message naming no tool while two
// tools run (get_weather and get_time here) could belong to either, and one
// sent before any ran to none: both stay out.
func TestMCPUnderToolExecution(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	ask, answer := agentRound() // in curl: asked at 800 ms, answered at 2000 ms
	end(e, curl, ask)
	for i, m := range []genai.MCP{
		{Method: "initialize", RequestID: "1", Answered: true},
		{Method: "tools/call", RequestID: "2", ToolName: "get_weather", Answered: true},
	} {
		client := mcpCall(true, 900+i*100, 950+i*100, m)
		server := mcpCall(false, 901+i*100, 949+i*100, m)
		e.CallStarted(curl, client)
		end(e, mcpProc, server)
		e.CallEnded(curl, client)
	}
	// One before the tool ran is nobody's child.
	before := mcpCall(true, 100, 120, genai.MCP{Method: "tools/list", RequestID: "0", Answered: true})
	end(e, curl, before)
	end(e, curl, answer)
	flush(t, e)
	spans := rcv.WaitSpans(t, 2+2+4+1, waitLong)
	var weather *otlptest.Span
	for i := range spans {
		if spans[i].Name == "execute_tool get_weather" {
			weather = &spans[i]
		}
	}
	if weather == nil {
		t.Fatal("no execute_tool get_weather span")
	}
	for _, s := range spans {
		if s.Attributes.Str("mcp.method.name") == "" {
			continue
		}
		switch {
		case s.Attributes.Str("mcp.method.name") != "tools/call":
			if s.TraceID == weather.TraceID {
				t.Errorf("%v %s, sent before the tool ran or naming no tool while two ran, is in the tool's trace", s.Kind, s.Name)
			}
		case s.Kind == tracepb.Span_SPAN_KIND_CLIENT:
			if s.TraceID != weather.TraceID || s.ParentSpanID != weather.SpanID {
				t.Errorf("client %s is not the child of the execute_tool span", s.Name)
			}
		default:
			if s.TraceID != weather.TraceID || s.ParentSpanID == weather.SpanID || !s.ParentSpanID.IsValid() {
				t.Errorf("server %s is not under its client span in the tool's trace", s.Name)
			}
		}
	}
}
