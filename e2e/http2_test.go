package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// h2Server is the Go TLS/h2c LLM server (testdata/h2server) and what it
// measured itself for each request.
type h2Server struct {
	cmd            *exec.Cmd
	tlsPort, h2cPt string

	mu  sync.Mutex
	log map[string]*served
	seq map[string]string // model -> protocol the server saw
}

func startH2Server(t *testing.T, bin, certFile, keyFile string) *h2Server {
	t.Helper()
	s := &h2Server{log: map[string]*served{}, seq: map[string]string{}}
	s.cmd = exec.Command(bin, certFile, keyFile)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	ready := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "listening" {
				ready <- [2]string{f[1], f[2]}
				continue
			}
			var r struct {
				Model        string  `json:"model"`
				Proto        string  `json:"proto"`
				Arrived      int64   `json:"arrived"`
				ContentTimes []int64 `json:"content_times"`
			}
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue
			}
			rec := &served{arrived: time.Unix(0, r.Arrived)}
			for _, c := range r.ContentTimes {
				rec.contentTimes = append(rec.contentTimes, time.Unix(0, c))
			}
			s.mu.Lock()
			s.log[r.Model], s.seq[r.Model] = rec, r.Proto
			s.mu.Unlock()
		}
	}()
	select {
	case p := <-ready:
		s.tlsPort, s.h2cPt = p[0], p[1]
	case <-time.After(10 * time.Second):
		t.Fatal("h2server did not start")
	}
	return s
}

func (s *h2Server) served(model string) (*served, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log[model], s.seq[model]
}

