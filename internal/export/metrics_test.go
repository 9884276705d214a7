package export

import (
	"math"
	"slices"
	"testing"
	"time"

	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// The boundaries as SEMCONV.md §2 lists them, written out again rather than
// taken from the code under test.
var (
	wantD     = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	wantToken = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	wantTTFT  = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	wantTPOT  = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
)

// derivedServerCall is a server call without server-reported timings: TTFT
// and TPOT come from its chunk times.
func derivedServerCall() *genai.Call {
	c := ollamaServerCall()
	c.Endpoint.ClientPort = 40003
	c.ServerTiming = genai.ServerTiming{}
	c.Usage.OutputTokens = i64(11)
	c.ContentChunks = chunksAt(100, 400, 1100) // 3 chunks, 11 tokens: 1 s over 10 tokens
	c.End = at(1150)
	return c
}

func TestMetrics(t *testing.T) {
	for _, proto := range protocols {
		t.Run(string(proto), func(t *testing.T) {
			e, rcv := newTestExporter(t, proto, nil)
			for _, c := range []*genai.Call{chatStreamCall(), embeddingsCall(), errorCall(), anthropicCacheCall()} {
				end(e, curl, c)
			}
			end(e, ollama, ollamaServerCall())
			end(e, ollama, derivedServerCall())
			shutdown(t, e)

			histograms := []struct {
				name, unit string
				bounds     []float64
			}{
				{"gen_ai.client.operation.duration", "s", wantD},
				{"gen_ai.client.token.usage", "{token}", wantToken},
				{"gen_ai.client.operation.time_to_first_chunk", "s", wantD},
				{"gen_ai.client.operation.time_per_output_chunk", "s", wantD},
				{"gen_ai.server.request.duration", "s", wantD},
				{"gen_ai.server.time_to_first_token", "s", wantTTFT},
				{"gen_ai.server.time_per_output_token", "s", wantTPOT},
				{"llm_observer.server.token.usage", "{token}", wantToken},
			}
			for _, h := range histograms {
				pts := rcv.DataPoints(h.name)
				if len(pts) == 0 {
					t.Errorf("%s: no data points", h.name)
					continue
				}
				for _, p := range pts {
					if p.Type != otlptest.Histogram || p.Unit != h.unit {
						t.Errorf("%s: %s in %q, want a histogram in %q", h.name, p.Type, p.Unit, h.unit)
					}
					if !slices.Equal(p.Bounds, h.bounds) {
						t.Errorf("%s: bounds %v, want %v", h.name, p.Bounds, h.bounds)
					}
					if p.Temporality != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
						t.Errorf("%s: temporality %v, want cumulative by default", h.name, p.Temporality)
					}
					for _, k := range []string{"gen_ai.operation.name", "gen_ai.provider.name", "server.address", "server.port"} {
						if !p.Attributes.Has(k) {
							t.Errorf("%s: point without %s: %v", h.name, k, p.Attributes)
						}
					}
				}
			}

			// Durations: one per client call, error.type only on the failed one.
			durations := rcv.DataPoints("gen_ai.client.operation.duration")
			if got := countOf(durations); got != 4 {
				t.Errorf("client durations: %d samples, want 4", got)
			}
			failed := pointWith(durations, "gen_ai.provider.name", "anthropic", "error.type", "rate_limit_error")
			if failed == nil || failed.Count != 1 || math.Abs(failed.Sum-0.24) > 1e-9 {
				t.Errorf("failed call's duration point: %+v", failed)
			}
			chat := pointWith(durations, "gen_ai.request.model", "gpt-4o-mini")
			if chat == nil || chat.Attributes.Has("error.type") || chat.Attributes.Str("gen_ai.response.model") != "gpt-4o-mini-2024-07-18" {
				t.Errorf("chat duration point: %+v", chat)
			}

			// Token usage: only what was observed.
			tokens := rcv.DataPoints("gen_ai.client.token.usage")
			checkTokens(t, tokens, "gpt-4o-mini", "input", 12)
			checkTokens(t, tokens, "gpt-4o-mini", "output", 40)
			checkTokens(t, tokens, "nomic-embed-text", "input", 8)
			if p := pointWith(tokens, "gen_ai.request.model", "nomic-embed-text", "gen_ai.token.type", "output"); p != nil {
				t.Errorf("embeddings reported output tokens it never had: %+v", p)
			}
			checkTokens(t, tokens, "claude-sonnet-4", "input", 1210)
			serverTokens := rcv.DataPoints("llm_observer.server.token.usage")
			if p := pointWith(serverTokens, "gen_ai.token.type", "input"); p == nil || p.Sum != 40 {
				t.Errorf("server input tokens: %+v, want a sum of 40", p)
			}

			// Streaming: time to first chunk once, one gap per later chunk.
			if p := pointWith(rcv.DataPoints("gen_ai.client.operation.time_to_first_chunk"), "gen_ai.request.model", "gpt-4o-mini"); p == nil || p.Count != 1 || math.Abs(p.Sum-0.052) > 1e-9 {
				t.Errorf("ttfc point: %+v", p)
			}
			if p := pointWith(rcv.DataPoints("gen_ai.client.operation.time_per_output_chunk"), "gen_ai.request.model", "gpt-4o-mini"); p == nil || p.Count != 3 || math.Abs(p.Sum-(1.2-0.052)) > 1e-9 {
				t.Errorf("time per output chunk: %+v, want 3 gaps summing to 1.148 s", p)
			}

			// Server side: reported timings win, else chunk times over tokens.
			serverDur := rcv.DataPoints("gen_ai.server.request.duration")
			if countOf(serverDur) != 2 || math.Abs(sumOf(serverDur)-(0.9+1.15)) > 1e-9 {
				t.Errorf("server durations: %+v, want 0.9 s (reported) and 1.15 s (observed)", serverDur)
			}
			ttft := rcv.DataPoints("gen_ai.server.time_to_first_token")
			if countOf(ttft) != 2 || math.Abs(sumOf(ttft)-(0.15+0.1)) > 1e-9 {
				t.Errorf("server TTFT: %+v, want 0.15 s (reported) and 0.1 s (first chunk)", ttft)
			}
			tpot := rcv.DataPoints("gen_ai.server.time_per_output_token")
			if countOf(tpot) != 2 || math.Abs(sumOf(tpot)-(0.02+0.1)) > 1e-9 {
				t.Errorf("server TPOT: %+v, want 0.02 s (reported) and 0.1 s (1 s over 10 tokens)", tpot)
			}
			if n := len(rcv.DataPoints("gen_ai.client.operation.time_to_first_chunk")); n != 1 {
				t.Errorf("%d ttfc points: server calls must not feed client metrics", n)
			}

			// Operational counters.
			checkSum(t, rcv, "llm_observer.client.requests", 4)
			checkSum(t, rcv, "llm_observer.client.errors", 1)
			checkSum(t, rcv, "llm_observer.server.requests", 2)
			checkSum(t, rcv, "llm_observer.client.stream.chunks", 7)
			checkSum(t, rcv, "llm_observer.server.stream.chunks", 64)
			if p := rcv.DataPoints("llm_observer.client.errors"); len(p) != 1 || p[0].Attributes.Str("error.type") != "rate_limit_error" {
				t.Errorf("error counter: %+v", p)
			}
			msgs := rcv.DataPoints("llm_observer.client.request.messages")
			if countOf(msgs) != 1 || sumOf(msgs) != 3 || !slices.Equal(msgs[0].Bounds, messageBuckets) {
				t.Errorf("messages per request: %+v", msgs)
			}
			rate := rcv.DataPoints("llm_observer.server.token.throughput")
			if countOf(rate) != 2 || math.Abs(sumOf(rate)-(50+10)) > 1e-6 || rate[0].Unit != "{token}/s" {
				t.Errorf("server decode rate: %+v, want 50/s (1/20ms) and 10/s", rate)
			}
		})
	}
}

