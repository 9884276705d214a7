package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkOverhead measures what the kernel side costs the application it
// watches: each workload runs the same operation without and with the
// programs attached, in alternating batches within one run, so that load
// from other work on the machine falls on both sides alike. The probe is
// loaded once, following this process's own sockets; a goroutine drains
// the ring and discards the events, as the agent's reader would.
//
// Reported per workload: with/without and added-ns/op (the medians over
// batch pairs of the ratio and of the difference of their ns/op), and
// without-ns/op and with-ns/op (medians over batches). The framework's own
// ns/op mixes both sides and is only a rough total.
//
// "Without" is the loaded probe with every tracepoint detached: once the
// last syscall tracepoint is gone the kernel takes its fast syscall path
// again, as if nothing were loaded (unless another tracer on the host holds
// one), and loading costs half a second that batches could not afford. Detaching waits for an RCU grace period
// per tracepoint, so the batches come in with-without-without-with order,
// one toggle per pair, and the toggles are not timed.
func BenchmarkOverhead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("BenchmarkOverhead attaches eBPF programs and must run as root (sudo go test -bench Overhead ./internal/capture)")
	}
	p, err := Load(Config{ObserveSelf: true})
	if err != nil {
		b.Fatalf("load: %v", err)
	}
	defer p.Close()

	// The probe follows every process on the host; only this one's
	// records say whether a workload was tracked.
	self := uint32(os.Getpid())
	var ours, ourBytes atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- p.Run(ctx, func(ev *Event) {
			if ev.Conn.PID == self {
				ours.Add(1)
				ourBytes.Add(uint64(len(ev.Data)))
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("run: %v", err)
		}
	}()

	sw := &attachSwitch{p: p, on: true}
	for _, w := range overheadWorkloads {
		b.Run(w.name, func(b *testing.B) {
			// Setting up and waiting for the ring are no part of an operation.
			b.StopTimer()
			op, fresh := w.setup(b)
			// Records of the previous workload may still be in flight.
			settle()
			ours.Store(0)
			ourBytes.Store(0)
			r := interleave(b, sw, op, fresh, w.check)
			settle()
			n, nb := ours.Load(), ourBytes.Load()
			if w.tracked {
				if want := r.withOps * w.minBytes; nb < want {
					b.Fatalf("tracked workload: %d records, %d bytes from %d ops, want at least %d bytes", n, nb, r.withOps, want)
				}
				b.ReportMetric(float64(n)/float64(r.withOps), "records/op")
				b.ReportMetric(float64(nb)/float64(r.withOps), "ring-bytes/op")
			} else if n != 0 {
				b.Fatalf("untracked workload produced %d records (%d bytes)", n, nb)
			}
			reportInterleaved(b, r)
		})
	}
	c, err := p.Counters()
	if err != nil {
		b.Fatal(err)
	}
	if c.RingFull != 0 || c.ConnMapFull != 0 || c.ActiveMapFull != 0 {
		b.Errorf("the kernel side lost data during the benchmark (counters are host-wide): %+v", c)
	}
}

// settle waits until records written so far have reached the handler: the
// reader drains on a timer when too little waits to wake it.
func settle() { time.Sleep(3 * defaultDrain) }

// overheadWorkload is one kind of traffic the observed application makes.
type overheadWorkload struct {
	name string
	// setup prepares the workload for one call of the sub-benchmark and
	// returns one operation, and fresh, which drops the connections the
	// operation keeps so that the next one makes new ones (nil when it
	// keeps none).
	setup func(b *testing.B) (op func() error, fresh func())
	// tracked workloads must reach the ring with at least minBytes per
	// operation; the others must not reach it at all.
	tracked  bool
	minBytes uint64
	// check inspects the kernel's state for this process after a batch
	// with the programs attached.
	check func(b *testing.B, v verdictCount)
}

var overheadWorkloads = []overheadWorkload{
	{name: "file", setup: fileWorkload},
	{name: "pipe", setup: pipeWorkload},
	{name: "tcp-other", setup: tcpWorkload(false), check: noneFollowed},
	{name: "tcp-other-dial", setup: tcpWorkload(true), check: noneFollowed},
	{name: "http-other", setup: httpOtherWorkload, check: func(b *testing.B, v verdictCount) {
		// Both ends of the keep-alive connection wait for a later request.
		if v.recheck < 2 || v.track != 0 {
			b.Fatalf("non-LLM HTTP: %d connections rechecked and %d tracked, want 2 and 0", v.recheck, v.track)
		}
	}},
	{name: "llm-stream", setup: llmStreamWorkload, tracked: true,
		// The response body crosses the ring at least twice: the server's
		// writes and the client's reads.
		minBytes: 2 * sseChunks * sseChunkBytes,
		check: func(b *testing.B, v verdictCount) {
			if v.track < 2 {
				b.Fatalf("LLM stream: %d connections tracked, want both ends", v.track)
			}
		}},
}

