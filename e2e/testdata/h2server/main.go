// Command h2server is a Go LLM server for the end-to-end tests: over TLS it
// offers HTTP/2 and HTTP/1.1 through ALPN, and on a second, cleartext port it
// speaks HTTP/2 with prior knowledge (h2c). It streams OpenAI chat SSE and
// Ollama NDJSON at a fixed pace. Arguments: cert file, key file. It prints
// "listening TLSPORT H2CPORT", then one JSON line per LLM request with what
// it measured itself: the model, the protocol, when the request arrived and
// when each content chunk was written (Unix nanoseconds).
package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

var (
	firstChunkDelay = 150 * time.Millisecond
	chunkGap        = 40 * time.Millisecond
	words           = []string{"Bonjour", " tout", " le", " monde"}
)

// unpaced makes the server stream H2SERVER_UNPACED=N chunks without pause
// and report nothing, for benchmarks.
func unpaced() bool {
	n, _ := strconv.Atoi(os.Getenv("H2SERVER_UNPACED"))
	if n <= 0 {
		return false
	}
	firstChunkDelay, chunkGap, words = 0, 0, nil
	for i := range n {
		words = append(words, fmt.Sprintf(" word%d", i))
	}
	return true
}

var quiet = unpaced()

type report struct {
	Model        string  `json:"model"`
	Proto        string  `json:"proto"`
	Arrived      int64   `json:"arrived"`
	ContentTimes []int64 `json:"content_times"`
}

var out = struct {
	sync.Mutex
	enc *json.Encoder
}{enc: json.NewEncoder(os.Stdout)}

func emit(r report) {
	if quiet {
		return
	}
	out.Lock()
	defer out.Unlock()
	out.enc.Encode(r)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: h2server CERT KEY")
		os.Exit(2)
	}
	cert, err := tls.LoadX509KeyPair(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", openAIChat)
	mux.HandleFunc("POST /api/chat", ollamaChat)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	// A gRPC-shaped method: the observer must recognise it and let it go.
	mux.HandleFunc("POST /grpc.health.v1.Health/Check", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.Write([]byte{0, 0, 0, 0, 2, 8, 1})
		w.Header().Set("Grpc-Status", "0")
	})

	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	h2cLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	secure := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	var clear http.Server
	clear.Handler = mux
	clear.Protocols = new(http.Protocols)
	clear.Protocols.SetUnencryptedHTTP2(true)
	clear.Protocols.SetHTTP1(true)
	fmt.Printf("listening %d %d\n", tlsLn.Addr().(*net.TCPAddr).Port, h2cLn.Addr().(*net.TCPAddr).Port)
	go clear.Serve(h2cLn)
	// ServeTLS offers h2 and http/1.1 through ALPN.
	if err := secure.ServeTLS(tlsLn, "", ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func decode(w http.ResponseWriter, r *http.Request) (string, bool, bool) {
	var req struct {
		Model  string `json:"model"`
		Stream *bool  `json:"stream"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return "", false, false
	}
	return req.Model, req.Stream == nil || *req.Stream, true
}

func openAIChat(w http.ResponseWriter, r *http.Request) {
	rep := report{Proto: r.Proto, Arrived: time.Now().UnixNano()}
	model, _, ok := decode(w, r)
	if !ok {
		return
	}
	rep.Model = model
	id := "chatcmpl-h2-" + model
	w.Header().Set("Content-Type", "text/event-stream")
	f := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		f.Flush()
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	send(chunk(map[string]any{"role": "assistant"}, nil))
	time.Sleep(firstChunkDelay)
	for i, word := range words {
		if i > 0 {
			time.Sleep(chunkGap)
		}
		rep.ContentTimes = append(rep.ContentTimes, time.Now().UnixNano())
		send(chunk(map[string]any{"content": word}, nil))
	}
	send(chunk(map[string]any{}, "stop"))
	send(map[string]any{"id": id, "object": "chat.completion.chunk", "model": model, "choices": []any{},
		"usage": map[string]any{"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}})
	io.WriteString(w, "data: [DONE]\n\n")
	f.Flush()
	emit(rep)
}

func ollamaChat(w http.ResponseWriter, r *http.Request) {
	rep := report{Proto: r.Proto, Arrived: time.Now().UnixNano()}
	model, _, ok := decode(w, r)
	if !ok {
		return
	}
	rep.Model = model
	w.Header().Set("Content-Type", "application/x-ndjson")
	f := w.(http.Flusher)
	enc := json.NewEncoder(w)
	time.Sleep(firstChunkDelay)
	for i, word := range words {
		if i > 0 {
			time.Sleep(chunkGap)
		}
		rep.ContentTimes = append(rep.ContentTimes, time.Now().UnixNano())
		enc.Encode(map[string]any{"model": model, "created_at": time.Now().UTC().Format(time.RFC3339Nano),
			"message": map[string]any{"role": "assistant", "content": word}, "done": false})
		f.Flush()
	}
	enc.Encode(map[string]any{"model": model, "created_at": time.Now().UTC().Format(time.RFC3339Nano),
		"message": map[string]any{"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
		"total_duration": 330000000, "load_duration": 1000000, "prompt_eval_count": 12, "prompt_eval_duration": 20000000,
		"eval_count": len(words), "eval_duration": 120000000})
	f.Flush()
	emit(rep)
}