// buildGo builds a program of testdata with extra go build flags.
func buildGo(t *testing.T, pkg, out string, flags ...string) string {
	t.Helper()
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// h2Call is one call of the HTTP/2 and Go TLS test.
type h2Call struct {
	client string // executable name of the client process
	api    string // "openai" or "ollama"
	model  string
	proto  string // what the server must have seen
	port   string // the server's port the call went to
	pid    int
}

// TestHTTP2AndGoTLS runs curl over HTTP/2 (system OpenSSL) and a Go client
// (crypto/tls, built normally and stripped) over HTTP/2 and HTTP/1.1
// against a Go TLS server, and the Go client over h2c against the same
// server's cleartext port. Every call must come out as a CLIENT span paired
// with the Go server's SERVER span, with the right model, tokens, finish
// reason and time to first chunk; three streams multiplexed on one
// connection come out as three calls. An HTTP/2 connection to another path
// is dropped by verdict, a gRPC call is recognised and counted, and a Go
// executable of a version the probes do not know is reported, not probed.
func TestHTTP2AndGoTLS(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatalf("the Go TLS probes are x86-64 only; this is %s", runtime.GOARCH)
	}
	dir := t.TempDir()
	certFile, keyFile := writeCert(t)
	server := buildGo(t, "./testdata/h2server", filepath.Join(dir, "h2server"))
	client := buildGo(t, "./testdata/goclient", filepath.Join(dir, "goclient"))
	stripped := buildGo(t, "./testdata/goclient", filepath.Join(dir, "goclient-stripped"), "-ldflags=-s -w")
	// A copy of the client that claims an old toolchain: the build info's
	// version string patched in place, the code left as it is.
	old := filepath.Join(dir, "goclient-old")
	bin, err := os.ReadFile(client)
	if err != nil {
		t.Fatal(err)
	}
	ver := []byte(runtime.Version())
	if !bytes.HasPrefix(ver, []byte("go1.2")) || !bytes.Contains(bin, ver) {
		t.Fatalf("cannot find the toolchain version %s in the client to patch", ver)
	}
	patched := bytes.Clone(ver)
	patched[4] = '1' // go1.2x -> go1.1x
	if err := os.WriteFile(old, bytes.ReplaceAll(bin, ver, patched), 0o755); err != nil {
		t.Fatal(err)
	}

	srv := startH2Server(t, server, certFile, keyFile)
	recv := otlptest.Start(t)
	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(otlptest.GRPC),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
	)
	tlsURL := func(path string) string { return "https://127.0.0.1:" + srv.tlsPort + path }
	h2cURL := func(path string) string { return "http://127.0.0.1:" + srv.h2cPt + path }
	openAI := func(model string) string {
		return `{"model":"` + model + `","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello in French"}]}`
	}
	ollama := func(model string) string {
		return `{"model":"` + model + `","messages":[{"role":"user","content":"Say hello in French"}]}`
	}
	// A Go program is probed some tens of milliseconds after exec, once its
	// executable has been analysed; the clients wait like a service that
	// starts before it calls.
	goCall := func(bin string, args ...string) *exec.Cmd {
		return run(t, bin, append([]string{"-delay", "1s", "-ca", certFile}, args...)...)
	}

	var calls []h2Call
	add := func(c h2Call, cmd *exec.Cmd) {
		c.pid = cmd.Process.Pid
		calls = append(calls, c)
	}
	add(h2Call{client: "curl", api: "openai", model: "gpt-4o:curl-h2", proto: "HTTP/2.0", port: srv.tlsPort},
		run(t, "curl", "-sS", "--fail", "--http2", "--cacert", certFile, "-o", "/dev/null",
			"-H", "Content-Type: application/json", "--data-binary", openAI("gpt-4o:curl-h2"), tlsURL("/v1/chat/completions")))
	add(h2Call{client: "goclient", api: "openai", model: "gpt-4o:go-h2", proto: "HTTP/2.0", port: srv.tlsPort},
		goCall(client, tlsURL("/v1/chat/completions"), openAI("gpt-4o:go-h2")))
	add(h2Call{client: "goclient-stripped", api: "ollama", model: "llama3.2:go-stripped-h2", proto: "HTTP/2.0", port: srv.tlsPort},
		goCall(stripped, tlsURL("/api/chat"), ollama("llama3.2:go-stripped-h2")))
	add(h2Call{client: "goclient", api: "openai", model: "gpt-4o:go-http1", proto: "HTTP/1.1", port: srv.tlsPort},
		goCall(client, "-http1", tlsURL("/v1/chat/completions"), openAI("gpt-4o:go-http1")))
	add(h2Call{client: "goclient", api: "ollama", model: "llama3.2:go-h2c", proto: "HTTP/2.0", port: srv.h2cPt},
		goCall(client, "-h2c", h2cURL("/api/chat"), ollama("llama3.2:go-h2c")))
	multi := goCall(client, "-n", "3", tlsURL("/v1/chat/completions"), openAI("gpt-4o:go-multiplexed-{i}"))
	for i := range 3 {
		add(h2Call{client: "goclient", api: "openai", model: fmt.Sprintf("gpt-4o:go-multiplexed-%d", i), proto: "HTTP/2.0", port: srv.tlsPort}, multi)
	}
	// Not LLM calls: an HTTP/2 connection to another path, and gRPC.
	// Thirty requests on one connection: those after the agent's verdict
	// on the first must stop at the kernel. Paced over three seconds, or
	// curl may be done before the ring is next drained (every 20 ms when
	// little waits in it) and the verdict comes back.
	healthArgs := []string{"-sS", "--fail", "--http2", "--rate", "10/s", "--cacert", certFile}
	for range 30 {
		healthArgs = append(healthArgs, "-o", "/dev/null", tlsURL("/healthz"))
	}
	run(t, "curl", healthArgs...)
	run(t, client, "-h2c", "-grpc", h2cURL("/grpc.health.v1.Health/Check"), "")
	// The client claiming an old Go: reported, and its call still works.
	run(t, old, "-delay", "1s", "-ca", certFile, tlsURL("/healthz"), "")

	want := 2 * len(calls)
	spans := waitSpansOf(t, recv, []string{srv.tlsPort, srv.h2cPt}, want)
	for _, c := range calls {
		t.Run(c.client+" "+c.model, func(t *testing.T) { checkH2Call(t, spans, srv, c) })
	}
	// (The multiplexed calls shared one connection but kept their own
	// timings: checkH2Call held each span to its own stream's pacing.)
	metrics := scrape(t, obs)
	for series, min := range map[string]float64{
		"llm_observer_kernel_verdict_dropped_total":                     1,
		"llm_observer_http2_dropped_total":                              2,
		`llm_observer_decode_losses_total{reason="http2_grpc_streams"}`: 1,
		`llm_observer_tls_probe_failures_total{reason="go_too_old"}`:    1,
	} {
		if v := metricValue(metrics, series); v < min {
			t.Errorf("%s = %v, want at least %v", series, v, min)
		}
	}
	if !strings.Contains(obs.stderr.String(), "goclient-old (go_too_old)") {
		t.Errorf("the observer did not log the Go executable it cannot probe:\n%s", obs.stderr.String())
	}
	obs.stop(t)
}

