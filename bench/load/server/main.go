// Command server is the load benchmark's model server: it answers OpenAI
// chat completions (server-sent events when the request asks for a stream,
// one JSON document otherwise) and Ollama chats (NDJSON lines), each event
// flushed on its own as a model server writes tokens. It prints its address
// on stdout and serves until killed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	chunks := flag.Int("chunks", 32, "content events per streamed answer")
	delay := flag.Duration("chunk-delay", 0, "pause before each streamed event, as a model generating")
	flag.Parse()

	a := newAnswers(*chunks)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(a.json)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		stream(w, a.sse, *delay)
	})
	mux.HandleFunc("POST /api/chat", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		stream(w, a.ndjson, *delay)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// stream writes each event in a write of its own, as a server flushing
// every token does; each becomes one chunk of the chunked response.
func stream(w http.ResponseWriter, events [][]byte, delay time.Duration) {
	f := w.(http.Flusher)
	for _, ev := range events {
		if delay > 0 {
			time.Sleep(delay)
		}
		if _, err := w.Write(ev); err != nil {
			return
		}
		f.Flush()
	}
}

// answers are the three shapes of one answer of n tokens, built once.
type answers struct {
	sse, ndjson [][]byte
	json        []byte
}

var words = []string{" The", " sky", " looks", " blue", " because", " air", " scatters", " shorter", " wavelengths", " more."}

func newAnswers(n int) *answers {
	a := &answers{}
	const model = "llama-3.1-8b-instruct"
	chunk := func(delta, finish string) []byte {
		return []byte(`data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":1735689600,"model":"` + model +
			`","choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}]}` + "\n\n")
	}
	var text strings.Builder
	for i := range n {
		w := words[i%len(words)]
		text.WriteString(w)
		a.sse = append(a.sse, chunk(fmt.Sprintf(`{"content":%q}`, w), "null"))
		a.ndjson = append(a.ndjson, fmt.Appendf(nil,
			`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.%06dZ","message":{"role":"assistant","content":%q},"done":false}`+"\n", i, w))
	}
	a.sse = append(a.sse, chunk(`{}`, `"stop"`),
		fmt.Appendf(nil, `data: {"id":"chatcmpl-load","object":"chat.completion.chunk","created":1735689600,"model":"%s","choices":[],"usage":{"prompt_tokens":24,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", model, n, 24+n),
		[]byte("data: [DONE]\n\n"))
	a.ndjson = append(a.ndjson, fmt.Appendf(nil,
		`{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":5432101,"prompt_eval_count":24,"eval_count":%d,"eval_duration":5120000}`+"\n", n))
	a.json = fmt.Appendf(nil, `{"id":"chatcmpl-load","object":"chat.completion","created":1735689600,"model":"%s",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"logprobs":null,"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":24,"completion_tokens":%d,"total_tokens":%d}}`, model, text.String(), n, 24+n)
	return a
}
