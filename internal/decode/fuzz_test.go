package decode

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzLimits are small so that every bound is reached by short inputs.
var fuzzLimits = Limits{MaxHeaderBytes: 512, MaxBodyBytes: 256, MaxEventBytes: 64, MaxPending: 4}

// A FuzzHTTP script byte s says what happens next: bit 0 is the direction,
// bit 1 marks a loss instead of a feed, and n = (s>>2 + 1)² bytes of that
// direction's stream are fed or lost. When the script ends, what is left
// of both streams is fed, egress first.
func scriptStep(s byte) (dir Direction, skip bool, n int) {
	k := int(s>>2) + 1
	return Direction(s & 1), s&2 != 0, k * k
}

// encodeScript writes the script that replays a fixture's items in order.
func encodeScript(f *fixture) (egress, ingress, script []byte) {
	emit := func(dir Direction, skip bool, n int) {
		for n > 0 {
			k := 1
			for (k+1)*(k+1) <= n && k < 64 {
				k++
			}
			script = append(script, byte(k-1)<<2|b2b(skip)<<1|byte(dir))
			n -= k * k
		}
	}
	for _, op := range f.ops {
		switch op.kind {
		case opFeed:
			if op.dir == Egress {
				egress = append(egress, op.data...)
			} else {
				ingress = append(ingress, op.data...)
			}
			emit(op.dir, false, len(op.data))
		case opSkip:
			// Lost bytes must exist in the stream to be skipped over.
			pad := bytes.Repeat([]byte{'~'}, op.n)
			if op.dir == Egress {
				egress = append(egress, pad...)
			} else {
				ingress = append(ingress, pad...)
			}
			emit(op.dir, true, op.n)
		}
	}
	return egress, ingress, script
}

func b2b(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func runScript(t *testing.T, egress, ingress, script []byte) {
	rec := newRecorder(t, base)
	rec.headers = false
	c := NewConn(fuzzLimits, rec)
	streams := [2][]byte{egress, ingress}
	now := int64(0)
	for _, s := range script {
		dir, skip, n := scriptStep(s)
		st := &streams[dir]
		n = min(n, len(*st))
		now++
		if skip {
			c.Skip(dir, base.Add(time.Duration(now)), n)
		} else {
			c.Feed(dir, base.Add(time.Duration(now)), (*st)[:n])
		}
		*st = (*st)[n:]
		checkBounded(t, c)
	}
	for d, st := range streams {
		now++
		c.Feed(Direction(d), base.Add(time.Duration(now)), st)
	}
	c.Close(base.Add(time.Duration(now + 1)))
	rec.allDone()
	checkBounded(t, c)
	s := c.Stats()
	for _, v := range []int64{s.BytesDiscarded, s.BytesLost, s.BytesTunneled, s.Malformed, s.Gaps, s.TruncatedBodies, s.TruncatedEvents} {
		if v < 0 {
			t.Fatalf("negative count in %+v", s)
		}
	}
	if rec.maxBody > fuzzLimits.MaxBodyBytes || rec.maxData > fuzzLimits.MaxEventBytes {
		t.Fatalf("body of %d or event of %d bytes over the limits", rec.maxBody, rec.maxData)
	}
}

// FuzzHTTP feeds two random streams split at random into a Conn, with
// random losses: it must not panic, must stay within its limits, and must
// call Done once for each Request, after it.
func FuzzHTTP(f *testing.F) {
	f.Add([]byte(getReq), []byte(okResp), []byte{0, 1})
	f.Fuzz(func(t *testing.T, egress, ingress, script []byte) {
		runScript(t, egress, ingress, script)
	})
}

// ---- SSE ----

type refEvent struct {
	name, id, data string
	cut            bool
}

type eventList struct{ evs []refEvent }

func (l *eventList) event(ev StreamEvent) {
	l.evs = append(l.evs, refEvent{ev.Name, ev.ID, string(ev.Data), ev.Truncated})
}

// refSSE is the event-stream algorithm written straight from the
// standard over a whole input, to check the incremental parser against.
func refSSE(b []byte) []refEvent {
	b = bytes.TrimPrefix(b, utf8BOM[:])
	var out []refEvent
	var name, id string
	var data []byte
	hasData := false
	for len(b) > 0 {
		end := bytes.IndexAny(b, "\r\n")
		if end < 0 {
			break // an unterminated last line is never processed
		}
		line := b[:end]
		next := end + 1
		if b[end] == '\r' && next < len(b) && b[next] == '\n' {
			next++
		}
		b = b[next:]
		switch {
		case len(line) == 0:
			if hasData {
				out = append(out, refEvent{name, id, string(data), false})
			}
			name, data, hasData = "", nil, false
		case line[0] == ':':
		default:
			field, value := string(line), ""
			if i := bytes.IndexByte(line, ':'); i >= 0 {
				field, value = string(line[:i]), strings.TrimPrefix(string(line[i+1:]), " ")
			}
			switch field {
			case "data":
				if hasData {
					data = append(data, '\n')
				}
				data = append(data, value...)
				hasData = true
			case "event":
				name = value
			case "id":
				if !strings.Contains(value, "\x00") {
					id = value
				}
			}
		}
	}
	return out
}

// cutsOf turns fuzz bytes into piece lengths for splitting an input.
func feedPieces(data, cuts []byte, write func([]byte)) {
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if i < len(cuts) {
			n = min(n, int(cuts[i])%23+1)
		}
		write(data[:n])
		data = data[n:]
	}
}

