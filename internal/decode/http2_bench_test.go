package decode

import (
	"testing"
	"time"
)

// An OpenAI chat stream of 1000 SSE events over HTTP/2, one DATA frame per
// event and one read per frame, as servers flush them: the cost per event
// of frames, the stream's SSE parser and the Sink call.
func BenchmarkHTTP2SSEEvent(b *testing.B) {
	const events = 1000
	s := newH2Script("bench", "").open()
	chatRequest(s, 1, "api.openai.com", "/v1/chat/completions", openAIBody)
	s.feed(Ingress).headers(Ingress, 1, false, ":status", "200", "content-type", "text/event-stream")
	for i := 0; i < events; i++ {
		s.feed(Ingress).data(1, i == events-1, sseChunk("chatcmpl-1", "tok"))
	}
	f, err := parseFixture([]byte(s.render()))
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, op := range f.ops {
		total += int64(len(op.data))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	sink := &nopSink{}
	t := time.Now()
	for b.Loop() {
		c := NewConn(Limits{}, sink)
		for _, op := range f.ops {
			c.Feed(op.dir, t, op.data)
		}
		c.Close(t)
	}
	if sink.events != b.N*events {
		b.Fatalf("%d events in %d runs", sink.events, b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
