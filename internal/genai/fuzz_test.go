package genai

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// fuzzTarget is one API a fuzz input is pushed through.
type fuzzTarget struct {
	target, host, body string
	kind               decode.StreamKind
}

var (
	fuzzOpenAI    = fuzzTarget{"/v1/chat/completions", "api.openai.com", `{"model":"m","stream":true,"n":2,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}`, decode.SSE}
	fuzzOllama    = fuzzTarget{"/api/chat", "localhost:11434", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, decode.NDJSON}
	fuzzAnthropic = fuzzTarget{"/v1/messages", "api.anthropic.com", `{"model":"m","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"x"}]}`, decode.SSE}
	fuzzAll       = []fuzzTarget{
		fuzzOpenAI, fuzzOllama, fuzzAnthropic,
		{"/v1/completions", "vllm:8000", `{"model":"m","prompt":"x","stream":true}`, decode.SSE},
		{"/v1/embeddings", "api.openai.com", `{"model":"m","input":"x"}`, decode.NotStreamed},
		{"/v1/responses", "api.openai.com", `{"model":"m","input":"x","stream":true}`, decode.SSE},
		{"/v1beta/models/g:streamGenerateContent?alt=sse", "generativelanguage.googleapis.com", `{"contents":[]}`, decode.SSE},
		{"/completion", "localhost:8080", `{"prompt":"x","stream":true}`, decode.SSE},
		{"/api/generate", "localhost:11434", `{"model":"m","prompt":"x"}`, decode.NDJSON},
		{"/api/embed", "localhost:11434", `{"model":"m","input":"x"}`, decode.NotStreamed},
	}
)

// fuzzStream pushes data through the target as a stream (cut into events
// by the test splitter) or as a body, with both captures on, and checks
// that the call is started and ended exactly once and is self-consistent.
func fuzzStream(t *testing.T, ft fuzzTarget, data []byte, reqBody []byte, asBody bool, errEnd bool) {
	rec := &recorder{t: t}
	a := NewAssembler(&Options{CaptureInput: true, CaptureOutput: true, MaxContentChunks: 50}, Endpoint{ServerPort: 443}, rec)
	body := []byte(ft.body)
	if reqBody != nil {
		body = reqBody
	}
	x := exchange("POST", ft.target, map[string]string{"Host": ft.host}, string(body), 0, nil, "")
	a.Request(x)
	if len(rec.started) != 1 {
		return // a body-shaped request the fuzzer made unrecognisable
	}
	x.HasResponse = true
	x.Response = decode.Response{Status: 200, Stream: ft.kind, Header: http.Header{}, Start: fixtureBase, HeaderEnd: fixtureBase}
	n := 0
	if asBody || ft.kind == decode.NotStreamed {
		x.Response.Stream = decode.NotStreamed
		x.Response.Body = data
	} else {
		sp := &streamSplitter{kind: ft.kind}
		sp.feed(append(data, '\n', '\n'), 0, func(int) time.Time { return fixtureBase.Add(time.Duration(n) * time.Millisecond) }, func(ev decode.StreamEvent) {
			n++
			a.Event(x, ev)
			clear(ev.Data)
		})
	}
	x.Response.End = fixtureBase.Add(time.Hour)
	if errEnd {
		x.Err = decode.ErrConnClosed
	}
	a.Done(x)
	if len(rec.ended) != 1 {
		t.Fatalf("%d calls ended, want 1", len(rec.ended))
	}
	c := rec.ended[0]
	if len(c.ContentChunks) > c.Chunks || len(c.ContentChunks) > 50 || c.End.Before(c.Start) {
		t.Fatalf("inconsistent call: %d content chunks of %d, end %v before start %v", len(c.ContentChunks), c.Chunks, c.End, c.Start)
	}
	if len(c.FinishReasons) > maxChoices || len(c.ToolCalls) > maxToolCallsOut {
		t.Fatalf("unbounded call: %d finish reasons, %d tool calls", len(c.FinishReasons), len(c.ToolCalls))
	}
}

func addSeeds(f *testing.F, prefix string) {
	files, _ := filepath.Glob("testdata/" + prefix + "*.txt")
	for _, p := range files {
		fx := loadFixture(f, p)
		var b []byte
		for _, ev := range fx.events {
			b = append(b, ev.raw...)
		}
		if b == nil {
			b = fx.body
		}
		f.Add(b)
	}
}

func FuzzOpenAIStream(f *testing.F) {
	addSeeds(f, "openai_chat")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, fuzzOpenAI, data, nil, false, false)
		fuzzStream(t, fuzzOpenAI, data, nil, false, true)
		fuzzStream(t, fuzzOpenAI, data, nil, true, false)
	})
}