func FuzzSSE(f *testing.F) {
	f.Add([]byte("data: a\n\n"), []byte{3})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		// Large limit, any split: the same events as the reference.
		var big eventList
		var p sseParser
		p.init(1<<20, &big)
		tm := base
		feedPieces(data, cuts, func(b []byte) {
			tm = tm.Add(1)
			p.write(b, tm)
		})
		if want := refSSE(data); !equalEvents(want, big.evs) {
			t.Fatalf("events differ from the reference\nwant %+v\ngot  %+v", want, big.evs)
		}
		// Small limit: same events whole or split, each within the
		// limit, a cut one a prefix of the real one.
		small := func(split bool) []refEvent {
			var l eventList
			var q sseParser
			q.init(8, &l)
			if split {
				feedPieces(data, cuts, func(b []byte) { q.write(b, tm) })
			} else {
				q.write(data, tm)
			}
			return l.evs
		}
		whole, split := small(false), small(true)
		if !equalEvents(whole, split) {
			t.Fatalf("split changes events\nwhole %+v\nsplit %+v", whole, split)
		}
		if len(whole) != len(big.evs) {
			t.Fatalf("%d events under the limit, %d without", len(whole), len(big.evs))
		}
		for i, ev := range whole {
			full := big.evs[i].data
			if len(ev.data) > 8 || !strings.HasPrefix(full, ev.data) || ev.cut != (len(full) > 8) {
				t.Fatalf("event %d: %q (cut %v) from %q", i, ev.data, ev.cut, full)
			}
		}
		// Through a Conn, as a response body delimited by close.
		rec := &eventList{}
		c := NewConn(Limits{MaxEventBytes: 1 << 20}, &sinkEvents{rec})
		c.Feed(Egress, base, []byte(getReq))
		c.Feed(Ingress, base, []byte(sseHead))
		feedPieces(data, cuts, func(b []byte) { c.Feed(Ingress, base, b) })
		c.Close(base)
		if !equalEvents(big.evs, rec.evs) {
			t.Fatalf("through a Conn\nwant %+v\ngot  %+v", big.evs, rec.evs)
		}
	})
}

func equalEvents(a, b []refEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sinkEvents is a Sink keeping only stream events.
type sinkEvents struct{ l *eventList }

func (s *sinkEvents) Request(*Exchange)                 {}
func (s *sinkEvents) Event(_ *Exchange, ev StreamEvent) { s.l.event(ev) }
func (s *sinkEvents) Done(*Exchange)                    {}

// ---- NDJSON ----

func refNDJSON(b []byte) []refEvent {
	var out []refEvent
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > 0 {
			out = append(out, refEvent{data: string(line)})
		}
	}
	return out
}

func FuzzNDJSON(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n{\"b\":2}"), []byte{5})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var got eventList
		var p ndjsonParser
		p.init(1<<20, &got)
		feedPieces(data, cuts, func(b []byte) { p.write(b, base) })
		p.end()
		if want := refNDJSON(data); !equalEvents(want, got.evs) {
			t.Fatalf("events differ from the reference\nwant %+v\ngot  %+v", want, got.evs)
		}
		var small eventList
		var q ndjsonParser
		q.init(8, &small)
		feedPieces(data, cuts, func(b []byte) { q.write(b, base) })
		q.end()
		if len(small.evs) != len(got.evs) {
			t.Fatalf("%d events under the limit, %d without", len(small.evs), len(got.evs))
		}
		for i, ev := range small.evs {
			full := got.evs[i].data
			if len(ev.data) > 8 || !strings.HasPrefix(full, ev.data) || ev.cut != (len(full) > 8) {
				t.Fatalf("event %d: %q (cut %v) from %q", i, ev.data, ev.cut, full)
			}
		}
		// Through a Conn, in chunked coding with the pieces as chunks.
		rec := &eventList{}
		c := NewConn(Limits{MaxEventBytes: 1 << 20}, &sinkEvents{rec})
		c.Feed(Egress, base, []byte(getReq))
		c.Feed(Ingress, base, []byte("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"))
		feedPieces(data, cuts, func(b []byte) { c.Feed(Ingress, base, appendChunk(nil, b)) })
		c.Feed(Ingress, base, []byte("0\r\n\r\n"))
		if !equalEvents(got.evs, rec.evs) {
			t.Fatalf("through a Conn\nwant %+v\ngot  %+v", got.evs, rec.evs)
		}
	})
}

