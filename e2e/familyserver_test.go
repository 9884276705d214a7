package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// familyServer speaks the wire formats llmServer does not: Anthropic
// Messages and OpenAI Responses streams, plus an OpenAI chat stream whose
// reply the content tests know. Like llmServer it runs inside the test
// process, is observed like any other process, and measures its own pacing,
// which is the ground truth for the observer's timings.
type familyServer struct {
	t    *testing.T
	url  string
	host string
	port string

	mu  sync.Mutex
	log map[string]*familyRecord // by request model; each call uses its own
}

// familyRecord is what the server saw and measured for one request.
type familyRecord struct {
	served               // arrival (handler entry) and content chunk times
	header http.Header   // request headers as received
	remote string        // the client's address and port: one per connection
	body   []byte        // request body
	done   chan struct{} // closed when the handler has written everything
}

// Pacing of every stream: the wait before the first content chunk and
// between content chunks.
const (
	familyFirstDelay = 100 * time.Millisecond
	familyGap        = 30 * time.Millisecond
)

func startFamilyServer(t *testing.T) *familyServer {
	s := &familyServer{t: t, log: map[string]*familyRecord{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", s.anthropicMessages)
	mux.HandleFunc("POST /v1/responses", s.responses)
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	addr := serve(t, mux)
	s.url = "http://" + addr
	s.host, s.port, _ = net.SplitHostPort(addr)
	return s
}

// begin reads the request and files a record under its model. It stamps the
// arrival at handler entry, before the body is read.
func (s *familyServer) begin(w http.ResponseWriter, r *http.Request) (*familyRecord, map[string]any, bool) {
	rec := &familyRecord{served: served{arrived: time.Now()}, header: r.Header.Clone(), remote: r.RemoteAddr, done: make(chan struct{})}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	rec.body = body
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	model, _ := req["model"].(string)
	s.mu.Lock()
	s.log[model] = rec
	s.mu.Unlock()
	return rec, req, true
}

// record returns what the server saw for model once the handler is done,
// or nil when the request never arrived.
func (s *familyServer) record(t *testing.T, model string) *familyRecord {
	t.Helper()
	s.mu.Lock()
	rec := s.log[model]
	s.mu.Unlock()
	if rec == nil {
		t.Errorf("the server never saw a request for %q", model)
		return nil
	}
	select {
	case <-rec.done:
	case <-time.After(5 * time.Second):
		t.Errorf("the handler for %q never finished", model)
		return nil
	}
	return rec
}

// firstContentDelay is the server's own reading of the time to first chunk.
func (rec *familyRecord) firstContentDelay() time.Duration {
	return rec.contentTimes[0].Sub(rec.arrived)
}

// sse writes server-sent events one write each, stamping content events
// after their pacing delay.
type sse struct {
	w   http.ResponseWriter
	rec *familyRecord
	n   int
}

func newSSE(w http.ResponseWriter, rec *familyRecord) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	return &sse{w: w, rec: rec}
}

// event writes one event at once; name may be empty (data-only event).
func (e *sse) event(name, data string) {
	var b bytes.Buffer
	if name != "" {
		fmt.Fprintf(&b, "event: %s\n", name)
	}
	fmt.Fprintf(&b, "data: %s\n\n", data)
	e.w.Write(b.Bytes())
	e.w.(http.Flusher).Flush()
}

// content waits for its turn, stamps the time and writes a content event.
func (e *sse) content(name, data string) {
	if e.n == 0 {
		time.Sleep(familyFirstDelay)
	} else {
		time.Sleep(familyGap)
	}
	e.n++
	e.rec.contentTimes = append(e.rec.contentTimes, time.Now())
	e.event(name, data)
}

// jsonText quotes s as a JSON string.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Anthropic Messages stream: usage with cache fields in message_start, a
// thinking block and a text block, a ping, a cumulative output count in
// message_delta.
const (
	anthropicResponseModel  = "claude-sonnet-4-5-20250929"
	anthropicInputTokens    = 21
	anthropicCacheRead      = 1500
	anthropicCacheCreation  = 7
	anthropicOutputTokens   = 42
	anthropicStartOutTokens = 1 // message_start's placeholder, not a count
)

var (
	anthropicThinking = []string{"The user wants", " a short greeting."}
	anthropicText     = []string{"Hello", " from", " Claude."}
)

func (s *familyServer) anthropicMessages(w http.ResponseWriter, r *http.Request) {
	rec, req, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer close(rec.done)
	if req["stream"] != true {
		http.Error(w, "only streams are served here", http.StatusBadRequest)
		return
	}
	w.Header().Set("Request-Id", "req_e2e_anthropic")
	e := newSSE(w, rec)
	e.event("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_e2e_01","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}}`,
		anthropicResponseModel, anthropicInputTokens, anthropicCacheCreation, anthropicCacheRead, anthropicStartOutTokens))
	e.event("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}`)
	e.event("ping", `{"type": "ping"}`)
	for _, t := range anthropicThinking {
		e.content("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":`+jsonText(t)+`}}`)
	}
	e.event("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"c2lnbmF0dXJlLWUyZQ=="}}`)
	e.event("content_block_stop", `{"type":"content_block_stop","index":0}`)
	e.event("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}`)
	for _, t := range anthropicText {
		e.content("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":`+jsonText(t)+`}}`)
	}
	e.event("content_block_stop", `{"type":"content_block_stop","index":1}`)
	e.event("ping", `{"type": "ping"}`)
	e.event("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, anthropicOutputTokens))
	e.event("message_stop", `{"type":"message_stop"}`)
}

// OpenAI Responses stream: typed events, the usage (with cached and
// reasoning tokens) in response.completed.
const (
	responsesResponseModel = "gpt-4.1-mini-2025-04-14"
	responsesInputTokens   = 37
	responsesCachedTokens  = 12
	responsesOutputTokens  = 25
	responsesReasoning     = 9
)

var responsesText = []string{"Deep", " blue", " sea", "."}

func (s *familyServer) responses(w http.ResponseWriter, r *http.Request) {
	rec, req, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer close(rec.done)
	if req["stream"] != true {
		http.Error(w, "only streams are served here", http.StatusBadRequest)
		return
	}
	w.Header().Set("X-Request-Id", "req_e2e_responses")
	e := newSSE(w, rec)
	seq := 0
	ev := func(typ, fields string, content bool) {
		data := fmt.Sprintf(`{"type":%q,"sequence_number":%d,%s}`, typ, seq, fields)
		seq++
		if content {
			e.content(typ, data)
		} else {
			e.event(typ, data)
		}
	}
	obj := func(status, output, usage string) string {
		return fmt.Sprintf(`"response":{"id":"resp_e2e_01","object":"response","created_at":1763719200,"status":%q,"model":%q,"output":%s,"usage":%s}`,
			status, responsesResponseModel, output, usage)
	}
	ev("response.created", obj("in_progress", "[]", "null"), false)
	ev("response.in_progress", obj("in_progress", "[]", "null"), false)
	ev("response.output_item.added", `"output_index":0,"item":{"id":"msg_e2e_01","type":"message","status":"in_progress","role":"assistant","content":[]}`, false)
	ev("response.content_part.added", `"item_id":"msg_e2e_01","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}`, false)
	for _, t := range responsesText {
		ev("response.output_text.delta", `"item_id":"msg_e2e_01","output_index":0,"content_index":0,"delta":`+jsonText(t), true)
	}
	full := jsonText(strings.Join(responsesText, ""))
	ev("response.output_text.done", `"item_id":"msg_e2e_01","output_index":0,"content_index":0,"text":`+full, false)
	item := `{"id":"msg_e2e_01","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":` + full + `,"annotations":[]}]}`
	ev("response.output_item.done", `"output_index":0,"item":`+item, false)
	ev("response.completed", obj("completed", "["+item+"]", fmt.Sprintf(
		`{"input_tokens":%d,"input_tokens_details":{"cached_tokens":%d},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":%d},"total_tokens":%d}`,
		responsesInputTokens, responsesCachedTokens, responsesOutputTokens, responsesReasoning, responsesInputTokens+responsesOutputTokens)), false)
}

// OpenAI chat completions stream with usage, replying chatReply.
const (
	chatPromptTokens = 31
	chatFingerprint  = "fp_e2e_family"
)

var chatReply = []string{"Paris", " is", " the", " capital", "."}

func (s *familyServer) chat(w http.ResponseWriter, r *http.Request) {
	rec, req, ok := s.begin(w, r)
	if !ok {
		return
	}
	defer close(rec.done)
	model, _ := req["model"].(string)
	if req["stream"] != true {
		http.Error(w, "only streams are served here", http.StatusBadRequest)
		return
	}
	e := newSSE(w, rec)
	chunk := func(choices, extra string) string {
		return fmt.Sprintf(`{"id":"chatcmpl-e2e-fam","object":"chat.completion.chunk","created":1763719200,"model":%q,"system_fingerprint":%q,"choices":%s%s}`,
			model, chatFingerprint, choices, extra)
	}
	e.event("", chunk(`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`, ""))
	for _, t := range chatReply {
		e.content("", chunk(`[{"index":0,"delta":{"content":`+jsonText(t)+`},"finish_reason":null}]`, ""))
	}
	e.event("", chunk(`[{"index":0,"delta":{},"finish_reason":"stop"}]`, ""))
	e.event("", chunk(`[]`, fmt.Sprintf(`,"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`,
		chatPromptTokens, len(chatReply), chatPromptTokens+len(chatReply))))
	e.event("", "[DONE]")
}