func TestActiveRequests(t *testing.T) {
	e, rcv := newTestExporter(t, otlptest.GRPC, nil)
	c := chatStreamCall()
	e.CallStarted(curl, c)
	flush(t, e)
	c.ResponseModel = "learnt-later" // must not unbalance the counter
	e.CallEnded(curl, c)
	e.CallEnded(curl, embeddingsCall()) // ended without a start: not counted down
	flush(t, e)

	pts := rcv.DataPoints("llm_observer.client.active_requests")
	if len(pts) < 2 {
		t.Fatalf("active requests: %+v", pts)
	}
	first, last := pts[0], pts[len(pts)-1]
	if first.Type != otlptest.Sum || first.Monotonic || first.IntValue != 1 {
		t.Errorf("while in flight: %+v, want a non-monotonic sum of 1", first)
	}
	if last.IntValue != 0 {
		t.Errorf("after the end: %d, want 0", last.IntValue)
	}
	if first.Attributes.Has("gen_ai.response.model") {
		t.Errorf("active requests carry gen_ai.response.model, unknown at start: %v", first.Attributes)
	}
	for _, p := range pts {
		if p.Attributes.Str("gen_ai.request.model") == "nomic-embed-text" {
			t.Errorf("a call never started was counted: %+v", p)
		}
	}
}

