package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// Credentials the clients send in request headers. The server receives them
// (the tests check it does); nothing the observer exports may hold them.
const (
	secretBearer    = "sk-proj-E2EBEARERSECRET4f9a2c7e1b3d5f8a0c2e4b6d"
	secretAnthropic = "sk-ant-api03-E2EANTHROPICSECRET7c1e9b3a5d2f4e6a8b0c"
	secretAzure     = "e2eazurekeysecret3b8d1f6a9c2e5b7d"
	secretCookie    = "session=E2ECOOKIESECRET5a7c9e1b3d; csrftoken=E2ECSRFSECRET2d4f6a8c0e"
)

// Credentials and personal data written into a prompt; captured content
// must carry them redacted.
const (
	promptKey   = "sk-proj-E2EPROMPTKEY8e6c4a2b0d9f7e5c3a1b"
	promptEmail = "jane.doe.e2e@example.com"
)

// secretMarks are the distinctive parts of every secret above: none may
// appear, whole or in part, in anything the receiver got.
var secretMarks = []string{"E2EBEARERSECRET", "E2EANTHROPICSECRET", "e2eazurekeysecret", "E2ECOOKIESECRET", "E2ECSRFSECRET"}

var promptMarks = []string{"E2EPROMPTKEY", promptEmail}

// Content attributes, which must appear only when capture is on.
var contentKeys = []string{"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"}

const eventInferenceDetails = "gen_ai.client.inference.operation.details"

// otlpTap is a TCP relay between the observer and the receiver that keeps
// every byte the observer sent, so that a test can search the raw export
// requests too, not only what the receiver decoded.
type otlpTap struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	sent bytes.Buffer
}

func startTap(t *testing.T, target string) *otlpTap {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &otlpTap{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go p.relay(in)
		}
	}()
	return p
}

func (p *otlpTap) relay(in net.Conn) {
	defer in.Close()
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer out.Close()
	go func() {
		io.Copy(in, out)
		in.Close()
	}()
	io.Copy(out, io.TeeReader(in, p))
}

// Write keeps a copy of what the observer sent.
func (p *otlpTap) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.Write(b)
}

func (p *otlpTap) endpoint() string { return "http://" + p.ln.Addr().String() }

func (p *otlpTap) bytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.sent.Bytes())
}

// nodeClient runs the Node.js streaming client; headers reach it through its
// environment, not its command line.
func nodeClient(t *testing.T, url, body string, headers map[string]string) *exec.Cmd {
	t.Helper()
	return clientWithHeaders(t, headers, "node", "testdata/stream_client.mjs", url, body)
}

// keepAliveClient runs the python client that makes one call per body on a
// single connection, and returns it with the local port of each call.
func keepAliveClient(t *testing.T, srv *familyServer, headers map[string]string, bodies ...string) (*exec.Cmd, []int) {
	t.Helper()
	args := append([]string{"testdata/keepalive_client.py", srv.host, srv.port, "/v1/chat/completions"}, bodies...)
	cmd := clientWithHeaders(t, headers, "python3", args...)
	var res struct {
		Ports []int `json:"ports"`
	}
	out := cmd.Stdout.(*bytes.Buffer).Bytes()
	if err := json.Unmarshal(out, &res); err != nil || len(res.Ports) != len(bodies) {
		t.Fatalf("keep-alive client output %q: %v", out, err)
	}
	return cmd, res.Ports
}

func clientWithHeaders(t *testing.T, headers map[string]string, name string, args ...string) *exec.Cmd {
	t.Helper()
	h, err := json.Marshal(headers)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "E2E_HEADERS="+string(h))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s%s", name, args, err, stdout.Bytes(), stderr.Bytes())
	}
	return cmd
}

