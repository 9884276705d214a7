package decode

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// fuzzOutLimit bounds what one fuzz input may decode to.
const fuzzOutLimit = 1 << 20

// pushPieces feeds comp to a decoder in pieces cut by cuts (each byte one
// piece length, less one) and returns what came out and the first error.
func pushPieces(d bodyDecoder, s *collectSink, comp, cuts []byte) ([]byte, error) {
	defer d.release()
	rest := comp
	for i := 0; len(rest) > 0; i++ {
		n := len(rest)
		if i < len(cuts) {
			n = min(n, int(cuts[i])+1)
		}
		if err := d.write(rest[:n]); err != nil {
			return s.buf, err
		}
		rest = rest[n:]
	}
	return s.buf, d.finish()
}

// oneShot decodes r whole, keeping at most fuzzOutLimit+1 bytes.
func oneShot(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, fuzzOutLimit+1))
}

// checkAgainstOneShot compares a push decode with the library's own
// decode of the same bytes.
func checkAgainstOneShot(t *testing.T, comp, want []byte, werr error, got []byte, err error) {
	t.Helper()
	if len(got) > fuzzOutLimit {
		t.Fatalf("decoded %d bytes past the limit %d", len(got), fuzzOutLimit)
	}
	if len(comp) == 0 {
		// Servers label empty bodies with their usual coding; that is
		// no error here, though the libraries see a stream cut short.
		if err != nil || len(got) > 0 {
			t.Fatalf("empty body: %d bytes, %v", len(got), err)
		}
		return
	}
	if len(want) > fuzzOutLimit {
		if !bytes.Equal(got, want[:fuzzOutLimit]) {
			t.Fatalf("bomb: got %d bytes, not the first %d of the one-shot output", len(got), fuzzOutLimit)
		}
		return
	}
	if werr == nil {
		if err != nil {
			t.Fatalf("one-shot decodes %d bytes; push decode fails: %v", len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("output differs: %d bytes, want %d", len(got), len(want))
		}
		return
	}
	if err == nil {
		t.Fatalf("one-shot fails (%v) after %d bytes; push decode gives %d bytes and no error", werr, len(want), len(got))
	}
	if !bytes.HasPrefix(want, got) && !bytes.HasPrefix(got, want) {
		t.Fatalf("outputs before the error disagree: %d and %d bytes", len(got), len(want))
	}
}

// FuzzBrotli checks the push-driven brotli decoder against the library's
// one-shot decode: same bytes and same verdict in any split, no panic,
// output bounded by the sink.
func FuzzBrotli(f *testing.F) {
	f.Fuzz(func(t *testing.T, comp, cuts []byte) {
		want, werr := oneShot(brotli.NewReader(bytes.NewReader(comp)))
		s := &collectSink{limit: fuzzOutLimit}
		got, err := pushPieces(newBrotliDecoder(s, 1<<24), s, comp, cuts)
		checkAgainstOneShot(t, comp, want, werr, got, err)
	})
}

// FuzzZstd does the same for zstd; the one-shot side uses the same window
// bound, and the few inputs the framing here refuses on purpose (oversized
// skippable frames) are left out of the comparison.
func FuzzZstd(f *testing.F) {
	f.Fuzz(func(t *testing.T, comp, cuts []byte) {
		zr, err := zstd.NewReader(bytes.NewReader(comp), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(DefaultMaxWindowBytes))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		want, werr := oneShot(zr)
		s := &collectSink{limit: fuzzOutLimit}
		got, err := pushPieces(newZstdDecoder(s, DefaultMaxWindowBytes), s, comp, cuts)
		if err != nil && errors.Is(err, errZstdSkippable) {
			return
		}
		checkAgainstOneShot(t, comp, want, werr, got, err)
	})
}

// codingBodies returns the raw (still coded) response bodies of the
// fixtures in one coding, from their base64 lines.
func codingBodies(t testing.TB, coding string) map[string][]byte {
	out := map[string][]byte{}
	for _, path := range fixturePaths(t) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte("Content-Encoding: "+coding+"{CRLF}")) {
			continue
		}
		var body []byte
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if _, b64, ok := strings.Cut(line, "base64 "); ok && strings.HasPrefix(line, "~") {
				b, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				body = append(body, b...)
			}
		}
		out[strings.TrimSuffix(strings.TrimPrefix(path, "testdata/"), ".http")] = body
	}
	return out
}

