// Package observer is the running agent's data path: it takes capture's
// events, keeps one HTTP decoder and one LLM-call assembler per tracked
// connection, attaches the identity of the process behind each connection,
// and hands every finished call to the exporter. It also frees the state of
// connections whose process has exited and counts everything it drops.
package observer

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/decode"
	"github.com/llm-observer/llm-observer/internal/discover"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// Exporter receives calls with the process that made or served them.
type Exporter interface {
	CallStarted(p *export.Process, c *genai.Call)
	CallEnded(p *export.Process, c *genai.Call)
}

// Identity turns a discovered process into the resource it reports under;
// the Kubernetes lookup plugs in here.
type Identity func(p *discover.Process) *export.Process

// Config tunes the data path.
type Config struct {
	Limits decode.Limits
	GenAI  genai.Options
	// SweepInterval is how often connections of exited processes are freed (default 5s).
	SweepInterval time.Duration
	// ExportQueue bounds the finished calls waiting for the exporter while
	// Run drives the agent (default 4096); past it calls are dropped and
	// counted rather than stall the ring reader.
	ExportQueue int
	// Verdict is told, for an HTTP/2 connection, whether it carries LLM
	// calls (decided from its first request's path against LLMPaths; gRPC
	// never), so the kernel stops sending the others. It must not block.
	Verdict  func(conn capture.ConnKey, keep bool)
	LLMPaths []string
	// MCPPaths are the MCP path prefixes, kept over HTTP/2 like LLMPaths
	// and handed to the assemblers; nil means genai.DefaultMCPPaths.
	MCPPaths []string
}

// Source is where the agent's events come from; capture's Probe is one.
type Source interface {
	// Run calls handle for each event until ctx is done.
	Run(ctx context.Context, handle func(*capture.Event)) error
	// ForgetExited frees the kernel state of processes alive says are gone.
	ForgetExited(alive func(pid uint32) bool) (int, error)
}

// Stats are the agent's running totals, for its own health metrics.
type Stats struct {
	Events          atomic.Uint64 // records handled
	DataBytes       atomic.Uint64 // payload bytes handed to decoders
	GapBytes        atomic.Uint64 // bytes the kernel skipped or lost, seen as offset jumps
	OverlapBytes    atomic.Uint64 // bytes delivered twice and dropped
	Conns           atomic.Int64  // connections followed now
	ConnsOpened     atomic.Uint64
	OpensMissed     atomic.Uint64 // data for a connection whose open record was lost
	StaleEvents     atomic.Uint64 // records of a connection already replaced on its fd, dropped
	LostUnknown     atomic.Uint64 // records after a kernel loss of unknown size
	HTTP2Dropped    atomic.Uint64 // HTTP/2 connections found not to carry LLM calls (gRPC, other paths)
	CallsStarted    atomic.Uint64
	CallsEnded      atomic.Uint64
	CallsFailed     atomic.Uint64 // calls that ended with an error type
	CallsTruncated  atomic.Uint64 // calls whose capture was incomplete
	RequestsIgnored atomic.Uint64 // HTTP requests on tracked connections that were not LLM calls
	// KernelConnsForgotten counts kernel connection states freed because
	// their process exited without closing them.
	KernelConnsForgotten atomic.Uint64
	SweepErrors          atomic.Uint64 // failed walks of the kernel's connection map
}

// Agent is the data path. Handle is called from one goroutine (the ring
// reader); Sweep may be called from another.
type Agent struct {
	cfg      Config
	procs    *discover.Table
	identity Identity
	exp      Exporter
	stats    Stats

	mu sync.Mutex
	// conns holds the newest connection on each handle: a source's handle
	// (an fd, an SSL*) names one connection at a time, and the kernel
	// numbers connections in the order it starts tracking them.
	conns     map[connRef]*conn
	resources map[int]*resource
	closing   bool       // Close ends the connections: the reader has stopped
	ex        handoff    // the way to the exporter, and its lag
	closed    lossTotals // loss counters of the connections closed so far
	samplers  []func() []SelfSample
}

// AddSamples adds measurements of another part of the agent (TLS probing,
// say) to its self-metrics. Call it before the agent runs.
func (a *Agent) AddSamples(f func() []SelfSample) { a.samplers = append(a.samplers, f) }

// connRef is a source's handle for a connection in a process: syscall
// bytes and TLS plaintext of one socket are separate streams with their own
// offsets and must never meet in one decoder.
type connRef struct {
	pid    uint32
	source capture.Source
	handle uint64
}

