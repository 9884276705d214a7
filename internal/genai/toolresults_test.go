package genai

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// TestToolTraffic checks the tool calls each fixture's response asks for
// and the tool results its request carries, with content capture on and
// off: off, only ids, names, types and error flags are kept.
func TestToolTraffic(t *testing.T) {
	fn := func(id, name, args string) ToolCall {
		return ToolCall{ID: id, Name: name, Type: ToolFunction, Arguments: args}
	}
	tests := []struct {
		fixture string
		calls   []ToolCall
		results []ToolResult
	}{
		{"openai_chat_nostream_tool_calls", []ToolCall{
			fn("call_Lx9w2", "get_weather", `{"city":"Lisbon"}`),
			fn("call_Tz4q7", "get_time", `{"tz":"Europe/Lisbon"}`),
		}, nil},
		{"openai_chat_stream_tool_calls", []ToolCall{
			fn("call_Pa1", "get_weather", `{"city": "Paris"}`),
			fn("call_Ro2", "get_weather", `{"city": "Rome"}`),
		}, nil},
		// Only the results after the last assistant message: the earlier
		// round's call_Cy0 was answered by an earlier request.
		{"openai_chat_tool_results", nil, []ToolResult{
			{ID: "call_Lx9w2", Content: `"19 C, sunny"`},
			{ID: "call_Os3k1", Content: `"-2 C, snow"`},
		}},
		{"anthropic_messages_nostream_tool_use", []ToolCall{
			{ID: "srvtoolu_01Wz", Name: "web_search", Type: ToolExtension, Arguments: `{"query":"best rated ramen Kyoto"}`},
			fn("toolu_01Bk7", "book_table", `{"restaurant":"Menya Inoichi","time":"19:00"}`),
		}, nil},
		{"anthropic_messages_tool_results", nil, []ToolResult{
			{ID: "toolu_01Bk7", Content: `"Booked, ref K-2231"`},
			{ID: "toolu_01Sm2", Error: true, Content: `"SMS gateway timeout"`},
		}},
		{"anthropic_messages_stream_tool_use", []ToolCall{
			fn("toolu_01B", "get_weather", `{"location": "New York, NY"}`),
		}, []ToolResult{{ID: "toolu_01A", Content: `"15 degrees"`}}},
		{"gemini_stream_function_call", []ToolCall{
			fn("", "set_light", `{"room":"hall","level":30}`),
			fn("", "set_light", `{"room":"kitchen","level":0}`),
		}, nil},
		{"gemini_function_responses", nil, []ToolResult{
			{Name: "set_light", Content: `{"room":"hall","level":30}`},
			{Name: "set_light", Content: `{"room":"kitchen","level":0}`},
		}},
		{"ollama_chat_nostream_tool_calls", []ToolCall{
			fn("", "get_current_weather", `{"format":"celsius","location":"Paris, FR"}`),
		}, nil},
		{"ollama_chat_tool_results", nil, []ToolResult{
			{Name: "get_current_weather", Content: `"22 degrees celsius, clear"`},
			{Name: "convert_currency", Content: `"21.70 USD"`},
		}},
		{"openai_responses_nostream_function_call", []ToolCall{
			fn("call_unLAR8MvFNptuiZK6K6HCy5k", "get_current_weather", `{"location":"Boston, MA","unit":"celsius"}`),
		}, nil},
		// A result string holding JSON is taken as that JSON.
		{"openai_responses_function_call_output", nil, []ToolResult{
			{ID: "call_unLAR8MvFNptuiZK6K6HCy5k", Content: `{"temperature":"12","unit":"celsius","sky":"overcast"}`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			fx := loadFixture(t, filepath.Join("testdata", tt.fixture+".txt"))
			for _, capture := range []bool{true, false} {
				opts := &Options{CaptureInput: capture, CaptureOutput: capture}
				for _, mode := range []feedMode{feedEvents, feedWhole} {
					c := fx.run(t, opts, mode, 0)
					wantCalls := tt.calls
					wantResults := tt.results
					if !capture {
						wantCalls, wantResults = nil, nil
						for _, tc := range tt.calls {
							tc.Arguments = ""
							wantCalls = append(wantCalls, tc)
						}
						for _, r := range tt.results {
							r.Content = ""
							wantResults = append(wantResults, r)
						}
					}
					if !reflect.DeepEqual(c.ToolCalls, wantCalls) {
						t.Errorf("capture %v, mode %d: tool calls\n got %+v\nwant %+v", capture, mode, c.ToolCalls, wantCalls)
					}
					if !reflect.DeepEqual(c.ToolResults, wantResults) {
						t.Errorf("capture %v, mode %d: tool results\n got %+v\nwant %+v", capture, mode, c.ToolResults, wantResults)
					}
				}
			}
		})
	}
}

// TestToolResultsTurn checks which results of a request count: those after
// its last assistant message, whatever the API.
func TestToolResultsTurn(t *testing.T) {
	tests := []struct {
		name  string
		read  func(span, bool) []ToolResult
		input string
		want  []ToolResult
	}{
		{"chat: no tool messages", chatToolResults, `[{"role":"user","content":"hi"}]`, nil},
		{"chat: result before the last assistant message", chatToolResults,
			`[{"role":"assistant","tool_calls":[]},{"role":"tool","tool_call_id":"a","content":"x"},{"role":"assistant","content":"done"},{"role":"user","content":"thanks"}]`, nil},
		{"chat: user text after the results", chatToolResults,
			`[{"role":"assistant"},{"role":"tool","tool_call_id":"a","content":"x"},{"role":"user","content":"and then?"}]`,
			[]ToolResult{{ID: "a", Content: `"x"`}}},
		{"chat: results without any assistant message", chatToolResults,
			`[{"role":"tool","tool_name":"f","content":{"k":1}}]`, []ToolResult{{Name: "f", Content: `{"k":1}`}}},
		{"chat: not an array", chatToolResults, `{"role":"tool"}`, nil},
		{"anthropic: text content only", anthropicToolResults,
			`[{"role":"user","content":"tool_result is a word here"}]`, nil},
		{"anthropic: results then assistant", anthropicToolResults,
			`[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1"}]},{"role":"assistant","content":"ok"}]`, nil},
		{"anthropic: image result", anthropicToolResults,
			`[{"role":"assistant","content":[]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]}]}]`,
			[]ToolResult{{ID: "t1", Content: `[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]`}}},
		{"gemini: response with an id", geminiToolResults,
			`[{"role":"model","parts":[{"functionCall":{"id":"fc1","name":"f"}}]},{"role":"user","parts":[{"functionResponse":{"id":"fc1","name":"f","response":{"ok":true}}}]}]`,
			[]ToolResult{{ID: "fc1", Name: "f", Content: `{"ok":true}`}}},
		{"responses: string input", responsesToolResults, `"function_call_output"`, nil},
		{"responses: interleaved calls and outputs", responsesToolResults,
			`[{"role":"user","content":"q"},{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c1","output":"1"},{"type":"function_call","call_id":"c2","name":"f","arguments":"{}"},{"type":"custom_tool_call_output","call_id":"c2","output":"2"}]`,
			[]ToolResult{{ID: "c1", Content: `"1"`}, {ID: "c2", Content: `"2"`}}},
		{"responses: after an assistant message", responsesToolResults,
			`[{"type":"function_call_output","call_id":"c1","output":"1"},{"type":"message","role":"assistant","content":"ok"}]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.read(span(tt.input), true); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestToolResultsBounded: a request listing thousands of results keeps
// maxToolCallsOut of them.
func TestToolResultsBounded(t *testing.T) {
	b := []byte(`[{"role":"assistant"}`)
	for range maxToolCallsOut + 50 {
		b = append(b, `,{"role":"tool","tool_call_id":"x"}`...)
	}
	b = append(b, ']')
	if got := len(chatToolResults(b, false)); got != maxToolCallsOut {
		t.Errorf("%d results kept, want %d", got, maxToolCallsOut)
	}
}

// BenchmarkToolTraffic is one whole call of each side of a tool round with
// capture off: responses asking for tools, streamed or not, and requests
// handing the results back. A request without results pays one scan for
// the marker; BenchmarkNonStreamedCall is that case.
func BenchmarkToolTraffic(b *testing.B) {
	for _, name := range []string{
		"openai_chat_stream_tool_calls", "openai_chat_nostream_tool_calls", "openai_chat_tool_results",
		"anthropic_messages_tool_results", "gemini_function_responses", "ollama_chat_tool_results",
	} {
		b.Run(name, func(b *testing.B) {
			fx := loadFixture(b, filepath.Join("testdata", name+".txt"))
			var events []decode.StreamEvent
			sp := &streamSplitter{kind: fx.resp.Stream}
			for _, ev := range fx.events {
				sp.feed(ev.raw, 0, func(int) time.Time { return ev.t }, func(e decode.StreamEvent) { events = append(events, e) })
			}
			a := NewAssembler(&Options{}, testEndpoint, nopHandler{})
			x := &decode.Exchange{Request: fx.req, ClientSide: true}
			b.ReportAllocs()
			for b.Loop() {
				x.Seq++
				x.HasResponse = false
				a.Request(x)
				x.HasResponse, x.Response = true, fx.resp
				x.Response.Body = fx.body
				for _, ev := range events {
					a.Event(x, ev)
				}
				x.Response.End = fx.end
				a.Done(x)
			}
		})
	}
}
