// Package e2e runs the real observer binary, with its kernel programs
// attached, while real client processes (curl, python3) call a test LLM
// server, and checks what reaches a real OTLP receiver. It needs root.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

var (
	observerBin string
	goClientBin string // a Go program calling the test server, built like the observer
)

// clockSlack is how far a kernel timestamp, converted to wall time, may
// disagree with the same instant read by a process: bpf_ktime_get_ns reads
// the NMI-safe fast clock, and the conversion offset is measured once.
const clockSlack = time.Millisecond

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llm-observer-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	observerBin = filepath.Join(dir, "llm-observer")
	goClientBin = filepath.Join(dir, "goclient")
	for bin, pkg := range map[string]string{observerBin: "../cmd/llm-observer", goClientBin: "./testdata/goclient"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// observerProc is a running observer.
type observerProc struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	health string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startObserver runs the binary with env added to the test's environment and
// waits until its probes are attached.
func startObserver(t *testing.T, env ...string) *observerProc {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the end-to-end tests load eBPF programs and must run as root (sudo make test)")
	}
	o := &observerProc{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, health: freePort(t)}
	o.cmd = exec.Command(observerBin)
	o.cmd.Env = append(os.Environ(),
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_METRIC_EXPORT_INTERVAL=500",
		"LLM_OBSERVER_HEALTH_ADDR="+o.health,
	)
	o.cmd.Env = append(o.cmd.Env, env...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o.cmd.Stdout = o.stdout
	o.cmd.Stderr = pw
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			o.stderr.Write(append(sc.Bytes(), '\n'))
			if !signalled && strings.Contains(sc.Text(), "watching") {
				signalled = true
				close(ready)
			}
		}
	}()
	t.Cleanup(func() {
		if o.cmd.ProcessState == nil {
			o.cmd.Process.Kill()
			o.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("observer stderr:\n%s\nobserver stdout:\n%s", o.stderr.String(), o.stdout.String())
		}
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("observer did not start:\n%s", o.stderr.String())
	}
	return o
}

// stop sends SIGTERM and waits: the observer must flush and exit 0.
func (o *observerProc) stop(t *testing.T) {
	t.Helper()
	o.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- o.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("observer exit: %v\n%s", err, o.stderr.String())
		}
	case <-time.After(20 * time.Second):
		o.cmd.Process.Kill()
		t.Fatal("observer did not exit within 20s of SIGTERM")
	}
}

func run(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return cmd
}

func curlPost(t *testing.T, url, body string) *exec.Cmd {
	return run(t, "curl", "-sS", "-o", "/dev/null", "-H", "Content-Type: application/json", "--data-binary", body, url)
}

// clientClock holds what the python client measured with its own clock.
type clientClock struct {
	Sent         float64  `json:"sent"`
	FirstContent *float64 `json:"first_content"`
}

var (
	clientClocksMu sync.Mutex
	clientClocks   = map[int]clientClock{} // by pid
)

func python(t *testing.T, url, body string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("python3", "testdata/client.py", url, body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 client: %v\n%s", err, out)
	}
	var c clientClock
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("python3 client output %q: %v", out, err)
	}
	clientClocksMu.Lock()
	clientClocks[cmd.Process.Pid] = c
	clientClocksMu.Unlock()
	return cmd
}

// scenario is one LLM call made by a real client process.
type scenario struct {
	name      string
	client    string // executable name of the client process
	operation string
	model     string
	provider  string // expected gen_ai.provider.name; empty: any non-empty value
	in, out   int64  // expected token counts; -1: must be absent
	finish    []string
	stream    bool
	errorType string // expected error.type; "" for success, "*" for any non-empty
	call      func(t *testing.T, base string, sc scenario) *exec.Cmd
}

