package observer

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

type flushWriter interface {
	io.WriteCloser
	Flush() error
}

// chunk frames p as one chunk of chunked transfer coding.
func chunk(p string) string {
	if p == "" {
		return ""
	}
	return fmt.Sprintf("%x\r\n%s\r\n", len(p), p)
}

// A streamed chat answered in each content coding a client may negotiate
// makes the same whole call: model, usage and the time of each chunk, as
// the compressed bytes of each event arrive.
func TestCodedStreamsMakeWholeCalls(t *testing.T) {
	events := []string{
		`data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Blue"},"finish_reason":null}]}` + "\n\n",
		`data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}` + "\n\n",
		"data: [DONE]\n\n",
	}
	for _, coding := range []string{"gzip", "br", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			var comp bytes.Buffer
			var w flushWriter
			switch coding {
			case "gzip":
				w = gzip.NewWriter(&comp)
			case "br":
				w = brotli.NewWriter(&comp)
			case "zstd":
				zw, err := zstd.NewWriter(&comp)
				if err != nil {
					t.Fatal(err)
				}
				w = zw
			}
			steps := []step{out(chatReq), in("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: " + coding + "\r\nTransfer-Encoding: chunked\r\n\r\n")}
			for _, ev := range events {
				w.Write([]byte(ev))
				w.Flush()
				steps = append(steps, in(chunk(comp.String())))
				comp.Reset()
			}
			w.Close()
			steps = append(steps, in(chunk(comp.String())+"0\r\n\r\n"))
			a, rec := newAgent(t)
			replay(a, 1, steps, false)
			if len(rec.ended) != 1 {
				t.Fatalf("%d calls", len(rec.ended))
			}
			c := rec.ended[0]
			if c.Truncated || c.ErrorType != "" || c.ResponseModel != "gpt-4o-mini" || c.Usage.OutputTokens == nil || *c.Usage.OutputTokens != 1 {
				t.Errorf("call truncated=%v error=%q model=%q output tokens %v", c.Truncated, c.ErrorType, c.ResponseModel, c.Usage.OutputTokens)
			}
			if ttfc, ok := c.TimeToFirstChunk(); !ok || ttfc <= 0 {
				t.Errorf("time to first chunk %v %v", ttfc, ok)
			}
		})
	}
}

// A response whose gzip body is broken from its first byte leaves nothing
// to parse; the call is still marked truncated, never a clean success, and
// not an error either: the wire said 200.
func TestBrokenCodingIsNeverCleanSuccess(t *testing.T) {
	for _, tc := range []struct{ coding, body string }{
		{"gzip", `{"id":"c1","choices":[]}`}, // not gzip at all
		{"br", "\xff\xff\xff\xff"},
		{"zstd", "\x28\xb5\x2f\xfd\x00\x48\x07\x00\x00"},
	} {
		a, rec := newAgent(t)
		replay(a, 1, []step{out(chatReq), in(withLength("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: "+tc.coding+"\r\n", tc.body))}, false)
		if len(rec.ended) != 1 {
			t.Fatalf("%s: %d calls", tc.coding, len(rec.ended))
		}
		if c := rec.ended[0]; !c.Truncated || c.ErrorType != "" || c.Status != 200 {
			t.Errorf("%s: call truncated=%v error=%q status %d", tc.coding, c.Truncated, c.ErrorType, c.Status)
		}
		if v, _ := sampleValue(SelfSamples(a, nil), decodeLosses, "decode_errors"); v != 1 {
			t.Errorf("%s: decode_errors = %v", tc.coding, v)
		}
	}
}
