package genai

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// exchange builds a client-side exchange with a JSON response body.
func exchange(method, target string, hdr map[string]string, reqBody string, status int, respHdr map[string]string, respBody string) *decode.Exchange {
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	rh := http.Header{}
	for k, v := range respHdr {
		rh.Set(k, v)
	}
	t0 := fixtureBase
	x := &decode.Exchange{
		ClientSide: true,
		Request:    decode.Request{Method: method, Target: target, Proto: "HTTP/1.1", Header: h, Body: []byte(reqBody), Start: t0, End: t0},
	}
	if status > 0 {
		x.HasResponse = true
		x.Response = decode.Response{Proto: "HTTP/1.1", Status: status, Header: rh, Body: []byte(respBody), Start: t0.Add(time.Second), HeaderEnd: t0.Add(time.Second), End: t0.Add(2 * time.Second)}
	}
	return x
}

// runOne feeds one whole exchange and returns its call, or nil.
func runOne(t *testing.T, opts *Options, ep Endpoint, x *decode.Exchange) *Call {
	t.Helper()
	rec := &recorder{t: t}
	a := NewAssembler(opts, ep, rec)
	a.Request(x)
	a.Done(x)
	if len(rec.started) != len(rec.ended) {
		t.Fatalf("%d started, %d ended", len(rec.started), len(rec.ended))
	}
	if len(rec.ended) == 0 {
		return nil
	}
	return rec.ended[0]
}

const chatBody = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
const chatResp = `{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}]}`

