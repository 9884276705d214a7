package decode

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Fixture files (testdata/*.http) hold one conversation each, both
// directions, as a list of items:
//
//	# comment            (before the first item only)
//	#! max-body N        limits: max-header, max-body, max-event, max-pending
//	>>> egress           bytes written by the observed process, one Feed
//	<<< ingress          bytes read by the observed process, one Feed
//	--- skip egress N    N bytes lost in capture (Skip)
//	--- close            the connection closes (Close)
//
// Inside a feed the file's own newlines are not data: every byte is
// spelled out, with {CRLF}, {LF}, {CR}, {TAB} and {x:HH} for the bytes
// that matter, and {LEN} for the length of the body that follows the head
// holding it (up to the next "~mark" or the end of the feed). Lines that
// start with "~" are directives: "~chunk TEXT" adds TEXT as one chunk of
// chunked coding, "~base64 DATA" adds raw bytes, "~chunk-base64 DATA" a
// chunk of raw bytes, "~mark" ends a {LEN} body, "~# ..." is a comment.

type opKind uint8

const (
	opFeed opKind = iota
	opSkip
	opClose
)

type fixtureOp struct {
	kind opKind
	dir  Direction
	data []byte
	n    int
}

type fixture struct {
	name string
	lim  Limits
	ops  []fixtureOp
}

const lenSentinel = "\x00{LEN}\x00"

func loadFixture(t testing.TB, path string) *fixture {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFixture(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	f.name = strings.TrimSuffix(strings.TrimPrefix(path, "testdata/"), ".http")
	return f
}

func parseFixture(raw []byte) (*fixture, error) {
	f := &fixture{}
	var cur *fixtureOp
	var marks []int
	flush := func() {
		if cur != nil && cur.kind == opFeed {
			cur.data = resolveLen(cur.data, marks)
		}
		cur, marks = nil, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ">>> ") || strings.HasPrefix(line, "<<< "):
			flush()
			dir := Egress
			if strings.TrimSpace(line[4:]) == "ingress" {
				dir = Ingress
			} else if strings.TrimSpace(line[4:]) != "egress" {
				return nil, fmt.Errorf("line %d: bad direction %q", ln, line)
			}
			f.ops = append(f.ops, fixtureOp{kind: opFeed, dir: dir})
			cur = &f.ops[len(f.ops)-1]
		case strings.HasPrefix(line, "--- "):
			flush()
			fs := strings.Fields(line[4:])
			switch {
			case len(fs) == 1 && fs[0] == "close":
				f.ops = append(f.ops, fixtureOp{kind: opClose})
			case len(fs) == 3 && fs[0] == "skip":
				n, err := strconv.Atoi(fs[2])
				if err != nil {
					return nil, fmt.Errorf("line %d: %v", ln, err)
				}
				dir := Egress
				if fs[1] == "ingress" {
					dir = Ingress
				}
				f.ops = append(f.ops, fixtureOp{kind: opSkip, dir: dir, n: n})
			default:
				return nil, fmt.Errorf("line %d: bad item %q", ln, line)
			}
		case cur == nil:
			if strings.HasPrefix(line, "#! ") {
				fs := strings.Fields(line[3:])
				if len(fs) != 2 {
					return nil, fmt.Errorf("line %d: bad limit %q", ln, line)
				}
				n, err := strconv.Atoi(fs[1])
				if err != nil {
					return nil, fmt.Errorf("line %d: %v", ln, err)
				}
				switch fs[0] {
				case "max-header":
					f.lim.MaxHeaderBytes = n
				case "max-body":
					f.lim.MaxBodyBytes = n
				case "max-event":
					f.lim.MaxEventBytes = n
				case "max-pending":
					f.lim.MaxPending = n
				default:
					return nil, fmt.Errorf("line %d: unknown limit %q", ln, fs[0])
				}
			} else if line != "" && !strings.HasPrefix(line, "#") {
				return nil, fmt.Errorf("line %d: text outside a feed", ln)
			}
		case cur.kind != opFeed:
			if line != "" {
				return nil, fmt.Errorf("line %d: text after %q", ln, "---")
			}
		case strings.HasPrefix(line, "~# "):
		case line == "~mark":
			marks = append(marks, len(cur.data))
		case strings.HasPrefix(line, "~chunk "):
			b, err := unescape(line[len("~chunk "):])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", ln, err)
			}
			cur.data = appendChunk(cur.data, b)
		case strings.HasPrefix(line, "~base64 "), strings.HasPrefix(line, "~chunk-base64 "):
			i := strings.IndexByte(line, ' ')
			b, err := base64.StdEncoding.DecodeString(line[i+1:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", ln, err)
			}
			if strings.HasPrefix(line, "~chunk") {
				cur.data = appendChunk(cur.data, b)
			} else {
				cur.data = append(cur.data, b...)
			}
		case strings.HasPrefix(line, "~"):
			return nil, fmt.Errorf("line %d: unknown directive %q", ln, line)
		default:
			b, err := unescape(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", ln, err)
			}
			cur.data = append(cur.data, b...)
		}
	}
	flush()
	return f, sc.Err()
}

func appendChunk(dst, b []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(b)), 16)
	dst = append(dst, "\r\n"...)
	dst = append(dst, b...)
	return append(dst, "\r\n"...)
}

func unescape(s string) ([]byte, error) {
	var out []byte
	for len(s) > 0 {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			out = append(out, s...)
			break
		}
		out = append(out, s[:i]...)
		s = s[i:]
		tok := ""
		if j := strings.IndexByte(s, '}'); j > 0 {
			tok = s[1:j]
		}
		switch {
		case tok == "CRLF":
			out = append(out, "\r\n"...)
		case tok == "LF":
			out = append(out, '\n')
		case tok == "CR":
			out = append(out, '\r')
		case tok == "TAB":
			out = append(out, '\t')
		case tok == "LEN":
			out = append(out, lenSentinel...)
		case strings.HasPrefix(tok, "x:") && len(tok) == 4:
			v, err := strconv.ParseUint(tok[2:], 16, 8)
			if err != nil {
				return nil, err
			}
			out = append(out, byte(v))
		default:
			out = append(out, '{')
			s = s[1:]
			continue
		}
		s = s[len(tok)+2:]
	}
	return out, nil
}

// resolveLen replaces each {LEN} with the length of the body after the
// head that holds it, last first: a body ends at a mark before any later
// {LEN}, so the offsets it needs are not yet shifted.
func resolveLen(b []byte, marks []int) []byte {
	for {
		i := bytes.LastIndex(b, []byte(lenSentinel))
		if i < 0 {
			return b
		}
		he := bytes.Index(b[i:], []byte("\r\n\r\n"))
		if he < 0 {
			panic("{LEN} without the end of its head")
		}
		start := i + he + 4
		end := len(b)
		for _, m := range marks {
			if m >= start {
				end = m
				break
			}
		}
		n := strconv.Itoa(end - start)
		b = append(b[:i:i], append([]byte(n), b[i+len(lenSentinel):]...)...)
	}
}

// ---- recording what the sink sees ----

type reqRecord struct {
	Method    string              `json:"method"`
	Target    string              `json:"target"`
	Proto     string              `json:"proto"`
	Header    map[string][]string `json:"header,omitempty"`
	Body      string              `json:"body,omitempty"`
	Truncated bool                `json:"body_truncated,omitempty"`
	Trailer   map[string][]string `json:"trailer,omitempty"`
	Wire      int64               `json:"wire_bytes"`
	Start     int64               `json:"start"`
	End       int64               `json:"end"`
}

type respRecord struct {
	Proto     string              `json:"proto"`
	Status    int                 `json:"status"`
	Header    map[string][]string `json:"header,omitempty"`
	Stream    string              `json:"stream"`
	Body      string              `json:"body,omitempty"`
	Truncated bool                `json:"body_truncated,omitempty"`
	Trailer   map[string][]string `json:"trailer,omitempty"`
	Events    int                 `json:"events,omitempty"`
	Wire      int64               `json:"wire_bytes"`
	Start     int64               `json:"start"`
	HeaderEnd int64               `json:"header_end"`
	End       int64               `json:"end"`
}

type eventRecord struct {
	Type      string `json:"type,omitempty"`
	Name      string `json:"name,omitempty"`
	ID        string `json:"id,omitempty"`
	Data      string `json:"data"`
	Truncated bool   `json:"truncated,omitempty"`
	Time      int64  `json:"time"`
}

type record struct {
	Call       string       `json:"call"`
	Seq        uint64       `json:"seq"`
	ClientSide bool         `json:"client_side"`
	Request    *reqRecord   `json:"request,omitempty"`
	Event      *eventRecord `json:"event,omitempty"`
	Response   *respRecord  `json:"response,omitempty"`
	Err        string       `json:"err,omitempty"`
}

type result struct {
	Records []record `json:"records"`
	Stats   Stats    `json:"stats"`
}

// recorder is a Sink that keeps what it is told and checks the order of
// calls: Request first, Events between, Done once.
type recorder struct {
	t       testing.TB
	base    time.Time
	recs    []record
	state   map[*Exchange]int // 1 requested, 2 done
	headers bool              // keep headers in records
	maxBody int               // longest raw body seen
	maxData int               // longest event data seen
}

func newRecorder(t testing.TB, base time.Time) *recorder {
	return &recorder{t: t, base: base, state: map[*Exchange]int{}, headers: true}
}

func (r *recorder) tick(tm time.Time) int64 {
	if tm.IsZero() {
		return -1
	}
	return int64(tm.Sub(r.base))
}

func bodyString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

func (r *recorder) header(h http.Header) map[string][]string {
	if !r.headers || len(h) == 0 {
		return nil
	}
	return h
}

func (r *recorder) Request(x *Exchange) {
	if r.state[x] != 0 {
		r.t.Errorf("Request twice for seq %d", x.Seq)
	}
	r.state[x] = 1
	q := &x.Request
	r.maxBody = max(r.maxBody, len(q.Body))
	r.recs = append(r.recs, record{Call: "request", Seq: x.Seq, ClientSide: x.ClientSide, Err: errString(x.Err), Request: &reqRecord{
		Method: q.Method, Target: q.Target, Proto: q.Proto, Header: r.header(q.Header), Body: bodyString(q.Body),
		Truncated: q.BodyTruncated, Trailer: r.header(q.Trailer), Wire: q.WireBytes, Start: r.tick(q.Start), End: r.tick(q.End),
	}})
}

func (r *recorder) Event(x *Exchange, ev StreamEvent) {
	if r.state[x] != 1 {
		r.t.Errorf("Event for seq %d in state %d", x.Seq, r.state[x])
	}
	if !x.HasResponse || x.Response.Stream == NotStreamed {
		r.t.Errorf("Event for seq %d without a streamed response", x.Seq)
	}
	r.maxData = max(r.maxData, len(ev.Data))
	r.recs = append(r.recs, record{Call: "event", Seq: x.Seq, Event: &eventRecord{
		Type: ev.MessageType, Name: ev.Name, ID: ev.ID, Data: string(ev.Data), Truncated: ev.Truncated, Time: r.tick(ev.Time),
	}})
}

func (r *recorder) Done(x *Exchange) {
	if r.state[x] != 1 {
		r.t.Errorf("Done for seq %d in state %d", x.Seq, r.state[x])
	}
	r.state[x] = 2
	rec := record{Call: "done", Seq: x.Seq, ClientSide: x.ClientSide, Err: errString(x.Err)}
	r.maxBody = max(r.maxBody, len(x.Response.Body))
	if x.HasResponse {
		p := &x.Response
		rec.Response = &respRecord{
			Proto: p.Proto, Status: p.Status, Header: r.header(p.Header), Stream: p.Stream.String(), Body: bodyString(p.Body),
			Truncated: p.BodyTruncated, Trailer: r.header(p.Trailer), Events: p.Events, Wire: p.WireBytes,
			Start: r.tick(p.Start), HeaderEnd: r.tick(p.HeaderEnd), End: r.tick(p.End),
		}
	}
	r.recs = append(r.recs, rec)
}

// allDone checks that every exchange handed to Request was ended.
func (r *recorder) allDone() {
	for x, s := range r.state {
		if s != 2 {
			r.t.Errorf("seq %d got Request but no Done", x.Seq)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ---- running a fixture with a chosen split ----

// A run gives every fed byte a time: a feed's time is 2*o+1 where o is the
// global offset of its last byte; Skip and Close get 2*o where o bytes
// were fed before them. So times tell which byte completed what, in any
// split.
type timeline struct {
	feedEnd []int64 // per global byte offset: offset of the last byte of its feed
}

// splitter returns the cut points (offsets inside data) for one feed.
type splitter func(op int, data []byte) []int

func wholeFeeds(int, []byte) []int { return nil }

func singleBytes(_ int, data []byte) []int {
	cuts := make([]int, 0, len(data))
	for i := 1; i < len(data); i++ {
		cuts = append(cuts, i)
	}
	return cuts
}

type runOpts struct {
	swap     bool // feed egress as ingress and back: the server's view of the same conversation
	split    splitter
	handOver bool // the sink is a RequestTaker
}

func runFixture(t testing.TB, f *fixture, o runOpts) (result, timeline, *recorder) {
	t.Helper()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := newRecorder(t, base)
	var sink Sink = rec
	if o.handOver {
		sink = takingSink{rec}
	}
	c := NewConn(f.lim, sink)
	var tl timeline
	var off int64
	at := func(tk int64) time.Time { return base.Add(time.Duration(tk)) }
	scratch := make([]byte, 0, 4096)
	for i, op := range f.ops {
		dir := op.dir
		if o.swap {
			dir = other(dir)
		}
		switch op.kind {
		case opFeed:
			cuts := o.split(i, op.data)
			prev := 0
			for _, cut := range append(cuts, len(op.data)) {
				if cut <= prev {
					continue
				}
				piece := op.data[prev:cut]
				last := off + int64(len(piece)) - 1
				for range piece {
					tl.feedEnd = append(tl.feedEnd, last)
				}
				// Feed a copy and spoil it afterwards: nothing may keep it.
				scratch = append(scratch[:0], piece...)
				c.Feed(dir, at(2*last+1), scratch)
				for k := range scratch {
					scratch[k] = 0xA5
				}
				off += int64(len(piece))
				prev = cut
			}
		case opSkip:
			c.Skip(dir, at(2*off), op.n)
		case opClose:
			c.Close(at(2 * off))
		}
	}
	c.Close(at(2 * off))
	rec.allDone()
	checkBounded(t, c)
	return result{Records: rec.recs, Stats: c.Stats()}, tl, rec
}

// checkBounded asserts the buffers a Conn holds stay within its limits.
func checkBounded(t testing.TB, c *Conn) {
	t.Helper()
	lim := c.lim
	for i := range c.halves {
		h := &c.halves[i]
		if cap(h.head) > max(lim.MaxHeaderBytes*2, 16<<10) {
			t.Errorf("head buffer %d over limit %d", cap(h.head), lim.MaxHeaderBytes)
		}
		if cap(h.chunkLine) > 2*maxChunkLine {
			t.Errorf("chunk line buffer %d", cap(h.chunkLine))
		}
		if len(h.body) > lim.MaxBodyBytes {
			t.Errorf("body %d over limit %d", len(h.body), lim.MaxBodyBytes)
		}
		if h.sse != nil && (len(h.sse.data) > lim.MaxEventBytes || len(h.sse.line) > lim.MaxEventBytes+64) {
			t.Errorf("event buffers over limit: %d %d", len(h.sse.data), len(h.sse.line))
		}
		if h.nd != nil && len(h.nd.line) > lim.MaxEventBytes+1 {
			t.Errorf("line buffer over limit: %d", len(h.nd.line))
		}
	}
	if len(c.pending) > lim.MaxPending {
		t.Errorf("%d pending over limit %d", len(c.pending), lim.MaxPending)
	}
}

// itemTimes rewrites the tick times of a whole-feed run to item indexes,
// which read better in golden files.
func itemTimes(f *fixture, res result) result {
	var off int64
	idx := map[int64]int64{}
	for i, op := range f.ops {
		switch op.kind {
		case opFeed:
			if len(op.data) > 0 {
				off += int64(len(op.data))
				idx[2*(off-1)+1] = int64(i)
			}
		default:
			idx[2*off] = int64(i)
		}
	}
	if _, ok := idx[2*off]; !ok {
		idx[2*off] = int64(len(f.ops)) // the final Close of the harness
	}
	m := func(v int64) int64 {
		if v < 0 {
			return v
		}
		if i, ok := idx[v]; ok {
			return i
		}
		return -100 - v // a time that no item has: shows up as a diff
	}
	out := result{Stats: res.Stats}
	for _, r := range res.Records {
		r = cloneRecord(r)
		mapTimes(&r, m)
		out.Records = append(out.Records, r)
	}
	return out
}

func cloneRecord(r record) record {
	if r.Request != nil {
		q := *r.Request
		r.Request = &q
	}
	if r.Response != nil {
		p := *r.Response
		r.Response = &p
	}
	if r.Event != nil {
		e := *r.Event
		r.Event = &e
	}
	return r
}

func mapTimes(r *record, m func(int64) int64) {
	if q := r.Request; q != nil {
		q.Start, q.End = m(q.Start), m(q.End)
	}
	if p := r.Response; p != nil {
		p.Start, p.HeaderEnd, p.End = m(p.Start), m(p.HeaderEnd), m(p.End)
	}
	if e := r.Event; e != nil {
		e.Time = m(e.Time)
	}
}

// expectTimes maps the times of a single-byte run onto the feeds of tl:
// each byte's event belongs at the end of the feed that held the byte.
func expectTimes(single result, tl timeline) result {
	m := func(v int64) int64 {
		if v < 0 || v%2 == 0 {
			return v
		}
		return 2*tl.feedEnd[(v-1)/2] + 1
	}
	out := result{Stats: single.Stats}
	for _, r := range single.Records {
		r = cloneRecord(r)
		mapTimes(&r, m)
		out.Records = append(out.Records, r)
	}
	return out
}

func fixturePaths(t testing.TB) []string {
	paths, err := filepath.Glob("testdata/*.http")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	sort.Strings(paths)
	return paths
}
