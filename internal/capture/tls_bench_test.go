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
	cmd := exec.Command("python3", "testdata/tls_loop_client.py", cert, "127.0.0.1", port)
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
