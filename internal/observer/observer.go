// Package observer is the running agent's data path: it takes capture's
// events, keeps one HTTP decoder and one LLM-call assembler per tracked
// connection, attaches the identity of the process behind each connection,
// and hands every finished call to the exporter. It also frees the state of
// connections whose process has exited and counts everything it drops.
package observer

import (
	"context"
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
	// conns holds the newest connection on each fd: an fd names one socket
	// at a time, and the kernel numbers connections in the order it starts
	// tracking them.
	conns     map[pidFD]*conn
	resources map[int]*export.Process
	closed    lossTotals // loss counters of the connections closed so far
}

// pidFD is an fd of a process, which names one connection at a time.
type pidFD struct {
	pid uint32
	fd  int32
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
	return &Agent{
		cfg:       cfg,
		procs:     procs,
		identity:  identity,
		exp:       exp,
		conns:     map[pidFD]*conn{},
		resources: map[int]*export.Process{},
	}
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
	c := a.conns[pidFD{ev.Conn.PID, ev.Conn.FD}]
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
	proc := a.resource(int(ev.Conn.PID), ev.Comm)
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
	c.asm = genai.NewAssembler(&a.cfg.GenAI, ep, &callSink{a: a, proc: proc})
	c.dec = decode.NewConn(a.cfg.Limits, c.asm)
	a.conns[pidFD{ev.Conn.PID, ev.Conn.FD}] = c
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
	delete(a.conns, pidFD{c.key.PID, c.key.FD})
	a.stats.Conns.Add(-1)
}

// resource returns the exported identity of pid, looked up once.
func (a *Agent) resource(pid int, comm string) *export.Process {
	if r, ok := a.resources[pid]; ok {
		return r
	}
	r := a.identity(a.procs.Lookup(pid, comm))
	a.resources[pid] = r
	return r
}

// Sweep frees the connections and caches of processes that have exited, and
// returns their pids so the kernel side can forget them too.
func (a *Agent) Sweep(now time.Time) []uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	dead := map[int]bool{}
	for pid := range a.resources {
		if !a.procs.Alive(pid) {
			dead[pid] = true
		}
	}
	for k, c := range a.conns {
		if dead[int(k.pid)] {
			a.closeLocked(c, now)
		}
	}
	pids := make([]uint32, 0, len(dead))
	for pid := range dead {
		delete(a.resources, pid)
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
	for _, c := range a.conns {
		a.closeLocked(c, now)
	}
}

// Run drives the agent from a probe until ctx is done, sweeping exited
// processes on the side.
func (a *Agent) Run(ctx context.Context, p *capture.Probe) error {
	sweepCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(a.cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-sweepCtx.Done():
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
	}()
	err := p.Run(ctx, a.Handle)
	a.Close(time.Now())
	return err
}

// callSink binds an assembler's calls to the process they belong to.
type callSink struct {
	a    *Agent
	proc *export.Process
}

func (s *callSink) CallStarted(c *genai.Call) {
	s.a.stats.CallsStarted.Add(1)
	s.a.exp.CallStarted(s.proc, c)
}

func (s *callSink) CallEnded(c *genai.Call) {
	s.a.stats.CallsEnded.Add(1)
	if c.ErrorType != "" {
		s.a.stats.CallsFailed.Add(1)
	}
	if c.Truncated {
		s.a.stats.CallsTruncated.Add(1)
	}
	s.a.exp.CallEnded(s.proc, c)
}