var scenarios = []scenario{
	{name: "curl ollama chat stream", client: "curl", operation: "chat", model: "llama3.2:curl-stream", provider: "ollama",
		in: 12, out: 4, finish: []string{"stop"}, stream: true,
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return curlPost(t, base+"/api/chat", `{"model":"`+sc.model+`","messages":[{"role":"user","content":"Why is the sky blue?"}],"options":{"temperature":0.2,"seed":42}}`)
		}},
	{name: "curl ollama chat mid-stream error", client: "curl", operation: "chat", model: "llama3.2:curl-error", provider: "ollama",
		in: -1, out: -1, stream: true, errorType: "*",
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return curlPost(t, base+"/api/chat", `{"model":"`+sc.model+`","messages":[{"role":"user","content":"hi"}]}`)
		}},
	{name: "curl ollama embed", client: "curl", operation: "embeddings", model: "nomic-embed-text:curl", provider: "ollama",
		in: 5, out: -1,
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return curlPost(t, base+"/api/embed", `{"model":"`+sc.model+`","input":"hello"}`)
		}},
	{name: "curl openai chat", client: "curl", operation: "chat", model: "gpt-4o-mini:curl",
		in: 9, out: 5, finish: []string{"stop"},
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return curlPost(t, base+"/v1/chat/completions", `{"model":"`+sc.model+`","messages":[{"role":"user","content":"Capital of France?"}],"max_tokens":50}`)
		}},
	{name: "curl openai 429", client: "curl", operation: "chat", model: "gpt-4o:curl-429",
		in: -1, out: -1, errorType: "rate_limit_exceeded",
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return curlPost(t, base+"/v1/chat/completions", `{"model":"`+sc.model+`","messages":[{"role":"user","content":"hi"}]}`)
		}},
	{name: "python openai stream with usage", client: "python3", operation: "chat", model: "qwen2.5:py-stream-usage",
		in: 9, out: 4, finish: []string{"length"}, stream: true,
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return python(t, base+"/v1/chat/completions", `{"model":"`+sc.model+`","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello in French"}]}`)
		}},
	{name: "python openai stream without usage", client: "python3", operation: "chat", model: "qwen2.5:py-stream",
		in: -1, out: -1, finish: []string{"length"}, stream: true,
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return python(t, base+"/v1/chat/completions", `{"model":"`+sc.model+`","stream":true,"messages":[{"role":"user","content":"Say hello in French"}]}`)
		}},
	{name: "go openai chat stream", client: "goclient", operation: "chat", model: "mistral:go-stream-usage",
		in: 9, out: 4, finish: []string{"length"}, stream: true,
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return run(t, goClientBin, base+"/v1/chat/completions", `{"model":"`+sc.model+`","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello in French"}]}`)
		}},
	{name: "python ollama generate", client: "python3", operation: "text_completion", model: "llama3.2:py-generate", provider: "ollama",
		in: 7, out: 20, finish: []string{"length"},
		call: func(t *testing.T, base string, sc scenario) *exec.Cmd {
			return python(t, base+"/api/generate", `{"model":"`+sc.model+`","prompt":"Tell me a story","stream":false}`)
		}},
}

// D is the duration bucket layout of SEMCONV.md §2.
var (
	durationBounds = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	tokenBounds    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	ttftBounds     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	tpotBounds     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
)

