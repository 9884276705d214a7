package genai

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// The fixture format, one exchange per file under testdata/:
//
//	# free text describing the exchange
//	=== request @0 [truncated] [server]
//	POST /v1/chat/completions HTTP/1.1
//	Host: api.openai.com
//
//	{"model": ...}
//	=== response @310
//	HTTP/1.1 200 OK
//	Content-Type: text/event-stream
//
//	=== event @352
//	data: {...}
//	=== event @380
//	...
//	=== body
//	{...}
//	=== end @900 [err=closed|gap]
//
// Times are milliseconds after the request's first byte. An event section
// holds one SSE event (the blank line that ends it is implied) or one NDJSON
// line, as the server wrote it, or for an AWS event stream one message's
// payload, its type after the time ("=== event @352 contentBlockDelta",
// "=== event @352 exception throttlingException"), encoded with its headers
// and CRCs when loaded; "body" holds a response delivered whole. No
// response section means the exchange ended before one. "server" marks an
// exchange seen inside the model server.

var fixtureBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type fixture struct {
	name       string
	req        decode.Request
	clientSide bool
	hasResp    bool
	resp       decode.Response
	events     []fixtureEvent
	body       []byte
	end        time.Time
	err        error
}

type fixtureEvent struct {
	t   time.Time
	raw []byte // wire bytes of the event, terminator included
}

func at(ms string) time.Time {
	f, err := strconv.ParseFloat(strings.TrimPrefix(ms, "@"), 64)
	if err != nil {
		panic("bad time " + ms)
	}
	return fixtureBase.Add(time.Duration(f * float64(time.Millisecond)))
}

