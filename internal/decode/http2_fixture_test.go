package decode

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 fixtures (testdata/h2_*.http) are written by the program
// below with http2.Framer and hpack.Encoder, so their frames and header
// blocks are real ones, HPACK dynamic table included. They are ordinary
// fixtures: TestFixtures feeds them whole, byte by byte, cut everywhere
// and from the server's side, against goldens. TestHTTP2FixturesCurrent
// checks the files are what the program writes (-update rewrites them).

// h2script builds one conversation, feed by feed.
type h2script struct {
	name    string
	comment string
	out     strings.Builder
	enc     [2]*hpack.Encoder
	hbuf    [2]bytes.Buffer
	maxFrag int // header block fragment size; larger blocks go on in CONTINUATION
}

func newH2Script(name, comment string) *h2script {
	s := &h2script{name: name, comment: comment}
	for i := range s.enc {
		s.enc[i] = hpack.NewEncoder(&s.hbuf[i])
	}
	return s
}

// feed starts a new feed of dir.
func (s *h2script) feed(dir Direction) *h2script {
	if dir == Egress {
		s.out.WriteString(">>> egress\n")
	} else {
		s.out.WriteString("<<< ingress\n")
	}
	return s
}

func (s *h2script) skip(dir Direction, n int) *h2script {
	fmt.Fprintf(&s.out, "--- skip %s %d\n", dir, n)
	return s
}

func (s *h2script) close() *h2script {
	s.out.WriteString("--- close\n")
	return s
}

// frame writes one frame made by write, under a note saying what it is.
func (s *h2script) frame(note string, write func(fr *http2.Framer) error) *h2script {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	if err := write(fr); err != nil {
		panic(err)
	}
	return s.raw(note, buf.Bytes())
}

func (s *h2script) raw(note string, b []byte) *h2script {
	fmt.Fprintf(&s.out, "~# %s\n", note)
	for len(b) > 0 {
		n := min(len(b), 57)
		fmt.Fprintf(&s.out, "~base64 %s\n", base64.StdEncoding.EncodeToString(b[:n]))
		b = b[n:]
	}
	return s
}

// text writes HTTP/1.1 bytes as fixture text.
func (s *h2script) text(t string) *h2script {
	for _, line := range strings.SplitAfter(t, "\r\n") {
		if line == "" {
			continue
		}
		line = strings.ReplaceAll(line, "{", "{x:7B}")
		s.out.WriteString(strings.ReplaceAll(line, "\r\n", "{CRLF}") + "\n")
	}
	return s
}

func (s *h2script) preface() *h2script {
	s.out.WriteString("~# client preface\n" + strings.ReplaceAll(clientPreface, "\r\n", "{CRLF}") + "\n")
	return s
}

func (s *h2script) settings(set ...http2.Setting) *h2script {
	return s.frame(fmt.Sprintf("SETTINGS %v", set), func(fr *http2.Framer) error { return fr.WriteSettings(set...) })
}

func (s *h2script) settingsAck() *h2script {
	return s.frame("SETTINGS ACK", func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
}

func (s *h2script) windowUpdate(sid, n uint32) *h2script {
	return s.frame(fmt.Sprintf("WINDOW_UPDATE stream %d +%d", sid, n), func(fr *http2.Framer) error { return fr.WriteWindowUpdate(sid, n) })
}

func (s *h2script) ping(ack bool) *h2script {
	return s.frame(fmt.Sprintf("PING ack=%v", ack), func(fr *http2.Framer) error { return fr.WritePing(ack, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}) })
}

func (s *h2script) rst(sid uint32, code http2.ErrCode) *h2script {
	return s.frame(fmt.Sprintf("RST_STREAM stream %d %v", sid, code), func(fr *http2.Framer) error { return fr.WriteRSTStream(sid, code) })
}

func (s *h2script) goAway(last uint32, code http2.ErrCode) *h2script {
	return s.frame(fmt.Sprintf("GOAWAY last stream %d %v", last, code), func(fr *http2.Framer) error { return fr.WriteGoAway(last, code, nil) })
}

// headers writes a header block of dir, encoded with that direction's
// HPACK encoder, fields given as name, value pairs.
func (s *h2script) headers(dir Direction, sid uint32, endStream bool, kv ...string) *h2script {
	hb := &s.hbuf[dir]
	hb.Reset()
	for i := 0; i < len(kv); i += 2 {
		if err := s.enc[dir].WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}); err != nil {
			panic(err)
		}
	}
	block := append([]byte(nil), hb.Bytes()...)
	frag := len(block)
	if s.maxFrag > 0 {
		frag = min(frag, s.maxFrag)
	}
	note := fmt.Sprintf("HEADERS stream %d end_stream=%v %s", sid, endStream, strings.Join(kv, " "))
	s.frame(note, func(fr *http2.Framer) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: block[:frag], EndStream: endStream, EndHeaders: frag == len(block)})
	})
	for rest := block[frag:]; len(rest) > 0; {
		n := min(len(rest), s.maxFrag)
		s.frame(fmt.Sprintf("CONTINUATION stream %d", sid), func(fr *http2.Framer) error {
			return fr.WriteContinuation(sid, n == len(rest), rest[:n])
		})
		rest = rest[n:]
	}
	return s
}