// curlStream POSTs body with extra request headers given on curl's command
// line, as people do; the observer's resource for curl carries that command
// line, so the headers' credentials must be redacted there too.
func curlStream(t *testing.T, url, body string, headers ...string) *exec.Cmd {
	t.Helper()
	args := []string{"-sS", "--fail", "-o", "/dev/null", "-H", "Content-Type: application/json"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	return run(t, "curl", append(args, "--data-binary", body, url)...)
}

// spanPair finds the CLIENT and SERVER span of the call for model and checks
// what every pair must satisfy: the client process's resource, the server's,
// the parenting, and that the spans contain the server's own clock readings.
func spanPair(t *testing.T, spans []otlptest.Span, name string, client *exec.Cmd, clientExe string, rec *familyRecord) (c, s *otlptest.Span) {
	t.Helper()
	c = findSpan(t, spans, name, tracepb.Span_SPAN_KIND_CLIENT)
	s = findSpan(t, spans, name, tracepb.Span_SPAN_KIND_SERVER)
	if c == nil || s == nil || rec == nil {
		t.FailNow()
	}
	if got := c.Resource.Str("process.executable.name"); !strings.HasPrefix(got, clientExe) {
		t.Errorf("client resource process.executable.name = %q, want %q", got, clientExe)
	}
	if pid, _ := c.Resource.Int("process.pid"); int(pid) != client.Process.Pid {
		t.Errorf("client resource process.pid = %d, want %d", pid, client.Process.Pid)
	}
	if got, self := s.Resource.Str("process.executable.name"), filepath.Base(os.Args[0]); got != self {
		t.Errorf("server resource process.executable.name = %q, want %q", got, self)
	}
	if pid, _ := s.Resource.Int("process.pid"); int(pid) != os.Getpid() {
		t.Errorf("server resource process.pid = %d, want %d", pid, os.Getpid())
	}
	if s.TraceID != c.TraceID || s.ParentSpanID != c.SpanID {
		t.Errorf("server span (trace %s, parent %s) is not the child of the client span (trace %s, span %s)",
			s.TraceID, s.ParentSpanID, c.TraceID, c.SpanID)
	}
	_, remotePort, _ := net.SplitHostPort(rec.remote)
	if p, _ := s.Attributes.Int("client.port"); strconv.FormatInt(p, 10) != remotePort {
		t.Errorf("server span client.port = %d, the server saw the request from %s", p, rec.remote)
	}
	for _, sp := range []*otlptest.Span{c, s} {
		if sp.Start.After(rec.arrived.Add(clockSlack)) || sp.End.Before(rec.contentTimes[len(rec.contentTimes)-1].Add(-clockSlack)) {
			t.Errorf("%v span [%s, %s] does not contain the server's arrival %s and last content chunk %s", sp.Kind,
				sp.Start.Format(time.StampMicro), sp.End.Format(time.StampMicro),
				rec.arrived.Format(time.StampMicro), rec.contentTimes[len(rec.contentTimes)-1].Format(time.StampMicro))
		}
		if sp.Status == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("%v span has status error: %s", sp.Kind, sp.StatusMsg)
		}
	}
	return c, s
}

// wantAttrs compares the listed attributes; a nil value means absent.
func wantAttrs(t *testing.T, sp *otlptest.Span, want map[string]any) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		got, ok := sp.Attributes[k]
		switch w := want[k].(type) {
		case nil:
			if ok {
				t.Errorf("%v span: %s = %v, want it absent", sp.Kind, k, got)
			}
		case int:
			if g, _ := got.(int64); !ok || g != int64(w) {
				t.Errorf("%v span: %s = %v (present %v), want %d", sp.Kind, k, got, ok, w)
			}
		case []string:
			if g := sp.Attributes.Strs(k); !slices.Equal(g, w) {
				t.Errorf("%v span: %s = %v, want %v", sp.Kind, k, got, w)
			}
		default:
			if !ok || got != w {
				t.Errorf("%v span: %s = %v (present %v), want %v", sp.Kind, k, got, ok, w)
			}
		}
	}
}

// checkTTFC compares the span's time to first chunk with the server's own
// pacing: the delay from the request's arrival to its first content event.
// A time taken at a stream's first event, or at the response headers, would
// be off by the whole pacing delay.
func checkTTFC(t *testing.T, sp *otlptest.Span, rec *familyRecord) {
	t.Helper()
	const tolerance = 0.010
	want := rec.firstContentDelay().Seconds()
	got, ok := sp.Attributes.Float("gen_ai.response.time_to_first_chunk")
	if !ok {
		t.Errorf("%v span: no gen_ai.response.time_to_first_chunk", sp.Kind)
		return
	}
	if math.Abs(got-want) > tolerance {
		t.Errorf("%v span: time_to_first_chunk %.4fs, the server paced its first content chunk %.4fs after the request arrived (tolerance %.0fms)",
			sp.Kind, got, want, tolerance*1000)
	}
}