// http2Wanted decides from an HTTP/2 connection's first request whether it
// carries LLM calls, by the path prefixes the kernel applies to HTTP/1.1.
// A connection whose first request is elsewhere is dropped whole: the
// kernel cannot look at later requests on it, as it does over HTTP/1.1.
func (a *Agent) http2Wanted(path, contentType string) bool {
	if strings.HasPrefix(contentType, "application/grpc") {
		return false
	}
	for _, p := range a.cfg.LLMPaths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	for _, p := range a.cfg.MCPPaths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func refOf(k capture.ConnKey) connRef {
	return connRef{pid: k.PID, source: k.Source, handle: k.Handle}
}

type conn struct {
	key  capture.ConnKey
	dec  *decode.Conn
	asm  *genai.Assembler
	next [2]uint64
	seen [2]bool
}

// New builds an agent that resolves processes through procs and identity
// and exports to exp.
func New(cfg Config, procs *discover.Table, identity Identity, exp Exporter) *Agent {
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 5 * time.Second
	}
	if identity == nil {
		identity = DefaultIdentity
	}
	if len(cfg.LLMPaths) == 0 {
		cfg.LLMPaths = capture.DefaultPaths
	}
	if cfg.MCPPaths == nil {
		cfg.MCPPaths = genai.DefaultMCPPaths
	}
	cfg.GenAI.MCPPaths = cfg.MCPPaths
	if cfg.GenAI.MCPSessions == nil {
		// MCP answers of one session may come on another connection.
		cfg.GenAI.MCPSessions = genai.NewMCPSessions()
	}
	a := &Agent{
		cfg:       cfg,
		procs:     procs,
		identity:  identity,
		exp:       exp,
		conns:     map[connRef]*conn{},
		resources: map[int]*resource{},
	}
	a.samplers = append(a.samplers, a.lagSamples)
	return a
}

// DefaultIdentity names a process by the service name it gives itself, else
// by its executable.
func DefaultIdentity(p *discover.Process) *export.Process {
	name := p.ServiceName
	if name == "" {
		name = p.ExeName
	}
	return &export.Process{
		PID:            p.PID,
		StartTime:      p.StartTime,
		ExecutableName: p.ExeName,
		ExecutablePath: p.Exe,
		Command:        firstArg(p.Cmdline),
		ServiceName:    name,
	}
}

// firstArg is the command a process was started as. The rest of the command
// line stays on the host: it is where credentials get passed.
func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// Stats returns the agent's counters.
func (a *Agent) Stats() *Stats { return &a.stats }

// Handle processes one capture event.
func (a *Agent) Handle(ev *capture.Event) {
	a.stats.Events.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.conns[refOf(ev.Conn)]
	if c != nil && c.key.ID != ev.Conn.ID {
		if c.key.ID > ev.Conn.ID {
			// A late record of a connection a newer one has replaced.
			a.stats.StaleEvents.Add(1)
			return
		}
		// A newer connection on the fd: the older one lost its close
		// record (ring full, or the fd replaced without a close call).
		a.closeLocked(c, ev.Time)
		c = nil
	}
	switch ev.Kind {
	case capture.Open:
		if c != nil {
			// Another thread's bytes beat the open record into the ring:
			// the connection is the same, keep what it has decoded.
			return
		}
		c = a.open(ev)
		// The kernel counts both directions from zero when it starts
		// tracking, so a first record past zero follows lost ones.
		c.seen = [2]bool{true, true}
	case capture.Data:
		if c == nil {
			a.stats.OpensMissed.Add(1)
			c = a.open(ev)
		}
		a.feed(c, ev)
	case capture.Close:
		if c != nil {
			a.closeLocked(c, ev.Time)
		}
	}
}

func (a *Agent) open(ev *capture.Event) *conn {
	res := a.newResource(int(ev.Conn.PID), ev.Comm)
	ep := genai.Endpoint{ClientSide: ev.Role != capture.RoleServer}
	server, client := ev.Remote, ev.Local
	if ev.Role == capture.RoleServer {
		server, client = ev.Local, ev.Remote
	}
	if server.IsValid() {
		ep.ServerAddress = server.Addr().String()
		ep.ServerPort = int(server.Port())
	}
	if client.IsValid() {
		ep.ClientAddress = client.Addr().String()
		ep.ClientPort = int(client.Port())
	}
	c := &conn{key: ev.Conn}
	c.asm = genai.NewAssembler(&a.cfg.GenAI, ep, &callSink{a: a, res: res})
	c.dec = decode.NewConn(a.cfg.Limits, c.asm)
	if a.cfg.Verdict != nil {
		key := ev.Conn
		c.dec.OnHTTP2Request(func(_, path, contentType string) {
			keep := a.http2Wanted(path, contentType)
			if !keep {
				a.stats.HTTP2Dropped.Add(1)
			}
			a.cfg.Verdict(key, keep)
		})
	}
	a.conns[refOf(ev.Conn)] = c
	a.stats.Conns.Add(1)
	a.stats.ConnsOpened.Add(1)
	return c
}