func (s *h2script) data(sid uint32, endStream bool, p string) *h2script {
	return s.dataBytes(sid, endStream, []byte(p), nil)
}

func (s *h2script) dataBytes(sid uint32, endStream bool, p, pad []byte) *h2script {
	note := fmt.Sprintf("DATA stream %d end_stream=%v", sid, endStream)
	if len(pad) > 0 {
		note += fmt.Sprintf(" padded %d", len(pad))
	}
	if utf8Text(p) {
		note += " " + strings.ReplaceAll(string(p), "\n", `\n`)
	} else {
		note += fmt.Sprintf(" (%d bytes)", len(p))
	}
	return s.frame(note, func(fr *http2.Framer) error { return fr.WriteDataPadded(sid, endStream, p, pad) })
}

func utf8Text(p []byte) bool {
	for _, c := range p {
		if c < 0x20 && c != '\n' || c == 0x7f || c >= 0x80 {
			return false
		}
	}
	return true
}

func (s *h2script) render() string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(s.comment), "\n") {
		b.WriteString("# " + strings.TrimSpace(line) + "\n")
	}
	b.WriteString("# Written by TestHTTP2FixturesCurrent (http2_fixture_test.go): run it with -update.\n")
	b.WriteString(s.out.String())
	return b.String()
}

func gzipBytes(p string) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write([]byte(p))
	w.Close()
	return b.Bytes()
}

// The client and server openings of every prior-knowledge conversation.
func (s *h2script) open() *h2script {
	return s.feed(Egress).preface().settings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20}).
		feed(Ingress).settings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 250}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20}).settingsAck().
		feed(Egress).settingsAck()
}

func chatRequest(s *h2script, sid uint32, authority, path, body string) *h2script {
	return s.feed(Egress).headers(Egress, sid, false,
		":method", "POST", ":scheme", "https", ":authority", authority, ":path", path,
		"content-type", "application/json", "user-agent", "OpenAI/Python 1.54.0", "accept", "text/event-stream").
		data(sid, true, body)
}

func sseChunk(id, content string) string {
	return `data: {"id":"` + id + `","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}]}` + "\n\n"
}

const openAIBody = `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hi"}]}`

