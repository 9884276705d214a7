package decode

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"testing"
	"time"
)

// nopSink is the cheapest Sink, so benchmarks measure the decoder.
type nopSink struct{ events int }

func (*nopSink) Request(*Exchange)                  {}
func (n *nopSink) Event(_ *Exchange, _ StreamEvent) { n.events++ }
func (*nopSink) Done(*Exchange)                     {}

// feedSized feeds b in pieces of at most n bytes, as capture hands them.
func feedSized(c *Conn, dir Direction, t time.Time, b []byte, n int) {
	for len(b) > 0 {
		k := min(n, len(b))
		c.Feed(dir, t, b[:k])
		b = b[k:]
	}
}

func benchConversation(b *testing.B, req, resp []byte, piece int) {
	b.Helper()
	b.SetBytes(int64(len(req) + len(resp)))
	b.ReportAllocs()
	sink := &nopSink{}
	t := time.Now()
	for b.Loop() {
		c := NewConn(Limits{}, sink)
		feedSized(c, Egress, t, req, piece)
		feedSized(c, Ingress, t, resp, piece)
		c.Close(t)
	}
	if bytes.Contains(resp, []byte("event-stream")) && sink.events < b.N*1000 {
		b.Fatalf("%d events in %d runs", sink.events, b.N)
	}
}

// A 512 KiB JSON response with a Content-Length, read in 16 KiB pieces.
func BenchmarkFeedLargeBody(b *testing.B) {
	body := bytes.Repeat([]byte(`{"index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]},`), 512<<10/66)
	resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	benchConversation(b, []byte("POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"), resp, 16<<10)
}

func sseStream(events int) []byte {
	var body bytes.Buffer
	for i := 0; i < events; i++ {
		ev := fmt.Sprintf(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"tok%d"},"finish_reason":null}]}`+"\n\n", i)
		fmt.Fprintf(&body, "%x\r\n%s\r\n", len(ev), ev)
	}
	body.WriteString("0\r\n\r\n")
	return append([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"), body.Bytes()...)
}

// An OpenAI-style SSE stream of 1000 events in chunked coding, one event
// per read as servers flush them.
func BenchmarkFeedSSE(b *testing.B) {
	resp := sseStream(1000)
	b.SetBytes(int64(len(resp)))
	b.ReportAllocs()
	req := []byte("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
	head := bytes.Index(resp, []byte("\r\n\r\n")) + 4
	var pieces [][]byte
	for rest := resp[head:]; len(rest) > 0; {
		// Each chunk: size line, data, CRLF.
		nl := bytes.IndexByte(rest, '\n')
		var n int
		fmt.Sscanf(string(rest[:nl]), "%x", &n)
		k := min(len(rest), nl+1+n+2)
		pieces = append(pieces, rest[:k])
		rest = rest[k:]
	}
	sink := &nopSink{}
	t := time.Now()
	for b.Loop() {
		c := NewConn(Limits{}, sink)
		c.Feed(Egress, t, req)
		c.Feed(Ingress, t, resp[:head])
		for _, p := range pieces {
			c.Feed(Ingress, t, p)
		}
		c.Close(t)
	}
	if sink.events == 0 {
		b.Fatal("no events")
	}
}

// An Ollama NDJSON stream of 1000 lines in chunked coding, one line per read.
func BenchmarkFeedNDJSON(b *testing.B) {
	var resp bytes.Buffer
	resp.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
	head := resp.Len()
	var ends []int
	for i := 0; i < 1000; i++ {
		line := fmt.Sprintf(`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.%06dZ","message":{"role":"assistant","content":"tok%d"},"done":false}`+"\n", i, i)
		fmt.Fprintf(&resp, "%x\r\n%s\r\n", len(line), line)
		ends = append(ends, resp.Len())
	}
	resp.WriteString("0\r\n\r\n")
	ends = append(ends, resp.Len())
	all := resp.Bytes()
	b.SetBytes(int64(len(all)))
	b.ReportAllocs()
	req := []byte("POST /api/chat HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
	sink := &nopSink{}
	t := time.Now()
	for b.Loop() {
		c := NewConn(Limits{}, sink)
		c.Feed(Egress, t, req)
		c.Feed(Ingress, t, all[:head])
		prev := head
		for _, e := range ends {
			c.Feed(Ingress, t, all[prev:e])
			prev = e
		}
		c.Close(t)
	}
	if sink.events == 0 {
		b.Fatal("no events")
	}
}

// The SSE stream of BenchmarkFeedSSE, gzip-compressed and sync-flushed
// per event, read in 4 KiB pieces.
func BenchmarkFeedGzipSSE(b *testing.B) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(zw, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok%d"}}]}`+"\n\n", i)
		zw.Flush()
	}
	zw.Close()
	resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", zb.Len(), zb.Bytes())
	benchConversation(b, []byte("GET /s HTTP/1.1\r\n\r\n"), resp, 4<<10)
}

// Many small keep-alive exchanges: the per-message cost of heads.
func BenchmarkFeedKeepAlive(b *testing.B) {
	var req, resp bytes.Buffer
	for i := 0; i < 100; i++ {
		body := `{"model":"llama3.2","prompt":"hi"}`
		fmt.Fprintf(&req, "POST /api/generate HTTP/1.1\r\nHost: localhost:11434\r\nUser-Agent: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		out := `{"model":"llama3.2","response":"Hello","done":true}`
		fmt.Fprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nDate: Wed, 01 Jan 2025 00:00:00 GMT\r\nContent-Length: %d\r\n\r\n%s", len(out), out)
	}
	benchConversation(b, req.Bytes(), resp.Bytes(), 1<<20)
}

// Garbage on a port: what hunting for a start line costs.
func BenchmarkFeedGarbage(b *testing.B) {
	g := []byte(strings.Repeat("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all \n", 4096))
	benchConversation(b, g, nil, 16<<10)
}
