// Package capture loads the observer's kernel programs, attaches them to the
// syscall tracepoints and, on request, to TLS libraries, and turns the ring
// buffer's raw records into typed Events: connection opens and closes with
// their addresses and role, the bytes of both directions of each tracked
// connection with wall-clock times and byte offsets, each from one source
// (socket system calls, or a TLS library's plaintext), and notices of
// processes that exec or start speaking TLS. It knows nothing of HTTP; the
// kernel-side loss counters are read here too.
package capture

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Kind is what an Event reports.
type Kind uint8

const (
	// Data carries bytes of one direction of a connection.
	Data Kind = Kind(observerEventKindKIND_DATA)
	// Open reports a connection that started being tracked, with its addresses.
	Open Kind = Kind(observerEventKindKIND_OPEN)
	// Close reports that the process closed a tracked connection.
	Close Kind = Kind(observerEventKindKIND_CLOSE)
	// Exec is a notice (RunNotices) that a process called exec: it may now
	// map TLS libraries that need probes.
	Exec Kind = Kind(observerEventKindKIND_EXEC)
	// TLSSeen is a notice, once per process, that it made a TLS connection.
	TLSSeen Kind = Kind(observerEventKindKIND_TLS_SEEN)
)

// Direction is the way bytes went, seen from the observed process.
type Direction uint8

const (
	// Egress bytes were written by the process.
	Egress Direction = Direction(observerDirectionDIR_EGRESS)
	// Ingress bytes were read by the process.
	Ingress Direction = Direction(observerDirectionDIR_INGRESS)
)

// Role says which end of a connection the observed process is.
type Role uint8

const (
	// RoleUnknown: the connection predates the observer and no request was seen yet.
	RoleUnknown Role = Role(observerRoleROLE_UNKNOWN)
	// RoleClient: the process connected, or wrote the first request.
	RoleClient Role = Role(observerRoleROLE_CLIENT)
	// RoleServer: the process accepted, or read the first request.
	RoleServer Role = Role(observerRoleROLE_SERVER)
)

// Source is the hook that saw the bytes.
type Source uint8

const (
	// Syscall bytes were seen at the socket system calls (plaintext).
	Syscall Source = Source(observerEventSourceSOURCE_SYSCALL)
	// OpenSSL bytes are the plaintext of OpenSSL's SSL_read and SSL_write.
	OpenSSL Source = Source(observerEventSourceSOURCE_OPENSSL)
	// GoTLS bytes are the plaintext of Go's crypto/tls.
	GoTLS Source = Source(observerEventSourceSOURCE_GOTLS)
)

// String names the source as it appears in metrics.
func (s Source) String() string {
	switch s {
	case Syscall:
		return "syscall"
	case OpenSSL:
		return "openssl"
	case GoTLS:
		return "gotls"
	}
	return "unknown"
}

// ConnKey identifies a tracked connection for as long as the observer runs.
// Each source keys its connections by its own Handle (the fd for system
// calls, the SSL* for OpenSSL); ID tells apart connections that reused a
// handle. FD is the connection's socket, or -1 when a TLS connection's
// socket is not known.
type ConnKey struct {
	PID    uint32
	FD     int32
	ID     uint64
	Source Source
	Handle uint64
}

// Event is one record from the kernel.
type Event struct {
	Kind   Kind
	Conn   ConnKey
	TID    uint32
	Comm   string
	Time   time.Time // write entry for Egress, read exit for Ingress
	Dir    Direction
	Source Source
	Role   Role
	// Offset is the position of Data in its direction's byte stream since
	// tracking began; a jump between records means bytes were lost.
	Offset uint64
	// Data is only valid until the handler returns.
	Data []byte
	// Truncated: the kernel copied no more of this buffer after Data.
	Truncated bool
	// Fault: the kernel could not read the buffer; Len bytes were lost.
	Fault bool
	// Lost: bytes of this direction were lost before Data, how many is not
	// known, so the stream cannot be resumed at Offset as if whole.
	Lost bool
	// Local and Remote are set on Open.
	Local, Remote netip.AddrPort
}

