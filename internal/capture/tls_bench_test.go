package capture

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-observer/llm-observer/internal/gobin"
)

// BenchmarkTLSOverhead measures what the TLS probes cost HTTPS clients and
// servers, the way users run them: a python3 TLS server and a python3
// keep-alive client, separate processes on the system libssl, both ends
// observed. One operation is one call made by the client and answered by
// the server. As in BenchmarkOverhead, batches with and without the
// programs alternate in one run (without: the uprobes removed and the
// tracepoints detached).
//
//	sudo go test -run '^$' -bench TLSOverhead -benchtime 400x ./internal/capture
func BenchmarkTLSOverhead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("BenchmarkTLSOverhead attaches eBPF programs and must run as root")
	}
	p, err := Load(Config{})
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	defer p.Close()
	libssl, err := systemLibSSL()
	if err != nil {
		b.Fatal(err)
	}
	ctx, stopRun := context.WithCancel(context.Background())
	events := make(chan int, 1)
	var tlsRecords int
	go func() {
		p.Run(ctx, func(ev *Event) {
			if ev.Kind == Data && ev.Source == OpenSSL {
				tlsRecords++
			}
		})
		events <- tlsRecords
	}()
	defer stopRun()

	dir := b.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	gen := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
	if out, err := gen.CombinedOutput(); err != nil {
		b.Fatalf("openssl req: %v\n%s", err, out)
	}
	srv := exec.Command("python3", "../../e2e/testdata/tls_server.py", cert, key)
	srv.Env = append(os.Environ(), fmt.Sprintf("TLS_SERVER_UNPACED=%d", sseChunks))
	srvOut, err := srv.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line, err := bufio.NewReader(srvOut).ReadString('\n')
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		b.Fatalf("TLS server said %q: %v", line, err)
	}

	sw := &tlsSwitch{attachSwitch: attachSwitch{p: p, on: true}, path: libssl}
	if err := sw.attachTLS(); err != nil {
		b.Fatal(err)
	}
	defer sw.detachTLS()
	for _, w := range []struct {
		name, request string
	}{
		{"tls-llm-stream", `POST /v1/chat/completions {"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Name three prime numbers."}]}`},
		{"tls-other", "GET /healthz"},
	} {
		b.Run(w.name, func(b *testing.B) {
			b.StopTimer()
			client := startLoopClient(b, cert, port)
			op := func() error { return client.call(w.request) }
			r := interleave(b, sw, op, nil, nil)
			b.ReportMetric(r.ratio, "with/without")
			b.ReportMetric(r.without, "without-ns/op")
			b.ReportMetric(r.with, "with-ns/op")
			b.ReportMetric(r.added, "added-ns/op")
		})
	}
	settle()
	stopRun()
	if n := <-events; n == 0 {
		b.Fatal("the TLS probes sent no plaintext: the benchmark measured nothing")
	}
}

// tlsSwitch attaches and detaches the TLS probes with the tracepoints.
type tlsSwitch struct {
	attachSwitch
	path string
	att  io.Closer
}

func (s *tlsSwitch) set(b *testing.B, on bool) {
	if s.on == on {
		return
	}
	if on {
		if err := s.attachTLS(); err != nil {
			b.Fatal(err)
		}
	} else {
		s.detachTLS()
	}
	s.attachSwitch.set(b, on)
}

func (s *tlsSwitch) attachTLS() error {
	att, err := s.p.AttachOpenSSL(s.path, nil)
	s.att = att
	return err
}

func (s *tlsSwitch) detachTLS() {
	if s.att != nil {
		s.att.Close()
		s.att = nil
	}
}

// systemLibSSL finds the libssl the system's python3 loads.
func systemLibSSL() (string, error) {
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64"} {
		if m, _ := filepath.Glob(filepath.Join(dir, "libssl.so.3")); len(m) > 0 {
			return m[0], nil
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "libssl.so.1.1")); len(m) > 0 {
			return m[0], nil
		}
	}
	return "", fmt.Errorf("no system libssl.so.3 or libssl.so.1.1 found")
}

// loopClient is the python3 client, one call per line.
type loopClient struct {
	in  io.Writer
	out *bufio.Reader
}