// noneFollowed: a connection that is not HTTP leaves the connection map on
// its first bytes.
func noneFollowed(b *testing.B, v verdictCount) {
	if v.track != 0 || v.recheck != 0 {
		b.Fatalf("non-HTTP TCP: %d tracked and %d rechecked connections remain", v.track, v.recheck)
	}
}

// fileWorkload writes 4 KiB to a regular file, going back to its start
// every MiB so that the writes stay in the page cache instead of growing
// the file through the benchmark.
func fileWorkload(b *testing.B) (func() error, func()) {
	f, err := os.Create(filepath.Join(b.TempDir(), "overhead"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	buf := bytes.Repeat([]byte("0123456789abcdef"), 4096/16)
	n := 0
	return func() error {
		if n++; n%256 == 0 {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
		}
		_, err := f.Write(buf)
		return err
	}, nil
}

// pipeWorkload writes 4 KiB into a pipe and reads it back: two calls on a
// descriptor that is not a socket.
func pipeWorkload(b *testing.B) (func() error, func()) {
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(); w.Close() })
	out := bytes.Repeat([]byte("0123456789abcdef"), 4096/16)
	in := make([]byte, len(out))
	return func() error {
		if _, err := w.Write(out); err != nil {
			return err
		}
		_, err := io.ReadFull(r, in)
		return err
	}, nil
}

// tcpMessage is 1 KiB of a binary protocol: nothing like a request line.
var tcpMessage = bytes.Repeat([]byte{0x00, 0x01, 0x7f, 'k', 'v', 0x10, 0xfe, 0x02}, 1024/8)

// tcpWorkload sends tcpMessage over loopback TCP to an echo server and
// reads the echo back: on one kept connection, or, with dial, on a new
// connection each time (which the kernel must classify and forget each
// time).
func tcpWorkload(dial bool) func(b *testing.B) (func() error, func()) {
	return func(b *testing.B) (func() error, func()) {
		addr := echoServer(b)
		in := make([]byte, len(tcpMessage))
		roundTrip := func(c net.Conn) error {
			if _, err := c.Write(tcpMessage); err != nil {
				return err
			}
			_, err := io.ReadFull(c, in)
			return err
		}
		if dial {
			return func() error {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer c.Close()
				return roundTrip(c)
			}, nil
		}
		var c net.Conn
		b.Cleanup(func() {
			if c != nil {
				c.Close()
			}
		})
		op := func() error {
			if c == nil {
				var err error
				if c, err = net.Dial("tcp", addr); err != nil {
					return err
				}
			}
			return roundTrip(c)
		}
		fresh := func() {
			if c != nil {
				c.Close()
				c = nil
			}
		}
		return op, fresh
	}
}

// echoServer returns the address of a loopback server that writes back
// whatever it reads. It copies through its own buffer: io.Copy between
// sockets would splice, and no read or write call would be seen.
func echoServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// pageHTML is the body of the non-LLM page, about the size of a small
// static page or a health-check answer.
var pageHTML = []byte("<!doctype html>\n<html><head><title>index</title></head><body>" +
	strings.Repeat("<p>nothing to see here</p>\n", 20) + "</body></html>\n")

// httpOtherWorkload fetches GET /index.html over a keep-alive connection
// with net/http: HTTP the kernel cannot dismiss, since a later request on
// the same connection could be an LLM call.
func httpOtherWorkload(b *testing.B) (func() error, func()) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(pageHTML)
	}))
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := srv.URL + "/index.html"
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != int64(len(pageHTML)) {
			err = fmt.Errorf("got %d bytes of the page, want %d", n, len(pageHTML))
		}
		return err
	}, tr.CloseIdleConnections
}

const (
	sseChunks     = 32
	sseChunkBytes = 100
)

// sseChunk is one chat-completions delta of sseChunkBytes, event framing
// included.
func sseChunk(i int) []byte {
	head := fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","choices":[{"delta":{"content":"%03d`, i)
	tail := `"}}]}` + "\n\n"
	return []byte(head + strings.Repeat("x", sseChunkBytes-len(head)-len(tail)) + tail)
}

// llmStreamWorkload posts a chat completion over a keep-alive connection
// and reads a response of sseChunks server-sent events, each flushed on
// its own as a model server does: traffic the kernel copies in full.
func llmStreamWorkload(b *testing.B) (func() error, func()) {
	var chunks [][]byte
	for i := range sseChunks {
		chunks = append(chunks, sseChunk(i))
	}
	var body []byte
	for _, c := range chunks {
		body = append(body, c...)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, c := range chunks {
			w.Write(c)
			f.Flush()
		}
	}))
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := srv.URL + "/v1/chat/completions"
	req := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Name three prime numbers."}]}`
	return func() error {
		resp, err := client.Post(url, "application/json", strings.NewReader(req))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, body) {
			return errors.New("the event stream arrived altered")
		}
		return nil
	}, tr.CloseIdleConnections
}