func TestProviderDetection(t *testing.T) {
	ep := Endpoint{ServerAddress: "10.0.0.9", ServerPort: 443}
	tests := []struct {
		name      string
		target    string
		host      string
		port      int // Endpoint port; 0 keeps 443
		reqHdr    map[string]string
		respHdr   map[string]string
		body      string
		resp      string
		overrides map[string]string
		want      string
		wantAPI   string
	}{
		{name: "openai host", target: "/v1/chat/completions", host: "api.openai.com", want: ProviderOpenAI, wantAPI: "openai.chat_completions"},
		{name: "anthropic host", target: "/v1/messages", host: "api.anthropic.com", body: chatBody, resp: `{"type":"message"}`, want: ProviderAnthropic, wantAPI: "anthropic.messages"},
		{name: "anthropic header elsewhere", target: "/v1/messages", host: "proxy.corp", reqHdr: map[string]string{"Anthropic-Version": "2023-06-01"}, want: ProviderAnthropic},
		{name: "anthropic shape on unknown path", target: "/llm/anthropic", host: "gw.corp", reqHdr: map[string]string{"Anthropic-Version": "2023-06-01"}, want: ProviderAnthropic, wantAPI: "anthropic.messages"},
		{name: "gemini host", target: "/v1beta/models/gemini-2.0-flash:generateContent", host: "generativelanguage.googleapis.com", body: `{"contents":[]}`, resp: `{}`, want: ProviderGemini, wantAPI: "gemini.generate_content"},
		{name: "gemini path on a proxy", target: "/gemini/v1beta/models/gemini-2.0-flash:generateContent", host: "gw.corp", body: `{"contents":[]}`, resp: `{}`, want: ProviderGemini},
		{name: "vertex host", target: "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:streamGenerateContent", host: "us-central1-aiplatform.googleapis.com", body: `{"contents":[]}`, resp: `[]`, want: ProviderVertexAI},
		{name: "azure host", target: "/openai/deployments/d1/chat/completions?api-version=2024-10-21", host: "acme.openai.azure.com", want: ProviderAzure},
		{name: "azure path behind a gateway", target: "/openai/deployments/d1/chat/completions", host: "apim.corp", want: ProviderAzure},
		{name: "groq host", target: "/openai/v1/chat/completions", host: "api.groq.com", want: ProviderGroq},
		{name: "ollama native path", target: "/api/chat", host: "gpu-box:8081", body: chatBody, resp: `{"done":true}`, want: ProviderOllama, wantAPI: "ollama.chat"},
		{name: "ollama port", target: "/v1/chat/completions", host: "gpu-box:11434", want: ProviderOllama},
		{name: "ollama port without host header", target: "/v1/chat/completions", port: 11434, want: ProviderOllama},
		{name: "ollama fingerprint", target: "/v1/chat/completions", host: "gpu-box:9000", resp: `{"system_fingerprint":"fp_ollama","choices":[]}`, want: ProviderOllama},
		{name: "vllm metrics", target: "/v1/chat/completions", host: "gpu-box:8000", resp: `{"choices":[],"metrics":{"mean_itl_ms":5}}`, want: ProviderVLLM},
		{name: "vllm prompt_logprobs", target: "/v1/chat/completions", host: "gpu-box:8000", resp: `{"choices":[],"prompt_logprobs":null}`, want: ProviderVLLM},
		{name: "vllm stop_reason", target: "/v1/completions", host: "gpu-box:8000", body: `{"model":"m","prompt":"x"}`, resp: `{"choices":[{"index":0,"text":"y","finish_reason":"stop","stop_reason":null}]}`, want: ProviderVLLM, wantAPI: "openai.completions"},
		{name: "llama.cpp timings", target: "/v1/chat/completions", host: "gpu-box:8080", resp: `{"choices":[],"timings":{"prompt_ms":1}}`, want: ProviderLlamaCpp},
		{name: "llama.cpp native path", target: "/completion", host: "gpu-box:8080", body: `{"prompt":"x"}`, resp: `{"content":"y","stop":true}`, want: ProviderLlamaCpp, wantAPI: "llama_cpp.completion"},
		{name: "llama.cpp server header", target: "/v1/chat/completions", host: "gpu-box:8080", respHdr: map[string]string{"Server": "llama.cpp"}, want: ProviderLlamaCpp},
		{name: "litellm headers", target: "/chat/completions", host: "litellm:4000", respHdr: map[string]string{"X-Litellm-Version": "1.55"}, want: ProviderLiteLLM},
		{name: "unknown openai-shaped", target: "/v1/chat/completions", host: "10.1.1.1:1234", want: ProviderOpenAICompatible},
		{name: "public host beats evidence", target: "/v1/chat/completions", host: "api.openai.com", resp: `{"choices":[],"metrics":{"mean_itl_ms":5}}`, want: ProviderOpenAI},
		{name: "override by host:port", target: "/v1/chat/completions", host: "gpu-box:8000", overrides: map[string]string{"gpu-box:8000": "vllm", "gpu-box": "x", ":8000": "y"}, want: ProviderVLLM},
		{name: "override by host", target: "/v1/chat/completions", host: "gpu-box:8000", overrides: map[string]string{"gpu-box": "sglang", ":8000": "y"}, want: "sglang"},
		{name: "override by port", target: "/v1/chat/completions", host: "gpu-box:8000", overrides: map[string]string{":8000": "tgi"}, want: "tgi"},
		{name: "override beats public host", target: "/v1/chat/completions", host: "api.openai.com", overrides: map[string]string{"api.openai.com": "my_proxy"}, want: "my_proxy"},
		{name: "override beats evidence", target: "/v1/chat/completions", host: "gpu-box:8000", respHdr: map[string]string{"X-Litellm-Version": "1"}, overrides: map[string]string{":8000": "vllm"}, want: ProviderVLLM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			for k, v := range tt.reqHdr {
				hdr[k] = v
			}
			if tt.host != "" {
				hdr["Host"] = tt.host
			}
			body, resp := tt.body, tt.resp
			if body == "" {
				body = chatBody
			}
			if resp == "" {
				resp = chatResp
			}
			e := ep
			if tt.port != 0 {
				e.ServerPort = tt.port
			}
			c := runOne(t, &Options{Providers: tt.overrides}, e, exchange("POST", tt.target, hdr, body, 200, tt.respHdr, resp))
			if c == nil {
				t.Fatal("not recognised")
			}
			if c.Provider != tt.want {
				t.Errorf("provider = %q, want %q", c.Provider, tt.want)
			}
			if tt.wantAPI != "" && c.API != tt.wantAPI {
				t.Errorf("API = %q, want %q", c.API, tt.wantAPI)
			}
		})
	}
}

