package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// TestEncodingsAndOversizedHead has curl call a server that answers a
// streamed chat in br and in zstd, each event flushed through the encoder
// as hosted APIs do, and sends one call with a 70 KiB header, over the
// observer's header limit: the compressed calls must come out whole with
// their tokens, and the oversized one reported (truncated, with what its
// head told before the limit, and its timing), never invisible.
func TestEncodingsAndOversizedHead(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		model := between(string(body), `"model":"`, `"`)
		var enc io.WriteCloser
		type flusher interface{ Flush() error }
		switch r.Header.Get("Accept-Encoding") {
		case "br":
			w.Header().Set("Content-Encoding", "br")
			enc = brotli.NewWriter(w)
		case "zstd":
			w.Header().Set("Content-Encoding", "zstd")
			z, err := zstd.NewWriter(w)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			enc = z
		default:
			enc = nopCloser{w}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		send := func(data string) {
			fmt.Fprintf(enc, "data: %s\n\n", data)
			if fl, ok := enc.(flusher); ok {
				fl.Flush()
			}
			f.Flush()
		}
		chunk := func(delta, finish string) string {
			return `{"id":"chatcmpl-enc","object":"chat.completion.chunk","model":"` + model +
				`","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + finish + `}]}`
		}
		send(chunk(`{"role":"assistant"}`, "null"))
		for _, word := range []string{"Bonjour", " tout", " le", " monde"} {
			time.Sleep(20 * time.Millisecond)
			send(chunk(`{"content":"`+word+`"}`, "null"))
		}
		send(chunk(`{}`, `"stop"`))
		send(`{"id":"chatcmpl-enc","object":"chat.completion.chunk","model":"` + model +
			`","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}`)
		send("[DONE]")
		enc.Close()
	})
	addr := serve(t, mux)
	port := addr[strings.LastIndex(addr, ":")+1:]
	recv := otlptest.Start(t)
	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(otlptest.GRPC),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
	)
	url := "http://" + addr + "/v1/chat/completions"
	body := func(model string) string {
		return `{"model":"` + model + `","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	}
	// curl saves the coded bytes as they came: no --compressed.
	for _, c := range []struct{ model, coding string }{{"gpt-4o:br", "br"}, {"gpt-4o:zstd", "zstd"}} {
		curlStream(t, url, body(c.model), "Accept-Encoding: "+c.coding)
	}
	curlStream(t, url, body("gpt-4o:huge-header"), "X-Big: "+strings.Repeat("a", 70<<10))

	spans := waitExactSpans(t, recv, port, 6)
	for _, model := range []string{"gpt-4o:br", "gpt-4o:zstd"} {
		for _, kind := range []tracepb.Span_SpanKind{tracepb.Span_SPAN_KIND_CLIENT, tracepb.Span_SPAN_KIND_SERVER} {
			sp := findSpan(t, spans, "chat "+model, kind)
			if sp == nil {
				continue
			}
			checkTokens(t, kind.String(), sp.Attributes, "gen_ai.usage.input_tokens", 11)
			checkTokens(t, kind.String(), sp.Attributes, "gen_ai.usage.output_tokens", 4)
			if sp.Attributes["llm_observer.truncated"] == true || sp.Attributes.Str("error.type") != "" {
				t.Errorf("%s %v: truncated %v error.type %q", model, kind, sp.Attributes["llm_observer.truncated"], sp.Attributes.Str("error.type"))
			}
			if _, ok := sp.Attributes.Float("gen_ai.response.time_to_first_chunk"); !ok {
				t.Errorf("%s %v: no time to first chunk: the events were not decoded as they came", model, kind)
			}
		}
	}
	// The call whose head is over the limit is reported, marked, not
	// failed; its body was not read, so the model is not known.
	for _, kind := range []tracepb.Span_SpanKind{tracepb.Span_SPAN_KIND_CLIENT, tracepb.Span_SPAN_KIND_SERVER} {
		sp := findSpan(t, spans, "chat", kind)
		if sp == nil {
			continue
		}
		if sp.Attributes["llm_observer.truncated"] != true || sp.Attributes.Str("error.type") != "" {
			t.Errorf("oversized head %v: truncated %v error.type %q; want truncated and no error", kind, sp.Attributes["llm_observer.truncated"], sp.Attributes.Str("error.type"))
		}
	}
	metrics := scrape(t, obs)
	if v := metricValue(metrics, `llm_observer_decode_losses_total{reason="headers_too_large"}`); v < 2 {
		t.Errorf("headers_too_large = %v, want both ends of the oversized call counted", v)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// between returns the text of s after the first before and up to after.
func between(s, before, after string) string {
	_, rest, _ := strings.Cut(s, before)
	v, _, _ := strings.Cut(rest, after)
	return v
}
