package observer

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/discover"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// gateExporter blocks in CallEnded until its gate opens, as an exporter
// stuck on a slow collector or a console on a full pipe would; it reads
// every field of the calls it gets, so the race detector sees any field
// the assembler still writes.
type gateExporter struct {
	gate    chan struct{}
	mu      sync.Mutex
	started int
	ended   int
	order   []string // "start"/"end" per call key, in arrival order
}

func (g *gateExporter) CallStarted(_ *export.Process, c *genai.Call) {
	_ = fmt.Sprintf("%+v", *c)
	g.mu.Lock()
	g.started++
	g.order = append(g.order, "start "+c.Endpoint.ClientAddress+fmt.Sprint(c.Endpoint.ClientPort))
	g.mu.Unlock()
}

func (g *gateExporter) CallEnded(_ *export.Process, c *genai.Call) {
	<-g.gate
	_ = fmt.Sprintf("%+v", *c)
	g.mu.Lock()
	g.ended++
	g.order = append(g.order, "end "+c.Endpoint.ClientAddress+fmt.Sprint(c.Endpoint.ClientPort))
	g.mu.Unlock()
}

// connKey is the i-th of distinct connections of this process.
func connKey(i int) capture.ConnKey {
	return capture.ConnKey{PID: uint32(os.Getpid()), FD: int32(10 + i), Handle: uint64(10 + i), ID: uint64(i + 1)}
}

func newGatedAgent(t *testing.T, queue int, identity Identity) (*Agent, *gateExporter) {
	t.Helper()
	procs, err := discover.NewTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	exp := &gateExporter{gate: make(chan struct{})}
	return New(Config{ExportQueue: queue}, procs, identity, exp), exp
}

// handleAll feeds the records and fails if that takes longer than a
// reader may wait.
func handleAll(t *testing.T, a *Agent, evs []capture.Event) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		for i := range evs {
			a.Handle(&evs[i])
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Handle blocked: the reader waited on the exporter")
	}
}

func TestExportQueueFullDropsInsteadOfBlocking(t *testing.T) {
	for _, tc := range []struct {
		name  string
		queue int
		calls int
	}{
		{"queue smaller than the burst", 2, 10},
		{"queue holds the burst", 64, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, exp := newGatedAgent(t, tc.queue, nil)
			stop := a.startExport()
			t0 := time.Now()
			var evs []capture.Event
			for i := range tc.calls {
				evs = append(evs, conversation(connKey(i), t0)...)
			}
			handleAll(t, a, evs)
			close(exp.gate)
			stop()

			ended := a.Stats().CallsEnded.Load()
			dropped := a.ex.queueFull.Load()
			if ended != uint64(tc.calls) {
				t.Fatalf("%d calls assembled, want %d", ended, tc.calls)
			}
			if uint64(exp.ended)+dropped != ended {
				t.Errorf("%d calls exported + %d dropped != %d assembled", exp.ended, dropped, ended)
			}
			if wantDrops := tc.calls > tc.queue; (dropped > 0) != wantDrops {
				t.Errorf("dropped %d calls with a queue of %d for %d calls", dropped, tc.queue, tc.calls)
			}
			if uint64(exp.started)+a.ex.startsSkipped.Load() != a.Stats().CallsStarted.Load() {
				t.Errorf("%d starts exported + %d skipped != %d started", exp.started, a.ex.startsSkipped.Load(), a.Stats().CallsStarted.Load())
			}
			samples := map[string]float64{}
			for _, s := range a.lagSamples() {
				samples[s.Name+s.Reason] = s.Value
			}
			if got := samples["llm_observer.dropped.callsexport_queue_full"]; got != float64(dropped) {
				t.Errorf("self-metric says %v calls dropped, the agent counted %d", got, dropped)
			}
		})
	}
}

// A call's end reaches the exporter after its start, through the queue.
func TestExportKeepsStartBeforeEnd(t *testing.T) {
	a, exp := newGatedAgent(t, 64, nil)
	close(exp.gate)
	stop := a.startExport()
	// Records a second old, so the delay to export is measurable.
	t0 := time.Now().Add(-2 * time.Second)
	var evs []capture.Event
	for i := range 5 {
		evs = append(evs, conversation(connKey(i), t0)...)
	}
	handleAll(t, a, evs)
	stop()
	seen := map[string]bool{}
	for _, o := range exp.order {
		var kind, key string
		fmt.Sscan(o, &kind, &key)
		if kind == "end" && !seen[key] {
			t.Fatalf("call %s ended before it started: %v", key, exp.order)
		}
		seen[key] = true
	}
	if exp.ended != 5 {
		t.Fatalf("%d calls exported, want 5", exp.ended)
	}
	if d := a.ex.delayNanos.Load(); d == 0 {
		t.Error("no export delay measured")
	}
}

