package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// writeCert makes a self-signed certificate for 127.0.0.1 and returns the
// paths of its PEM certificate (also the CA clients trust) and key.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "llm-observer e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// tlsServer is the python TLS LLM server (testdata/tls_server.py) and what
// it reported measuring for each request.
type tlsServer struct {
	cmd  *exec.Cmd
	port string

	mu  sync.Mutex
	log map[string]*served
}

func startTLSServer(t *testing.T, certFile, keyFile string) *tlsServer {
	t.Helper()
	s := &tlsServer{log: map[string]*served{}}
	s.cmd = exec.Command("python3", "testdata/tls_server.py", certFile, keyFile)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("python3 TLS server: %v", err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if p, ok := strings.CutPrefix(line, "listening "); ok {
				ready <- p
				continue
			}
			var r struct {
				Model        string    `json:"model"`
				Arrived      float64   `json:"arrived"`
				ContentTimes []float64 `json:"content_times"`
			}
			if json.Unmarshal([]byte(line), &r) != nil {
				continue
			}
			rec := &served{arrived: unixTime(r.Arrived)}
			for _, c := range r.ContentTimes {
				rec.contentTimes = append(rec.contentTimes, unixTime(c))
			}
			s.mu.Lock()
			s.log[r.Model] = rec
			s.mu.Unlock()
		}
	}()
	select {
	case s.port = <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("python3 TLS server did not start")
	}
	return s
}

func unixTime(sec float64) time.Time {
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9))
}

func (s *tlsServer) served(model string) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log[model]
}

func (s *tlsServer) url(path string) string { return "https://127.0.0.1:" + s.port + path }

// tlsCall is one HTTPS LLM call by a real client.
type tlsCall struct {
	client   string // executable name of the client process
	api      string // "openai" or "anthropic"
	model    string
	stream   bool
	pid      int
	measured *clientClock // the client's own clock, when it reports one
	// serverBlind: the server's thread was already blocked in SSL_read for
	// this request when the observer started; a uprobe cannot catch a call
	// in progress, so the server's side shows only a response (counted as a
	// connection joined midway) and makes no span.
	serverBlind bool
}

func (c tlsCall) path() string {
	if c.api == "anthropic" {
		return "/v1/messages"
	}
	return "/v1/chat/completions"
}

func (c tlsCall) body() string {
	b := `{"model":"` + c.model + `","max_tokens":64,"messages":[{"role":"user","content":"Say hello in French"}]`
	if c.stream {
		b += `,"stream":true`
		if c.api == "openai" {
			b += `,"stream_options":{"include_usage":true}`
		}
	}
	return b + "}"
}

// keepAliveTLSClient is the python client holding one TLS connection, which
// makes its first call before the observer starts.
type keepAliveTLSClient struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startKeepAliveTLSClient(t *testing.T, caFile, port string, calls []tlsCall) *keepAliveTLSClient {
	t.Helper()
	args := []string{"testdata/tls_client.py", caFile, "127.0.0.1", port}
	for _, c := range calls {
		args = append(args, c.path(), c.body())
	}
	k := &keepAliveTLSClient{cmd: exec.Command("python3", args...)}
	var err error
	if k.stdin, err = k.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := k.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	k.cmd.Stderr = os.Stderr
	k.out = bufio.NewScanner(out)
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("python3 TLS client: %v", err)
	}
	t.Cleanup(func() { k.cmd.Process.Kill(); k.cmd.Wait() })
	return k
}

// next lets the client make its next call (the first needs no go-ahead) and
// returns what it measured.
func (k *keepAliveTLSClient) next(t *testing.T, first bool) clientClock {
	t.Helper()
	if !first {
		io.WriteString(k.stdin, "go\n")
	}
	if !k.out.Scan() {
		t.Fatalf("python3 TLS client ended early: %v", k.out.Err())
	}
	var r struct {
		clientClock
		Status int `json:"status"`
	}
	if err := json.Unmarshal(k.out.Bytes(), &r); err != nil || r.Status != 200 {
		t.Fatalf("python3 TLS client said %q: %v", k.out.Bytes(), err)
	}
	return r.clientClock
}