// checkNoSecrets searches everything the receiver decoded (span names,
// attributes, events, resources, metric points, log bodies and attributes),
// the raw bytes the observer sent through tap (when not nil), and the
// observer's own output for each mark.
func checkNoSecrets(t *testing.T, recv *otlptest.Receiver, tap *otlpTap, obs *observerProc, marks []string) {
	t.Helper()
	var hay []struct{ where, text string }
	add := func(where string, v ...any) {
		hay = append(hay, struct{ where, text string }{where, fmt.Sprint(v...)})
	}
	for _, s := range recv.Spans() {
		b, _ := protojson.Marshal(s.Proto)
		add("span "+s.Name, string(b), s.Resource, s.Attributes, s.StatusMsg, s.TraceState)
	}
	for _, name := range recv.MetricNames() {
		for _, dp := range recv.DataPoints(name) {
			add("metric "+name, dp.Resource, dp.Attributes)
		}
	}
	for _, l := range recv.Logs() {
		b, _ := protojson.Marshal(l.Proto)
		add("log record "+l.EventName, string(b), l.Resource, l.Attributes, l.Body)
	}
	if tap != nil {
		raw := tap.bytes()
		if len(raw) == 0 {
			t.Error("the tap saw no export bytes")
		}
		add("raw export requests", string(raw))
	}
	add("observer stderr", obs.stderr.String())
	add("observer stdout", obs.stdout.String())
	for _, m := range marks {
		lm := strings.ToLower(m)
		for _, h := range hay {
			if i := strings.Index(strings.ToLower(h.text), lm); i >= 0 {
				lo, hi := max(i-80, 0), min(i+len(m)+40, len(h.text))
				t.Errorf("%q leaked into %s: …%q…", m, h.where, h.text[lo:hi])
			}
		}
	}
}

// checkHeadersArrived makes sure the secrets were really sent, so that not
// finding them is meaningful.
func checkHeadersArrived(t *testing.T, rec *familyRecord, want map[string]string) {
	t.Helper()
	if rec == nil {
		return
	}
	for k, v := range want {
		if got := rec.header.Get(k); got != v {
			t.Errorf("the server got %s: %q, want %q", k, got, v)
		}
	}
}

// checkContentOff: no content on any span, no content event records.
func checkContentOff(t *testing.T, recv *otlptest.Receiver) {
	t.Helper()
	for _, s := range recv.Spans() {
		for _, k := range contentKeys {
			if s.Attributes.Has(k) {
				t.Errorf("%v span %q carries %s with content capture off", s.Kind, s.Name, k)
			}
		}
	}
	for _, l := range recv.Logs() {
		if l.EventName == eventInferenceDetails {
			t.Errorf("content capture is off, yet a %s record arrived", l.EventName)
		}
		for _, k := range contentKeys {
			if l.Attributes.Has(k) {
				t.Errorf("log record %q carries %s with content capture off", l.EventName, k)
			}
		}
	}
}

// checkTemporality checks every histogram point of the conventions'
// metrics that arrived.
func checkTemporality(t *testing.T, recv *otlptest.Receiver, want metricspb.AggregationTemporality) {
	t.Helper()
	n := 0
	for _, name := range []string{"gen_ai.client.operation.duration", "gen_ai.client.token.usage", "gen_ai.client.operation.time_to_first_chunk",
		"gen_ai.server.request.duration", "gen_ai.server.time_to_first_token"} {
		for _, dp := range recv.DataPoints(name) {
			n++
			if dp.Temporality != want {
				t.Errorf("%s point has temporality %v, want %v", name, dp.Temporality, want)
				break
			}
		}
	}
	if n == 0 {
		t.Error("no histogram points arrived")
	}
}

// message is the conventions' message schema, strictly decoded.
type message struct {
	Role         string `json:"role"`
	Parts        []part `json:"parts"`
	FinishReason string `json:"finish_reason,omitempty"`
}

type part struct {
	Type    string `json:"type"`
	Content string `json:"content,omitempty"`
}

// decodeStrict parses a content attribute, rejecting unknown fields, so
// that the value is valid JSON in the schema and nothing else.
func decodeStrict(t *testing.T, where, s string, v any) bool {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		t.Errorf("%s is not JSON in the conventions' schema (%v): %s", where, err, s)
		return false
	}
	return true
}