// Config tunes what the kernel tracks and how it hands records over.
type Config struct {
	// Paths are request-path prefixes that mark a connection as LLM traffic
	// (at most 32, each at most 48 bytes). Empty means DefaultPaths.
	Paths []string
	// Ports mark every connection to or from them as LLM traffic.
	Ports []uint16
	// RingBytes is the ring buffer size, a power of two (default 4 MiB).
	RingBytes int
	// WakeupBytes is how much must wait in the ring before the reader is
	// woken (default 256 KiB); below it the reader drains on DrainInterval.
	WakeupBytes int
	// DrainInterval is how often the reader drains without a wake-up (default 20ms).
	DrainInterval time.Duration
	// ObserveSelf also follows the observer's own connections; only
	// benchmarks that measure the overhead in one process want it.
	ObserveSelf bool
	// FilterTLS makes the TLS probes follow only the processes passed to
	// AllowTLS; otherwise they follow every process.
	FilterTLS bool
}

// DefaultPaths are the request-path prefixes of the LLM APIs recognised by
// default: Ollama native, OpenAI and its many compatible servers, Anthropic,
// Gemini, llama.cpp, Azure OpenAI and the Amazon Bedrock runtime
// (/model/{id}/converse and the like).
var DefaultPaths = []string{
	"/api/chat", "/api/generate", "/api/embed",
	"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
	"/v1/messages", "/v1beta/models/", "/v1/models/",
	"/completion", "/chat/completions", "/embeddings", "/openai/deployments/",
	"/model/",
}

// DefaultRingBytes is the ring buffer size when Config.RingBytes is zero.
const DefaultRingBytes = defaultRing

const (
	maxPaths     = 32
	maxPathLen   = 48
	headerSize   = int(unsafe.Sizeof(observerEvent{}))
	connInfoSize = int(unsafe.Sizeof(observerConnInfo{}))
	// The reader drains the ring every DrainInterval and keeps up at every
	// load bench/load makes: the most ever waiting there was about 0.5 MiB
	// (1,000 concurrent streams); 256 KiB waiting wakes it early.
	// Bigger costs memory twice over in RSS: the kernel maps the ring's
	// pages twice so that no record wraps.
	defaultRing   = 4 << 20
	defaultWakeup = 256 << 10
	defaultDrain  = 20 * time.Millisecond
)

// inFlightEntries, when set, replaces the size of the map of system calls
// in flight, so that tests can fill it; it implies inFlightHash.
var inFlightEntries uint32

// inFlightHash keeps system calls in flight in the hash map even where the
// kernel offers task storage, so that tests and benchmarks reach both.
var inFlightHash bool

// taskStorageOffered says whether tracepoint programs may call
// bpf_task_storage_get here. Task storage maps exist since Linux 5.11, but
// programs other than fentry/fexit and LSM got the helper later; where it
// is refused the programs keep their in-flight calls in a hash map.
func taskStorageOffered() bool {
	return features.HaveProgramHelper(ebpf.TracePoint, asm.FnTaskStorageGet) == nil
}

// Probe is the loaded and attached kernel side.
type Probe struct {
	objs   observerObjects
	links  []link.Link
	reader *ringbuf.Reader
	drain  time.Duration
	clock  *clock

	// taskStorage: system calls in flight wait in task storage rather
	// than in the active hash.
	taskStorage bool

	goSlots goSlots

	lastCommRaw [16]int8 // only touched by Run's goroutine
	lastComm    string

	waiter atomic.Pointer[ringWaiter] // Run's, while it runs

	mu     sync.Mutex
	closed bool
}

// Load loads the kernel programs, configures them and attaches every
// tracepoint. The caller must Close the Probe.
func Load(cfg Config) (*Probe, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := EnsureTracefs(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise the locked-memory limit (run as root or with CAP_SYS_RESOURCE): %w", err)
	}
	spec, err := loadObserver()
	if err != nil {
		return nil, fmt.Errorf("read embedded eBPF object: %w", err)
	}
	self := uint32(os.Getpid())
	if cfg.ObserveSelf {
		self = 0
	}
	if err := spec.Variables["self_tgid"].Set(self); err != nil {
		return nil, fmt.Errorf("set self_tgid: %w", err)
	}
	if err := spec.Variables["wakeup_bytes"].Set(uint64(cfg.WakeupBytes)); err != nil {
		return nil, fmt.Errorf("set wakeup_bytes: %w", err)
	}
	if err := spec.Variables["tls_filter"].Set(boolByte(cfg.FilterTLS)); err != nil {
		return nil, fmt.Errorf("set tls_filter: %w", err)
	}
	spec.Maps["events"].MaxEntries = uint32(cfg.RingBytes)
	useTask := !inFlightHash && inFlightEntries == 0 && taskStorageOffered()
	if err := spec.Variables["task_storage"].Set(boolByte(useTask)); err != nil {
		return nil, fmt.Errorf("set task_storage: %w", err)
	}
	switch {
	case inFlightEntries > 0:
		spec.Maps["active"].MaxEntries = inFlightEntries
	case useTask:
		// Never used, but every map in the object must be created.
		spec.Maps["active"].MaxEntries = 1
	}

	p := &Probe{drain: cfg.DrainInterval, clock: newClock(), taskStorage: useTask}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		return nil, explainLoadError(err)
	}
	if err := p.configure(cfg); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.attach(); err != nil {
		p.Close()
		return nil, err
	}
	p.reader, err = ringbuf.NewReader(p.objs.Events)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("open ring buffer reader: %w", err)
	}
	return p, nil
}

