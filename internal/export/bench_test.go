package export

import (
	"context"
	"testing"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// BenchmarkCallEnded measures what the agent's goroutine pays per call: span
// build and hand-off to the export queue, and all metric recordings. The
// batches go to a discarding exporter: serialising them happens on the SDK's
// goroutine, and a receiver in this process would count its own decoding
// as the exporter's cost.
func BenchmarkCallEnded(b *testing.B) {
	cases := []struct {
		name   string
		call   func() *genai.Call
		mutate func(*Config)
	}{
		{"span+metrics", chatStreamCall, nil},
		{"metrics only", chatStreamCall, func(c *Config) { c.DisableTraces = true }},
		// Without a client to wait for: holding is not the cost measured here.
		{"server side", ollamaServerCall, func(c *Config) { c.PairWait = -1 }},
		{"span+metrics+content", contentCall, func(c *Config) { c.CaptureContent = CaptureAll }},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			e, _ := newTestExporter(b, otlptest.GRPC, bc.mutate)
			if e.spans != nil {
				// Processes are seen on the first call, after this.
				e.spans.Shutdown(context.Background()) //nolint:errcheck // replaced before use
				e.spans = newSpanQueue(discardSpans{}, DefaultSpanQueue, &e.lost, e.errLog, func(context.Context) {})
			}
			c := bc.call()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c.Endpoint.ClientPort = 1024 + i%60000 // each call its own connection, as far as pairing knows
				i++
				e.CallEnded(curl, c)
			}
		})
	}
}
