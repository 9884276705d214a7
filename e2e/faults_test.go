package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// faultPath is a request path no other test uses: with LLM_OBSERVER_PATHS
// set to its prefix and TLS probing off, the observer follows only this
// file's calls, so its loss counters count only them.
const faultPath = "/e2e-faults/v1/chat/completions"

// The request's credentials, in shapes no redaction pattern knows.
const (
	echoAPIKey  = "e2e-echo-secret-7d41c9b2a0f3"
	echoSession = "e2e-session-5b8e2f60d1a7"
)

// startFaultServer answers every chat call with 200, or with the 401 a
// provider sends for a wrong key, quoting the request's api-key and cookie.
func startFaultServer(t *testing.T) (url, port string) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+faultPath, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if key := r.Header.Get("Api-Key"); key != "" {
			session := ""
			if c, err := r.Cookie("session"); err == nil {
				session = c.Value
			}
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s (session %s)","type":"invalid_request_error","code":"invalid_api_key"}}`,
				key, session)
			return
		}
		io.WriteString(w, `{"id":"chatcmpl-f","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	})
	addr := serve(t, mux)
	_, port, _ = net.SplitHostPort(addr)
	return "http://" + addr + faultPath, port
}

// faultEnv keeps the observer to this file's calls.
var faultEnv = []string{"LLM_OBSERVER_PATHS=/e2e-faults/", "LLM_OBSERVER_TLS=false"}

func chatCall(t *testing.T, url string, headers ...string) {
	t.Helper()
	args := []string{"-sS", "-o", "/dev/null", "-H", "Content-Type: application/json"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	run(t, "curl", append(args, "--data-binary", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, url)...)
}

// TestCredentialEcho: a 401 that quotes the request's api-key and cookie
// values leaves them in no exported byte (spans, metrics, logs, raw OTLP
// requests) and no console line.
func TestCredentialEcho(t *testing.T) {
	recv := otlptest.Start(t)
	tap := startTap(t, recv.HTTPAddr())
	url, port := startFaultServer(t)
	obs := startObserver(t, append(faultEnv,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+tap.endpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"LLM_OBSERVER_CONSOLE=true",
		"LLM_OBSERVER_CAPTURE_CONTENT=all",
		"LLM_OBSERVER_CONTENT_DESTINATION=both",
	)...)
	chatCall(t, url, "api-key: "+echoAPIKey, "Cookie: session="+echoSession+"; theme=dark")
	// The test server runs in this process, which the observer watches
	// too: one CLIENT span (curl) and one SERVER span.
	for _, s := range waitExactSpans(t, recv, port, 2) {
		if want := "Incorrect API key provided: [REDACTED] (session [REDACTED])"; s.StatusMsg != want {
			t.Errorf("%v status message %q, want %q", s.Kind, s.StatusMsg, want)
		}
		if s.Attributes.Str("error.type") != "invalid_api_key" {
			t.Errorf("%v error.type %q", s.Kind, s.Attributes.Str("error.type"))
		}
	}
	recv.Wait(t, 15*time.Second, "the call's log record", func() bool { return len(recv.Logs()) > 0 })
	recv.Wait(t, 15*time.Second, "the call's duration", func() bool {
		return len(recv.DataPoints("gen_ai.client.operation.duration")) > 0
	})
	obs.stop(t)
	if !strings.Contains(obs.stdout.String(), "error=invalid_api_key") {
		t.Errorf("no console line for the 401:\n%s", obs.stdout.String())
	}
	checkNoSecrets(t, recv, tap, obs, []string{echoAPIKey, echoSession})
}

// sampleSum reads one sample of the observer's /metrics: the value of the
// series whose name and labels start with series.
func sampleSum(t *testing.T, obs *observerProc, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + obs.health + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, series) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q", line)
		}
		sum += v
	}
	return sum
}

// stopWithin sends SIGTERM and fails unless the observer exits 0 within
// bound; it returns how long it took.
func (o *observerProc) stopWithin(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	o.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- o.cmd.Wait() }()
	select {
	case err := <-done:
		took := time.Since(start)
		if err != nil {
			t.Errorf("observer exit: %v", err)
		}
		if took > bound {
			t.Errorf("observer took %v to exit after SIGTERM, more than %v", took, bound)
		}
		return took
	case <-time.After(bound + 20*time.Second):
		o.cmd.Process.Kill()
		t.Fatalf("observer still running %v after SIGTERM", bound+20*time.Second)
	}
	return 0
}

var lostLine = regexp.MustCompile(`export traces: (\d+) lost \(([^)]*)\)`)

// spansLost reads the loss summary the observer writes at exit.
func spansLost(t *testing.T, obs *observerProc) (int, string) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // the stderr reader may be a line behind Wait
	m := lostLine.FindStringSubmatch(obs.stderr.String())
	if m == nil {
		return 0, ""
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2]
}

// spansPerCall: the observer sees each call from both ends, curl's CLIENT
// span and the test server's (this process's) SERVER span.
const spansPerCall = 2

// TestShutdownSilentCollector: with a collector that accepts and never
// answers, SIGTERM exits within the default 10 s budget, and the spans
// lost, as counted at exit, are the spans of the calls made minus the
// spans received (none).
func TestShutdownSilentCollector(t *testing.T) {
	url, _ := startFaultServer(t)
	obs := startObserver(t, append(faultEnv, "OTEL_EXPORTER_OTLP_ENDPOINT="+otlptest.Silent(t))...)
	const calls = 6
	for range calls {
		chatCall(t, url)
	}
	deadline := time.Now().Add(15 * time.Second)
	for sampleSum(t, obs, "llm_observer_calls_total") < calls*spansPerCall && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := sampleSum(t, obs, "llm_observer_calls_total"); got != calls*spansPerCall {
		t.Fatalf("the observer saw %v calls, want %d", got, calls*spansPerCall)
	}
	time.Sleep(500 * time.Millisecond) // a batch is in flight, hanging
	took := obs.stopWithin(t, 10*time.Second+time.Second)
	lost, reasons := spansLost(t, obs)
	if lost != calls*spansPerCall {
		t.Errorf("%d spans counted lost at exit (%s), want the %d of the calls made, none received\n%s", lost, reasons, calls*spansPerCall, obs.stderr.String())
	}
	t.Logf("exit took %v; lost: %s", took, reasons)
}

// switchableCollector is a receiver behind a port that is closed while
// down and relays to the receiver once up.
type switchableCollector struct {
	addr   string
	target string
	ln     net.Listener
}

func (s *switchableCollector) up(t *testing.T) {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("collector up at %s: %v", s.addr, err)
	}
	s.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", s.target)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { io.Copy(in, out); in.Close() }()
				io.Copy(out, in)
			}()
		}
	}()
}

// rss reads a process's resident set size in KiB.
func rss(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestCollectorDownThenUp: while the collector is down, spans are dropped
// and counted (on /metrics, by reason) and the observer's memory stays
// bounded; once it is up, new calls arrive; at exit the spans counted lost
// plus the spans received are the calls made.
func TestCollectorDownThenUp(t *testing.T) {
	recv := otlptest.Start(t)
	col := &switchableCollector{addr: freePort(t), target: recv.GRPCAddr()}
	url, port := startFaultServer(t)
	const budget = 4 * time.Second
	obs := startObserver(t, append(faultEnv,
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://"+col.addr,
		"OTEL_EXPORTER_OTLP_TIMEOUT=1000",
		"OTEL_BSP_MAX_QUEUE_SIZE=32",
		"OTEL_BSP_MAX_EXPORT_BATCH_SIZE=16",
		"LLM_OBSERVER_SHUTDOWN_TIMEOUT="+budget.String(),
	)...)
	pid := obs.cmd.Process.Pid

	const down = 120
	base := rss(t, pid)
	peak := base
	for i := range down {
		chatCall(t, url)
		if i%10 == 0 {
			peak = max(peak, rss(t, pid))
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for sampleSum(t, obs, `llm_observer_export_dropped_total{reason="collector_down",signal="traces"}`)+
		sampleSum(t, obs, `llm_observer_export_dropped_total{reason="queue_full",signal="traces"}`) < down*spansPerCall && time.Now().Before(deadline) {
		peak = max(peak, rss(t, pid))
		time.Sleep(200 * time.Millisecond)
	}
	dropped := sampleSum(t, obs, `llm_observer_export_dropped_total{reason="collector_down",signal="traces"}`) +
		sampleSum(t, obs, `llm_observer_export_dropped_total{reason="queue_full",signal="traces"}`)
	if dropped != down*spansPerCall {
		t.Errorf("/metrics counts %v spans dropped while the collector was down, want %d", dropped, down*spansPerCall)
	}
	if grow := peak - base; grow > 64<<10 {
		t.Errorf("RSS grew by %d KiB while the collector was down (from %d KiB)", grow, base)
	}
	t.Logf("RSS %d KiB at start, peak %d KiB while down", base, peak)

	col.up(t)
	// gRPC reconnects after its backoff (at most 5 s); calls made before
	// that are dropped as collector_down too, so calls go on until spans
	// arrive again.
	upCalls := 0
	received := func() int {
		n := 0
		for _, s := range recv.Spans() {
			if ours(port, s.Resource, s.Attributes) {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); received() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no span arrived within 30s of the collector coming up")
		}
		chatCall(t, url)
		upCalls++
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("spans flowed again after %d calls", upCalls)
	recv.Wait(t, 15*time.Second, "every call's spans or loss", func() bool {
		return received()+int(sampleSum(t, obs, `llm_observer_export_dropped_total{reason="collector_down",signal="traces"}`)+
			sampleSum(t, obs, `llm_observer_export_dropped_total{reason="queue_full",signal="traces"}`)) >= (down+upCalls)*spansPerCall
	})
	obs.stopWithin(t, budget+time.Second)
	got := received()
	lost, reasons := spansLost(t, obs)
	if lost+got != (down+upCalls)*spansPerCall {
		t.Errorf("%d spans lost (%s) + %d received, want the %d of the calls made", lost, reasons, got, (down+upCalls)*spansPerCall)
	}
}