func (c *Config) validate() error {
	if len(c.Paths) == 0 {
		c.Paths = DefaultPaths
	}
	if len(c.Paths) > maxPaths {
		return fmt.Errorf("at most %d LLM path prefixes can be tracked in the kernel, got %d", maxPaths, len(c.Paths))
	}
	for _, p := range c.Paths {
		if p == "" || len(p) > maxPathLen || !strings.HasPrefix(p, "/") {
			return fmt.Errorf("LLM path prefix %q: must start with / and be at most %d bytes", p, maxPathLen)
		}
	}
	if c.RingBytes == 0 {
		c.RingBytes = defaultRing
	}
	if c.RingBytes < os.Getpagesize() || c.RingBytes&(c.RingBytes-1) != 0 {
		return fmt.Errorf("ring buffer size %d: must be a power of two of at least a page", c.RingBytes)
	}
	if c.WakeupBytes == 0 {
		c.WakeupBytes = defaultWakeup
	}
	if c.DrainInterval == 0 {
		c.DrainInterval = defaultDrain
	}
	return nil
}

func (p *Probe) configure(cfg Config) error {
	for i, path := range cfg.Paths {
		v := pathPrefix(path)
		if err := p.objs.LlmPaths.Put(uint32(i), &v); err != nil {
			return fmt.Errorf("configure path prefix %q: %w", path, err)
		}
	}
	for _, port := range cfg.Ports {
		if err := p.objs.LlmPorts.Put(port, uint8(1)); err != nil {
			return fmt.Errorf("configure port %d: %w", port, err)
		}
	}
	return nil
}

// pathPrefix lays a prefix out as the kernel compares it: little-endian
// 64-bit words of the path's bytes, and masks selecting the prefix's bytes.
func pathPrefix(path string) observerPathPrefix {
	var v observerPathPrefix
	v.Len = uint32(len(path))
	for i := 0; i < len(path); i++ {
		shift := 8 * uint(i%8)
		v.Word[i/8] |= uint64(path[i]) << shift
		v.Mask[i/8] |= 0xff << shift
	}
	return v
}

func (p *Probe) attach() error {
	progs := map[string]*ebpf.Program{
		"sys_enter_write":    p.objs.EnterWrite,
		"sys_enter_sendto":   p.objs.EnterSendto,
		"sys_enter_writev":   p.objs.EnterWritev,
		"sys_enter_sendmsg":  p.objs.EnterSendmsg,
		"sys_enter_read":     p.objs.EnterRead,
		"sys_enter_recvfrom": p.objs.EnterRecvfrom,
		"sys_enter_readv":    p.objs.EnterReadv,
		"sys_enter_recvmsg":  p.objs.EnterRecvmsg,
		"sys_exit_write":     p.objs.ExitWrite,
		"sys_exit_sendto":    p.objs.ExitSendto,
		"sys_exit_writev":    p.objs.ExitWritev,
		"sys_exit_sendmsg":   p.objs.ExitSendmsg,
		"sys_exit_read":      p.objs.ExitRead,
		"sys_exit_recvfrom":  p.objs.ExitRecvfrom,
		"sys_exit_readv":     p.objs.ExitReadv,
		"sys_exit_recvmsg":   p.objs.ExitRecvmsg,
		"sys_enter_connect":  p.objs.EnterConnect,
		"sys_exit_accept4":   p.objs.ExitAccept4,
		"sys_exit_accept":    p.objs.ExitAccept,
		"sys_enter_close":    p.objs.EnterClose,
		"sys_enter_dup2":     p.objs.EnterDup2,
		"sys_enter_dup3":     p.objs.EnterDup3,
	}
	// Exits first: an entry without its exit would only fill the active map.
	order := []string{
		"sys_exit_write", "sys_exit_sendto", "sys_exit_writev", "sys_exit_sendmsg",
		"sys_exit_read", "sys_exit_recvfrom", "sys_exit_readv", "sys_exit_recvmsg",
		"sys_exit_accept4", "sys_exit_accept", "sys_enter_connect", "sys_enter_close",
		"sys_enter_dup2", "sys_enter_dup3",
		"sys_enter_write", "sys_enter_sendto", "sys_enter_writev", "sys_enter_sendmsg",
		"sys_enter_read", "sys_enter_recvfrom", "sys_enter_readv", "sys_enter_recvmsg",
	}
	for _, name := range order {
		l, err := link.Tracepoint("syscalls", name, progs[name], nil)
		if err != nil {
			return fmt.Errorf("attach tracepoint syscalls/%s: %w", name, err)
		}
		p.links = append(p.links, l)
	}
	l, err := link.Tracepoint("sched", "sched_process_exec", p.objs.ProcessExec, nil)
	if err != nil {
		return fmt.Errorf("attach tracepoint sched/sched_process_exec: %w", err)
	}
	p.links = append(p.links, l)
	return nil
}