// TestCodingSeedsCurrent keeps the FuzzBrotli and FuzzZstd seed corpora
// made from the fixtures' coded bodies; -update rewrites them.
func TestCodingSeedsCurrent(t *testing.T) {
	for target, coding := range map[string]string{"FuzzBrotli": "br", "FuzzZstd": "zstd"} {
		bodies := codingBodies(t, coding)
		if len(bodies) < 2 {
			t.Fatalf("%d %s fixtures", len(bodies), coding)
		}
		for name, body := range bodies {
			writeSeed(t, target, name, body, []byte{0, 3, 17, 1, 60, 2})
			writeSeed(t, target, name+"_whole", body, nil)
		}
	}
}

// Each coding, streamed in pieces, gives the same bytes as the library
// decoding it whole, and each event is out as soon as its flush arrives.
func TestPulledCodingsMatchLibraries(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, kind := range []coding{brotliCoding, zstdCoding} {
		for trial := 0; trial < 20; trial++ {
			var comp bytes.Buffer
			var flushes, plainEnds []int // compressed and plain lengths after each flush
			var plain []byte
			w := newCodingWriter(t, kind, &comp)
			for i := 0; i < 1+r.IntN(6); i++ {
				p := sample(r, 1+r.IntN(60000))
				plain = append(plain, p...)
				w.Write(p)
				w.Flush()
				flushes = append(flushes, comp.Len())
				plainEnds = append(plainEnds, len(plain))
			}
			w.Close()
			s := &collectSink{}
			d := newBodyDecoder(kind, s, DefaultMaxWindowBytes)
			prev, seen := 0, 0
			for _, cut := range randomCuts(r, comp.Len(), 1+r.IntN(30)) {
				if err := d.write(comp.Bytes()[prev:cut]); err != nil {
					t.Fatalf("%d: write: %v", kind, err)
				}
				prev = cut
				// Everything flushed before cut must be out already.
				for seen < len(flushes) && flushes[seen] <= cut {
					seen++
				}
				if seen > 0 && len(s.buf) < plainEnds[seen-1] {
					t.Fatalf("%d: %d bytes out after %d coded bytes; %d were flushed", kind, len(s.buf), cut, plainEnds[seen-1])
				}
			}
			if err := d.write(comp.Bytes()[prev:]); err != nil {
				t.Fatalf("%d: write: %v", kind, err)
			}
			if err := d.finish(); err != nil {
				t.Fatalf("%d: finish: %v", kind, err)
			}
			d.release()
			if !bytes.Equal(s.buf, plain) {
				t.Fatalf("%d: %d bytes out, want %d", kind, len(s.buf), len(plain))
			}
		}
	}
}

// A flushed piece decodes within the write that completes it, whatever
// the cut: nothing waits for later bytes.
func TestPulledCodingsFlushPromptly(t *testing.T) {
	for _, kind := range []coding{brotliCoding, zstdCoding} {
		var comp bytes.Buffer
		w := newCodingWriter(t, kind, &comp)
		msgs := []string{"data: {\"a\":1}\n\n", "data: {\"b\":2}\n\n", "data: [DONE]\n\n"}
		var ends []int
		for _, m := range msgs {
			w.Write([]byte(m))
			w.Flush()
			ends = append(ends, comp.Len())
		}
		w.Close()
		for cut := 1; cut < ends[0]; cut++ {
			s := &collectSink{}
			d := newBodyDecoder(kind, s, DefaultMaxWindowBytes)
			if err := d.write(comp.Bytes()[:cut]); err != nil {
				t.Fatal(err)
			}
			if err := d.write(comp.Bytes()[cut:ends[0]]); err != nil {
				t.Fatal(err)
			}
			if string(s.buf) != msgs[0] {
				t.Fatalf("coding %d cut %d: %q out after the first flush", kind, cut, s.buf)
			}
			if err := d.write(comp.Bytes()[ends[0]:ends[1]]); err != nil || string(s.buf) != msgs[0]+msgs[1] {
				t.Fatalf("coding %d cut %d: %q out after the second flush (%v)", kind, cut, s.buf, err)
			}
			d.release()
		}
	}
}

type codingWriter interface {
	io.WriteCloser
	Flush() error
}

func newCodingWriter(t testing.TB, kind coding, w io.Writer) codingWriter {
	if kind == brotliCoding {
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: 5, LGWin: 20})
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return zw
}