// switcher turns the programs of a benchmark on and off.
type switcher interface {
	set(b *testing.B, on bool)
	attached() bool
	probe() *Probe
}

// attachSwitch attaches and detaches the probe's tracepoints.
type attachSwitch struct {
	p  *Probe
	on bool
}

func (s *attachSwitch) attached() bool { return s.on }
func (s *attachSwitch) probe() *Probe  { return s.p }

func (s *attachSwitch) set(b *testing.B, on bool) {
	if s.on == on {
		return
	}
	if on {
		if err := s.p.attach(); err != nil {
			b.Fatal(err)
		}
	} else if err := detach(s.p); err != nil {
		b.Fatal(err)
	}
	s.on = on
}

// detach closes every tracepoint link, in parallel: each close waits for
// its own grace period, and together they wait for about one.
func detach(p *Probe) error {
	errs := make([]error, len(p.links))
	var wg sync.WaitGroup
	for i, l := range p.links {
		wg.Go(func() { errs[i] = l.Close() })
	}
	wg.Wait()
	p.links = nil
	return errors.Join(errs...)
}

type interleaved struct {
	ratio, added  float64 // medians over pairs
	without, with float64 // ns/op, medians over batches
	withOps       uint64  // operations run with the programs attached, warm-ups included
}

// interleave runs b.N operations in batch pairs, one batch without the
// programs and one with, the pair's order alternating so that each pair
// costs one toggle and slow drifts in machine load cancel out. Each batch
// starts untimed with fresh connections and one warm-up operation, so that
// connections are set up, and classified, under the batch's own state.
func interleave(b *testing.B, sw switcher, op func() error, fresh func(), check func(*testing.B, verdictCount)) interleaved {
	b.StopTimer()
	// Small b.N are the framework's trial runs: few pairs keep the
	// untimed detaching from dominating the benchmark's wall time.
	const maxPairs = 8
	pairs := min(maxPairs, max(1, b.N/100))
	per := max(1, b.N/(2*pairs))
	var (
		perOp   [2][]float64 // ns/op of each batch, by attached
		withOps uint64
	)
	mode := sw.attached()
	for i := range 2 * pairs {
		if i%2 == 1 {
			mode = !mode
		}
		if fresh != nil {
			// Before the toggle, so that connections are closed under the
			// state that opened them and leave no stale kernel entries.
			fresh()
		}
		sw.set(b, mode)
		if err := op(); err != nil {
			b.Fatalf("warm-up: %v", err)
		}
		n := per
		if i < b.N-2*pairs*per {
			n++ // spread the remainder so that b.N operations are timed
		}
		b.StartTimer()
		start := time.Now()
		for range n {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
		d := time.Since(start)
		b.StopTimer()
		perOp[b2i(mode)] = append(perOp[b2i(mode)], float64(d.Nanoseconds())/float64(n))
		if mode {
			withOps += uint64(n) + 1
			if check != nil {
				check(b, countVerdicts(b, sw.probe(), uint32(os.Getpid())))
			}
		}
	}
	if testing.Verbose() {
		// The spread between batches says how far to trust the medians.
		b.Logf("N=%d ns/op of each batch without: %.0f", b.N, perOp[0])
		b.Logf("N=%d ns/op of each batch with:    %.0f", b.N, perOp[1])
	}
	ratios := make([]float64, pairs)
	added := make([]float64, pairs)
	for i := range ratios {
		ratios[i] = perOp[1][i] / perOp[0][i]
		added[i] = perOp[1][i] - perOp[0][i]
	}
	return interleaved{
		ratio:   median(ratios),
		added:   median(added),
		without: median(perOp[0]),
		with:    median(perOp[1]),
		withOps: withOps,
	}
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// The kernel's per-connection verdicts (enum verdict in bpf/observer.c);
// the generator is not asked for them since only this test reads them.
const (
	verdictTrack   = 1
	verdictRecheck = 2
)

// verdictCount is how many of one process's connections the kernel follows
// in full and how many it rechecks on each buffer.
type verdictCount struct{ track, recheck int }

func countVerdicts(b *testing.B, p *Probe, pid uint32) verdictCount {
	var (
		key   observerConnKey
		state observerConnState
		v     verdictCount
	)
	it := p.objs.Conns.Iterate()
	for it.Next(&key, &state) {
		if key.Tgid != pid {
			continue
		}
		switch state.Verdict {
		case verdictTrack:
			v.track++
		case verdictRecheck:
			v.recheck++
		}
	}
	if err := it.Err(); err != nil {
		b.Fatalf("iterate connections: %v", err)
	}
	return v
}