func startLoopClient(b *testing.B, cert, port string) *loopClient {
	return startLoop(b, exec.Command("python3", "testdata/tls_loop_client.py", cert, "127.0.0.1", port))
}

// startLoop starts a client that makes one call per line of its stdin and
// answers each with a line "ok".
func startLoop(b *testing.B, cmd *exec.Cmd) *loopClient {
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &loopClient{in: in, out: bufio.NewReader(out)}
}

func (c *loopClient) call(request string) error {
	if _, err := io.WriteString(c.in, request+"\n"); err != nil {
		return err
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ok\n" {
		return fmt.Errorf("client: %s", strings.TrimSpace(line))
	}
	return nil
}

// BenchmarkGoTLSOverhead measures what the Go crypto/tls probes cost: the
// end-to-end tests' Go LLM server and Go client (built here), separate
// processes, one streamed call over HTTP/2 and TLS per operation, both
// ends probed, batches with and without the programs alternating.
//
//	sudo go test -run '^$' -bench GoTLSOverhead -benchtime 400x ./internal/capture
func BenchmarkGoTLSOverhead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("BenchmarkGoTLSOverhead attaches eBPF programs and must run as root")
	}
	dir := b.TempDir()
	bins := map[string]string{}
	for _, name := range []string{"h2server", "goclient"} {
		bins[name] = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], "../../e2e/testdata/"+name).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	p, err := Load(Config{})
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	defer p.Close()
	ctx, stopRun := context.WithCancel(context.Background())
	events := make(chan int, 1)
	var records int
	go func() {
		p.Run(ctx, func(ev *Event) {
			if ev.Kind == Data && ev.Source == GoTLS {
				records++
			}
		})
		events <- records
	}()
	defer stopRun()

	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	gen := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
	if out, err := gen.CombinedOutput(); err != nil {
		b.Fatalf("openssl req: %v\n%s", err, out)
	}
	srv := exec.Command(bins["h2server"], cert, key)
	srv.Env = append(os.Environ(), fmt.Sprintf("H2SERVER_UNPACED=%d", sseChunks))
	srvOut, err := srv.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line, err := bufio.NewReader(srvOut).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 {
		b.Fatalf("h2server said %q: %v", line, err)
	}
	url := "https://127.0.0.1:" + f[1] + "/v1/chat/completions"

	sw := &goTLSSwitch{attachSwitch: attachSwitch{p: p, on: true}, paths: []string{bins["h2server"], bins["goclient"]}}
	if err := sw.attachAll(); err != nil {
		b.Fatal(err)
	}
	defer sw.detachAll()
	b.Run("gotls-h2-llm-stream", func(b *testing.B) {
		b.StopTimer()
		cmd := exec.Command(bins["goclient"], "-loop", "-ca", cert, url,
			`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Name three prime numbers."}]}`)
		client := startLoop(b, cmd)
		r := interleave(b, sw, func() error { return client.call("") }, nil, nil)
		b.ReportMetric(r.ratio, "with/without")
		b.ReportMetric(r.without, "without-ns/op")
		b.ReportMetric(r.with, "with-ns/op")
		b.ReportMetric(r.added, "added-ns/op")
	})
	settle()
	stopRun()
	if n := <-events; n == 0 {
		b.Fatal("the Go TLS probes sent no plaintext: the benchmark measured nothing")
	}
}

// goTLSSwitch attaches and detaches the Go TLS probes with the tracepoints.
type goTLSSwitch struct {
	attachSwitch
	paths []string
	atts  []io.Closer
}

func (s *goTLSSwitch) set(b *testing.B, on bool) {
	if s.on == on {
		return
	}
	if on {
		if err := s.attachAll(); err != nil {
			b.Fatal(err)
		}
	} else {
		s.detachAll()
	}
	s.attachSwitch.set(b, on)
}

func (s *goTLSSwitch) attachAll() error {
	for _, path := range s.paths {
		t, err := gobin.Inspect(path)
		if err != nil {
			return err
		}
		att, err := s.p.AttachGoTLS(path, t)
		if err != nil {
			return err
		}
		s.atts = append(s.atts, att)
	}
	return nil
}

func (s *goTLSSwitch) detachAll() {
	for _, a := range s.atts {
		a.Close()
	}
	s.atts = nil
}