func TestNotLLMCalls(t *testing.T) {
	tests := []struct {
		method, target, body string
	}{
		{"GET", "/v1/models", ""},
		{"GET", "/api/tags", ""},
		{"GET", "/v1/chat/completions", ""},
		{"POST", "/v1/messages/count_tokens", chatBody},
		{"POST", "/v1beta/models/gemini-2.0-flash:countTokens", `{"contents":[]}`},
		{"POST", "/login", `{"user":"a","password":"b"}`},
		{"POST", "/v1/responses/resp_1/cancel", ""},
		{"POST", "/upload", "not json"},
	}
	for _, tt := range tests {
		rec := &recorder{t: t}
		a := NewAssembler(nil, Endpoint{}, rec)
		x := exchange(tt.method, tt.target, map[string]string{"Host": "api.openai.com"}, tt.body, 200, nil, "{}")
		a.Request(x)
		a.Event(x, decode.StreamEvent{Data: []byte(`{"choices":[]}`)})
		a.Done(x)
		if len(rec.started)+len(rec.ended) != 0 {
			t.Errorf("%s %s: recognised as a call", tt.method, tt.target)
		}
		if s := a.Stats(); s.Requests != 1 || s.Ignored != 1 || s.Calls != 0 {
			t.Errorf("%s %s: stats %+v", tt.method, tt.target, s)
		}
	}
}

func TestHostAndPort(t *testing.T) {
	tests := []struct {
		host     string
		ep       Endpoint
		wantHost string
		wantPort int
	}{
		{"api.openai.com", Endpoint{ServerAddress: "1.2.3.4", ServerPort: 443}, "api.openai.com", 443},
		{"API.OpenAI.com:8443", Endpoint{ServerAddress: "1.2.3.4", ServerPort: 443}, "api.openai.com", 8443},
		{"[::1]:11434", Endpoint{ServerAddress: "::1", ServerPort: 11434}, "::1", 11434},
		{"[fe80::1]", Endpoint{ServerAddress: "fe80::1", ServerPort: 8080}, "fe80::1", 8080},
		{"", Endpoint{ServerAddress: "10.0.0.5", ServerPort: 8000}, "10.0.0.5", 8000},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.host != "" {
			h.Set("Host", tt.host)
		}
		gh, gp := hostPort(h, tt.ep)
		if gh != tt.wantHost || gp != tt.wantPort {
			t.Errorf("hostPort(%q) = %q, %d; want %q, %d", tt.host, gh, gp, tt.wantHost, tt.wantPort)
		}
	}
}

func TestEndUserHash(t *testing.T) {
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	tests := []struct {
		name, target, body, salt, want string
	}{
		{"openai user", "/v1/chat/completions", `{"model":"m","messages":[],"user":"alice"}`, "pepper", sum("pepperalice")},
		{"openai safety_identifier", "/v1/chat/completions", `{"model":"m","messages":[],"safety_identifier":"h1"}`, "pepper", sum("pepperh1")},
		{"user wins over safety_identifier", "/v1/responses", `{"model":"m","input":"x","user":"u","safety_identifier":"s"}`, "", sum("u")},
		{"anthropic metadata", "/v1/messages", `{"model":"m","messages":[],"metadata":{"user_id":"bob"}}`, "s", sum("sbob")},
		{"no user", "/v1/chat/completions", `{"model":"m","messages":[]}`, "s", ""},
		{"empty user", "/v1/chat/completions", `{"model":"m","messages":[],"user":""}`, "s", ""},
	}
	for _, tt := range tests {
		c := runOne(t, &Options{UserIDSalt: tt.salt}, Endpoint{}, exchange("POST", tt.target, map[string]string{"Host": "api.openai.com"}, tt.body, 200, nil, "{}"))
		if c.EndUserHash != tt.want {
			t.Errorf("%s: hash %q, want %q", tt.name, c.EndUserHash, tt.want)
		}
		b, _ := json.Marshal(c)
		for _, id := range []string{"alice", "bob", `"h1"`} {
			if strings.Contains(string(b), id) {
				t.Errorf("%s: the raw user id %s reached the call", tt.name, id)
			}
		}
	}
}

