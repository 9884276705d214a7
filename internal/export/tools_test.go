package export

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// agentRound is one round of an agent loop in the process curl: a response
// asking for two tools, ending at 800 ms, and the request carrying their
// results, starting at 2000 ms. Arguments and results hold an e-mail
// address, which redaction must catch.
func agentRound() (ask, answer *genai.Call) {
	ep := genai.Endpoint{ClientSide: true, ServerAddress: "api.openai.com", ServerPort: 443, ClientAddress: "10.0.0.5", ClientPort: 51010}
	ask = &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOpenAI, API: "openai.chat_completions",
		Endpoint: ep, Method: "POST", Status: 200, RequestModel: "gpt-4o", Messages: 1,
		FinishReasons: []string{"tool_calls"},
		ToolCalls: []genai.ToolCall{
			{ID: "call_W1", Name: "get_weather", Type: genai.ToolFunction, Arguments: `{"city":"Paris","notify":"bob@example.com"}`},
			{ID: "call_T2", Name: "get_time", Type: genai.ToolFunction, Arguments: `{"tz":"Europe/Paris"}`},
			{ID: "srvtoolu_1", Name: "web_search", Type: genai.ToolExtension},
		},
		Start: at(0), End: at(800),
	}
	ep.ClientPort = 51011
	answer = &genai.Call{
		Operation: genai.OpChat, Provider: genai.ProviderOpenAI, API: "openai.chat_completions",
		Endpoint: ep, Method: "POST", Status: 200, RequestModel: "gpt-4o", Messages: 4,
		ToolResults: []genai.ToolResult{
			{ID: "call_T2", Content: `"14:02"`},
			{ID: "call_W1", Content: `"rainy; alerts go to alice@example.com"`},
		},
		Start: at(2000), End: at(2600),
	}
	return ask, answer
}