// feed hands the bytes to the decoder in stream order, turning offset jumps
// into explicit skips so the decoder can stay in sync past lost bytes.
func (a *Agent) feed(c *conn, ev *capture.Event) {
	dir := decode.Egress
	if ev.Dir == capture.Ingress {
		dir = decode.Ingress
	}
	i := int(dir)
	data := ev.Data
	if !c.seen[i] {
		// The first record of a direction starts the stream wherever it is.
		c.seen[i] = true
		c.next[i] = ev.Offset
	}
	if ev.Lost {
		// The kernel lost bytes before this record without knowing how
		// many: the offsets cannot say where the stream resumes.
		a.stats.LostUnknown.Add(1)
		c.dec.Desync(dir, ev.Time)
	}
	switch {
	case ev.Offset > c.next[i]:
		gap := ev.Offset - c.next[i]
		a.stats.GapBytes.Add(gap)
		c.dec.Skip(dir, ev.Time, int(gap))
	case ev.Offset < c.next[i]:
		dup := c.next[i] - ev.Offset
		if dup >= uint64(len(data)) {
			a.stats.OverlapBytes.Add(uint64(len(data)))
			return
		}
		a.stats.OverlapBytes.Add(dup)
		data = data[dup:]
	}
	c.next[i] = ev.Offset + uint64(len(ev.Data))
	if len(data) > 0 {
		a.stats.DataBytes.Add(uint64(len(data)))
		c.dec.Feed(dir, ev.Time, data)
	}
}

func (a *Agent) closeLocked(c *conn, t time.Time) {
	c.dec.Close(t)
	// Exchanges the decoder could not end (no request seen whole) still
	// owe their calls an end.
	c.asm.Close()
	a.closed.add(c)
	a.stats.RequestsIgnored.Add(uint64(c.asm.Stats().Ignored))
	delete(a.conns, refOf(c.key))
	a.stats.Conns.Add(-1)
}

// Sweep frees the connections and caches of processes that have exited, and
// returns their pids so the kernel side can forget them too. It reads /proc
// without holding the lock that Handle takes, so the reader does not wait
// on it.
func (a *Agent) Sweep(now time.Time) []uint32 {
	a.mu.Lock()
	known := make([]int, 0, len(a.resources))
	for pid := range a.resources {
		known = append(known, pid)
	}
	a.mu.Unlock()
	dead := map[int]bool{}
	for _, pid := range known {
		if !a.procs.Alive(pid) {
			dead[pid] = true
		}
	}
	if len(dead) == 0 {
		return nil
	}
	a.mu.Lock()
	for k, c := range a.conns {
		if dead[int(k.pid)] {
			a.closeLocked(c, now)
		}
	}
	for pid := range dead {
		delete(a.resources, pid)
	}
	a.mu.Unlock()
	pids := make([]uint32, 0, len(dead))
	for pid := range dead {
		a.procs.Forget(pid)
		pids = append(pids, uint32(pid))
	}
	return pids
}

// Close ends every open connection, so calls still in flight are exported
// as cut rather than lost.
func (a *Agent) Close(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closing = true
	for _, c := range a.conns {
		a.closeLocked(c, now)
	}
}

// Run drives the agent from a source until ctx is done. Its goroutines:
// one reads the source and decodes (Handle), on a thread of its own at a
// raised priority; one exports finished calls from a bounded queue; one
// resolves newly seen processes; one sweeps exited processes. On return
// every call still open has been ended and handed to the exporter.
func (a *Agent) Run(ctx context.Context, p Source) error {
	if r, ok := p.(ringBacklog); ok {
		a.ex.ring.Store(r)
	}
	stopExport := a.startExport()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	var sweeper sync.WaitGroup
	sweeper.Go(func() { a.sweepLoop(sweepCtx, p) })
	read := make(chan error, 1)
	go func() {
		raised, restore := raiseReaderPriority()
		a.ex.readerRaised.Store(raised)
		err := p.Run(ctx, a.Handle)
		restore()
		read <- err
	}()
	err := <-read
	stopSweep()
	sweeper.Wait()
	a.Close(time.Now())
	stopExport()
	return err
}

func (a *Agent) sweepLoop(ctx context.Context, p Source) {
	t := time.NewTicker(a.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.Sweep(now)
			n, err := p.ForgetExited(func(pid uint32) bool { return a.procs.Alive(int(pid)) })
			a.stats.KernelConnsForgotten.Add(uint64(n))
			if err != nil {
				a.stats.SweepErrors.Add(1)
			}
		}
	}
}