// TestTLSOpenSSL runs real HTTPS clients on three OpenSSL stacks against a
// TLS LLM server on the system libssl: python3 (system OpenSSL, a keep-alive
// connection opened before the observer started), curl over HTTP/1.1
// (system OpenSSL) and node (OpenSSL inside its executable, which does its
// own socket I/O). Every call must come out as a CLIENT span paired with the
// server's SERVER span, with the right model, tokens, finish reason and time
// to first chunk.
func TestTLSOpenSSL(t *testing.T) {
	certFile, keyFile := writeCert(t)
	srv := startTLSServer(t, certFile, keyFile)

	before := []tlsCall{
		{client: "python3", api: "openai", model: "gpt-4o:py-before-observer", stream: true},
		{client: "python3", api: "openai", model: "gpt-4o:py-keepalive-stream", stream: true, serverBlind: true},
		{client: "python3", api: "anthropic", model: "claude:py-keepalive-json"},
	}
	py := startKeepAliveTLSClient(t, certFile, srv.port, before)
	py.next(t, true) // made before the observer runs: it must not appear

	recv := otlptest.Start(t)
	obs := startObserver(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(otlptest.GRPC),
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_INSECURE=true",
	)
	baseLinks := sslLinks(t)
	if baseLinks == 0 {
		t.Fatalf("no TLS probe is attached after start; observer said:\n%s", obs.stderr.String())
	}

	var calls []tlsCall
	for _, c := range before[1:] {
		cc := py.next(t, false)
		c.pid, c.measured = py.cmd.Process.Pid, &cc
		calls = append(calls, c)
	}
	for _, c := range []tlsCall{
		{client: "curl", api: "openai", model: "gpt-4o:curl-stream", stream: true},
		{client: "curl", api: "openai", model: "gpt-4o:curl-json"},
		{client: "curl", api: "anthropic", model: "claude:curl-stream", stream: true},
	} {
		cmd := run(t, "curl", "-sS", "--fail", "--http1.1", "--cacert", certFile, "-o", "/dev/null",
			"-H", "Content-Type: application/json", "--data-binary", c.body(), srv.url(c.path()))
		c.pid = cmd.Process.Pid
		calls = append(calls, c)
	}
	for _, c := range []tlsCall{
		{client: "node", api: "anthropic", model: "claude:node-stream", stream: true},
		{client: "node", api: "openai", model: "gpt-4o:node-stream", stream: true},
		{client: "node", api: "anthropic", model: "claude:node-json"},
	} {
		cmd := exec.Command("node", "testdata/stream_client.mjs", srv.url(c.path()), c.body())
		cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+certFile)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), `"status":200`) {
			t.Fatalf("node client: %v\n%s", err, out)
		}
		c.pid = cmd.Process.Pid
		calls = append(calls, c)
	}
	// HTTPS that is not an LLM call, from the same clients: no span.
	run(t, "curl", "-sS", "--fail", "--http1.1", "--cacert", certFile, "-o", "/dev/null", srv.url("/healthz"))

	spans := waitExactSpans(t, recv, srv.port, 2*len(calls)-1)
	for _, c := range calls {
		t.Run(c.client+" "+c.model, func(t *testing.T) { checkTLSCall(t, spans, srv, c) })
	}

	// The ciphertext of the captured connections never reached a decoder,
	// and nothing was lost on the way.
	// The exchange whose request the server was already reading when the
	// observer started is counted as joined midway, not lost silently.
	metrics := scrape(t, obs)
	if v := metricValue(metrics, "llm_observer_kernel_joined_midway_total"); v < 1 {
		t.Errorf("llm_observer_kernel_joined_midway_total = %v, want at least the python server's connection", v)
	}
	// (HTTP/2 counters are left out: the observer's OTLP export to this
	// test's receiver is gRPC, which the receiver's side shows as gRPC
	// streams ignored.)
	for _, line := range strings.Split(metrics, "\n") {
		if strings.Contains(line, `reason="http2_`) {
			continue
		}
		if strings.HasPrefix(line, "llm_observer_decode_losses_total") || strings.HasPrefix(line, "llm_observer_dropped_") ||
			strings.HasPrefix(line, "llm_observer_tls_no_socket_total") {
			if f := strings.Fields(line); len(f) == 2 && f[1] != "0" {
				t.Errorf("loss counted: %s", line)
			}
		}
	}

	// A process that exits lets the probes of its file go: node carries
	// OpenSSL in its executable, which is probed while node runs.
	idle := exec.Command("node", "-e", "setTimeout(() => {}, 2500)")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "node's executable probed", func() bool { return sslLinks(t) > baseLinks })
	idle.Wait()
	// They linger 3 s for a process of the same file to come, then go.
	waitFor(t, 10*time.Second, "node's probes removed after it exited", func() bool { return sslLinks(t) == baseLinks })

	// Killed without a chance to clean up, the observer leaves no probe:
	// the kernel frees them with its file descriptors.
	obs.cmd.Process.Signal(syscall.SIGKILL)
	obs.cmd.Wait()
	waitFor(t, 5*time.Second, "no TLS probe left after the observer was killed", func() bool { return sslLinks(t) == 0 && sslPrograms(t) == 0 })
}

