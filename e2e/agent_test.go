package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// agentModel is the model the agent asks; the test LLM server answers its
// first request with a tool call and the one carrying the result with text.
const (
	agentModel      = "e2e-agent"
	agentToolCallID = "call_weather_e2e"
	agentAnswer     = "It is 18°C with light rain in Paris."
)

// agentLLM is an OpenAI-shaped chat server for one agent loop: a request
// without a tool result gets a tool call for get_weather, one with it gets
// the answer. Both are plain JSON responses.
type agentLLM struct {
	mu       sync.Mutex
	requests int
}

func (s *agentLLM) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.requests++
	n := s.requests
	s.mu.Unlock()
	answered := slices.ContainsFunc(req.Messages, func(m struct {
		Role       string `json:"role"`
		ToolCallID string `json:"tool_call_id"`
	}) bool {
		return m.Role == "tool" && m.ToolCallID == agentToolCallID
	})
	message := `{"role":"assistant","content":null,"tool_calls":[{"id":"` + agentToolCallID + `","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}`
	finish := "tool_calls"
	if answered {
		message = `{"role":"assistant","content":` + jsonText(agentAnswer) + `}`
		finish = "stop"
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-agent-%d","object":"chat.completion","created":1763719200,"model":%q,"choices":[{"index":0,"message":%s,"finish_reason":%q}],"usage":{"prompt_tokens":40,"completion_tokens":12,"total_tokens":52}}`,
		n, req.Model, message, finish)
}

// startMCPServer builds and runs the MCP server of testdata/mcpserver and
// returns its address.
func startMCPServer(t *testing.T) (cmd *exec.Cmd, addr string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mcpserver")
	build := exec.Command("go", "build", "-o", bin, "./testdata/mcpserver")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build mcpserver: %v\n%s", err, out)
	}
	cmd = exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 64)
	n, err := stdout.Read(line)
	if err != nil {
		t.Fatalf("mcpserver printed no address: %v", err)
	}
	go io.Copy(io.Discard, stdout)
	return cmd, strings.TrimSpace(string(line[:n]))
}

// agentRun is what the agent printed.
type agentRun struct {
	Session    string `json:"session"`
	ToolCallID string `json:"tool_call_id"`
	Answer     string `json:"answer"`
}

// TestAgentLoop runs an agent loop with real processes: a Python agent asks
// the test LLM server (OpenAI format) a question, gets a tool call, runs the
// tool on a real MCP server (the official Go SDK over Streamable HTTP:
// initialize, notifications/initialized, tools/list, a call whose tool
// fails, a call of a tool the server lacks, and the call the model asked
// for) and sends the result back. The trace must hold the two chat spans,
// one execute_tool span between them, and inside it each MCP message as a
// CLIENT span in the agent (its child) and a SERVER span in the MCP server
// (the client span's child), with the conventions' names and attributes.
func TestAgentLoop(t *testing.T) {
	t.Run("streamable HTTP", func(t *testing.T) { agentLoop(t, "/mcp") })
	// The older transport: the answers come on the GET stream, another
	// connection than the POST they answer.
	t.Run("HTTP+SSE", func(t *testing.T) { agentLoop(t, "/sse", "sse") })
}

