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
	tb := startTLSBench(b, OpenSSL)
	libssl, err := systemLibSSL()
	if err != nil {
		b.Fatal(err)
	}
	port := strings.TrimPrefix(tb.startServer(b, "TLS_SERVER_UNPACED",
		exec.Command("python3", "../../e2e/testdata/tls_server.py", tb.cert, tb.key)), "listening ")
	sw := tb.uprobes(b, func() (io.Closer, error) { return tb.p.AttachOpenSSL(libssl, nil) })
	for _, w := range []struct {
		name, request string
	}{
		{"tls-llm-stream", `POST /v1/chat/completions {"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Name three prime numbers."}]}`},
		{"tls-other", "GET /healthz"},
	} {
		b.Run(w.name, func(b *testing.B) {
			b.StopTimer()
			client := startLoop(b, exec.Command("python3", "testdata/tls_loop_client.py", tb.cert, "127.0.0.1", port))
			reportInterleaved(b, interleave(b, sw, func() error { return client.call(w.request) }, nil, nil))
		})
	}
	tb.finish(b)
}

// BenchmarkGoTLSOverhead measures what the Go crypto/tls probes cost: the
// end-to-end tests' Go LLM server and Go client (built here), separate
// processes, one streamed call over HTTP/2 and TLS per operation, both
// ends probed, batches with and without the programs alternating.
//
//	sudo go test -run '^$' -bench GoTLSOverhead -benchtime 400x ./internal/capture
func BenchmarkGoTLSOverhead(b *testing.B) {
	tb := startTLSBench(b, GoTLS)
	bins := map[string]string{}
	for _, name := range []string{"h2server", "goclient"} {
		bins[name] = filepath.Join(tb.dir, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], "../../e2e/testdata/"+name).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	ports := strings.Fields(tb.startServer(b, "H2SERVER_UNPACED", exec.Command(bins["h2server"], tb.cert, tb.key)))
	if len(ports) != 3 {
		b.Fatalf("h2server said %q", ports)
	}
	url := "https://127.0.0.1:" + ports[1] + "/v1/chat/completions"
	sw := tb.uprobes(b, func() (io.Closer, error) {
		var atts multiCloser
		for _, bin := range []string{bins["h2server"], bins["goclient"]} {
			t, err := gobin.Inspect(bin)
			if err != nil {
				atts.Close()
				return nil, err
			}
			att, err := tb.p.AttachGoTLS(bin, t)
			if err != nil {
				atts.Close()
				return nil, err
			}
			atts = append(atts, att)
		}
		return atts, nil
	})
	b.Run("gotls-h2-llm-stream", func(b *testing.B) {
		b.StopTimer()
		client := startLoop(b, exec.Command(bins["goclient"], "-loop", "-ca", tb.cert, url,
			`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Name three prime numbers."}]}`))
		reportInterleaved(b, interleave(b, sw, func() error { return client.call("") }, nil, nil))
	})
	tb.finish(b)
}

// tlsBench is what both TLS benchmarks set up: the probe, a reader that
// counts the plaintext records of the source under test, and a certificate.
type tlsBench struct {
	p         *Probe
	dir       string
	cert, key string
	stop      context.CancelFunc
	records   chan int
}

func startTLSBench(b *testing.B, source Source) *tlsBench {
	if os.Geteuid() != 0 {
		b.Fatal("the TLS benchmarks attach eBPF programs and must run as root")
	}
	p, err := Load(Config{})
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	b.Cleanup(func() { p.Close() })
	tb := &tlsBench{p: p, dir: b.TempDir(), records: make(chan int, 1)}
	tb.cert, tb.key = filepath.Join(tb.dir, "cert.pem"), filepath.Join(tb.dir, "key.pem")
	gen := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
		"-keyout", tb.key, "-out", tb.cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
	if out, err := gen.CombinedOutput(); err != nil {
		b.Fatalf("openssl req: %v\n%s", err, out)
	}
	var ctx context.Context
	ctx, tb.stop = context.WithCancel(context.Background())
	b.Cleanup(tb.stop)
	go func() {
		n := 0
		p.Run(ctx, func(ev *Event) {
			if ev.Kind == Data && ev.Source == source {
				n++
			}
		})
		tb.records <- n
	}()
	return tb
}

// startServer runs a test LLM server streaming sseChunks events without
// pause (its unpaced variable set), and returns the line it printed first.
func (tb *tlsBench) startServer(b *testing.B, unpacedVar string, cmd *exec.Cmd) string {
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", unpacedVar, sseChunks))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening ") {
		b.Fatalf("test server said %q: %v", line, err)
	}
	return strings.TrimSpace(line)
}

// uprobes returns a switch that attaches the probes attach makes with the
// tracepoints, attached to start with.
func (tb *tlsBench) uprobes(b *testing.B, attach func() (io.Closer, error)) *uprobeSwitch {
	sw := &uprobeSwitch{attachSwitch: attachSwitch{p: tb.p, on: true}, attach: attach}
	if err := sw.attachUprobes(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sw.detachUprobes)
	return sw
}

// finish stops the reader and fails when the probes sent nothing: the
// benchmark would have measured the probes' absence.
func (tb *tlsBench) finish(b *testing.B) {
	settle()
	tb.stop()
	if n := <-tb.records; n == 0 {
		b.Fatal("the TLS probes sent no plaintext: the benchmark measured nothing")
	}
}

func reportInterleaved(b *testing.B, r interleaved) {
	b.ReportMetric(r.ratio, "with/without")
	b.ReportMetric(r.without, "without-ns/op")
	b.ReportMetric(r.with, "with-ns/op")
	b.ReportMetric(r.added, "added-ns/op")
}

// uprobeSwitch attaches and detaches uprobes with the tracepoints.
type uprobeSwitch struct {
	attachSwitch
	attach func() (io.Closer, error)
	att    io.Closer
}

func (s *uprobeSwitch) set(b *testing.B, on bool) {
	if s.on == on {
		return
	}
	if on {
		if err := s.attachUprobes(); err != nil {
			b.Fatal(err)
		}
	} else {
		s.detachUprobes()
	}
	s.attachSwitch.set(b, on)
}

func (s *uprobeSwitch) attachUprobes() error {
	att, err := s.attach()
	s.att = att
	return err
}

func (s *uprobeSwitch) detachUprobes() {
	if s.att != nil {
		s.att.Close()
		s.att = nil
	}
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	for _, c := range m {
		c.Close()
	}
	return nil
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

// loopClient is a client process making one call per line of its stdin.
type loopClient struct {
	in  io.Writer
	out *bufio.Reader
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