// checkContent compares content attributes (from a span or a log record)
// with the messages expected; a nil want means the attribute must be absent.
func checkContent(t *testing.T, where string, a otlptest.Attributes, system []part, input, output []message) {
	t.Helper()
	if system == nil {
		if a.Has("gen_ai.system_instructions") {
			t.Errorf("%s: unexpected gen_ai.system_instructions %v", where, a["gen_ai.system_instructions"])
		}
	} else {
		var got []part
		if decodeStrict(t, where+" gen_ai.system_instructions", a.Str("gen_ai.system_instructions"), &got) && !slices.Equal(got, system) {
			t.Errorf("%s: gen_ai.system_instructions = %+v, want %+v", where, got, system)
		}
	}
	for _, m := range []struct {
		key  string
		want []message
	}{{"gen_ai.input.messages", input}, {"gen_ai.output.messages", output}} {
		var got []message
		if !decodeStrict(t, where+" "+m.key, a.Str(m.key), &got) {
			continue
		}
		if !slices.EqualFunc(got, m.want, func(x, y message) bool {
			return x.Role == y.Role && x.FinishReason == y.FinishReason && slices.Equal(x.Parts, y.Parts)
		}) {
			t.Errorf("%s: %s = %+v, want %+v", where, m.key, got, m.want)
		}
	}
}

func textMsg(role, text string) message {
	return message{Role: role, Parts: []part{{Type: "text", Content: text}}}
}