func TestToolExecutionSpans(t *testing.T) {
	tests := []struct {
		name       string
		capture    ContentCapture
		dest       ContentDestination
		traced     bool // the application sends a traceparent
		wantArgs   bool
		wantResult bool
	}{
		{name: "no capture", capture: CaptureNone},
		{name: "no capture, traceparent", capture: CaptureNone, traced: true},
		{name: "capture all", capture: CaptureAll, wantArgs: true, wantResult: true},
		{name: "capture input", capture: CaptureInput, wantResult: true},
		{name: "capture output", capture: CaptureOutput, wantArgs: true},
		{name: "capture all to logs", capture: CaptureAll, dest: DestinationLog},
	}
	for _, proto := range protocols {
		for _, tt := range tests {
			t.Run(string(proto)+"/"+tt.name, func(t *testing.T) {
				e, rcv := newTestExporter(t, proto, func(c *Config) {
					c.CaptureContent, c.ContentDestination = tt.capture, tt.dest
				})
				ask, answer := agentRound()
				if tt.traced {
					for _, c := range []*genai.Call{ask, answer} {
						c.TraceParent = "00-" + appTraceID + "-" + appSpanID + "-01"
					}
				}
				end(e, curl, ask)
				// While the tools run, calls they make find their span.
				weather, ok := e.runningTool(curl, "get_weather", at(1500))
				if !ok {
					t.Fatal("no running tool get_weather at 1500 ms")
				}
				if _, ok := e.runningTool(curl, "get_weather", at(700)); ok {
					t.Error("a tool found running before the response that asked for it ended")
				}
				end(e, curl, answer)
				if _, ok := e.runningTool(curl, "get_weather", at(2100)); ok {
					t.Error("a tool found running after its result was sent")
				}
				flush(t, e)
				spans := rcv.WaitSpans(t, 4, waitLong)
				if len(spans) != 4 {
					t.Fatalf("%d spans, want 2 chat and 2 execute_tool: %v", len(spans), spanNames(spans))
				}
				chats := rcv.SpansNamed("chat gpt-4o")
				if len(chats) != 2 {
					t.Fatalf("chat spans: %v", spanNames(spans))
				}
				first, second := chats[0], chats[1]
				if second.Start.Before(first.Start) {
					first, second = second, first
				}
				// The loop's parent: the application's span, else the first chat.
				wantTrace, wantParent := first.TraceID, first.SpanID
				if tt.traced {
					wantTrace = mustTraceID(t, appTraceID)
					wantParent = mustSpanID(t, appSpanID)
				}
				if second.TraceID != wantTrace || second.ParentSpanID != wantParent {
					t.Errorf("answering chat span in trace %s under %s, want %s under %s", second.TraceID, second.ParentSpanID, wantTrace, wantParent)
				}
				for _, tc := range []struct {
					name, id, result string
					args             string
				}{
					{"get_weather", "call_W1", "rainy; alerts go to [REDACTED]", `{"city":"Paris","notify":"[REDACTED]"}`},
					{"get_time", "call_T2", "14:02", `{"tz":"Europe/Paris"}`},
				} {
					got := rcv.SpansNamed("execute_tool " + tc.name)
					if len(got) != 1 {
						t.Fatalf("execute_tool %s spans: %v", tc.name, spanNames(spans))
					}
					s := got[0]
					what := s.Name
					if s.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
						t.Errorf("%s: kind %v, want INTERNAL", what, s.Kind)
					}
					if !s.Start.Equal(at(800)) || !s.End.Equal(at(2000)) {
						t.Errorf("%s: %v to %v, want the asking response's end to the answering request's start", what, s.Start, s.End)
					}
					if s.TraceID != wantTrace || s.ParentSpanID != wantParent {
						t.Errorf("%s: in trace %s under %s, want %s under %s", what, s.TraceID, s.ParentSpanID, wantTrace, wantParent)
					}
					if pid, _ := s.Resource.Int("process.pid"); pid != int64(curl.PID) {
						t.Errorf("%s: resource %v, want the calling process", what, s.Resource)
					}
					checkAttrs(t, what, s.Attributes, map[string]any{
						"gen_ai.operation.name": "execute_tool",
						"gen_ai.tool.name":      tc.name,
						"gen_ai.tool.call.id":   tc.id,
						"gen_ai.tool.type":      "function",
					})
					if s.Status != tracepb.Status_STATUS_CODE_UNSET {
						t.Errorf("%s: status %v", what, s.Status)
					}
					if tt.wantArgs {
						checkAttrs(t, what, s.Attributes, map[string]any{"gen_ai.tool.call.arguments": tc.args})
					} else {
						checkAbsent(t, what, s.Attributes, "gen_ai.tool.call.arguments")
					}
					if tt.wantResult {
						if got := validJSONString(t, what+" result", s.Attributes.Str("gen_ai.tool.call.result")); got != tc.result {
							t.Errorf("%s: result %q, want %q", what, got, tc.result)
						}
					} else {
						checkAbsent(t, what, s.Attributes, "gen_ai.tool.call.result")
					}
					if tc.name == "get_weather" && s.SpanID != weather.SpanID() {
						t.Errorf("%s: span %s, but runningTool handed out %s", what, s.SpanID, weather.SpanID())
					}
				}
				for _, s := range spans {
					for k, v := range s.Attributes {
						if str, ok := v.(string); ok && strings.Contains(str, "@example.com") {
							t.Errorf("%s: %s carries an e-mail address: %s", s.Name, k, str)
						}
					}
				}
				st := e.ToolStats()
				if st != (ToolStats{Executions: 2}) {
					t.Errorf("ToolStats %+v, want 2 executions and nothing unmatched", st)
				}
			})
		}
	}
}

// TestToolResultError: a result the request marks as failed (Anthropic's
// is_error) makes the execution an error, as the wire said.
func TestToolResultError(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	ask, answer := agentRound()
	answer.ToolResults[1].Error = true
	end(e, curl, ask)
	end(e, curl, answer)
	flush(t, e)
	rcv.WaitSpans(t, 4, waitLong)
	s := rcv.SpansNamed("execute_tool get_weather")
	if len(s) != 1 {
		t.Fatalf("spans: %v", spanNames(rcv.Spans()))
	}
	if s[0].Status != tracepb.Status_STATUS_CODE_ERROR || s[0].Attributes.Str("error.type") != "tool_error" {
		t.Errorf("status %v, error.type %q; want ERROR and tool_error", s[0].Status, s[0].Attributes.Str("error.type"))
	}
	if other := rcv.SpansNamed("execute_tool get_time"); len(other) != 1 || other[0].Status != tracepb.Status_STATUS_CODE_UNSET {
		t.Errorf("the tool that succeeded: %+v", other)
	}
}