// Run reads records until ctx is done or the Probe is closed, calling handle
// for each from this goroutine. The Event and its Data are reused after
// handle returns. Run may be called again after it returns.
func (p *Probe) Run(ctx context.Context, handle func(*Event)) error {
	w, err := newRingWaiter(p.objs.Events)
	if err != nil {
		return p.runBlocking(ctx, handle)
	}
	defer w.close()
	stop := context.AfterFunc(ctx, w.wake)
	defer stop()
	// Close wakes the wait, as it ends the reader's own.
	p.waiter.Store(w)
	defer p.waiter.CompareAndSwap(w, nil)
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil
	}
	// The reader never blocks: with its deadline in the past it returns the
	// records there are and then os.ErrDeadlineExceeded, and the wait is
	// the poller's. The wait's deadline bounds how long records written
	// without a wake-up wait; it is renewed only when it expires: reading
	// the clock per wait would cost more than it saves.
	p.reader.SetDeadline(time.Unix(1, 0))
	deadline := time.Now().Add(p.drain)
	return p.readLoop(ctx, handle, func() error {
		err := w.wait(deadline)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			p.clock.maybeRecalibrate()
			deadline = time.Now().Add(p.drain)
		case err != nil:
			return fmt.Errorf("wait for ring buffer: %w", err)
		}
		return nil
	})
}

// runBlocking is Run where the ring cannot be polled through the runtime:
// it waits in the ring reader's own epoll_wait, until the drain deadline.
func (p *Probe) runBlocking(ctx context.Context, handle func(*Event)) error {
	p.reader.SetDeadline(time.Now().Add(p.drain))
	return p.readLoop(ctx, handle, func() error {
		p.clock.maybeRecalibrate()
		p.reader.SetDeadline(time.Now().Add(p.drain))
		return nil
	})
}