// A stream declaring a window over the limit is refused before the library
// allocates it: marked, counted, never decoded.
func TestWindowOverLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   coding
		window int
	}{
		{"br", brotliCoding, 22},
		{"zstd", zstdCoding, 23},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var comp bytes.Buffer
			var w codingWriter
			if tc.kind == brotliCoding {
				w = brotli.NewWriterOptions(&comp, brotli.WriterOptions{Quality: 5, LGWin: tc.window})
			}
			payload := strings.Repeat(`{"x":1}`, 100)
			if w != nil {
				w.Write([]byte(payload))
				w.Close()
			} else {
				// A frame header with Window_Descriptor 2^window, no
				// content size, and one raw last block.
				comp.Write([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(tc.window-10) << 3})
				bh := uint32(len(payload))<<3 | 1
				comp.Write([]byte{byte(bh), byte(bh >> 8), byte(bh >> 16)})
				comp.WriteString(payload)
			}
			v := newConvo(t, Limits{MaxWindowBytes: 1 << 20})
			v.feed(Egress, getReq)
			v.feed(Ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n", tc.name, comp.Len())+comp.String())
			v.close()
			d := v.calls("done")
			if len(d) != 1 || !d[0].Response.Truncated || d[0].Response.Body != "" {
				t.Fatalf("done %+v", d)
			}
			if s := v.c.Stats(); s.DecodeErrors != 1 || s.TruncatedBodies != 1 {
				t.Errorf("stats %+v", s)
			}
			// The same body decodes under a limit that allows its window.
			v = newConvo(t, Limits{MaxWindowBytes: 1 << tc.window})
			v.feed(Egress, getReq)
			v.feed(Ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n", tc.name, comp.Len())+comp.String())
			v.close()
			if d := v.calls("done"); len(d) != 1 || d[0].Response.Body != payload {
				t.Fatalf("under a larger limit: %+v", d)
			}
		})
	}
}

// A small br or zstd body that expands hugely stops at MaxBodyBytes.
func TestPulledBombStopsAtLimit(t *testing.T) {
	for _, kind := range []coding{brotliCoding, zstdCoding} {
		var comp bytes.Buffer
		w := newCodingWriter(t, kind, &comp)
		zeros := make([]byte, 1<<20)
		for i := 0; i < 32; i++ {
			w.Write(zeros)
		}
		w.Close()
		name := map[coding]string{brotliCoding: "br", zstdCoding: "zstd"}[kind]
		v := newConvo(t, Limits{MaxBodyBytes: 64 << 10})
		v.feed(Egress, getReq)
		v.feed(Ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n", name, comp.Len())+comp.String())
		v.close()
		d := v.calls("done")
		if len(d) != 1 || len(d[0].Response.Body) != 64<<10 || !d[0].Response.Truncated || d[0].Err != "" {
			t.Fatalf("%s: done %+v", name, d)
		}
		if s := v.c.Stats(); s.DecodeErrors != 0 {
			t.Errorf("%s: a body cut at the limit is not a decode error: %+v", name, s)
		}
	}
}

// Coded bodies that end early or carry bytes after their end are decode
// errors, counted once, and the connection reads on.
func TestPulledCodingsBrokenEnds(t *testing.T) {
	for _, kind := range []coding{brotliCoding, zstdCoding} {
		var comp bytes.Buffer
		w := newCodingWriter(t, kind, &comp)
		w.Write([]byte(`{"ok":true,"padding":"` + strings.Repeat("abc", 100) + `"}`))
		w.Close()
		name := map[coding]string{brotliCoding: "br", zstdCoding: "zstd"}[kind]
		for _, body := range []string{comp.String()[:comp.Len()-2], comp.String() + "xyz"} {
			v := newConvo(t, Limits{})
			v.feed(Egress, getReq)
			v.feed(Ingress, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n", name, len(body))+body)
			v.feed(Egress, getReq)
			v.feed(Ingress, okResp)
			v.close()
			d := v.calls("done")
			if len(d) != 2 || !d[0].Response.Truncated || d[0].Response.Body != "" || d[1].Response.Body != "{}" {
				t.Fatalf("%s: dones %+v", name, d)
			}
			if s := v.c.Stats(); s.DecodeErrors != 1 {
				t.Errorf("%s: stats %+v", name, s)
			}
		}
	}
}

// BenchmarkCodedStream decodes a streamed response of 64 flushed SSE
// events, each arriving in its own write, in each coding: the cost per
// event of driving a pull decoder from pushed bytes (for zstd, a recovered
// panic per write) against gzip's own push inflater.
func BenchmarkCodedStream(b *testing.B) {
	ev := []byte(`data: {"id":"chatcmpl-7","object":"chat.completion.chunk","created":1735689600,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}` + "\n\n")
	for _, tc := range []struct {
		name string
		kind coding
	}{{"gzip", gzipCoding}, {"br", brotliCoding}, {"zstd", zstdCoding}} {
		var comp bytes.Buffer
		var w codingWriter
		if tc.kind == gzipCoding {
			w = gzip.NewWriter(&comp)
		} else {
			w = newCodingWriter(b, tc.kind, &comp)
		}
		var writes [][]byte
		for i := 0; i < 64; i++ {
			w.Write(ev)
			w.Flush()
			writes = append(writes, append([]byte(nil), comp.Bytes()...))
			comp.Reset()
		}
		w.Close()
		writes = append(writes, append([]byte(nil), comp.Bytes()...))
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := &collectSink{}
				d := newBodyDecoder(tc.kind, s, DefaultMaxWindowBytes)
				for _, p := range writes {
					if err := d.write(p); err != nil {
						b.Fatal(err)
					}
				}
				if err := d.finish(); err != nil {
					b.Fatal(err)
				}
				d.release()
				if len(s.buf) != 64*len(ev) {
					b.Fatalf("%d bytes out", len(s.buf))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/64, "ns/event")
		})
	}
}