func TestCredentialsNeverCopied(t *testing.T) {
	hdr := map[string]string{
		"Host":                "api.openai.com",
		"Authorization":       "Bearer SECRET1",
		"X-Api-Key":           "SECRET2",
		"Api-Key":             "SECRET3",
		"Cookie":              "session=SECRET4",
		"Proxy-Authorization": "Basic SECRET5",
		"X-Goog-Api-Key":      "SECRET6",
		"Traceparent":         "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	resp := map[string]string{"Set-Cookie": "a=SECRET7", "X-Request-Id": "req_1", "X-Ratelimit-Remaining-Requests": "5"}
	for _, target := range []string{"/v1/chat/completions?key=SECRET8", "/v1beta/models/g:generateContent?key=SECRET8&alt=sse"} {
		c := runOne(t, captureAll, Endpoint{}, exchange("POST", target, hdr, chatBody, 200, resp, chatResp))
		b, _ := json.Marshal(c)
		if strings.Contains(string(b), "SECRET") {
			t.Errorf("%s: a credential reached the call: %s", target, b)
		}
		if c.RequestID != "req_1" || c.RateLimit["x-ratelimit-remaining-requests"] != "5" || c.TraceParent == "" {
			t.Errorf("%s: wanted headers missing: %+v", target, c)
		}
	}
}

func TestContentChunksBound(t *testing.T) {
	rec := &recorder{t: t}
	a := NewAssembler(&Options{MaxContentChunks: 3}, Endpoint{}, rec)
	x := exchange("POST", "/api/generate", map[string]string{"Host": "localhost:11434"}, `{"model":"m","prompt":"p"}`, 0, nil, "")
	a.Request(x)
	x.HasResponse = true
	x.Response = decode.Response{Status: 200, Stream: decode.NDJSON, Header: http.Header{}}
	for i := 0; i < 10; i++ {
		a.Event(x, decode.StreamEvent{Time: fixtureBase.Add(time.Duration(i) * time.Millisecond), Data: []byte(`{"response":"a","done":false}`)})
	}
	a.Event(x, decode.StreamEvent{Time: fixtureBase.Add(time.Second), Data: []byte(`{"response":"","done":true,"eval_count":10}`)})
	a.Done(x)
	c := rec.ended[0]
	if len(c.ContentChunks) != 3 || c.ContentChunksDropped != 7 || c.Chunks != 11 {
		t.Errorf("chunks kept %d, dropped %d, counted %d; want 3, 7, 11", len(c.ContentChunks), c.ContentChunksDropped, c.Chunks)
	}
}

// TestOutputContentBound checks that captured output stops at its byte
// bound, at a word boundary, so that no secret is kept half.
func TestOutputContentBound(t *testing.T) {
	rec := &recorder{t: t}
	a := NewAssembler(&Options{CaptureOutput: true, MaxOutputContentBytes: 40}, Endpoint{}, rec)
	x := exchange("POST", "/api/generate", map[string]string{"Host": "localhost:11434"}, `{"model":"m","prompt":"p"}`, 0, nil, "")
	a.Request(x)
	x.HasResponse = true
	x.Response = decode.Response{Status: 200, Stream: decode.NDJSON, Header: http.Header{}}
	for _, w := range []string{"the key is ", "sk-proj-", "abcdefghijklmnopqrstuvwxyz", " and more ", "text"} {
		a.Event(x, decode.StreamEvent{Time: fixtureBase, Data: []byte(`{"response":"` + w + `","done":false}`)})
	}
	a.Event(x, decode.StreamEvent{Time: fixtureBase, Data: []byte(`{"response":"","done":true,"eval_count":5}`)})
	a.Done(x)
	c := rec.ended[0]
	if !c.ContentTruncated || len(c.OutputMessages) != 1 || len(c.OutputMessages[0].Parts) != 1 {
		t.Fatalf("truncated %v, output %+v", c.ContentTruncated, c.OutputMessages)
	}
	if got := c.OutputMessages[0].Parts[0].Content; got != "the key is " {
		t.Errorf("kept %q, want the text up to the word the bound cut", got)
	}
	if c.Usage.OutputTokens == nil || *c.Usage.OutputTokens != 5 {
		t.Errorf("the usage after the bound was lost: %v", c.Usage.OutputTokens)
	}
}

// TestPipelined checks that interleaved exchanges on one connection each
// get their own call, matched by sequence number.
func TestPipelined(t *testing.T) {
	rec := &recorder{t: t}
	a := NewAssembler(captureAll, Endpoint{}, rec)
	x1 := exchange("POST", "/api/generate", map[string]string{"Host": "localhost:11434"}, `{"model":"a","prompt":"1"}`, 0, nil, "")
	x2 := exchange("POST", "/api/generate", map[string]string{"Host": "localhost:11434"}, `{"model":"b","prompt":"2"}`, 0, nil, "")
	x1.Seq, x2.Seq = 0, 1
	a.Request(x1)
	a.Request(x2)
	for _, x := range []*decode.Exchange{x1, x2} {
		x.HasResponse = true
		x.Response = decode.Response{Status: 200, Stream: decode.NDJSON, Header: http.Header{}}
	}
	a.Event(x1, decode.StreamEvent{Data: []byte(`{"model":"a","response":"one","done":true,"eval_count":1}`)})
	a.Event(x2, decode.StreamEvent{Data: []byte(`{"model":"b","response":"two","done":true,"eval_count":2}`)})
	a.Done(x2)
	a.Done(x1)
	a.Done(x1) // a repeated Done is ignored
	if len(rec.ended) != 2 {
		t.Fatalf("%d calls", len(rec.ended))
	}
	if rec.ended[0].RequestModel != "b" || *rec.ended[0].Usage.OutputTokens != 2 || rec.ended[1].RequestModel != "a" || *rec.ended[1].Usage.OutputTokens != 1 {
		t.Errorf("calls mixed up: %+v / %+v", rec.ended[0], rec.ended[1])
	}
}

func TestCloseEndsOpenCalls(t *testing.T) {
	rec := &recorder{t: t}
	a := NewAssembler(nil, Endpoint{}, rec)
	x := exchange("POST", "/v1/chat/completions", map[string]string{"Host": "api.openai.com"}, `{"model":"m","messages":[],"stream":true}`, 0, nil, "")
	a.Request(x)
	a.Close()
	a.Done(x) // after Close: nothing left to end
	if len(rec.ended) != 1 || rec.ended[0].ErrorType != "" || !rec.ended[0].Truncated {
		t.Fatalf("ended %+v", rec.ended)
	}
}

func TestNoResponse(t *testing.T) {
	x := exchange("POST", "/v1/chat/completions", map[string]string{"Host": "api.openai.com"}, chatBody, 0, nil, "")
	x.Err = decode.ErrConnClosed
	c := runOne(t, nil, Endpoint{}, x)
	if c.ErrorType != "" || c.ErrorMessage != "" || c.Status != 0 || !c.Truncated || c.End.Before(c.Start) {
		t.Errorf("call %+v", c)
	}
}

func TestSalvageObject(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1,"b":[1,2`, `{"a":1,"b":[1]}`},
		{`{"a":1,"b":"tr`, `{"a":1}`},
		{`{"model":"m","messages":[{"role":"user"},{"ro`, `{"model":"m","messages":[{"role":"user"}]}`},
		{`{"a":{"b":`, `{}`},
		{`[1,2`, ``},
		{``, ``},
	}
	for _, tt := range tests {
		if got := string(salvageObject([]byte(tt.in))); got != tt.want {
			t.Errorf("salvageObject(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSpanNull(t *testing.T) {
	var v struct {
		A span `json:"a"`
		B span `json:"b"`
	}
	if err := json.Unmarshal([]byte(`{"a":null}`), &v); err != nil {
		t.Fatal(err)
	}
	if !v.A.present() || !v.A.isNull() || v.B.present() {
		t.Errorf("null handling: a=%q b=%q", v.A, v.B)
	}
}

// TestCaptureSwitches checks that each switch fills only its own fields.
func TestCaptureSwitches(t *testing.T) {
	fixtureNames := []string{"openai_chat_stream_tool_calls", "anthropic_messages_stream_tool_use", "ollama_generate_stream", "gemini_generate_nostream_function_call", "openai_responses_stream_reasoning"}
	tests := []struct {
		name          string
		opts          Options
		input, output bool
	}{
		{"off", Options{}, false, false},
		{"input only", Options{CaptureInput: true}, true, false},
		{"output only", Options{CaptureOutput: true}, false, true},
		{"both", Options{CaptureInput: true, CaptureOutput: true}, true, true},
	}
	for _, name := range fixtureNames {
		fx := loadFixture(t, "testdata/"+name+".txt")
		for _, tt := range tests {
			c := fx.run(t, &tt.opts, feedEvents, 0)
			gotIn := c.InputMessages != nil || c.SystemInstructions != nil || c.ToolDefinitions != nil
			gotOut := c.OutputMessages != nil
			args := false
			for _, tc := range c.ToolCalls {
				args = args || tc.Arguments != ""
			}
			if gotIn != tt.input || gotOut != tt.output || args != (tt.output && len(c.ToolCalls) > 0) {
				t.Errorf("%s, capture %s: input %v, output %v, tool arguments %v", name, tt.name, gotIn, gotOut, args)
			}
		}
	}
}