// TestFuzzSeedsCurrent checks that the committed seed corpora are the ones
// the fixtures make (every conversation a FuzzHTTP seed, every streamed body
// a FuzzSSE or FuzzNDJSON seed), so fixtures and fuzzers cannot drift
// apart; with -update it rewrites them.
func TestFuzzSeedsCurrent(t *testing.T) {
	edge := map[string]string{
		"bom_crlf_comments": "\ufeff: hi\r\nretry: 10\r\nevent: a\r\nid: 7\r\ndata: x\r\ndata\r\n\r\n",
		"cr_only":           "data: one\rdata:two\r\rid\r: c\r\rdata: three\r\r",
		"no_data_events":    "event: e\n\nid: 1\n\n: only a comment\n\n\n\n",
		"long_lines":        "data: " + strings.Repeat("0123456789", 12) + "\ndata: more\n\nevent: " + strings.Repeat("n", 90) + "\ndata: s\n\n",
		"null_in_id":        "id: a\x00b\ndata: x\n\nid: ok\ndata: y\n\n",
		"unterminated":      "data: done\n\ndata: half",
	}
	for name, body := range edge {
		writeSeed(t, "FuzzSSE", name, []byte(body), []byte{1, 2, 3, 5, 8, 13})
	}
	ndEdge := map[string]string{
		"crlf_blank_lines": "{\"a\":1}\r\n\r\n\n{\"b\":2}\r\n",
		"long_line":        "{\"x\":\"" + strings.Repeat("y", 40) + "\"}\n{}\n",
		"no_final_newline": "{\"done\":false}\n{\"done\":true}",
		"spaces_and_cr":    " \n\r\n\r\r\n{}\n",
	}
	for name, body := range ndEdge {
		writeSeed(t, "FuzzNDJSON", name, []byte(body), []byte{1, 4, 9, 2})
	}
	for _, path := range fixturePaths(t) {
		f := loadFixture(t, path)
		eg, in, sc := encodeScript(f)
		writeSeed(t, "FuzzHTTP", f.name, eg, in, sc)
		// A second seed with the same bytes cut into small pieces.
		var fine []byte
		for _, s := range sc {
			dir, skip, n := scriptStep(s)
			for ; n > 0; n -= 4 {
				fine = append(fine, 1<<2|b2b(skip)<<1|byte(dir))
			}
		}
		writeSeed(t, "FuzzHTTP", f.name+"_fine", eg, in, fine)
		writeSeed(t, "FuzzHTTP", f.name+"_server", in, eg, flipDirs(sc))
		body := streamBody(f)
		if body == nil {
			continue
		}
		cuts := []byte{7, 1, 30, 2, 11, 5, 0, 19}
		if bytes.Contains(body, []byte("data")) {
			writeSeed(t, "FuzzSSE", f.name, body, cuts)
		} else {
			writeSeed(t, "FuzzNDJSON", f.name, body, cuts)
		}
	}
}

// flipDirs swaps the directions of a script, for the server's view.
func flipDirs(sc []byte) []byte {
	out := make([]byte, len(sc))
	for i, s := range sc {
		out[i] = s ^ 1
	}
	return out
}

// streamBody returns the decoded stream body of a fixture's first streamed
// response, read back through a Conn.
func streamBody(f *fixture) []byte {
	var body []byte
	r := &bodyGrab{out: &body}
	c := NewConn(Limits{}, r)
	for _, op := range f.ops {
		if op.kind == opFeed {
			c.Feed(op.dir, base, op.data)
		}
	}
	c.Close(base)
	if len(body) == 0 {
		return nil
	}
	return body
}

type bodyGrab struct{ out *[]byte }

func (g *bodyGrab) Request(*Exchange) {}
func (g *bodyGrab) Event(x *Exchange, ev StreamEvent) {
	switch x.Response.Stream {
	case SSE:
		if ev.Name != "" {
			*g.out = append(*g.out, "event: "+ev.Name+"\n"...)
		}
		for _, l := range strings.Split(string(ev.Data), "\n") {
			*g.out = append(*g.out, "data: "+l+"\n"...)
		}
		*g.out = append(*g.out, '\n')
	case NDJSON:
		*g.out = append(append(*g.out, ev.Data...), '\n')
	}
}
func (g *bodyGrab) Done(*Exchange) {}

func writeSeed(t *testing.T, target, name string, args ...[]byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(a)))
	}
	dir := filepath.Join("testdata", "fuzz", target)
	path := filepath.Join(dir, "seed_"+name)
	if !*update {
		got, err := os.ReadFile(path)
		if err != nil || string(got) != b.String() {
			t.Errorf("seed corpus file %s is missing or stale: run go test -run TestFuzzSeedsCurrent -update ./internal/decode", path)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