func TestEndToEndOTLP(t *testing.T) {
	recv := otlptest.Start(t)
	srv := startLLMServer(t)
	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(otlptest.GRPC),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
	)

	pids := map[string]int{}
	for _, sc := range scenarios {
		cmd := sc.call(t, srv.url, sc)
		pids[sc.model] = cmd.Process.Pid
	}
	// Plain HTTP on the same host, same server, same clients: must produce nothing.
	run(t, "curl", "-sS", "-o", "/dev/null", srv.url+"/healthz")
	run(t, "python3", "testdata/plain.py", srv.url)

	want := 2 * len(scenarios) // a CLIENT span from the caller, a SERVER span from the server
	serverPort := srv.url[strings.LastIndex(srv.url, ":")+1:]
	// Only calls to this test's server count: the observer sees the whole
	// host, where other LLM traffic may run at the same time.
	spans := waitExactSpans(t, recv, serverPort, want)
	self := filepath.Base(os.Args[0])

	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			name := sc.operation + " " + sc.model
			client := findSpan(t, spans, name, tracepb.Span_SPAN_KIND_CLIENT)
			server := findSpan(t, spans, name, tracepb.Span_SPAN_KIND_SERVER)
			if client == nil || server == nil {
				return
			}
			if got := client.Resource.Str("process.executable.name"); !strings.HasPrefix(got, sc.client) {
				t.Errorf("client resource process.executable.name = %q, want %q", got, sc.client)
			}
			if pid, _ := client.Resource.Int("process.pid"); int(pid) != pids[sc.model] {
				t.Errorf("client process.pid = %d, want %d", pid, pids[sc.model])
			}
			if got := server.Resource.Str("process.executable.name"); got != self {
				t.Errorf("server resource process.executable.name = %q, want %q", got, self)
			}
			for _, r := range []otlptest.Attributes{client.Resource, server.Resource} {
				if r.Str("service.name") == "" || r.Str("host.name") == "" {
					t.Errorf("resource lacks service.name or host.name: %v", r)
				}
			}
			// Both ends are on this host: the server's span is the child of
			// the client's, in one trace.
			if server.TraceID != client.TraceID || server.ParentSpanID != client.SpanID {
				t.Errorf("server span (trace %s parent %s) is not the child of the client span (trace %s span %s)",
					server.TraceID, server.ParentSpanID, client.TraceID, client.SpanID)
			}
			rec := srv.served(sc.model)
			if rec == nil {
				t.Fatal("server never saw the request")
			}
			for _, sp := range []*otlptest.Span{client, server} {
				kind := sp.Kind.String()
				a := sp.Attributes
				if a.Str("gen_ai.operation.name") != sc.operation || a.Str("gen_ai.request.model") != sc.model {
					t.Errorf("%s: operation/model = %q/%q", kind, a.Str("gen_ai.operation.name"), a.Str("gen_ai.request.model"))
				}
				prov := a.Str("gen_ai.provider.name")
				if prov == "" || (sc.provider != "" && prov != sc.provider) {
					t.Errorf("%s: gen_ai.provider.name = %q, want %q", kind, prov, sc.provider)
				}
				if p, _ := a.Int("server.port"); fmt.Sprint(p) != serverPort {
					t.Errorf("%s: server.port = %d, want %s", kind, p, serverPort)
				}
				checkTokens(t, kind, a, "gen_ai.usage.input_tokens", sc.in)
				checkTokens(t, kind, a, "gen_ai.usage.output_tokens", sc.out)
				if sc.finish != nil && !slices.Equal(a.Strs("gen_ai.response.finish_reasons"), sc.finish) {
					t.Errorf("%s: finish reasons %v, want %v", kind, a.Strs("gen_ai.response.finish_reasons"), sc.finish)
				}
				switch et := a.Str("error.type"); {
				case sc.errorType == "" && et != "":
					t.Errorf("%s: unexpected error.type %q", kind, et)
				case sc.errorType == "*" && et == "", sc.errorType != "" && sc.errorType != "*" && et != sc.errorType:
					t.Errorf("%s: error.type = %q, want %q", kind, et, sc.errorType)
				}
				if sc.errorType == "rate_limit_exceeded" && !slices.Equal(a.Strs("http.response.header.retry-after"), []string{"2"}) {
					t.Errorf("%s: http.response.header.retry-after = %v, want [2]", kind, a["http.response.header.retry-after"])
				}
				if (sc.errorType != "") != (sp.Status == tracepb.Status_STATUS_CODE_ERROR) {
					t.Errorf("%s: status %v for error.type %q", kind, sp.Status, a.Str("error.type"))
				}
				// Span times are the kernel's: the server's own clock readings
				// fall inside them, give or take the microseconds by which
				// the kernel's fast monotonic clock and the process's wall
				// clock can disagree.
				if sp.Start.After(rec.arrived.Add(clockSlack)) || sp.End.Before(rec.arrived.Add(-clockSlack)) {
					t.Errorf("%s: span [%v, %v] does not contain the server's arrival time %v", kind, sp.Start, sp.End, rec.arrived)
				}
				if sc.stream && sc.errorType == "" {
					if a["gen_ai.request.stream"] != true {
						t.Errorf("%s: gen_ai.request.stream = %v, want true", kind, a["gen_ai.request.stream"])
					}
					ttfc, ok := a.Float("gen_ai.response.time_to_first_chunk")
					if !ok {
						t.Errorf("%s: no gen_ai.response.time_to_first_chunk", kind)
						continue
					}
					// The server's pacing is the floor for both views: the
					// client sent before the server's handler ran and read
					// after the server wrote. The server's view must match
					// its pacing within a few ms; the client's may exceed it
					// by the loopback and its own scheduling, bounded by the
					// python client's own clock where it reports one.
					paced := rec.contentTimes[0].Sub(rec.arrived).Seconds()
					lo, hi := paced-0.002, paced+0.005
					if sp == client {
						hi = paced + 0.008
						clientClocksMu.Lock()
						cc, ok := clientClocks[pids[sc.model]]
						clientClocksMu.Unlock()
						if ok && cc.FirstContent != nil {
							hi = *cc.FirstContent - cc.Sent + 0.002
						}
					}
					if ttfc < lo || ttfc > hi {
						t.Errorf("%s: time_to_first_chunk %.4fs outside [%.4f, %.4f]; server paced %.4fs; span start %v, server saw the request at %v and wrote the first chunk at %v",
							kind, ttfc, lo, hi, paced, sp.Start.Format(time.StampMicro), rec.arrived.Format(time.StampMicro), rec.contentTimes[0].Format(time.StampMicro))
					}
				}
			}
		})
	}

	// Metrics: histograms with exactly the conventions' buckets.
	for _, m := range []struct {
		name   string
		bounds []float64
	}{
		{"gen_ai.client.operation.duration", durationBounds},
		{"gen_ai.client.token.usage", tokenBounds},
		{"gen_ai.client.operation.time_to_first_chunk", durationBounds},
		{"gen_ai.client.operation.time_per_output_chunk", durationBounds},
		{"gen_ai.server.request.duration", durationBounds},
		{"gen_ai.server.time_to_first_token", ttftBounds},
		{"gen_ai.server.time_per_output_token", tpotBounds},
	} {
		dps := recv.WaitDataPoints(t, m.name, 1, 10*time.Second)
		for _, dp := range dps {
			if dp.Type != otlptest.Histogram {
				t.Errorf("%s: type %s, want histogram", m.name, dp.Type)
			}
			if !slices.Equal(dp.Bounds, m.bounds) {
				t.Errorf("%s: bounds %v, want %v", m.name, dp.Bounds, m.bounds)
			}
		}
	}
	// Every call is counted once in the client duration histogram, by its
	// client process: sum the points of the last export per series. An
	// export may have gone out before the last call was recorded, so wait
	// for the next ones (every 500 ms here).
	var calls uint64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		calls = 0
		for _, dp := range latestPoints(recv.DataPoints("gen_ai.client.operation.duration")) {
			if p, _ := dp.Attributes.Int("server.port"); fmt.Sprint(p) == serverPort {
				calls += dp.Count
			}
		}
		if calls >= uint64(len(scenarios)) || time.Now().After(deadline) {
			break
		}
	}
	if calls != uint64(len(scenarios)) {
		t.Errorf("gen_ai.client.operation.duration counted %d calls, want %d", calls, len(scenarios))
	}
	checkHealth(t, obs, 2*len(scenarios))
	obs.stop(t)
}