// HTTP/2 DATA frames in br or zstd decode like HTTP/1.1 bodies: each event
// comes out with the frame that completed it.
func TestHTTP2CodedStream(t *testing.T) {
	events := []string{`{"n":0}`, `{"n":1}`, "[DONE]"}
	for _, name := range []string{"br", "zstd"} {
		kind := map[string]coding{"br": brotliCoding, "zstd": zstdCoding}[name]
		var comp bytes.Buffer
		w := newCodingWriter(t, kind, &comp)
		s := newH2Script("coded", "coded stream").open()
		s.feed(Egress).headers(Egress, 1, false, ":method", "POST", ":path", "/v1/chat/completions", ":authority", "api.openai.com", ":scheme", "https", "content-type", "application/json")
		s.feed(Egress).data(1, true, `{"model":"m","stream":true}`)
		s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream", "content-encoding", name)
		for _, ev := range events {
			w.Write([]byte("data: " + ev + "\n\n"))
			w.Flush()
			s.feed(Ingress).data(1, false, comp.String())
			comp.Reset()
		}
		w.Close()
		s.feed(Ingress).data(1, true, comp.String())
		rec := newRecorder(t, base)
		c := NewConn(Limits{}, rec)
		feedOps(c, conversation(t, s))
		var got []string
		var times []int64
		for _, r := range rec.recs {
			if r.Event != nil {
				got = append(got, r.Event.Data)
				times = append(times, r.Event.Time)
			}
		}
		if strings.Join(got, ",") != strings.Join(events, ",") {
			t.Errorf("%s: events %q, want %q", name, got, events)
		}
		for i := 1; i < len(times); i++ {
			if times[i] <= times[i-1] {
				t.Errorf("%s: event %d at %d, not after the one before (%d): it waited for a later frame", name, i, times[i], times[i-1])
			}
		}
		if st := c.Stats(); st.DecodeErrors != 0 || st.UnsupportedEncodings != 0 {
			t.Errorf("%s: stats %+v", name, st)
		}
	}
}

type panicSink struct{}

func (panicSink) out([]byte) bool { panic("sink bug") }

// A panic past the decoder (in what takes its output) is not mistaken for
// the decoder failing on its input: it is not swallowed.
func TestPulledSinkPanicPropagates(t *testing.T) {
	for _, kind := range []coding{brotliCoding, zstdCoding} {
		var comp bytes.Buffer
		w := newCodingWriter(t, kind, &comp)
		w.Write([]byte("data: x\n\n"))
		w.Close()
		func() {
			defer func() {
				if r := recover(); r != "sink bug" {
					t.Errorf("coding %d: recovered %v, want the sink's panic", kind, r)
				}
			}()
			d := newBodyDecoder(kind, panicSink{}, DefaultMaxWindowBytes)
			d.write(comp.Bytes())
			t.Errorf("coding %d: the sink's panic was swallowed", kind)
		}()
	}
}