func TestTemporality(t *testing.T) {
	const (
		cumulative = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
		delta      = metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	)
	tests := []struct {
		pref                      Temporality
		histogram, counter, updwn metricspb.AggregationTemporality
	}{
		{"", cumulative, cumulative, cumulative},
		{TemporalityDelta, delta, delta, cumulative},
		{TemporalityLowMemory, delta, delta, cumulative},
	}
	for _, tt := range tests {
		for _, proto := range protocols {
			t.Run(string(tt.pref)+"/"+string(proto), func(t *testing.T) {
				e, rcv := newTestExporter(t, proto, func(c *Config) { c.Temporality = tt.pref })
				end(e, curl, embeddingsCall())
				flush(t, e)
				end(e, curl, embeddingsCall())
				flush(t, e)

				durations := rcv.DataPoints("gen_ai.client.operation.duration")
				if len(durations) != 2 {
					t.Fatalf("%d duration points after two flushes", len(durations))
				}
				wantSecond := uint64(2)
				if tt.histogram == delta {
					wantSecond = 1
				}
				if durations[0].Temporality != tt.histogram || durations[1].Count != wantSecond {
					t.Errorf("histogram temporality %v, second count %d; want %v, %d", durations[0].Temporality, durations[1].Count, tt.histogram, wantSecond)
				}
				if p := rcv.DataPoints("llm_observer.client.requests"); p[0].Temporality != tt.counter {
					t.Errorf("counter temporality %v, want %v", p[0].Temporality, tt.counter)
				}
				if p := rcv.DataPoints("llm_observer.client.active_requests"); p[0].Temporality != tt.updwn {
					t.Errorf("up-down counter temporality %v, want %v", p[0].Temporality, tt.updwn)
				}
			})
		}
	}
}

func TestServerTPOTNeverByChunkCount(t *testing.T) {
	c := derivedServerCall()
	c.ContentChunks = chunksAt(100, 1100) // two chunks carrying eleven tokens
	got, ok := serverTPOT(c)
	if !ok || got != 100*time.Millisecond {
		t.Errorf("TPOT = %v, %v; want 100ms (1 s over 10 tokens, not over 1 chunk gap)", got, ok)
	}
	c.Usage.OutputTokens = nil
	if _, ok := serverTPOT(c); ok {
		t.Error("TPOT derived without an observed token count")
	}
}

func countOf(pts []otlptest.DataPoint) (n uint64) {
	for _, p := range pts {
		n += p.Count
	}
	return n
}

func sumOf(pts []otlptest.DataPoint) (s float64) {
	for _, p := range pts {
		s += p.Sum
	}
	return s
}

// pointWith is the first point whose attributes have all the key/value pairs.
func pointWith(pts []otlptest.DataPoint, kv ...string) *otlptest.DataPoint {
next:
	for i := range pts {
		for j := 0; j+1 < len(kv); j += 2 {
			if pts[i].Attributes.Str(kv[j]) != kv[j+1] {
				continue next
			}
		}
		return &pts[i]
	}
	return nil
}

func checkTokens(t *testing.T, pts []otlptest.DataPoint, model, typ string, want float64) {
	t.Helper()
	p := pointWith(pts, "gen_ai.request.model", model, "gen_ai.token.type", typ)
	if p == nil || p.Count != 1 || p.Sum != want {
		t.Errorf("%s %s tokens: %+v, want one sample of %v", model, typ, p, want)
	}
}

func checkSum(t *testing.T, rcv *otlptest.Receiver, metric string, want int64) {
	t.Helper()
	var got int64
	for _, p := range rcv.DataPoints(metric) {
		if p.Type != otlptest.Sum || !p.Monotonic {
			t.Errorf("%s: %s monotonic=%v, want a monotonic sum", metric, p.Type, p.Monotonic)
		}
		got += p.IntValue
	}
	if got != want {
		t.Errorf("%s = %d, want %d", metric, got, want)
	}
}