// checkHealth reads the observer's health endpoints and its own metrics.
func checkHealth(t *testing.T, obs *observerProc, calls int) {
	t.Helper()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + obs.health + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	resp, err := http.Get("http://" + obs.health + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	// Other LLM traffic on the host may add to the count, never take away.
	var got float64
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "llm_observer_calls_total "); ok {
			fmt.Sscan(v, &got)
		}
	}
	if got < float64(calls) {
		t.Errorf("llm_observer_calls_total = %v, want at least %d", got, calls)
	}
	for _, want := range []string{
		`llm_observer_dropped_records_total{reason="ring_full"} 0`,
		`llm_observer_dropped_bytes_total{reason="offset_gap"} 0`,
		"llm_observer_kernel_connections_total ",
		"llm_observer_connections_active ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

// latestPoints keeps the newest point of each series (resource + attributes),
// since cumulative exports repeat them.
func latestPoints(dps []otlptest.DataPoint) []otlptest.DataPoint {
	last := map[string]otlptest.DataPoint{}
	for _, dp := range dps {
		k := fmt.Sprint(dp.Resource, dp.Attributes)
		if old, ok := last[k]; !ok || !dp.Time.Before(old.Time) {
			last[k] = dp
		}
	}
	out := make([]otlptest.DataPoint, 0, len(last))
	for _, dp := range last {
		out = append(out, dp)
	}
	return out
}

func findSpan(t *testing.T, spans []otlptest.Span, name string, kind tracepb.Span_SpanKind) *otlptest.Span {
	t.Helper()
	var found []otlptest.Span
	for _, s := range spans {
		if s.Name == name && s.Kind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Errorf("want exactly one %v span %q, got %d", kind, name, len(found))
		return nil
	}
	return &found[0]
}

func checkTokens(t *testing.T, kind string, a otlptest.Attributes, key string, want int64) {
	t.Helper()
	got, ok := a.Int(key)
	switch {
	case want < 0 && ok:
		t.Errorf("%s: %s = %d, but the server never reported it", kind, key, got)
	case want >= 0 && (!ok || got != want):
		t.Errorf("%s: %s = %d (present %v), want %d", kind, key, got, ok, want)
	}
}

// With no OTLP endpoint the observer prints one line per call.
func TestEndToEndConsole(t *testing.T) {
	srv := startLLMServer(t)
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_EXPORTER_OTLP_") {
			env = append(env, kv)
		}
	}
	obs := startObserver(t, env...)
	model := "llama3.2:console"
	cmd := curlPost(t, srv.url+"/api/chat", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
	deadline := time.Now().Add(10 * time.Second)
	var line string
	for time.Now().Before(deadline) && line == "" {
		for _, l := range strings.Split(obs.stdout.String(), "\n") {
			if strings.Contains(l, model) && strings.Contains(l, fmt.Sprintf("curl[%d]", cmd.Process.Pid)) {
				line = l
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if line == "" {
		t.Fatalf("no console line for the curl call; stdout:\n%s", obs.stdout.String())
	}
	for _, want := range []string{"ollama", "chat", "in=12", "out=4", "ttfc=", "ok"} {
		if !strings.Contains(line, want) {
			t.Errorf("console line %q lacks %q", line, want)
		}
	}
	obs.stop(t)
}
