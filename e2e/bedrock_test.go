package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// bedrockServer answers Amazon Bedrock's ConverseStream
// (POST /model/{modelId}/converse-stream) in the AWS event-stream framing,
// one message per write, paced like the other test servers. It runs in the
// test process, which the observer watches like any other, and measures
// its own pacing, the ground truth for the observer's timings. A model id
// holding "corrupt" gets one content message with a payload bit flipped
// after its CRC was computed, as a damaged stream would.
type bedrockServer struct {
	url, port string

	mu        sync.Mutex
	log       map[string]*familyRecord // by model id, as decoded from the path
	firstRead map[string]time.Time     // by client address: when the server first read from it
	readAt    map[string]time.Time     // by model id: the first read of its request
}

// What every stream of the server says.
const (
	bedrockInputTokens  = 11
	bedrockOutputTokens = 6
	bedrockLatencyMs    = 321
)

var bedrockText = []string{"Bonjour", " tout", " le", " monde"}

func startBedrockServer(t *testing.T) *bedrockServer {
	s := &bedrockServer{log: map[string]*familyRecord{}, firstRead: map[string]time.Time{}, readAt: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /model/{modelId}/converse-stream", s.converseStream)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(&stampListener{Listener: ln, s: s})
	t.Cleanup(func() { srv.Close() })
	s.url = "http://" + ln.Addr().String()
	_, s.port, _ = net.SplitHostPort(ln.Addr().String())
	return s
}

// stampListener notes when the server first reads from each connection:
// the moment the kernel stamps as the server span's start, closer to it
// than the handler's entry, which a loaded machine may delay by
// milliseconds; the time to first chunk is checked from there. Each client
// call here has a connection of its own.
type stampListener struct {
	net.Listener
	s *bedrockServer
}

func (l *stampListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &stampConn{Conn: c, s: l.s}, nil
}

type stampConn struct {
	net.Conn
	s    *bedrockServer
	seen bool
}

func (c *stampConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.seen {
		c.seen = true
		now := time.Now()
		c.s.mu.Lock()
		c.s.firstRead[c.RemoteAddr().String()] = now
		c.s.mu.Unlock()
	}
	return n, err
}

// esMessage encodes one event-stream message with string headers: total
// and headers lengths, the prelude's CRC-32, headers, payload and the
// message's CRC-32, all big-endian.
func esMessage(headers [][2]string, payload []byte) []byte {
	var h []byte
	for _, kv := range headers {
		h = append(h, byte(len(kv[0])))
		h = append(h, kv[0]...)
		h = append(h, 7) // a string value, with a 2-byte length
		h = binary.BigEndian.AppendUint16(h, uint16(len(kv[1])))
		h = append(h, kv[1]...)
	}
	m := binary.BigEndian.AppendUint32(nil, uint32(16+len(h)+len(payload)))
	m = binary.BigEndian.AppendUint32(m, uint32(len(h)))
	m = binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
	m = append(m, h...)
	m = append(m, payload...)
	return binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
}

func bedrockEvent(typ, payload string) []byte {
	return esMessage([][2]string{{":event-type", typ}, {":content-type", "application/json"}, {":message-type", "event"}}, []byte(payload))
}

func (s *bedrockServer) converseStream(w http.ResponseWriter, r *http.Request) {
	rec := &familyRecord{served: served{arrived: time.Now()}, header: r.Header.Clone(), remote: r.RemoteAddr, done: make(chan struct{})}
	defer close(rec.done)
	model := r.PathValue("modelId") // unescaped by the mux
	body, err := io.ReadAll(r.Body)
	if err != nil || !json.Valid(body) {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	rec.body = body
	s.mu.Lock()
	if t, ok := s.firstRead[r.RemoteAddr]; ok {
		s.readAt[model] = t
	}
	s.log[model] = rec
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.Header().Set("X-Amzn-Requestid", "e2e0b3d2-0000-4000-8000-000000000001")
	w.WriteHeader(http.StatusOK)
	write := func(m []byte) {
		w.Write(m)
		w.(http.Flusher).Flush()
	}
	write(bedrockEvent("messageStart", `{"p":"abcdefghijk","role":"assistant"}`))
	for i, text := range bedrockText {
		if i == 0 {
			time.Sleep(familyFirstDelay)
		} else {
			time.Sleep(familyGap)
		}
		m := bedrockEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":`+jsonText(text)+`},"p":"abcd"}`)
		if i == 2 && strings.Contains(model, "corrupt") {
			m[len(m)-10] ^= 0x01 // inside the payload, past the CRC's computation
		}
		rec.contentTimes = append(rec.contentTimes, time.Now())
		write(m)
	}
	write(bedrockEvent("contentBlockStop", `{"contentBlockIndex":0,"p":"abcdefgh"}`))
	write(bedrockEvent("messageStop", `{"p":"abcdef","stopReason":"end_turn"}`))
	write(bedrockEvent("metadata", fmt.Sprintf(`{"metrics":{"latencyMs":%d},"p":"ab","usage":{"inputTokens":%d,"outputTokens":%d,"totalTokens":%d}}`,
		bedrockLatencyMs, bedrockInputTokens, bedrockOutputTokens, bedrockInputTokens+bedrockOutputTokens)))
}

func (s *bedrockServer) record(t *testing.T, model string) *familyRecord {
	t.Helper()
	s.mu.Lock()
	rec := s.log[model]
	s.mu.Unlock()
	if rec == nil {
		t.Fatalf("the server never saw a request for %q", model)
	}
	select {
	case <-rec.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the handler for %q never finished", model)
	}
	return rec
}

// SigV4-shaped credentials the client sends; none may leave the host.
const (
	bedrockSignature = "e2e5160a7e0f1d2c3b4a59687766554433221100ffeeddccbbaa998877665544"
	bedrockKeyID     = "ASIAE2EBEDROCKKEYID7"
	bedrockToken     = "IQoJb3JpZ2luX2VjE2EBEDROCKSESSIONTOKEN//////////wEaCXVzLWVhc3QtMSJHMEUCIQD"
)

var bedrockMarks = []string{bedrockSignature, bedrockKeyID, "E2EBEDROCKSESSIONTOKEN"}

// bedrockClient runs the python client against the server for model, with
// the credentials in its environment.
func bedrockClient(t *testing.T, srv *bedrockServer, model string) (*exec.Cmd, clientClock) {
	t.Helper()
	headers := map[string]string{
		"Authorization": "AWS4-HMAC-SHA256 Credential=" + bedrockKeyID + "/20251201/us-east-1/bedrock/aws4_request, " +
			"SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=" + bedrockSignature,
		"X-Amz-Security-Token": bedrockToken,
		"X-Amz-Date":           "20251201T044500Z",
	}
	body := `{"messages":[{"role":"user","content":[{"text":"Say hello in French."}]}],"inferenceConfig":{"maxTokens":64,"temperature":0.2,"topP":0.9,"stopSequences":["###"]}}`
	cmd := clientWithHeaders(t, headers, "python3", "testdata/bedrock_client.py",
		srv.url+"/model/"+url.PathEscape(model)+"/converse-stream", body)
	var out struct {
		clientClock
		Status   int `json:"status"`
		Messages int `json:"messages"`
	}
	if err := json.Unmarshal(cmd.Stdout.(*bytes.Buffer).Bytes(), &out); err != nil {
		t.Fatalf("bedrock client output %q: %v", cmd.Stdout.(*bytes.Buffer).Bytes(), err)
	}
	if out.Status != http.StatusOK || out.Messages != 4+len(bedrockText) {
		t.Fatalf("bedrock client: status %d, %d messages read", out.Status, out.Messages)
	}
	checkHeadersArrived(t, srv.record(t, model), headers)
	return cmd, out.clientClock
}

// TestBedrockConverseStream has a real python3 client call a Bedrock-shaped
// server twice over plaintext, with the observer on its default paths: a
// clean ConverseStream, and one whose stream carries a message with a bad
// CRC. The spans carry the provider, the model from the URL-encoded path
// (an inference-profile ARN for the second), tokens, finish reason and a
// time to first chunk that matches the server's pacing; the damaged stream
// is counted in the exported decode losses and marked truncated, never an
// error of the application; the SigV4 credentials never leave the host.
func TestBedrockConverseStream(t *testing.T) {
	recv := otlptest.Start(t)
	tap := startTap(t, recv.GRPCAddr())
	srv := startBedrockServer(t)
	obs := startObserver(t,
		"LLM_OBSERVER_TLS=false",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+tap.endpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
	)

	const (
		cleanModel   = "us.anthropic.claude-3-5-haiku-e2e-v1:0"
		corruptID    = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-e2e-corrupt-v1:0"
		corruptModel = "us.amazon.nova-lite-e2e-corrupt-v1:0"
	)
	cleanCmd, cleanClock := bedrockClient(t, srv, cleanModel)
	corruptCmd, _ := bedrockClient(t, srv, corruptID)

	spans := waitExactSpans(t, recv, srv.port, 4)

	t.Run("clean stream", func(t *testing.T) {
		rec := srv.record(t, cleanModel)
		c, s := spanPair(t, spans, "chat "+cleanModel, cleanCmd, "python3", rec)
		for _, sp := range []*otlptest.Span{c, s} {
			wantAttrs(t, sp, map[string]any{
				"gen_ai.operation.name":          "chat",
				"gen_ai.provider.name":           "aws.bedrock",
				"gen_ai.request.model":           cleanModel,
				"gen_ai.request.max_tokens":      64,
				"gen_ai.request.stop_sequences":  []string{"###"},
				"gen_ai.request.stream":          true,
				"gen_ai.usage.input_tokens":      bedrockInputTokens,
				"gen_ai.usage.output_tokens":     bedrockOutputTokens,
				"gen_ai.response.finish_reasons": []string{"end_turn"},
				"llm_observer.api":               "aws.bedrock.converse_stream",
				"llm_observer.request_id":        "e2e0b3d2-0000-4000-8000-000000000001",
				"error.type":                     nil,
				"llm_observer.truncated":         nil,
			})
			if temp, ok := sp.Attributes.Float("gen_ai.request.temperature"); !ok || temp != 0.2 {
				t.Errorf("%v span: gen_ai.request.temperature = %v", sp.Kind, sp.Attributes["gen_ai.request.temperature"])
			}
		}
		// The server's view must match its own pacing, from its first read
		// of the request to its write of the first delta, within the
		// clocks' disagreement; the client's starts earlier and ends
		// later, by the loopback and the scheduler, and is bounded by the
		// python client's own clock.
		srv.mu.Lock()
		read, ok := srv.readAt[cleanModel]
		srv.mu.Unlock()
		if !ok {
			t.Fatal("the server never read the request")
		}
		paced := rec.contentTimes[0].Sub(read).Seconds()
		if cleanClock.FirstContent == nil {
			t.Fatal("the client read no contentBlockDelta")
		}
		for _, sp := range []*otlptest.Span{c, s} {
			lo, hi := paced-0.002, paced+0.005
			if sp == c {
				hi = *cleanClock.FirstContent - cleanClock.Sent + 0.002
			}
			ttfc, ok := sp.Attributes.Float("gen_ai.response.time_to_first_chunk")
			t.Logf("%v span: time to first chunk %.4fs, the server paced %.4fs", sp.Kind, ttfc, paced)
			if !ok || ttfc < lo || ttfc > hi {
				t.Errorf("%v span: time_to_first_chunk %.4fs (present %v) outside [%.4f, %.4f]; the server paced its first delta %.4fs after the request arrived",
					sp.Kind, ttfc, ok, lo, hi, paced)
			}
		}
	})

	t.Run("corrupt CRC", func(t *testing.T) {
		rec := srv.record(t, corruptID)
		c := findSpan(t, spans, "chat "+corruptModel, tracepb.Span_SPAN_KIND_CLIENT)
		s := findSpan(t, spans, "chat "+corruptModel, tracepb.Span_SPAN_KIND_SERVER)
		if c == nil || s == nil {
			t.FailNow()
		}
		if pid, _ := c.Resource.Int("process.pid"); int(pid) != corruptCmd.Process.Pid {
			t.Errorf("client span from pid %d, the client was %d", pid, corruptCmd.Process.Pid)
		}
		for _, sp := range []*otlptest.Span{c, s} {
			// The message lost was content; the usage and stop reason
			// came after it and are still read.
			wantAttrs(t, sp, map[string]any{
				"gen_ai.provider.name":           "aws.bedrock",
				"gen_ai.request.model":           corruptModel,
				"gen_ai.usage.input_tokens":      bedrockInputTokens,
				"gen_ai.usage.output_tokens":     bedrockOutputTokens,
				"gen_ai.response.finish_reasons": []string{"end_turn"},
				"llm_observer.truncated":         true,
				"error.type":                     nil,
			})
			if sp.Status == tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("%v span: the observer's loss became status ERROR: %s", sp.Kind, sp.StatusMsg)
			}
			if sp.Start.After(rec.arrived.Add(clockSlack)) || sp.End.Before(rec.contentTimes[len(rec.contentTimes)-1].Add(-clockSlack)) {
				t.Errorf("%v span [%v, %v] does not hold the server's stream", sp.Kind, sp.Start, sp.End)
			}
		}
	})

	t.Run("loss counted", func(t *testing.T) {
		// Both ends read the damaged message: one count per side.
		const series = `llm_observer_decode_losses_total{reason="event_stream_crc_errors"}`
		if v := metricValue(scrape(t, obs), series); v < 2 {
			t.Errorf("%s = %v on /metrics, want at least 2", series, v)
		}
		var otlp float64
		recv.Wait(t, 10*time.Second, "the decode loss in the OTLP self-metrics", func() bool {
			otlp = 0
			for _, dp := range latestPoints(recv.DataPoints("llm_observer.decode.losses")) {
				if dp.Attributes.Str("reason") == "event_stream_crc_errors" {
					otlp += dp.Value
				}
			}
			return otlp >= 2
		})
		if v := metricValue(scrape(t, obs), `llm_observer_calls_truncated_total`); v < 2 {
			t.Errorf("llm_observer_calls_truncated_total = %v, want at least 2", v)
		}
	})

	checkNoSecrets(t, recv, tap, obs, bedrockMarks)
	obs.stop(t)
}