func checkTLSCall(t *testing.T, spans []otlptest.Span, srv *tlsServer, c tlsCall) {
	operation := "chat"
	name := operation + " " + c.model
	client := findSpan(t, spans, name, tracepb.Span_SPAN_KIND_CLIENT)
	rec := srv.served(c.model)
	if client == nil || rec == nil {
		t.Fatalf("client span %v, server record %v", client != nil, rec != nil)
	}
	views := []*otlptest.Span{client}
	var server *otlptest.Span
	if !c.serverBlind {
		if server = findSpan(t, spans, name, tracepb.Span_SPAN_KIND_SERVER); server == nil {
			t.FailNow()
		}
		views = append(views, server)
		if pid, _ := server.Resource.Int("process.pid"); int(pid) != srv.cmd.Process.Pid {
			t.Errorf("server process.pid = %d, want the python server's %d", pid, srv.cmd.Process.Pid)
		}
		if server.TraceID != client.TraceID || server.ParentSpanID != client.SpanID {
			t.Errorf("server span (trace %s, parent %s) is not the child of the client span (trace %s, span %s)",
				server.TraceID, server.ParentSpanID, client.TraceID, client.SpanID)
		}
	}
	if got := client.Resource.Str("process.executable.name"); !strings.HasPrefix(got, c.client) {
		t.Errorf("client process.executable.name = %q, want %s", got, c.client)
	}
	if pid, _ := client.Resource.Int("process.pid"); int(pid) != c.pid {
		t.Errorf("client process.pid = %d, want %d", pid, c.pid)
	}
	w := wantCall{model: c.model, provider: "openai_compatible", port: srv.port, in: 11, out: 4, finish: []string{"stop"}, stream: c.stream}
	if c.api == "anthropic" {
		w.provider, w.in, w.finish = "anthropic", 13, []string{"end_turn"}
	}
	for _, sp := range views {
		// The client may see the first chunk later than the server's
		// pacing by the loopback and its own scheduling, bounded by its
		// own clock where it reports one.
		slack := 0.005
		if sp == client {
			slack = 0.010
			if c.stream && c.measured != nil && c.measured.FirstContent != nil {
				paced := rec.contentTimes[0].Sub(rec.arrived).Seconds()
				slack = max(slack, *c.measured.FirstContent-c.measured.Sent+0.002-paced)
			}
		}
		checkCallSpan(t, sp, w, rec, slack)
	}
}