// readLoop hands each record to handle until ctx is done or the reader is
// closed, and calls expired each time the reader's deadline passes.
func (p *Probe) readLoop(ctx context.Context, handle func(*Event), expired func() error) error {
	var (
		rec  ringbuf.Record
		ev   Event
		done = ctx.Done()
	)
	for {
		select {
		case <-done:
			return nil
		default:
		}
		err := p.reader.ReadInto(&rec)
		switch {
		case err == nil:
			if p.parse(rec.RawSample, &ev) {
				handle(&ev)
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := expired(); err != nil {
				return err
			}
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// parse fills ev from one raw record; false for a record too short to hold
// its header, which the kernel never writes.
func (p *Probe) parse(raw []byte, ev *Event) bool {
	if len(raw) < headerSize {
		return false
	}
	h := (*observerEvent)(unsafe.Pointer(&raw[0]))
	*ev = Event{
		Kind:      Kind(h.Kind),
		Conn:      ConnKey{PID: h.Pid, FD: h.Fd, ID: h.ConnId, Source: Source(h.Source), Handle: h.Handle},
		TID:       h.Tid,
		Comm:      p.comm(&h.Comm),
		Time:      p.clock.wall(h.TsNs),
		Dir:       Direction(h.Dir),
		Source:    Source(h.Source),
		Role:      Role(h.Role),
		Offset:    h.Offset,
		Truncated: h.Flags&uint8(observerEventFlagFLAG_TRUNCATED) != 0,
		Fault:     h.Flags&uint8(observerEventFlagFLAG_FAULT) != 0,
		Lost:      h.Flags&uint8(observerEventFlagFLAG_LOST) != 0,
	}
	body := raw[headerSize:]
	switch ev.Kind {
	case Data:
		n := int(h.Len)
		if n > len(body) {
			n = len(body)
		}
		ev.Data = body[:n]
	case Open:
		if len(body) >= connInfoSize {
			ci := (*observerConnInfo)(unsafe.Pointer(&body[0]))
			ev.Local, ev.Remote = connAddrs(ci)
		}
	}
	return true
}

func connAddrs(ci *observerConnInfo) (local, remote netip.AddrPort) {
	var l, r netip.Addr
	if ci.Family == unix.AF_INET {
		l = netip.AddrFrom4([4]byte(ci.LocalAddr[:4]))
		r = netip.AddrFrom4([4]byte(ci.RemoteAddr[:4]))
	} else {
		l = netip.AddrFrom16(ci.LocalAddr).Unmap()
		r = netip.AddrFrom16(ci.RemoteAddr).Unmap()
	}
	return netip.AddrPortFrom(l, ci.LocalPort), netip.AddrPortFrom(r, ci.RemotePort)
}

// comm returns the process name of a record as a string, reusing the last
// one: records come in bursts from one process, and a fresh string per
// record would be the parse's only allocation.
func (p *Probe) comm(c *[16]int8) string {
	if *c == p.lastCommRaw && p.lastComm != "" {
		return p.lastComm
	}
	b := make([]byte, 0, 16)
	for _, ch := range c {
		if ch == 0 {
			break
		}
		b = append(b, byte(ch))
	}
	p.lastCommRaw, p.lastComm = *c, string(b)
	return p.lastComm
}

// ForgetExited drops the kernel state of every process for which alive
// says false, and returns how many connections it dropped. Processes exit
// without close calls, and threads can die inside a system call, so without
// this the state maps would fill with the sockets of every short-lived HTTP
// client.
func (p *Probe) ForgetExited(alive func(pid uint32) bool) (int, error) {
	known := map[uint32]bool{}
	live := func(pid uint32) bool {
		v, ok := known[pid]
		if !ok {
			v = alive(pid)
			known[pid] = v
		}
		return v
	}
	n, err := forgetKeys(p.objs.Conns, func(k *observerConnKey) bool { return !live(k.Tgid) })
	if err != nil {
		return n, fmt.Errorf("forget connections: %w", err)
	}
	m, err := forgetKeys(p.objs.TlsConns, func(k *observerTlsKey) bool { return !live(k.Tgid) })
	n += m
	if err != nil {
		return n, fmt.Errorf("forget TLS connections: %w", err)
	}
	if _, err := forgetKeys(p.objs.GoCalls, func(k *observerGoCallKey) bool { return !live(k.Tgid) }); err != nil {
		return n, fmt.Errorf("forget Go TLS calls in flight: %w", err)
	}
	for _, m := range []*ebpf.Map{p.objs.Active, p.objs.TlsCalls} {
		if _, err := forgetKeys(m, func(k *uint64) bool { return !live(uint32(*k >> 32)) }); err != nil {
			return n, fmt.Errorf("forget calls in flight: %w", err)
		}
	}
	return n, nil
}

// forgetKeys deletes the keys of m for which stale says true.
func forgetKeys[K any](m *ebpf.Map, stale func(*K) bool) (int, error) {
	var (
		key   K
		value []byte
		drop  []K
	)
	it := m.Iterate()
	for it.Next(&key, &value) {
		if stale(&key) {
			drop = append(drop, key)
		}
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, k := range drop {
		if err := m.Delete(k); err == nil {
			n++
		} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return n, err
		}
	}
	return n, nil
}

// Close detaches the programs and frees the kernel objects.
func (p *Probe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if w := p.waiter.Load(); w != nil {
		w.wake()
	}
	var errs []error
	if p.reader != nil {
		errs = append(errs, p.reader.Close())
	}
	// Detaching waits for the kernel to quiesce, per link: together the
	// waits overlap, one after another they took over a second.
	linkErrs := make([]error, len(p.links))
	var wg sync.WaitGroup
	for i, l := range p.links {
		wg.Go(func() { linkErrs[i] = l.Close() })
	}
	wg.Wait()
	errs = append(errs, linkErrs...)
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// boolByte is a C bool for a program's global variable.
func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