// agentLoop runs the loop with the agent speaking MCP to mcpPath.
func agentLoop(t *testing.T, mcpPath string, agentArgs ...string) {
	recv := otlptest.Start(t)
	llm := &agentLLM{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", llm.chat)
	llmAddr := serve(t, mux)
	_, llmPort, _ := net.SplitHostPort(llmAddr)
	mcpCmd, mcpAddr := startMCPServer(t)
	_, mcpPort, _ := net.SplitHostPort(mcpAddr)

	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+recv.GRPCAddr(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"LLM_OBSERVER_TLS=false",
	)

	agent := exec.Command("python3", append([]string{"testdata/agent.py", "http://" + llmAddr + "/v1/chat/completions", "http://" + mcpAddr + mcpPath}, agentArgs...)...)
	agent.Stderr = os.Stderr
	out, err := agent.Output()
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, out)
	}
	var run agentRun
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("agent output %q: %v", out, err)
	}
	if run.Session == "" || run.ToolCallID != agentToolCallID || run.Answer != agentAnswer {
		t.Fatalf("the agent loop did not complete: %+v", run)
	}
	agentPID, mcpPID := agent.Process.Pid, mcpCmd.Process.Pid

	// The MCP messages, in the order the agent sent them.
	type mcpWant struct {
		name, method, id, tool, errorType, rpcCode string
	}
	mcpWants := []mcpWant{
		{name: "initialize", method: "initialize", id: "1"},
		{name: "notifications/initialized", method: "notifications/initialized"},
		{name: "tools/list", method: "tools/list", id: "2"},
		{name: "tools/call get_weather", method: "tools/call", id: "3", tool: "get_weather", errorType: "tool_error"},
		{name: "tools/call launch_rocket", method: "tools/call", id: "4", tool: "launch_rocket", errorType: "-32602", rpcCode: "-32602"},
		{name: "tools/call get_weather", method: "tools/call", id: "5", tool: "get_weather"},
	}
	byPID := func(pid int) []otlptest.Span {
		var out []otlptest.Span
		for _, s := range recv.Spans() {
			if p, _ := s.Resource.Int("process.pid"); int(p) == pid {
				out = append(out, s)
			}
		}
		return out
	}
	// The agent: two chat spans, six MCP client spans, one execute_tool.
	recv.Wait(t, 20*time.Second, "the agent's and the MCP server's spans", func() bool {
		return len(byPID(agentPID)) >= 2+len(mcpWants)+1 && len(byPID(mcpPID)) >= len(mcpWants)
	})
	time.Sleep(700 * time.Millisecond)
	recv.WaitDataPoints(t, "mcp.server.operation.duration", 1, 10*time.Second)
	obs.stop(t)

	agentSpans, mcpSpans := byPID(agentPID), byPID(mcpPID)
	logSpans := func() {
		for _, s := range append(agentSpans, mcpSpans...) {
			t.Logf("span %q kind %v pid %v [%s, %s] %v", s.Name, s.Kind, s.Resource["process.pid"],
				s.Start.Format(time.StampMicro), s.End.Format(time.StampMicro), s.Attributes)
		}
	}

	if testing.Verbose() {
		logSpans()
	}

	// The two chat calls, CLIENT in the agent, each paired with the SERVER
	// span of the test server.
	var chats []otlptest.Span
	for _, s := range agentSpans {
		if s.Name == "chat "+agentModel && s.Kind == tracepb.Span_SPAN_KIND_CLIENT {
			chats = append(chats, s)
		}
	}
	slices.SortFunc(chats, func(a, b otlptest.Span) int { return a.Start.Compare(b.Start) })
	if len(chats) != 2 {
		logSpans()
		t.Fatalf("%d chat spans in the agent, want 2", len(chats))
	}
	if got := chats[0].Attributes.Strs("gen_ai.response.finish_reasons"); !slices.Equal(got, []string{"tool_calls"}) {
		t.Errorf("first chat finish reasons %v, want [tool_calls]", got)
	}
	if got := chats[1].Attributes.Strs("gen_ai.response.finish_reasons"); !slices.Equal(got, []string{"stop"}) {
		t.Errorf("second chat finish reasons %v, want [stop]", got)
	}
	for i, c := range chats {
		if p, _ := c.Attributes.Int("server.port"); fmt.Sprint(p) != llmPort {
			t.Errorf("chat %d server.port %d, want %s", i, p, llmPort)
		}
		found := false
		for _, s := range recv.Spans() {
			found = found || (s.Kind == tracepb.Span_SPAN_KIND_SERVER && s.ParentSpanID == c.SpanID && s.TraceID == c.TraceID && s.Name == c.Name)
		}
		if !found {
			t.Errorf("chat %d has no SERVER span in the test server under it", i)
		}
	}

	// One execute_tool span for the tool call, between the two chats.
	var tool *otlptest.Span
	var tools []otlptest.Span
	for _, s := range agentSpans {
		if s.Name == "execute_tool get_weather" {
			tools = append(tools, s)
		}
	}
	if len(tools) != 1 {
		logSpans()
		t.Errorf("%d execute_tool get_weather spans in the agent, want 1", len(tools))
	} else {
		tool = &tools[0]
		if tool.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
			t.Errorf("execute_tool span kind %v, want INTERNAL", tool.Kind)
		}
		wantAttrs(t, tool, map[string]any{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": agentToolCallID})
		if tool.Start.Before(chats[0].End.Add(-clockSlack)) || tool.End.After(chats[1].Start.Add(clockSlack)) {
			t.Errorf("execute_tool span [%s, %s] is not between the chats' end %s and start %s",
				tool.Start.Format(time.StampMicro), tool.End.Format(time.StampMicro),
				chats[0].End.Format(time.StampMicro), chats[1].Start.Format(time.StampMicro))
		}
	}

	// Each MCP message: a CLIENT span in the agent and a SERVER span in the
	// MCP server under it, both between the two chats.
	pick := func(spans []otlptest.Span, kind tracepb.Span_SpanKind, w mcpWant) *otlptest.Span {
		var found *otlptest.Span
		for i := range spans {
			s := &spans[i]
			if s.Kind == kind && s.Name == w.name && s.Attributes.Str("mcp.method.name") == w.method && s.Attributes.Str("jsonrpc.request.id") == w.id {
				if found != nil {
					t.Errorf("two %v spans for %s id %q", kind, w.name, w.id)
				}
				found = s
			}
		}
		return found
	}
	for _, w := range mcpWants {
		c := pick(agentSpans, tracepb.Span_SPAN_KIND_CLIENT, w)
		s := pick(mcpSpans, tracepb.Span_SPAN_KIND_SERVER, w)
		if c == nil || s == nil {
			logSpans()
			t.Errorf("%s id %q: client span found %v, server span found %v", w.name, w.id, c != nil, s != nil)
			continue
		}
		for _, sp := range []*otlptest.Span{c, s} {
			want := map[string]any{
				"mcp.method.name":   w.method,
				"mcp.session.id":    run.Session,
				"network.transport": "tcp",
				"server.port":       atoi(t, mcpPort),
			}
			if w.id == "" {
				want["jsonrpc.request.id"] = nil
			}
			if w.tool != "" {
				want["gen_ai.tool.name"] = w.tool
				want["gen_ai.operation.name"] = "execute_tool"
			} else {
				want["gen_ai.tool.name"] = nil
				want["gen_ai.operation.name"] = nil
			}
			if w.errorType != "" {
				want["error.type"] = w.errorType
			} else {
				want["error.type"] = nil
			}
			if w.rpcCode != "" {
				want["rpc.response.status_code"] = w.rpcCode
			} else {
				want["rpc.response.status_code"] = nil
			}
			if w.method == "initialize" || len(agentArgs) == 0 {
				// Negotiated by initialize; over Streamable HTTP, sent
				// in a header on every later request.
				want["mcp.protocol.version"] = "2025-06-18"
			}
			wantAttrs(t, sp, want)
			if (sp.Status == tracepb.Status_STATUS_CODE_ERROR) != (w.errorType != "") {
				t.Errorf("%v span %s id %q: status %v, want ERROR exactly when error.type is set", sp.Kind, w.name, w.id, sp.Status)
			}
			if sp.Start.Before(chats[0].End.Add(-clockSlack)) || sp.End.After(chats[1].Start.Add(clockSlack)) {
				t.Errorf("%v span %s id %q is not between the two chats", sp.Kind, w.name, w.id)
			}
			if sp.Attributes.Has("gen_ai.provider.name") {
				t.Errorf("%v span %s: an MCP message reported as an LLM call", sp.Kind, w.name)
			}
		}
		if s.TraceID != c.TraceID || s.ParentSpanID != c.SpanID {
			t.Errorf("%s id %q: the SERVER span is not the child of the CLIENT span", w.name, w.id)
		}
		// The agent sent it while running the tool: it belongs under the
		// execute_tool span, in the loop's trace.
		if tool != nil && (c.TraceID != tool.TraceID || c.ParentSpanID != tool.SpanID) {
			t.Errorf("%s id %q: the CLIENT span is not the child of the execute_tool span", w.name, w.id)
		}
		if tool != nil && (c.Start.Before(tool.Start.Add(-clockSlack)) || c.End.After(tool.End.Add(clockSlack))) {
			t.Errorf("%s id %q: the CLIENT span is outside the execute_tool span", w.name, w.id)
		}
		if s.Start.Before(c.Start.Add(-clockSlack)) || s.End.After(c.End.Add(clockSlack)) {
			t.Errorf("%s id %q: SERVER span [%s, %s] outside its CLIENT span [%s, %s]", w.name, w.id,
				s.Start.Format(time.StampMicro), s.End.Format(time.StampMicro), c.Start.Format(time.StampMicro), c.End.Format(time.StampMicro))
		}
		if s.Attributes.Str("mcp.session.id") == "" {
			t.Errorf("%s id %q: no session id on the server span", w.name, w.id)
		}
	}
	if n, want := countKind(agentSpans, "mcp.method.name"), len(mcpWants); n != want {
		logSpans()
		t.Errorf("%d MCP spans in the agent, want %d", n, want)
	}
	if n, want := countKind(mcpSpans, "mcp.method.name"), len(mcpWants); n != want {
		logSpans()
		t.Errorf("%d MCP spans in the MCP server, want %d", n, want)
	}

	// The MCP duration histograms, with the conventions' buckets.
	mcpBuckets := []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}
	for name, pid := range map[string]int{"mcp.client.operation.duration": agentPID, "mcp.server.operation.duration": mcpPID} {
		calls := map[string]bool{}
		for _, dp := range recv.DataPoints(name) {
			if p, _ := dp.Resource.Int("process.pid"); int(p) != pid {
				continue
			}
			if dp.Unit != "s" || !slices.Equal(dp.Bounds, mcpBuckets) {
				t.Errorf("%s: unit %q buckets %v, want s and %v", name, dp.Unit, dp.Bounds, mcpBuckets)
			}
			calls[dp.Attributes.Str("mcp.method.name")+" "+dp.Attributes.Str("gen_ai.tool.name")+" "+dp.Attributes.Str("error.type")] = true
		}
		for _, k := range []string{"initialize  ", "tools/list  ", "tools/call get_weather tool_error", "tools/call launch_rocket -32602", "tools/call get_weather "} {
			if !calls[k] {
				t.Errorf("%s: no point for %q (have %v)", name, k, calls)
			}
		}
	}
}

// countKind counts the spans that carry key.
func countKind(spans []otlptest.Span, key string) int {
	n := 0
	for _, s := range spans {
		if s.Attributes.Has(key) {
			n++
		}
	}
	return n
}