func h2Scripts() []*h2script {
	var out []*h2script

	s := newH2Script("h2_openai_chat_sse", `OpenAI chat completions streamed over HTTP/2 (prior knowledge): one
		stream, events in their own DATA frames, one event split across two
		frames and two events in one frame, the end of the stream an empty DATA
		frame with END_STREAM.`).open()
	chatRequest(s, 1, "api.openai.com", "/v1/chat/completions", openAIBody)
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream; charset=utf-8", "x-request-id", "req_h2_1", "openai-processing-ms", "112").
		feed(Ingress).data(1, false, sseChunk("c1", "")).
		feed(Ingress).data(1, false, sseChunk("c1", "Hi"))
	half := sseChunk("c1", " there")
	s.feed(Ingress).data(1, false, half[:40]).
		feed(Ingress).data(1, false, half[40:]).windowUpdate(0, 1024).
		feed(Ingress).data(1, false, sseChunk("c1", "!")+`data: {"id":"c1","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n").
		feed(Ingress).data(1, false, `data: {"id":"c1","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`+"\n\ndata: [DONE]\n\n").
		feed(Ingress).data(1, true, "").
		feed(Egress).windowUpdate(0, 1200)
	out = append(out, s)

	s = newH2Script("h2_ollama_chat_ndjson", `Ollama /api/chat streamed as NDJSON over h2c, a padded DATA frame
		among them, the last line without its newline; then a PING and its ack.`).open()
	s.feed(Egress).headers(Egress, 1, false, ":method", "POST", ":scheme", "http", ":authority", "localhost:11434", ":path", "/api/chat", "content-type", "application/json").
		data(1, true, `{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}]}`).
		feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "application/x-ndjson", "date", "Wed, 01 Jan 2025 00:00:00 GMT").
		feed(Ingress).data(1, false, `{"model":"llama3.2","created_at":"2025-01-01T00:00:00.1Z","message":{"role":"assistant","content":"Rayleigh"},"done":false}`+"\n").
		feed(Ingress).dataBytes(1, false, []byte(`{"model":"llama3.2","created_at":"2025-01-01T00:00:00.2Z","message":{"role":"assistant","content":" scattering"},"done":false}`+"\n"), make([]byte, 7)).
		feed(Ingress).data(1, true, `{"model":"llama3.2","created_at":"2025-01-01T00:00:00.3Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":300000000,"prompt_eval_count":12,"eval_count":3}`).
		feed(Egress).ping(false).
		feed(Ingress).ping(true)
	out = append(out, s)

	s = newH2Script("h2_multiplexed_two_streams", `Two chat streams on one connection, their requests back to back and
		their events interleaved, each in its own read: each stream is its own
		exchange with its own times. The second request's headers are mostly
		references to the HPACK dynamic table the first one filled.`).open()
	chatRequest(s, 1, "api.openai.com", "/v1/chat/completions", openAIBody)
	chatRequest(s, 3, "api.openai.com", "/v1/chat/completions", strings.Replace(openAIBody, "Say hi", "Say bye", 1))
	s.feed(Ingress).headers(Ingress, 3, false, ":status", "200", "content-type", "text/event-stream; charset=utf-8", "x-request-id", "req_b").
		feed(Ingress).data(3, false, sseChunk("b", "Bye")).
		feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream; charset=utf-8", "x-request-id", "req_a").
		feed(Ingress).data(1, false, sseChunk("a", "Hi")).
		feed(Ingress).data(3, false, sseChunk("b", "!")).data(1, false, sseChunk("a", "!")).
		feed(Ingress).data(1, true, "data: [DONE]\n\n").
		feed(Ingress).data(3, true, "data: [DONE]\n\n")
	out = append(out, s)

	s = newH2Script("h2_rst_stream", `A stream the client cancels mid-response (RST_STREAM CANCEL), then one
		the server resets before answering (RST_STREAM INTERNAL_ERROR), then a
		complete one: frames of the cancelled stream still in flight are dropped.`).open()
	chatRequest(s, 1, "api.openai.com", "/v1/chat/completions", openAIBody)
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream").
		feed(Ingress).data(1, false, sseChunk("r", "Once upon")).
		feed(Egress).rst(1, http2.ErrCodeCancel).
		feed(Ingress).data(1, false, sseChunk("r", " a time"))
	chatRequest(s, 3, "api.openai.com", "/v1/chat/completions", openAIBody)
	s.feed(Ingress).rst(3, http2.ErrCodeInternal)
	chatRequest(s, 5, "api.openai.com", "/v1/chat/completions", openAIBody)
	s.feed(Ingress).headers(Ingress, 5, false, ":status", "200", "content-type", "text/event-stream").
		data(5, false, sseChunk("s", "ok")).data(5, true, "data: [DONE]\n\n")
	out = append(out, s)

	s = newH2Script("h2_goaway", `The server sends GOAWAY naming stream 1 as the last it processed:
		stream 3 ends with the GOAWAY error while stream 1 completes; a second
		GOAWAY with ENHANCE_YOUR_CALM before stream 1's end ends it that way
		when the connection closes.`).open()
	chatRequest(s, 1, "localhost:8000", "/v1/chat/completions", openAIBody)
	chatRequest(s, 3, "localhost:8000", "/v1/completions", `{"model":"m","prompt":"x"}`)
	s.feed(Ingress).goAway(1, http2.ErrCodeNo).
		feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream").data(1, false, sseChunk("g", "partial")).
		feed(Ingress).goAway(1, http2.ErrCodeEnhanceYourCalm).
		close()
	out = append(out, s)

	s = newH2Script("h2_gzip_data", `A gzip-coded JSON response split over three DATA frames, then a gzip
		coded SSE stream on the next stream.`).open()
	s.feed(Egress).headers(Egress, 1, true, ":method", "GET", ":scheme", "https", ":authority", "api.example.com", ":path", "/v1/models", "accept-encoding", "gzip")
	z := gzipBytes(`{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"}]}`)
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "application/json", "content-encoding", "gzip").
		feed(Ingress).dataBytes(1, false, z[:20], nil).
		feed(Ingress).dataBytes(1, false, z[20:50], nil).
		feed(Ingress).dataBytes(1, true, z[50:], nil)
	chatRequest(s, 3, "api.example.com", "/v1/chat/completions", openAIBody)
	z = gzipBytes(sseChunk("z", "Hello") + sseChunk("z", " world") + "data: [DONE]\n\n")
	s.feed(Ingress).headers(Ingress, 3, false, ":status", "200", "content-type", "text/event-stream", "content-encoding", "gzip").
		feed(Ingress).dataBytes(3, false, z[:len(z)/2], nil).
		feed(Ingress).dataBytes(3, true, z[len(z)/2:], nil)
	out = append(out, s)

	s = newH2Script("h2_h2c_upgrade", `An HTTP/1.1 request asking for "Upgrade: h2c" answered by 101
		Switching Protocols: the response comes as HTTP/2 stream 1, and a
		second request follows on stream 3. The 101 is not an exchange.`)
	body := `{"model":"llama3.2","prompt":"hi","stream":true}`
	s.feed(Egress).text(fmt.Sprintf("POST /api/generate HTTP/1.1\r\nHost: localhost:11434\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))).
		text(body)
	s.feed(Ingress).text("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n").
		settings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 250}).
		headers(Ingress, 1, false, ":status", "200", "content-type", "application/x-ndjson")
	s.feed(Egress).preface().settings().settingsAck()
	s.feed(Ingress).settingsAck().data(1, false, `{"model":"llama3.2","response":"Hello","done":false}`+"\n").
		feed(Ingress).data(1, true, `{"model":"llama3.2","response":"","done":true,"eval_count":1}`+"\n")
	s.feed(Egress).headers(Egress, 3, true, ":method", "GET", ":scheme", "http", ":authority", "localhost:11434", ":path", "/api/tags").
		feed(Ingress).headers(Ingress, 3, false, ":status", "200", "content-type", "application/json").data(3, true, `{"models":[]}`)
	out = append(out, s)

	s = newH2Script("h2_grpc", `A gRPC call first (recognised by its content type, counted, not
		decoded: it decides the connection's verdict), then a chat call on the
		same connection, whose header block spans CONTINUATION frames.`).open()
	msg := append([]byte{0, 0, 0, 0, 5}, 0x0a, 0x03, 'a', 'b', 'c')
	s.feed(Egress).headers(Egress, 1, false, ":method", "POST", ":scheme", "http", ":authority", "grpc.local:50051", ":path", "/helloworld.Greeter/SayHello", "content-type", "application/grpc", "te", "trailers").
		dataBytes(1, true, msg, nil).
		feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "application/grpc").
		dataBytes(1, false, msg, nil).
		headers(Ingress, 1, true, "grpc-status", "0", "grpc-message", "")
	s.maxFrag = 16
	chatRequest(s, 3, "grpc.local:50051", "/v1/chat/completions", `{"model":"m","messages":[]}`)
	s.feed(Ingress).headers(Ingress, 3, false, ":status", "200", "content-type", "application/json").
		data(3, true, `{"id":"x","object":"chat.completion","choices":[]}`)
	out = append(out, s)

	s = newH2Script("h2_skip_in_data", `Bytes lost inside a DATA frame of an SSE stream: the event they cut is
		dropped, later events still come and the body is marked truncated; then
		bytes lost across frame boundaries in the request direction.`).open()
	chatRequest(s, 1, "api.openai.com", "/v1/chat/completions", openAIBody)
	ev := sseChunk("k", "lost")
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream").
		data(1, false, sseChunk("k", "kept"))
	// A DATA frame whose middle the capture lost: its header and start, the
	// loss, its end.
	var fb bytes.Buffer
	fr := http2.NewFramer(&fb, nil)
	fr.WriteData(1, false, []byte(ev))
	raw := fb.Bytes()
	s.feed(Ingress).raw("DATA stream 1 (first 30 bytes) "+ev, raw[:30]).
		skip(Ingress, 40).
		feed(Ingress).raw("DATA stream 1 (the rest)", raw[70:]).
		feed(Ingress).data(1, true, sseChunk("k", "after")+"data: [DONE]\n\n")
	chatRequest(s, 3, "api.openai.com", "/v1/chat/completions", openAIBody)
	s.skip(Egress, 25).
		feed(Egress).windowUpdate(0, 4096).
		feed(Ingress).headers(Ingress, 3, true, ":status", "204")
	out = append(out, s)

	out = append(out, h2EventStreamScripts()...)
	return out
}

// TestHTTP2FixturesCurrent checks the committed HTTP/2 fixtures are what
// h2Scripts writes; with -update it writes them.
func TestHTTP2FixturesCurrent(t *testing.T) {
	fixtures := map[string]string{}
	for _, s := range h2Scripts() {
		fixtures[s.name] = s.render()
	}
	checkWrittenFixtures(t, fixtures)
}

// checkWrittenFixtures checks that testdata/NAME.http holds each text of
// fixtures (by name), which a script of the calling test writes; with
// -update it writes them.
func checkWrittenFixtures(t *testing.T, fixtures map[string]string) {
	t.Helper()
	for name, text := range fixtures {
		path := filepath.Join("testdata", name+".http")
		if _, err := parseFixture([]byte(text)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if *update {
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != text {
			t.Errorf("%s is missing or stale: run go test -run %s -update ./internal/decode", path, t.Name())
		}
	}
}
