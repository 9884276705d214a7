package observer

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// defaultExportQueue bounds the calls waiting for the exporter. A call
// without content is a few hundred bytes, so a full queue stays a few MB;
// at 1,000 calls/s it is four seconds of an exporter that stopped.
const defaultExportQueue = 4096

// handoff carries calls from the goroutine that drains the ring to the
// exporter's goroutine, so that the reader never waits on export, pairing,
// redaction or console output, nor on /proc when a process is first seen.
// While Run is not driving the agent (tests, benchmarks) calls go to the
// exporter directly, on the caller's goroutine.
type handoff struct {
	queue   chan exportItem // nil outside Run; set and cleared under Agent.mu
	lookups chan *resource  // processes to resolve ahead of their first call

	queueFull     atomic.Uint64 // call ends dropped: the queue was full
	startsSkipped atomic.Uint64 // call starts not queued; their ends still are
	delayNanos    atomic.Uint64 // sum over exported calls of the delay below
	delayMax      windowMax     // last byte of a response (kernel time) to its call handed to the exporter
	ring          atomic.Value  // ringBacklog of the source Run reads, once it runs
	readerRaised  atomic.Bool   // the reader's thread runs at readerNice
}

// exportItem is one call start or end on its way to the exporter.
type exportItem struct {
	res   *resource
	call  *genai.Call
	ended bool
}

// ringBacklog is what a source can tell of records waiting for the reader;
// *capture.Probe has it.
type ringBacklog interface{ RingPending() int }

// resource is the exported identity of a process, resolved once and off
// the reader: reading /proc and asking Kubernetes take far longer than a
// ring record's worth of time.
type resource struct {
	pid  int
	comm string
	once sync.Once
	p    *export.Process
}

// resolve returns r's identity, looking it up on first use; concurrent
// callers wait for the one lookup.
func (a *Agent) resolve(r *resource) *export.Process {
	r.once.Do(func() { r.p = a.identity(a.procs.Lookup(r.pid, r.comm)) })
	return r.p
}

// startExport starts the exporter and process-lookup goroutines and routes
// calls through the queue until the returned stop is called. stop waits
// for every queued call to reach the exporter.
func (a *Agent) startExport() (stop func()) {
	n := a.cfg.ExportQueue
	if n <= 0 {
		n = defaultExportQueue
	}
	q := make(chan exportItem, n)
	lookups := make(chan *resource, 256)
	var wg sync.WaitGroup
	wg.Go(func() {
		for it := range q {
			a.export(it)
		}
	})
	wg.Go(func() {
		for r := range lookups {
			a.resolve(r)
		}
	})
	a.mu.Lock()
	a.ex.queue, a.ex.lookups = q, lookups
	a.mu.Unlock()
	return func() {
		a.mu.Lock()
		a.ex.queue, a.ex.lookups = nil, nil
		a.mu.Unlock()
		close(q)
		close(lookups)
		wg.Wait()
	}
}

func (a *Agent) export(it exportItem) {
	p := a.resolve(it.res)
	if !it.ended {
		a.exp.CallStarted(p, it.call)
		return
	}
	end := it.call.End
	a.exp.CallEnded(p, it.call)
	if !end.IsZero() {
		now := time.Now()
		d := max(now.Sub(end), 0)
		a.ex.delayNanos.Add(uint64(d))
		a.ex.delayMax.observe(d.Seconds(), now)
	}
}

// newResource returns the identity slot of pid, creating it on first
// sight and asking the lookup goroutine to fill it, without waiting.
// Called with a.mu held.
func (a *Agent) newResource(pid int, comm string) *resource {
	if r, ok := a.resources[pid]; ok {
		return r
	}
	r := &resource{pid: pid, comm: comm}
	a.resources[pid] = r
	if a.ex.lookups != nil {
		select {
		case a.ex.lookups <- r:
		default: // the exporter resolves it when the first call needs it
		}
	}
	return r
}

// callSink binds an assembler's calls to the process they belong to and
// hands them to the exporter. Its methods run with Agent.mu held: from
// Handle on the reader, or from Sweep and Close.
type callSink struct {
	a   *Agent
	res *resource
}

func (s *callSink) CallStarted(c *genai.Call) {
	a := s.a
	a.stats.CallsStarted.Add(1)
	if a.ex.queue == nil {
		a.exp.CallStarted(a.resolve(s.res), c)
		return
	}
	select {
	case a.ex.queue <- exportItem{res: s.res, call: startSnapshot(c)}:
	default:
		a.ex.startsSkipped.Add(1)
	}
}

func (s *callSink) CallEnded(c *genai.Call) {
	a := s.a
	a.stats.CallsEnded.Add(1)
	if c.ErrorType != "" {
		a.stats.CallsFailed.Add(1)
	}
	if c.Truncated {
		a.stats.CallsTruncated.Add(1)
	}
	if a.ex.queue == nil {
		a.exp.CallEnded(a.resolve(s.res), c)
		return
	}
	it := exportItem{res: s.res, call: c, ended: true}
	if a.closing {
		// Shutdown: the reader has stopped, so waiting costs no records.
		a.ex.queue <- it
		return
	}
	select {
	case a.ex.queue <- it:
	default:
		a.ex.queueFull.Add(1)
	}
}

// startSnapshot is what the exporter may read of a call at its start while
// the assembler goes on filling the call: a copy without the containers
// the response fills, which the start does not use.
func startSnapshot(c *genai.Call) *genai.Call {
	s := *c
	s.RateLimit, s.FinishReasons, s.ToolCalls, s.ContentChunks, s.OutputMessages = nil, nil, nil, nil, nil
	return &s
}

// windowMax is the largest value observed over the last one to two
// windows: a level that a scrape can read without resetting it for the
// next reader.
type windowMax struct {
	mu        sync.Mutex
	start     time.Time
	cur, prev float64
}

const lagWindow = 15 * time.Second

func (w *windowMax) observe(v float64, now time.Time) {
	w.mu.Lock()
	w.rotate(now)
	w.cur = math.Max(w.cur, v)
	w.mu.Unlock()
}

func (w *windowMax) read(now time.Time) float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotate(now)
	return math.Max(w.cur, w.prev)
}

func (w *windowMax) rotate(now time.Time) {
	switch age := now.Sub(w.start); {
	case age < lagWindow:
	case age < 2*lagWindow:
		w.prev, w.cur, w.start = w.cur, 0, now
	default:
		w.prev, w.cur, w.start = 0, 0, now
	}
}