func parseHead(text string) (first string, h http.Header, body string) {
	head, body, _ := strings.Cut(text, "\n\n")
	lines := strings.Split(head, "\n")
	h = http.Header{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return lines[0], h, body
}

func loadFixture(t testing.TB, path string) *fixture {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{name: strings.TrimSuffix(filepath.Base(path), ".txt"), clientSide: true}
	sections := strings.Split("\n"+string(raw), "\n=== ")[1:]
	for _, sec := range sections {
		hdr, text, _ := strings.Cut(sec, "\n")
		f := strings.Fields(hdr)
		text = strings.TrimRight(text, "\n")
		switch f[0] {
		case "request":
			first, h, body := parseHead(text)
			p := strings.Fields(first)
			fx.req = decode.Request{Method: p[0], Target: p[1], Proto: p[2], Header: h, Body: []byte(body), Start: at(f[1]), End: at(f[1])}
			for _, flag := range f[2:] {
				switch flag {
				case "truncated":
					fx.req.BodyTruncated = true
				case "server":
					fx.clientSide = false
				}
			}
		case "response":
			first, h, _ := parseHead(text + "\n\n")
			p := strings.Fields(first)
			status, _ := strconv.Atoi(p[1])
			fx.hasResp = true
			fx.resp = decode.Response{Proto: p[0], Status: status, Header: h, Start: at(f[1]), HeaderEnd: at(f[1])}
			ct := h.Get("Content-Type")
			switch {
			case strings.Contains(ct, "vnd.amazon.eventstream"):
				fx.resp.Stream = decode.EventStream
			case strings.Contains(ct, "event-stream"):
				fx.resp.Stream = decode.SSE
			case strings.Contains(ct, "ndjson") || strings.Contains(ct, "jsonl"):
				fx.resp.Stream = decode.NDJSON
			}
		case "event":
			ev := fixtureEvent{t: at(f[1])}
			if fx.resp.Stream == decode.EventStream {
				ev.raw = esFixtureMessage(t, f[2:], text)
			} else if fx.resp.Stream == decode.SSE {
				ev.raw = []byte(text + "\n\n")
			} else {
				ev.raw = []byte(text + "\n")
			}
			fx.events = append(fx.events, ev)
		case "body":
			fx.body = []byte(text)
		case "end":
			fx.end = at(f[1])
			for _, flag := range f[2:] {
				switch flag {
				case "err=closed":
					fx.err = decode.ErrConnClosed
				case "err=gap":
					fx.err = decode.ErrGap
				}
			}
		default:
			t.Fatalf("%s: unknown section %q", path, f[0])
		}
	}
	if fx.end.IsZero() {
		t.Fatalf("%s: no end section", path)
	}
	return fx
}

// streamSplitter cuts a response body into SSE events or NDJSON lines,
// incrementally, the way a decoder sees them: bytes may arrive in any
// pieces. Each event is stamped with the time of the byte that completed it.
type streamSplitter struct {
	kind    decode.StreamKind
	line    []byte
	name    string
	id      string
	data    []byte
	hasData bool
}

func (s *streamSplitter) feed(b []byte, off int, timeOf func(int) time.Time, emit func(decode.StreamEvent)) {
	if s.kind == decode.EventStream {
		s.feedMessages(b, off, timeOf, emit)
		return
	}
	for i, c := range b {
		if c != '\n' {
			s.line = append(s.line, c)
			continue
		}
		line := bytes.TrimSuffix(s.line, []byte("\r"))
		s.line = s.line[:0]
		t := timeOf(off + i)
		if s.kind == decode.NDJSON {
			if len(bytes.TrimSpace(line)) > 0 {
				emit(decode.StreamEvent{Time: t, Data: append([]byte(nil), line...)})
			}
			continue
		}
		if len(line) == 0 {
			if s.hasData {
				emit(decode.StreamEvent{Time: t, Name: s.name, ID: s.id, Data: append([]byte(nil), s.data...)})
			}
			s.name, s.data, s.hasData = "", s.data[:0], false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			s.name = string(value)
		case "id":
			s.id = string(value)
		case "data":
			if s.hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			s.hasData = true
		}
	}
}

// recorder is a Handler that checks the start/end protocol.
type recorder struct {
	t       testing.TB
	started []*Call
	ended   []*Call
}

func (r *recorder) CallStarted(c *Call) {
	for _, s := range r.started {
		if s == c {
			r.t.Errorf("call started twice")
		}
	}
	r.started = append(r.started, c)
}

func (r *recorder) CallEnded(c *Call) {
	for _, e := range r.ended {
		if e == c {
			r.t.Errorf("call ended twice")
		}
	}
	found := false
	for _, s := range r.started {
		found = found || s == c
	}
	if !found {
		r.t.Errorf("call ended without being started")
	}
	r.ended = append(r.ended, c)
}

var testEndpoint = Endpoint{ServerAddress: "10.0.0.7", ServerPort: 443, ClientAddress: "10.0.0.2", ClientPort: 51234}

// feedMode says how a fixture's stream reaches the assembler.
type feedMode int

const (
	feedEvents feedMode = iota // event by event, as the fixture lists them
	feedCut                    // the stream bytes cut once at a given offset
	feedWhole                  // the stream bytes as one body (wrong content type)
)

// run feeds the fixture to a fresh assembler and returns the one call it made.
func (fx *fixture) run(t testing.TB, opts *Options, mode feedMode, cut int) *Call {
	t.Helper()
	rec := &recorder{t: t}
	ep := testEndpoint
	host := fx.req.Header.Get("Host")
	if strings.Contains(host, "localhost") || strings.Contains(host, "127.0.0.1") {
		ep.ServerAddress = "127.0.0.1"
	}
	if _, port, err := net.SplitHostPort(host); err == nil {
		ep.ServerPort, _ = strconv.Atoi(port)
	}
	a := NewAssembler(opts, ep, rec)
	x := &decode.Exchange{Seq: 3, Request: fx.req, ClientSide: fx.clientSide}
	x.Request.Body = append([]byte(nil), fx.req.Body...)
	a.Request(x)
	if len(rec.started) == 0 {
		t.Fatalf("%s: request not recognised", fx.name)
	}
	if fx.hasResp {
		x.HasResponse = true
		x.Response = fx.resp
		x.Response.Header = fx.resp.Header.Clone()
		var stream []byte
		var owner []time.Time
		for _, ev := range fx.events {
			stream = append(stream, ev.raw...)
			for range ev.raw {
				owner = append(owner, ev.t)
			}
		}
		timeOf := func(off int) time.Time { return owner[off] }
		emit := func(ev decode.StreamEvent) {
			x.Response.Events++
			a.Event(x, ev)
			clear(ev.Data) // the data is only valid during the call
		}
		switch {
		case len(fx.events) == 0:
			x.Response.Body = fx.body
		case mode == feedWhole:
			x.Response.Stream = decode.NotStreamed
			x.Response.Body = stream
		case mode == feedEvents:
			off := 0
			for _, ev := range fx.events {
				sp := &streamSplitter{kind: fx.resp.Stream}
				sp.feed(ev.raw, off, timeOf, emit)
				off += len(ev.raw)
			}
		case mode == feedCut:
			sp := &streamSplitter{kind: fx.resp.Stream}
			sp.feed(stream[:cut], 0, timeOf, emit)
			sp.feed(stream[cut:], cut, timeOf, emit)
		}
		x.Response.End = fx.end
	}
	x.Err = fx.err
	a.Done(x)
	if len(rec.ended) != 1 {
		t.Fatalf("%s: %d calls ended, want 1", fx.name, len(rec.ended))
	}
	return rec.ended[0]
}

func (fx *fixture) streamLen() int {
	n := 0
	for _, ev := range fx.events {
		n += len(ev.raw)
	}
	return n
}

// goldenView is a Call as written to a golden file: times as milliseconds
// after the request's first byte, so a reviewer can check them against the
// fixture at a glance.
type goldenView struct {
	StartMs         float64
	EndMs           float64
	TTFCMs          *float64 `json:",omitempty"`
	ContentChunksMs []float64
	Call            Call
}

func ms(t time.Time) float64 { return float64(t.Sub(fixtureBase)) / float64(time.Millisecond) }

func view(c *Call) goldenView {
	v := goldenView{StartMs: ms(c.Start), EndMs: ms(c.End), Call: *c}
	if d, ok := c.TimeToFirstChunk(); ok {
		f := float64(d) / float64(time.Millisecond)
		v.TTFCMs = &f
	}
	for _, t := range c.ContentChunks {
		v.ContentChunksMs = append(v.ContentChunksMs, ms(t))
	}
	v.Call.ContentChunks = nil
	v.Call.Start, v.Call.End = time.Time{}, time.Time{}
	return v
}

func marshalView(t testing.TB, c *Call) []byte {
	b, err := json.MarshalIndent(view(c), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

var captureAll = &Options{CaptureInput: true, CaptureOutput: true, UserIDSalt: "test-salt"}

func fixtures(t testing.TB) []string {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatal("no fixtures", err)
	}
	return files
}

// TestFixtures compares each fixture's call with its golden file.
func TestFixtures(t *testing.T) {
	for _, path := range fixtures(t) {
		fx := loadFixture(t, path)
		t.Run(fx.name, func(t *testing.T) {
			got := marshalView(t, fx.run(t, captureAll, feedEvents, 0))
			golden := strings.TrimSuffix(path, ".txt") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("call differs from %s:\n%s", golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

// TestFixturesResplit feeds every stream cut at every byte boundary and
// expects the same call as when fed event by event.
func TestFixturesResplit(t *testing.T) {
	for _, path := range fixtures(t) {
		fx := loadFixture(t, path)
		if len(fx.events) == 0 {
			continue
		}
		t.Run(fx.name, func(t *testing.T) {
			want := marshalView(t, fx.run(t, captureAll, feedEvents, 0))
			n := fx.streamLen()
			for cut := 0; cut <= n; cut++ {
				got := marshalView(t, fx.run(t, captureAll, feedCut, cut))
				if !bytes.Equal(got, want) {
					t.Fatalf("cut at byte %d of %d:\n%s", cut, n, lineDiff(string(want), string(got)))
				}
			}
		})
	}
}

// TestFixturesWholeBody delivers each stream as one body, as happens when a
// server labels it with the wrong content type: the call must still carry
// its usage, finish reasons, errors and content, only without chunk times.
func TestFixturesWholeBody(t *testing.T) {
	for _, path := range fixtures(t) {
		fx := loadFixture(t, path)
		if len(fx.events) == 0 {
			continue
		}
		t.Run(fx.name, func(t *testing.T) {
			want := *fx.run(t, captureAll, feedEvents, 0)
			got := *fx.run(t, captureAll, feedWhole, 0)
			if len(got.ContentChunks) != 0 {
				t.Errorf("content chunk times from a body delivered whole")
			}
			want.ContentChunks, got.ContentChunks = nil, nil
			want.Chunks, got.Chunks = 0, 0
			w, _ := json.MarshalIndent(want, "", "  ")
			g, _ := json.MarshalIndent(got, "", "  ")
			if !bytes.Equal(w, g) {
				t.Errorf("whole-body call differs:\n%s", lineDiff(string(w), string(g)))
			}
		})
	}
}

// TestFixturesNoCapture checks that with capture off the call is the same
// minus its content, and that no fixture's secrets reach a call.
func TestFixturesNoCapture(t *testing.T) {
	for _, path := range fixtures(t) {
		fx := loadFixture(t, path)
		t.Run(fx.name, func(t *testing.T) {
			full := fx.run(t, captureAll, feedEvents, 0)
			bare := fx.run(t, &Options{UserIDSalt: "test-salt"}, feedEvents, 0)
			want := *full
			want.InputMessages, want.OutputMessages, want.SystemInstructions, want.ToolDefinitions = nil, nil, nil, nil
			want.ToolCalls = nil
			for _, tc := range full.ToolCalls {
				want.ToolCalls = append(want.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Name, Type: tc.Type})
			}
			want.ToolResults = nil
			for _, tr := range full.ToolResults {
				want.ToolResults = append(want.ToolResults, ToolResult{ID: tr.ID, Name: tr.Name, Error: tr.Error})
			}
			w, _ := json.MarshalIndent(want, "", "  ")
			g, _ := json.MarshalIndent(*bare, "", "  ")
			if !bytes.Equal(w, g) {
				t.Errorf("capture-off call differs:\n%s", lineDiff(string(w), string(g)))
			}
			if bytes.Contains(g, []byte("\"content\"")) || bare.ToolDefinitions != nil {
				t.Errorf("content captured with capture off")
			}
			for _, c := range []*Call{full, bare} {
				b, _ := json.Marshal(c)
				if bytes.Contains(b, []byte("SECRET")) {
					t.Errorf("a credential reached the call: %s", b)
				}
			}
		})
	}
}

// lineDiff shows the lines of got that differ from want.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var sb strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			fmt.Fprintf(&sb, "line %d:\n  want %s\n  got  %s\n", i+1, a, b)
		}
	}
	return sb.String()
}