// TestToolMatching covers matching without ids, retries, orphans and the
// bounds, through the counters.
func TestToolMatching(t *testing.T) {
	call := func(start, endMs int, port int) *genai.Call {
		return &genai.Call{
			Operation: genai.OpGenerateContent, Provider: genai.ProviderGemini, API: "gemini.generate_content",
			Endpoint:     genai.Endpoint{ClientSide: true, ServerAddress: "generativelanguage.googleapis.com", ServerPort: 443, ClientAddress: "10.0.0.5", ClientPort: port},
			RequestModel: "gemini-2.0-flash", Status: 200, Start: at(start), End: at(endMs),
		}
	}
	fn := func(id, name string) genai.ToolCall {
		return genai.ToolCall{ID: id, Name: name, Type: genai.ToolFunction}
	}
	tests := []struct {
		name  string
		steps func(e *Exporter)
		want  ToolStats
	}{
		{"by name and order", func(e *Exporter) {
			ask := call(0, 100, 1)
			ask.ToolCalls = []genai.ToolCall{fn("", "lookup"), fn("", "lookup"), fn("", "convert")}
			end(e, curl, ask)
			ans := call(500, 600, 2)
			ans.ToolResults = []genai.ToolResult{{Name: "convert"}, {Name: "lookup"}, {Name: "lookup"}}
			end(e, curl, ans)
		}, ToolStats{Executions: 3}},
		{"by order alone", func(e *Exporter) {
			ask := call(0, 100, 1)
			ask.ToolCalls = []genai.ToolCall{fn("", "lookup")}
			end(e, curl, ask)
			ans := call(500, 600, 2)
			ans.ToolResults = []genai.ToolResult{{}}
			end(e, curl, ans)
		}, ToolStats{Executions: 1}},
		{"retried request", func(e *Exporter) {
			ask := call(0, 100, 1)
			ask.ToolCalls = []genai.ToolCall{fn("c1", "lookup")}
			end(e, curl, ask)
			for i := range 3 {
				ans := call(500+i*100, 550+i*100, 2+i)
				ans.ToolResults = []genai.ToolResult{{ID: "c1"}}
				end(e, curl, ans)
			}
		}, ToolStats{Executions: 1}},
		{"result without a call", func(e *Exporter) {
			ans := call(500, 600, 2)
			ans.ToolResults = []genai.ToolResult{{ID: "c9"}, {Name: "lookup"}}
			end(e, curl, ans)
		}, ToolStats{Orphaned: 2}},
		{"result in another process", func(e *Exporter) {
			ask := call(0, 100, 1)
			ask.ToolCalls = []genai.ToolCall{fn("c1", "lookup")}
			end(e, curl, ask)
			ans := call(500, 600, 2)
			ans.ToolResults = []genai.ToolResult{{ID: "c1"}}
			end(e, ollama, ans)
		}, ToolStats{Orphaned: 1, Unanswered: 1}},
		{"never answered", func(e *Exporter) {
			ask := call(0, 100, 1)
			ask.ToolCalls = []genai.ToolCall{fn("c1", "lookup"), fn("c2", "lookup")}
			end(e, curl, ask)
			ans := call(500, 600, 2)
			ans.ToolResults = []genai.ToolResult{{ID: "c2"}}
			end(e, curl, ans)
		}, ToolStats{Executions: 1, Unanswered: 1}},
		{"provider-run tools wait for nothing", func(e *Exporter) {
			ask := call(0, 100, 1)
			ask.ToolCalls = []genai.ToolCall{{ID: "s1", Name: "web_search", Type: genai.ToolExtension}}
			end(e, curl, ask)
		}, ToolStats{}},
		{"server side is not the caller", func(e *Exporter) {
			ask := call(0, 100, 1)
			ask.Endpoint.ClientSide = false
			ask.ToolCalls = []genai.ToolCall{fn("c1", "lookup")}
			end(e, ollama, ask)
		}, ToolStats{}},
		{"too many waiting", func(e *Exporter) {
			ask := call(0, 100, 1)
			for i := range maxPendingTools + 3 {
				ask.ToolCalls = append(ask.ToolCalls, fn("c"+strconv.Itoa(i), "lookup"))
			}
			end(e, curl, ask)
		}, ToolStats{Evicted: 3, Unanswered: maxPendingTools}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newTestExporter(t, otlptest.GRPC, func(c *Config) { c.toolWait = 50 * time.Millisecond })
			tt.steps(e)
			// Let every wait run out: what is still pending is unanswered.
			deadline := time.Now().Add(waitLong)
			for e.ToolStats() != tt.want && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // nothing more may come
			if got := e.ToolStats(); got != tt.want {
				t.Errorf("ToolStats %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestToolRetryStaysInTrace: a request retried with the same results (after
// a 429, say) makes no second execution, yet joins the loop's trace.
func TestToolRetryStaysInTrace(t *testing.T) {
	tr := newToolTracker(time.Minute)
	pk := keyOfProcess(curl)
	ask, answer := agentRound()
	chat := trace.NewSpanContext(trace.SpanContextConfig{TraceID: mustTraceID(t, appTraceID), SpanID: mustSpanID(t, appSpanID), TraceFlags: trace.FlagsSampled})
	now := time.Now()
	tr.asked(pk, ask, chat, now)
	first, parent := tr.answer(pk, answer, now)
	if len(first) != 2 || !parent.Equal(chat) {
		t.Fatalf("first answer: %d executions under %v, want 2 under the asking chat", len(first), parent)
	}
	retry := *answer
	again, parent := tr.answer(pk, &retry, now)
	if len(again) != 0 || !parent.Equal(chat) {
		t.Errorf("retry: %d executions under %v, want none under the asking chat", len(again), parent)
	}
	if n := tr.orphaned.Load(); n != 0 {
		t.Errorf("%d orphans from a retry", n)
	}
}

func spanNames(spans []otlptest.Span) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

func mustTraceID(t *testing.T, s string) trace.TraceID {
	t.Helper()
	id, err := trace.TraceIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSpanID(t *testing.T, s string) trace.SpanID {
	t.Helper()
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// BenchmarkToolRound is one round of an agent loop as the agent's goroutine
// pays for it: the chat whose response asks for two tools, then the chat
// carrying their results, which makes the two execute_tool spans; and the
// same two chats without tools, for comparison.
func BenchmarkToolRound(b *testing.B) {
	for _, tools := range []bool{false, true} {
		name := "without tools"
		if tools {
			name = "with two tools"
		}
		b.Run(name, func(b *testing.B) {
			e, _ := newTestExporter(b, otlptest.GRPC, nil)
			e.spans.Shutdown(context.Background()) //nolint:errcheck // replaced before use
			e.spans = newSpanQueue(discardSpans{}, DefaultSpanQueue, &e.lost, e.errLog, func(context.Context) {})
			ask, answer := agentRound()
			if !tools {
				ask.ToolCalls, answer.ToolResults = nil, nil
			}
			ids := [2][]string{make([]string, 4096), make([]string, 4096)}
			for i := range ids[0] {
				ids[0][i], ids[1][i] = "call_a"+strconv.Itoa(i), "call_b"+strconv.Itoa(i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if tools {
					a, r := ids[0][i%4096], ids[1][i%4096]
					ask.ToolCalls[0].ID, ask.ToolCalls[1].ID = a, r
					answer.ToolResults[0].ID, answer.ToolResults[1].ID = r, a
				}
				answer.TraceParent, answer.TraceState = "", ""
				ask.Endpoint.ClientPort, answer.Endpoint.ClientPort = 1024+i%30000, 31024+i%30000
				i++
				e.CallStarted(curl, ask)
				e.CallEnded(curl, ask)
				e.CallStarted(curl, answer)
				e.CallEnded(curl, answer)
			}
			want := uint64(0)
			if tools {
				want = 2 * uint64(i)
			}
			if st := e.ToolStats(); st.Executions != want || st.Orphaned != 0 {
				b.Fatalf("ToolStats %+v after %d rounds", st, i)
			}
		})
	}
}