func FuzzOllamaStream(f *testing.F) {
	addSeeds(f, "ollama_chat")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, fuzzOllama, data, nil, false, false)
		fuzzStream(t, fuzzOllama, data, nil, false, true)
		fuzzStream(t, fuzzOllama, data, nil, true, false)
	})
}

func FuzzAnthropicStream(f *testing.F) {
	addSeeds(f, "anthropic")
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzStream(t, fuzzAnthropic, data, nil, false, false)
		fuzzStream(t, fuzzAnthropic, data, nil, false, true)
		fuzzStream(t, fuzzAnthropic, data, nil, true, false)
	})
}

// FuzzUsageJSON pushes one JSON document through every API: as a stream
// event, as a whole response body and as the request body.
func FuzzUsageJSON(f *testing.F) {
	for _, s := range usageSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ft := range fuzzAll {
			sse := append([]byte("data: "), strings.ReplaceAll(string(data), "\n", " ")...)
			if ft.kind == decode.NDJSON {
				sse = []byte(strings.ReplaceAll(string(data), "\n", " "))
			}
			fuzzStream(t, ft, sse, nil, false, false)
			fuzzStream(t, ft, data, nil, true, false)
			fuzzStream(t, ft, data, data, true, true)
		}
	})
}

// usageSeeds are documents shaped like each API's usage, error and
// request objects, with odd values (huge indices, wrong types).
var usageSeeds = []string{
	`{"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":1}}}`,
	`{"type":"message_delta","usage":{"output_tokens":5,"input_tokens":3,"cache_read_input_tokens":2}}`,
	`{"type":"response.completed","response":{"usage":{"input_tokens":3,"output_tokens":4,"input_tokens_details":{"cached_tokens":1}}}}`,
	`{"done":true,"prompt_eval_count":3,"eval_count":0,"eval_duration":5,"total_duration":-1}`,
	`{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"thoughtsTokenCount":2},"candidates":[{"index":99999999999,"finishReason":"STOP"}]}`,
	`{"choices":[{"index":-1,"delta":{"tool_calls":[{"index":1e300,"id":"a"}]}}],"metrics":{"mean_itl_ms":1e308},"timings":{"predicted_n":0}}`,
	`{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"},"object":"error"}`,
	`{"model":"m","messages":[{"role":"tool","content":[{"type":"text","text":"t"}]}],"tools":[{"functionDeclarations":[{"name":"f"}]}],"stop":["a",1],"n":2.5,"seed":"x","temperature":"hot"}`,
	// Requests carrying tool results, in each API's shape.
	`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c1","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","tool_name":"f","content":"{\"a\":[1,{}]}"},{"role":"tool","content":null}]}`,
	`{"model":"m","max_tokens":9,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":"yes","content":[{"type":"text","text":"x"},7]},{"type":"tool_result"}]}]}`,
	`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"f","response":"not an object"}},{"functionResponse":null}]}]}`,
	`{"model":"m","input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{"},{"type":"function_call_output","call_id":"c1","output":"[1,"},{"type":"custom_tool_call_output","call_id":7,"output":{}}]}`,
}

// TestFuzzSeedsCurrent checks that the committed seed corpora are the ones
// the fixtures make, so a fixture change cannot leave the fuzzers behind;
// with -update it rewrites them.
func TestFuzzSeedsCurrent(t *testing.T) {
	for name, prefix := range map[string]string{"FuzzOpenAIStream": "openai_chat", "FuzzOllamaStream": "ollama_chat", "FuzzAnthropicStream": "anthropic", "FuzzBedrockStream": "bedrock"} {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob("testdata/" + prefix + "*.txt")
		for _, p := range files {
			fx := loadFixture(t, p)
			var b []byte
			for _, ev := range fx.events {
				b = append(b, ev.raw...)
			}
			if b == nil {
				b = fx.body
			}
			seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			putSeed(t, filepath.Join(dir, "seed_"+fx.name), seed)
		}
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzUsageJSON")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range usageSeeds {
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(s))
		putSeed(t, filepath.Join(dir, fmt.Sprintf("seed_%d", i)), seed)
	}
}

// putSeed writes a seed file with -update, and otherwise fails when the
// committed one differs.
func putSeed(t *testing.T, path, seed string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != seed {
		t.Errorf("seed corpus file %s is missing or stale: run go test -run TestFuzzSeedsCurrent -update ./internal/genai", path)
	}
}
