package e2e

import (
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

// served is what the test LLM server itself measured for one request, the
// ground truth the observer's spans are compared with.
type served struct {
	arrived      time.Time   // handler entry
	contentTimes []time.Time // just before each content chunk was written
}

// llmServer speaks the Ollama and OpenAI wire formats with fixed pacing and
// token counts. It runs inside the test process, which the observer watches
// like any other process (it only ignores itself).
type llmServer struct {
	t   *testing.T
	url string

	mu  sync.Mutex
	log map[string]*served // by model name; every scenario uses its own model
}

const (
	firstChunkDelay = 150 * time.Millisecond
	chunkGap        = 40 * time.Millisecond
)

// serve runs handler on a loopback port until the test ends and returns the
// address it listens on.
func serve(t *testing.T, handler http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func startLLMServer(t *testing.T) *llmServer {
	s := &llmServer{t: t, log: map[string]*served{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/chat", s.ollamaChat)
	mux.HandleFunc("POST /api/generate", s.ollamaGenerate)
	mux.HandleFunc("POST /api/embed", s.ollamaEmbed)
	mux.HandleFunc("POST /v1/chat/completions", s.openAIChat)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"stored":true}`)
	})
	s.url = "http://" + serve(t, mux)
	return s
}

func (s *llmServer) record(model string) *served {
	rec := &served{arrived: time.Now()}
	s.mu.Lock()
	s.log[model] = rec
	s.mu.Unlock()
	return rec
}

func (s *llmServer) served(model string) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log[model]
}

type request struct {
	Model         string `json:"model"`
	Stream        *bool  `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func readRequest(w http.ResponseWriter, r *http.Request) (request, bool) {
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return req, false
	}
	return req, true
}

// streamer writes paced stream chunks, stamping content chunks.
type streamer struct {
	w   http.ResponseWriter
	rec *served
	n   int
}

func (st *streamer) content(line string) {
	if st.n == 0 {
		time.Sleep(firstChunkDelay)
	} else {
		time.Sleep(chunkGap)
	}
	st.n++
	st.rec.contentTimes = append(st.rec.contentTimes, time.Now())
	st.raw(line)
}

func (st *streamer) raw(line string) {
	io.WriteString(st.w, line)
	st.w.(http.Flusher).Flush()
}

var ollamaWords = []string{"The", " sky", " is", " blue"}

func ollamaLine(model string, fields string) string {
	return fmt.Sprintf(`{"model":%q,"created_at":"2026-11-21T10:00:00Z",%s}`+"\n", model, fields)
}

func (s *llmServer) ollamaChat(w http.ResponseWriter, r *http.Request) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	rec := s.record(req.Model)
	if req.Stream != nil && !*req.Stream {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, strings.TrimSpace(ollamaLine(req.Model, `"message":{"role":"assistant","content":"The sky is blue"},"done":true,"done_reason":"stop","total_duration":900000000,"load_duration":2000000,"prompt_eval_count":12,"prompt_eval_duration":30000000,"eval_count":4,"eval_duration":160000000`)))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	st := &streamer{w: w, rec: rec}
	for i, word := range ollamaWords {
		if strings.HasSuffix(req.Model, "error") && i == 2 {
			st.raw(`{"error":"model runner has unexpectedly stopped"}` + "\n")
			return
		}
		st.content(ollamaLine(req.Model, fmt.Sprintf(`"message":{"role":"assistant","content":%q},"done":false`, word)))
	}
	st.raw(ollamaLine(req.Model, `"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":900000000,"load_duration":2000000,"prompt_eval_count":12,"prompt_eval_duration":30000000,"eval_count":4,"eval_duration":160000000`))
}

func (s *llmServer) ollamaGenerate(w http.ResponseWriter, r *http.Request) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	s.record(req.Model)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, strings.TrimSpace(ollamaLine(req.Model, `"response":"Once upon a time there was a tiny model that answered every question","done":true,"done_reason":"length","total_duration":700000000,"load_duration":1000000,"prompt_eval_count":7,"prompt_eval_duration":10000000,"eval_count":20,"eval_duration":400000000`)))
}

func (s *llmServer) ollamaEmbed(w http.ResponseWriter, r *http.Request) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	s.record(req.Model)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"model":%q,"embeddings":[[0.1,0.2,0.3]],"total_duration":14000000,"load_duration":1000000,"prompt_eval_count":5}`, req.Model)
}

func (s *llmServer) openAIChat(w http.ResponseWriter, r *http.Request) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	rec := s.record(req.Model)
	if strings.HasSuffix(req.Model, "429") {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
		return
	}
	if req.Stream == nil || !*req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-e2e1","object":"chat.completion","created":1763719200,"model":%q,"system_fingerprint":"fp_e2e","choices":[{"index":0,"message":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}`, req.Model)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	st := &streamer{w: w, rec: rec}
	chunk := func(delta, finish string) string {
		return fmt.Sprintf(`data: {"id":"chatcmpl-e2e2","object":"chat.completion.chunk","created":1763719200,"model":%q,"choices":[{"index":0,"delta":%s,"finish_reason":%s}]}`+"\n\n", req.Model, delta, finish)
	}
	// The role-only chunk goes out at once: it is not content and must not
	// count as the first chunk.
	st.raw(chunk(`{"role":"assistant","content":""}`, "null"))
	st.raw(": keep-alive comment\n\n")
	for _, word := range []string{"Bonjour", " le", " monde", "!"} {
		st.content(chunk(fmt.Sprintf(`{"content":%q}`, word), "null"))
	}
	st.raw(chunk(`{}`, `"length"`))
	if req.StreamOptions.IncludeUsage {
		st.raw(fmt.Sprintf(`data: {"id":"chatcmpl-e2e2","object":"chat.completion.chunk","created":1763719200,"model":%q,"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`+"\n\n", req.Model))
	}
	st.raw("data: [DONE]\n\n")
}