func mustTraceID(t *testing.T, h string) trace.TraceID {
	id, err := trace.TraceIDFromHex(h)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustSpanID(t *testing.T, h string) trace.SpanID {
	id, err := trace.SpanIDFromHex(h)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// ours tells whether telemetry belongs to this test: a call to its server's
// port, or
// anything of the test process itself (so that a span of, say, the OTLP
// relay would count). LLM traffic of unrelated processes on the host, which
// the observer rightly reports too, is left out.
func ours(serverPort string, resource, attrs otlptest.Attributes) bool {
	port, _ := attrs.Int("server.port")
	pid, _ := resource.Int("process.pid")
	return strconv.FormatInt(port, 10) == serverPort || int(pid) == os.Getpid()
}

// waitExactSpans waits for n spans of this test, then a little longer, and
// fails unless exactly n arrived.
func waitExactSpans(t *testing.T, recv *otlptest.Receiver, serverPort string, n int) []otlptest.Span {
	t.Helper()
	mine := func() []otlptest.Span {
		var out []otlptest.Span
		for _, s := range recv.Spans() {
			if ours(serverPort, s.Resource, s.Attributes) {
				out = append(out, s)
			}
		}
		return out
	}
	recv.Wait(t, 15*time.Second, fmt.Sprintf("%d spans", n), func() bool { return len(mine()) >= n })
	time.Sleep(700 * time.Millisecond)
	spans := mine()
	if len(spans) != n {
		for _, s := range spans {
			t.Logf("span %q kind %v exe %s", s.Name, s.Kind, s.Resource.Str("process.executable.name"))
		}
		t.Fatalf("got %d spans, want exactly %d", len(spans), n)
	}
	return spans
}

// TestFamilyStreams runs an Anthropic Messages stream (node), an OpenAI
// Responses stream (curl), a call that carries a traceparent (curl) and two
// calls on one keep-alive connection (python), with content capture left at
// its default (off), credentials in every request's headers, and delta
// metric temporality.
func TestFamilyStreams(t *testing.T) {
	recv := otlptest.Start(t)
	tap := startTap(t, recv.GRPCAddr())
	srv := startFamilyServer(t)
	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+tap.endpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta",
	)

	const (
		anthropicModel  = "claude-sonnet-4-5:e2e-stream"
		responsesModel  = "gpt-4.1-mini:e2e-responses"
		traceModel      = "gpt-4o-mini:e2e-traceparent"
		keepAliveModel1 = "qwen2.5:e2e-keepalive-1"
		keepAliveModel2 = "qwen2.5:e2e-keepalive-2"
		appTraceID      = "4bf92f3577b34da6a3ce929d0e0e4736"
		appSpanID       = "00f067aa0ba902b7"
		appTraceState   = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
	)
	anthropicHeaders := map[string]string{"x-api-key": secretAnthropic, "anthropic-version": "2023-06-01"}
	anthropicCmd := nodeClient(t, srv.url+"/v1/messages",
		`{"model":"`+anthropicModel+`","max_tokens":256,"stream":true,"system":"You are terse.","thinking":{"type":"enabled","budget_tokens":128},"messages":[{"role":"user","content":"Say hello"}]}`,
		anthropicHeaders)
	// The Host header names OpenAI, as when a local forwarder relays the
	// call: provider openai, its OpenAI attributes, and server.address from
	// the Host header rather than the connection's 127.0.0.1.
	responsesCmd := curlStream(t, srv.url+"/v1/responses",
		`{"model":"`+responsesModel+`","instructions":"Be brief.","input":"Describe the sea in three words","stream":true,"max_output_tokens":64}`,
		"Host: api.openai.com", "Authorization: Bearer "+secretBearer)
	traceCmd := curlStream(t, srv.url+"/v1/chat/completions",
		`{"model":"`+traceModel+`","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Capital of France?"}]}`,
		"traceparent: 00-"+appTraceID+"-"+appSpanID+"-01", "tracestate: "+appTraceState,
		"api-key: "+secretAzure, "Cookie: "+secretCookie)
	keepAliveHeaders := map[string]string{"Authorization": "Bearer " + secretBearer, "Cookie": secretCookie}
	chatBody := func(model string) string {
		return `{"model":"` + model + `","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Capital of France?"}]}`
	}
	keepAliveCmd, ports := keepAliveClient(t, srv, keepAliveHeaders, chatBody(keepAliveModel1), chatBody(keepAliveModel2))

	spans := waitExactSpans(t, recv, srv.port, 10)
	recv.WaitDataPoints(t, "gen_ai.server.time_to_first_token", 1, 10*time.Second)
	obs.stop(t)

	t.Run("anthropic stream", func(t *testing.T) {
		rec := srv.record(t, anthropicModel)
		checkHeadersArrived(t, rec, anthropicHeaders)
		c, s := spanPair(t, spans, "chat "+anthropicModel, anthropicCmd, "node", rec)
		for _, sp := range []*otlptest.Span{c, s} {
			wantAttrs(t, sp, map[string]any{
				"gen_ai.operation.name":                    "chat",
				"gen_ai.provider.name":                     "anthropic",
				"gen_ai.request.model":                     anthropicModel,
				"gen_ai.response.model":                    anthropicResponseModel,
				"gen_ai.response.id":                       "msg_e2e_01",
				"gen_ai.response.finish_reasons":           []string{"end_turn"},
				"gen_ai.request.max_tokens":                256,
				"gen_ai.request.stream":                    true,
				"gen_ai.usage.input_tokens":                anthropicInputTokens + anthropicCacheRead + anthropicCacheCreation,
				"gen_ai.usage.cache_read.input_tokens":     anthropicCacheRead,
				"gen_ai.usage.cache_creation.input_tokens": anthropicCacheCreation,
				"gen_ai.usage.output_tokens":               anthropicOutputTokens,
				"gen_ai.usage.reasoning.output_tokens":     nil,
				"server.address":                           srv.host,
				"server.port":                              atoi(t, srv.port),
				"http.request.method":                      "POST",
				"http.response.status_code":                200,
				"error.type":                               nil,
				"llm_observer.api":                         "anthropic.messages",
				"llm_observer.request_id":                  "req_e2e_anthropic",
			})
			// The first content is the first thinking delta, 100 ms after
			// message_start, not message_start or the empty block start.
			checkTTFC(t, sp, rec)
		}
	})

	t.Run("responses stream", func(t *testing.T) {
		rec := srv.record(t, responsesModel)
		checkHeadersArrived(t, rec, map[string]string{"Authorization": "Bearer " + secretBearer})
		c, s := spanPair(t, spans, "chat "+responsesModel, responsesCmd, "curl", rec)
		for _, sp := range []*otlptest.Span{c, s} {
			wantAttrs(t, sp, map[string]any{
				"gen_ai.operation.name":                    "chat",
				"gen_ai.provider.name":                     "openai",
				"openai.api.type":                          "responses",
				"gen_ai.request.model":                     responsesModel,
				"gen_ai.response.model":                    responsesResponseModel,
				"gen_ai.response.id":                       "resp_e2e_01",
				"gen_ai.response.finish_reasons":           []string{"completed"},
				"gen_ai.request.max_tokens":                64,
				"gen_ai.request.stream":                    true,
				"gen_ai.usage.input_tokens":                responsesInputTokens,
				"gen_ai.usage.cache_read.input_tokens":     responsesCachedTokens,
				"gen_ai.usage.cache_creation.input_tokens": nil,
				"gen_ai.usage.output_tokens":               responsesOutputTokens,
				"gen_ai.usage.reasoning.output_tokens":     responsesReasoning,
				"server.address":                           "api.openai.com",
				"server.port":                              atoi(t, srv.port),
				"http.response.status_code":                200,
				"error.type":                               nil,
				"llm_observer.api":                         "openai.responses",
				"llm_observer.request_id":                  "req_e2e_responses",
			})
			checkTTFC(t, sp, rec)
		}
	})

	t.Run("traceparent", func(t *testing.T) {
		rec := srv.record(t, traceModel)
		checkHeadersArrived(t, rec, map[string]string{"Api-Key": secretAzure, "Cookie": secretCookie})
		c, s := spanPair(t, spans, "chat "+traceModel, traceCmd, "curl", rec)
		if c.TraceID != mustTraceID(t, appTraceID) || c.ParentSpanID != mustSpanID(t, appSpanID) {
			t.Errorf("client span is in trace %s under %s, want the application's trace %s under %s",
				c.TraceID, c.ParentSpanID, appTraceID, appSpanID)
		}
		if c.TraceState != appTraceState {
			t.Errorf("client span tracestate %q, want %q", c.TraceState, appTraceState)
		}
		if c.SpanID == mustSpanID(t, appSpanID) {
			t.Error("client span reuses the application's span id")
		}
		// spanPair checked that the server span is the client span's child
		// (not the application span's sibling).
		for _, sp := range []*otlptest.Span{c, s} {
			wantAttrs(t, sp, map[string]any{
				"gen_ai.provider.name":       "openai_compatible",
				"gen_ai.usage.input_tokens":  chatPromptTokens,
				"gen_ai.usage.output_tokens": len(chatReply),
			})
			checkTTFC(t, sp, rec)
		}
	})

	t.Run("keep-alive pairing", func(t *testing.T) {
		if ports[0] != ports[1] {
			t.Fatalf("the client used two connections (local ports %v)", ports)
		}
		rec1, rec2 := srv.record(t, keepAliveModel1), srv.record(t, keepAliveModel2)
		if rec1 == nil || rec2 == nil {
			t.FailNow()
		}
		if rec1.remote != rec2.remote {
			t.Fatalf("the server saw two connections: %s and %s", rec1.remote, rec2.remote)
		}
		c1, s1 := spanPair(t, spans, "chat "+keepAliveModel1, keepAliveCmd, "python3", rec1)
		c2, s2 := spanPair(t, spans, "chat "+keepAliveModel2, keepAliveCmd, "python3", rec2)
		if c1.SpanID == c2.SpanID || c1.TraceID == c2.TraceID {
			t.Errorf("the two calls share a trace or a span: %s/%s and %s/%s", c1.TraceID, c1.SpanID, c2.TraceID, c2.SpanID)
		}
		if s1.ParentSpanID == c2.SpanID || s2.ParentSpanID == c1.SpanID {
			t.Error("a server span is the child of the other call's client span")
		}
		if !c1.End.Before(c2.Start) {
			t.Errorf("the first call's span ends at %s, after the second starts at %s", c1.End.Format(time.StampMicro), c2.Start.Format(time.StampMicro))
		}
		for i, sp := range []*otlptest.Span{c1, s1, c2, s2} {
			wantAttrs(t, sp, map[string]any{
				"gen_ai.usage.input_tokens":  chatPromptTokens,
				"gen_ai.usage.output_tokens": len(chatReply),
			})
			checkTTFC(t, sp, []*familyRecord{rec1, rec1, rec2, rec2}[i])
		}
		for _, s := range []*otlptest.Span{s1, s2} {
			if p, _ := s.Attributes.Int("client.port"); int(p) != ports[0] {
				t.Errorf("server span client.port = %d, the client's port was %d", p, ports[0])
			}
		}
	})

	t.Run("content off by default", func(t *testing.T) {
		checkContentOff(t, recv)
		if n := len(recv.Logs()); n != 0 {
			t.Errorf("%d log records arrived with content capture off", n)
		}
	})

	t.Run("credentials never exported", func(t *testing.T) {
		checkNoSecrets(t, recv, tap, obs, secretMarks)
		if !bytes.Contains(tap.bytes(), []byte(anthropicModel)) {
			t.Error("the raw export bytes do not hold the span data in clear: the search above proves nothing")
		}
	})

	t.Run("delta temporality", func(t *testing.T) {
		checkTemporality(t, recv, metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA)
		// Each delta point counts only what happened since the previous
		// export, so all points together count every client call once.
		var calls uint64
		for _, dp := range recv.DataPoints("gen_ai.client.operation.duration") {
			if ours(srv.port, dp.Resource, dp.Attributes) {
				calls += dp.Count
			}
		}
		if calls != 5 {
			t.Errorf("delta points of gen_ai.client.operation.duration count %d calls in all, want 5", calls)
		}
	})
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestContentCaptureSpans turns content capture on: messages on the spans in
// the conventions' schema, with credentials and e-mail addresses in prompts
// redacted, and header credentials still nowhere.
func TestContentCaptureSpans(t *testing.T) {
	recv := otlptest.Start(t)
	tap := startTap(t, recv.GRPCAddr())
	srv := startFamilyServer(t)
	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+tap.endpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"LLM_OBSERVER_CAPTURE_CONTENT=all",
	)

	const (
		chatModel      = "gpt-4o-mini:e2e-content"
		anthropicModel = "claude-haiku-4-5:e2e-content"
		system         = "You are a geography tutor."
		question       = "what is the capital of France?"
	)
	prompt := "My e-mail is " + promptEmail + " and my key is " + promptKey + "; " + question
	chatHeaders := map[string]string{"Authorization": "Bearer " + secretBearer, "api-key": secretAzure, "Cookie": secretCookie}
	body, _ := json.Marshal(map[string]any{
		"model": chatModel, "stream": true, "stream_options": map[string]any{"include_usage": true},
		"messages": []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": prompt}},
	})
	chatCmd := nodeClient(t, srv.url+"/v1/chat/completions", string(body), chatHeaders)
	anthropicCmd := curlStream(t, srv.url+"/v1/messages",
		`{"model":"`+anthropicModel+`","max_tokens":256,"stream":true,"system":"You are terse.","messages":[{"role":"user","content":"Say hello"}]}`,
		"x-api-key: "+secretAnthropic, "anthropic-version: 2023-06-01", "Cookie: "+secretCookie)

	spans := waitExactSpans(t, recv, srv.port, 4)
	recv.WaitDataPoints(t, "gen_ai.client.operation.duration", 1, 10*time.Second)
	obs.stop(t)

	t.Run("chat content", func(t *testing.T) {
		rec := srv.record(t, chatModel)
		checkHeadersArrived(t, rec, map[string]string{"Authorization": "Bearer " + secretBearer, "Api-Key": secretAzure, "Cookie": secretCookie})
		if rec != nil && !strings.Contains(string(rec.body), promptEmail) {
			t.Fatal("the prompt did not reach the server")
		}
		c, s := spanPair(t, spans, "chat "+chatModel, chatCmd, "node", rec)
		for _, sp := range []*otlptest.Span{c, s} {
			checkContent(t, sp.Kind.String(), sp.Attributes, nil,
				[]message{textMsg("system", system), textMsg("user", "My e-mail is [REDACTED] and my key is [REDACTED]; "+question)},
				[]message{{Role: "assistant", Parts: []part{{Type: "text", Content: strings.Join(chatReply, "")}}, FinishReason: "stop"}})
		}
	})

	t.Run("anthropic content", func(t *testing.T) {
		rec := srv.record(t, anthropicModel)
		checkHeadersArrived(t, rec, map[string]string{"X-Api-Key": secretAnthropic, "Cookie": secretCookie})
		c, s := spanPair(t, spans, "chat "+anthropicModel, anthropicCmd, "curl", rec)
		for _, sp := range []*otlptest.Span{c, s} {
			checkContent(t, sp.Kind.String(), sp.Attributes, []part{{Type: "text", Content: "You are terse."}},
				[]message{textMsg("user", "Say hello")},
				[]message{{Role: "assistant", FinishReason: "end_turn", Parts: []part{
					{Type: "reasoning", Content: strings.Join(anthropicThinking, "")},
					{Type: "text", Content: strings.Join(anthropicText, "")},
				}}})
			checkTTFC(t, sp, rec)
		}
	})

	t.Run("content stays on spans", func(t *testing.T) {
		for _, l := range recv.Logs() {
			if l.EventName == eventInferenceDetails {
				t.Errorf("content destination is span, yet a %s record arrived", l.EventName)
			}
		}
	})

	t.Run("credentials and prompt secrets never exported", func(t *testing.T) {
		checkNoSecrets(t, recv, tap, obs, append(slices.Clone(secretMarks), promptMarks...))
		if !bytes.Contains(tap.bytes(), []byte("[REDACTED]")) {
			t.Error("the raw export bytes lack the redacted content: the search above proves nothing")
		}
	})

	t.Run("cumulative temporality by default", func(t *testing.T) {
		checkTemporality(t, recv, metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE)
	})
}

// TestContentToLogsOverHTTP exports over OTLP HTTP/protobuf with content
// sent to event records instead of spans.
func TestContentToLogsOverHTTP(t *testing.T) {
	recv := otlptest.Start(t)
	srv := startFamilyServer(t)
	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(otlptest.HTTPProtobuf),
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"LLM_OBSERVER_CAPTURE_CONTENT=all",
		"LLM_OBSERVER_CONTENT_DESTINATION=log",
	)

	const model = "llama3.2:e2e-logs"
	prompt := "Write to " + promptEmail + ": what is the capital of France?"
	body, _ := json.Marshal(map[string]any{
		"model": model, "stream": true, "stream_options": map[string]any{"include_usage": true},
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	})
	headers := map[string]string{"Authorization": "Bearer " + secretBearer, "Cookie": secretCookie}
	cmd, _ := keepAliveClient(t, srv, headers, string(body))

	spans := waitExactSpans(t, recv, srv.port, 2)
	recv.WaitLogs(t, 2, 10*time.Second)
	recv.WaitDataPoints(t, "gen_ai.client.operation.duration", 1, 10*time.Second)
	obs.stop(t)

	rec := srv.record(t, model)
	c, s := spanPair(t, spans, "chat "+model, cmd, "python3", rec)

	t.Run("spans without content", func(t *testing.T) {
		for _, sp := range []*otlptest.Span{c, s} {
			for _, k := range contentKeys {
				if sp.Attributes.Has(k) {
					t.Errorf("%v span carries %s; content goes to logs", sp.Kind, k)
				}
			}
			checkTTFC(t, sp, rec)
		}
	})

	t.Run("event records with content", func(t *testing.T) {
		var logs []otlptest.LogRecord
		for _, l := range recv.Logs() {
			if ours(srv.port, l.Resource, l.Attributes) {
				logs = append(logs, l)
			}
		}
		if len(logs) != 2 {
			t.Fatalf("got %d log records, want one per span", len(logs))
		}
		for _, sp := range []*otlptest.Span{c, s} {
			var l *otlptest.LogRecord
			for i := range logs {
				if logs[i].SpanID == sp.SpanID {
					l = &logs[i]
				}
			}
			if l == nil {
				t.Errorf("no log record in the context of the %v span", sp.Kind)
				continue
			}
			where := "log record of the " + sp.Kind.String() + " span"
			if l.EventName != eventInferenceDetails || l.TraceID != sp.TraceID {
				t.Errorf("%s: event %q trace %s, want %q in trace %s", where, l.EventName, l.TraceID, eventInferenceDetails, sp.TraceID)
			}
			if l.Protocol != otlptest.HTTPProtobuf {
				t.Errorf("%s arrived over %s", where, l.Protocol)
			}
			if fmt.Sprint(l.Resource) != fmt.Sprint(sp.Resource) {
				t.Errorf("%s: resource %v, the span's is %v", where, l.Resource, sp.Resource)
			}
			if l.Attributes.Str("gen_ai.request.model") != model || l.Attributes.Str("gen_ai.operation.name") != "chat" {
				t.Errorf("%s lacks the call's attributes: %v", where, l.Attributes)
			}
			checkContent(t, where, l.Attributes, nil,
				[]message{textMsg("user", "Write to [REDACTED]: what is the capital of France?")},
				[]message{{Role: "assistant", Parts: []part{{Type: "text", Content: strings.Join(chatReply, "")}}, FinishReason: "stop"}})
		}
	})

	t.Run("everything over HTTP", func(t *testing.T) {
		for _, sp := range spans {
			if sp.Protocol != otlptest.HTTPProtobuf {
				t.Errorf("%v span arrived over %s", sp.Kind, sp.Protocol)
			}
		}
		for _, sig := range []otlptest.Signal{otlptest.Traces, otlptest.Metrics, otlptest.Logs} {
			if n := recv.Requests(otlptest.GRPC, sig); n != 0 {
				t.Errorf("%d %s requests over gRPC", n, sig)
			}
			if n := recv.Requests(otlptest.HTTPProtobuf, sig); n == 0 {
				t.Errorf("no %s requests over HTTP", sig)
			}
		}
		for _, dp := range recv.DataPoints("gen_ai.client.operation.duration") {
			if dp.Protocol != otlptest.HTTPProtobuf {
				t.Errorf("metric point arrived over %s", dp.Protocol)
			}
		}
		checkTemporality(t, recv, metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE)
	})

	t.Run("credentials and prompt secrets never exported", func(t *testing.T) {
		checkHeadersArrived(t, rec, map[string]string{"Authorization": "Bearer " + secretBearer, "Cookie": secretCookie})
		checkNoSecrets(t, recv, nil, obs, append(slices.Clone(secretMarks), promptMarks...))
	})
}