// wantCall is what every span of one test call must say.
type wantCall struct {
	model, provider, port string
	in, out               int64
	finish                []string
	stream                bool
}

// checkCallSpan checks one view of a successful call against what the test
// server measured itself: model, provider, port, tokens, finish reasons, no
// error, the span around the server's arrival time, and for a stream a time
// to first chunk at the server's pacing, from 2 ms under it (the two clocks)
// to slack over it.
func checkCallSpan(t *testing.T, sp *otlptest.Span, w wantCall, rec *served, slack float64) {
	t.Helper()
	a := sp.Attributes
	if a.Str("gen_ai.request.model") != w.model || a.Str("gen_ai.provider.name") != w.provider {
		t.Errorf("%v: model/provider = %q/%q, want %q/%q", sp.Kind, a.Str("gen_ai.request.model"), a.Str("gen_ai.provider.name"), w.model, w.provider)
	}
	if p, _ := a.Int("server.port"); strconv.FormatInt(p, 10) != w.port {
		t.Errorf("%v: server.port = %d, want %s", sp.Kind, p, w.port)
	}
	checkTokens(t, sp.Kind.String(), a, "gen_ai.usage.input_tokens", w.in)
	checkTokens(t, sp.Kind.String(), a, "gen_ai.usage.output_tokens", w.out)
	if got := a.Strs("gen_ai.response.finish_reasons"); !slices.Equal(got, w.finish) {
		t.Errorf("%v: finish reasons %v, want %v", sp.Kind, got, w.finish)
	}
	if sp.Status == tracepb.Status_STATUS_CODE_ERROR || a.Str("error.type") != "" {
		t.Errorf("%v: status %v error.type %q", sp.Kind, sp.Status, a.Str("error.type"))
	}
	last := rec.arrived
	if n := len(rec.contentTimes); n > 0 {
		last = rec.contentTimes[n-1]
	}
	if sp.Start.After(rec.arrived.Add(clockSlack)) || sp.End.Before(last.Add(-clockSlack)) {
		t.Errorf("%v: span [%v, %v] does not contain the server's arrival %v and last chunk %v", sp.Kind, sp.Start, sp.End, rec.arrived, last)
	}
	if !w.stream {
		return
	}
	ttfc, ok := a.Float("gen_ai.response.time_to_first_chunk")
	if !ok {
		t.Errorf("%v: no gen_ai.response.time_to_first_chunk", sp.Kind)
		return
	}
	paced := rec.contentTimes[0].Sub(rec.arrived).Seconds()
	if lo, hi := paced-0.002, paced+slack; ttfc < lo || ttfc > hi {
		t.Errorf("%v: time_to_first_chunk %.4fs outside [%.4f, %.4f]; the server paced %.4fs", sp.Kind, ttfc, lo, hi, paced)
	}
}

// scrape returns the observer's /metrics text.
func scrape(t *testing.T, obs *observerProc) string {
	t.Helper()
	resp, err := http.Get("http://" + obs.health + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue reads one sample from Prometheus text; -1 when absent.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// tlsProgram says whether a kernel program name is one of the observer's TLS
// probes (the kernel keeps 15 bytes of a name).
func tlsProgram(name string) bool { return strings.HasPrefix(name, "ssl_") }

// sslLinks counts the kernel's links whose program is a TLS probe of an
// observer: the kernel's own list, not the observer's word.
func sslLinks(t *testing.T) int {
	t.Helper()
	n := 0
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue
		}
		prog, err := ebpf.NewProgramFromID(info.Program)
		if err != nil {
			continue
		}
		pi, err := prog.Info()
		prog.Close()
		if err == nil && tlsProgram(pi.Name) {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list the kernel's BPF links: %v", err)
	}
	return n
}

// sslPrograms counts the TLS probe programs loaded in the kernel.
func sslPrograms(t *testing.T) int {
	t.Helper()
	n := 0
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		pi, err := prog.Info()
		prog.Close()
		if err == nil && tlsProgram(pi.Name) {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