// The first record of a new process must not wait for /proc or Kubernetes.
func TestProcessLookupOffTheReader(t *testing.T) {
	release := make(chan struct{})
	var looked sync.WaitGroup
	looked.Add(1)
	identity := func(p *discover.Process) *export.Process {
		<-release
		defer looked.Done()
		return DefaultIdentity(p)
	}
	a, exp := newGatedAgent(t, 64, identity)
	close(exp.gate)
	stop := a.startExport()
	handleAll(t, a, conversation(capture.ConnKey{PID: uint32(os.Getpid()), FD: 7, ID: 1}, time.Now()))
	close(release)
	looked.Wait()
	stop()
	if exp.ended != 1 {
		t.Fatalf("%d calls exported, want 1", exp.ended)
	}
}

func TestWindowMax(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		obs    []float64 // observed at t0, t0+1s, …
		readAt time.Duration
		want   float64
	}{
		{"largest of the window", []float64{0.2, 0.9, 0.1}, 3 * time.Second, 0.9},
		{"kept through the next window", []float64{0.9}, lagWindow + time.Second, 0.9},
		{"gone after two windows", []float64{0.9}, 2*lagWindow + time.Second, 0},
		{"nothing observed", nil, time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := windowMax{start: t0}
			for i, v := range tc.obs {
				w.observe(v, t0.Add(time.Duration(i)*time.Second))
			}
			if got := w.read(t0.Add(tc.readAt)); got != tc.want {
				t.Errorf("read %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkSelfSamples is one read of every self-metric with 2,000
// connections open, as a /metrics scrape does on a busy node: the part that
// holds the agent's lock is time the ring reader waits.
func BenchmarkSelfSamples(b *testing.B) {
	procs, err := discover.NewTable("/proc")
	if err != nil {
		b.Fatal(err)
	}
	a := New(Config{}, procs, nil, &countingExporter{})
	t0 := time.Now()
	for i := range 2000 {
		evs := conversation(connKey(i), t0)
		for j := range evs[:3] { // open, request, response head: in flight
			a.Handle(&evs[j])
		}
	}
	if n := a.Stats().Conns.Load(); n != 2000 {
		b.Fatalf("%d connections open, want 2000", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		SelfSamples(a, nil)
	}
}

// prioritySource records the scheduling priority its reader runs at.
type prioritySource struct{ nice int }

func (s *prioritySource) Run(context.Context, func(*capture.Event)) error {
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		return err
	}
	s.nice = 20 - prio // the system call answers 20 - nice
	return nil
}

func (*prioritySource) ForgetExited(func(uint32) bool) (int, error) { return 0, nil }

// The ring reader runs at a raised priority when allowed, and no thread
// keeps that priority once it has returned.
func TestReaderPriority(t *testing.T) {
	a, exp := newGatedAgent(t, 16, nil)
	close(exp.gate)
	src := &prioritySource{}
	if err := a.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	want, raised := 0, os.Geteuid() == 0
	if raised {
		want = readerNice
	}
	if src.nice != want || a.ex.readerRaised.Load() != raised {
		t.Fatalf("reader ran at nice %d (raised %v), want %d (%v)", src.nice, a.ex.readerRaised.Load(), want, raised)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := threadsAtNice(t, readerNice)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d threads still at nice %d after Run returned", n, readerNice)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// threadsAtNice counts this process's threads at the given nice value.
func threadsAtNice(t *testing.T, nice int) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 16 && f[16] == strconv.Itoa(nice) {
			n++
		}
	}
	return n
}

// BenchmarkHandoff is what handing a call to the exporter costs the ring
// reader: a snapshot of the call at its start and two queue sends, against
// calling an exporter that does nothing directly. Whatever the real
// exporter spends happens on its own goroutine.
func BenchmarkHandoff(b *testing.B) {
	procs, err := discover.NewTable("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, queued := range []bool{false, true} {
		b.Run(fmt.Sprintf("queued=%v", queued), func(b *testing.B) {
			exp := &countingExporter{}
			a := New(Config{}, procs, nil, exp)
			if queued {
				defer a.startExport()()
			}
			sink := &callSink{a: a, res: a.newResource(os.Getpid(), "bench")}
			call := &genai.Call{Operation: "chat", Provider: "openai", RequestModel: "gpt-4o-mini", Stream: true,
				InputMessages: make([]genai.Message, 2), FinishReasons: []string{"stop"}, End: time.Now()}
			b.ReportAllocs()
			for b.Loop() {
				a.mu.Lock()
				sink.CallStarted(call)
				sink.CallEnded(call)
				a.mu.Unlock()
			}
		})
	}
}
