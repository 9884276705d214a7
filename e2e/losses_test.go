package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// lossPath is a prefix only this test uses: with LLM_OBSERVER_PATHS set
// to it and TLS probing off, the loss counters count only its calls.
const lossPath = "/e2e-losses/v1/chat/completions"

// rawCall sends bytes no HTTP library would send, with a real python3
// process (testdata/raw_client.py).
func rawCall(t *testing.T, addr string, data string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("python3", "testdata/raw_client.py", host, port)
	cmd.Stdin = strings.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("raw client: %v\n%s", err, out)
	}
}

// TestDecodeLossesRealClients makes each kind of call the decoder cannot
// read whole, with real clients (curl, and python3 for bytes no library
// sends), and reads the observer's own metrics: every loss is counted by
// kind, and a body that failed to decode is never a clean success.
func TestDecodeLossesRealClients(t *testing.T) {
	answer := `{"id":"chatcmpl-l","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+lossPath, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch r.Header.Get("X-Test") {
		case "corrupt-gzip":
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03this is not deflate data at all"))
		case "stacked":
			w.Header().Set("Content-Encoding", "gzip, br")
			io.WriteString(w, "opaque")
		case "big":
			io.WriteString(w, strings.TrimSuffix(answer, "}")+`,"padding":"`+strings.Repeat("x", 64<<10)+`"}`)
		default:
			io.WriteString(w, answer)
		}
	})
	addr := serve(t, mux)
	recv := otlptest.Start(t)
	obs := startObserver(t,
		"LLM_OBSERVER_PATHS=/e2e-losses/", "LLM_OBSERVER_TLS=false", "LLM_OBSERVER_MAX_BODY_BYTES=8192",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(otlptest.GRPC),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
	)
	url := "http://" + addr + lossPath
	body := `{"model":"gpt-4o-mini:MODEL","messages":[{"role":"user","content":"hi"}]}`
	for _, kind := range []string{"corrupt-gzip", "stacked", "big"} {
		run(t, "curl", "-sS", "-o", "/dev/null", "-H", "Content-Type: application/json", "-H", "X-Test: "+kind,
			"--data-binary", strings.ReplaceAll(body, "MODEL", kind), url)
	}
	head := "POST " + lossPath + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\n"
	req := func(model string) string {
		b := strings.ReplaceAll(body, "MODEL", model)
		return head + fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(b), b)
	}
	// A field line without a colon, and two Content-Lengths that disagree.
	rawCall(t, addr, head+"this is not a header\r\nContent-Length: 2\r\n\r\n{}")
	rawCall(t, addr, head+"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x")
	// Twenty requests in one burst: more than the 16 the decoder keeps
	// waiting for their responses.
	var burst bytes.Buffer
	for i := range 20 {
		burst.WriteString(req(fmt.Sprintf("burst-%d", i)))
	}
	rawCall(t, addr, burst.String())

	recv.Wait(t, 15*time.Second, "spans of the corrupt body", func() bool {
		for _, s := range recv.Spans() {
			if s.Attributes.Str("gen_ai.request.model") == "gpt-4o-mini:corrupt-gzip" {
				return true
			}
		}
		return false
	})
	metrics := scrape(t, obs)
	for reason, min := range map[string]float64{
		"malformed":             2,
		"decode_errors":         1,
		"unsupported_encodings": 1,
		"truncated_bodies":      1,
		"dropped_exchanges":     1,
	} {
		series := `llm_observer_decode_losses_total{reason="` + reason + `"}`
		if v := metricValue(metrics, series); v < min {
			t.Errorf("%s = %v, want at least %v", series, v, min)
		}
	}
	for _, s := range recv.Spans() {
		if s.Attributes.Str("gen_ai.request.model") != "gpt-4o-mini:corrupt-gzip" {
			continue
		}
		if s.Attributes["llm_observer.truncated"] != true {
			t.Errorf("%v span of a body that failed to decompress is not marked truncated", s.Kind)
		}
		if s.Kind == tracepb.Span_SPAN_KIND_CLIENT && s.Attributes.Str("error.type") != "" {
			t.Errorf("the observer's decoding failure became the application's error: %q", s.Attributes.Str("error.type"))
		}
	}
}