// waitSpansOf waits for exactly n spans of calls to any of the ports.
func waitSpansOf(t *testing.T, recv *otlptest.Receiver, ports []string, n int) []otlptest.Span {
	t.Helper()
	mine := func() []otlptest.Span {
		var out []otlptest.Span
		for _, s := range recv.Spans() {
			p, _ := s.Attributes.Int("server.port")
			if slices.Contains(ports, strconv.FormatInt(p, 10)) {
				out = append(out, s)
			}
		}
		return out
	}
	for deadline := time.Now().Add(20 * time.Second); len(mine()) < n && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond)
	spans := mine()
	if len(spans) != n {
		for _, s := range spans {
			t.Logf("span %q kind %v exe %s ttfc %v", s.Name, s.Kind, s.Resource.Str("process.executable.name"), s.Attributes["gen_ai.response.time_to_first_chunk"])
		}
		t.Fatalf("got %d spans, want exactly %d", len(spans), n)
	}
	return spans
}

func checkH2Call(t *testing.T, spans []otlptest.Span, srv *h2Server, c h2Call) {
	name := "chat " + c.model
	client := findSpan(t, spans, name, tracepb.Span_SPAN_KIND_CLIENT)
	server := findSpan(t, spans, name, tracepb.Span_SPAN_KIND_SERVER)
	rec, proto := srv.served(c.model)
	if client == nil || server == nil || rec == nil {
		for _, s := range spans {
			t.Logf("span %q kind %v exe %s pid %v %v", s.Name, s.Kind, s.Resource.Str("process.executable.name"), s.Resource["process.pid"], s.Attributes)
		}
		t.Fatalf("client span %v, server span %v, server record %v", client != nil, server != nil, rec != nil)
	}
	if proto != c.proto {
		t.Errorf("the server saw %s, want %s: the test did not exercise what it claims", proto, c.proto)
	}
	if got := client.Resource.Str("process.executable.name"); got != c.client {
		t.Errorf("client process.executable.name = %q, want %s", got, c.client)
	}
	if pid, _ := client.Resource.Int("process.pid"); int(pid) != c.pid {
		t.Errorf("client process.pid = %d, want %d", pid, c.pid)
	}
	if pid, _ := server.Resource.Int("process.pid"); int(pid) != srv.cmd.Process.Pid {
		t.Errorf("server process.pid = %d, want the Go server's %d", pid, srv.cmd.Process.Pid)
	}
	if server.TraceID != client.TraceID || server.ParentSpanID != client.SpanID {
		t.Errorf("server span (trace %s, parent %s) is not the child of the client span (trace %s, span %s)",
			server.TraceID, server.ParentSpanID, client.TraceID, client.SpanID)
	}
	w := wantCall{model: c.model, provider: "openai_compatible", port: c.port, in: 11, out: 4, finish: []string{"stop"}, stream: true}
	if c.api == "ollama" {
		w.provider, w.in = "ollama", 12
	}
	checkCallSpan(t, client, w, rec, 0.010)
	checkCallSpan(t, server, w, rec, 0.005)
}
