package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// tlsHooks are the OpenSSL functions probed: the plain functions return the
// length moved, the _ex ones store it through their fourth argument.
//
// They are attached in this order, each return before its entry, so that a
// process running while its file is probed never has a request captured
// whose response the probes cannot see yet (as for Go, see AttachGoTLS).
var tlsHooks = []struct {
	symbol   string
	required bool
	enter    func(*observerObjects) *ebpf.Program
	exit     func(*observerObjects) *ebpf.Program
}{
	{"SSL_read", true, func(o *observerObjects) *ebpf.Program { return o.SslReadEnter }, func(o *observerObjects) *ebpf.Program { return o.SslExit }},
	{"SSL_read_ex", false, func(o *observerObjects) *ebpf.Program { return o.SslReadExEnter }, func(o *observerObjects) *ebpf.Program { return o.SslExExit }},
	{"SSL_write", true, func(o *observerObjects) *ebpf.Program { return o.SslWriteEnter }, func(o *observerObjects) *ebpf.Program { return o.SslExit }},
	{"SSL_write_ex", false, func(o *observerObjects) *ebpf.Program { return o.SslWriteExEnter }, func(o *observerObjects) *ebpf.Program { return o.SslExExit }},
}

// tlsAttachment is the uprobes of one file; closing it removes them.
type tlsAttachment struct {
	once    sync.Once
	links   []link.Link
	release func() // frees what the attachment held besides its links
	err     error
}

func (a *tlsAttachment) Close() error {
	a.once.Do(func() {
		// Each removal waits for the kernel to quiesce (an RCU grace
		// period); one after another, a few hundred probes took seconds,
		// together they take about one.
		errs := make([]error, len(a.links))
		var wg sync.WaitGroup
		for i, l := range a.links {
			wg.Go(func() { errs[i] = l.Close() })
		}
		wg.Wait()
		if a.release != nil {
			a.release()
		}
		a.err = errors.Join(errs...)
	})
	return a.err
}

// AttachOpenSSL puts the TLS probes on the OpenSSL functions of the ELF file
// at path (a libssl, or an executable carrying OpenSSL), at the file offsets
// given by symbol name (nil: looked up in the file). A uprobe belongs to the
// file, so every process that maps it, now or later, is followed. Close the
// returned value to remove them.
func (p *Probe) AttachOpenSSL(path string, offsets map[string]uint64) (io.Closer, error) {
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	att := &tlsAttachment{}
	for _, h := range tlsHooks {
		var opts *link.UprobeOptions
		if offsets != nil {
			off, ok := offsets[h.symbol]
			if !ok && !h.required {
				continue
			}
			if !ok {
				att.Close()
				return nil, fmt.Errorf("%s has no %s", path, h.symbol)
			}
			opts = &link.UprobeOptions{Address: off}
		}
		exit, err := ex.Uretprobe(h.symbol, h.exit(&p.objs), opts)
		if err != nil {
			if !h.required && errors.Is(err, link.ErrNoSymbol) {
				continue
			}
			att.Close()
			return nil, fmt.Errorf("uretprobe %s in %s: %w", h.symbol, path, err)
		}
		att.links = append(att.links, exit)
		enter, err := ex.Uprobe(h.symbol, h.enter(&p.objs), opts)
		if err != nil {
			att.Close()
			return nil, fmt.Errorf("uprobe %s in %s: %w", h.symbol, path, err)
		}
		att.links = append(att.links, enter)
	}
	return att, nil
}

// AllowTLS adds pid to, or with allow false removes it from, the processes
// the TLS probes follow when Config.FilterTLS is set.
func (p *Probe) AllowTLS(pid uint32, allow bool) error {
	if !allow {
		err := p.objs.TlsAllow.Delete(pid)
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("stop following TLS of pid %d: %w", pid, err)
		}
		return nil
	}
	if err := p.objs.TlsAllow.Put(pid, uint8(1)); err != nil {
		return fmt.Errorf("follow TLS of pid %d: %w", pid, err)
	}
	return nil
}

// SetVerdict tells the kernel whether the HTTP/2 connection conn carries
// LLM calls: the kernel sends such a connection's first frames up because
// it cannot read the paths inside them, and stops sending it once told
// keep is false.
func (p *Probe) SetVerdict(conn ConnKey, keep bool) error {
	v := uint8(observerVerdictValueVERDICT_KEEP)
	if !keep {
		v = uint8(observerVerdictValueVERDICT_DROP)
	}
	if err := p.objs.Verdicts.Put(conn.ID, v); err != nil {
		return fmt.Errorf("verdict on connection %d: %w", conn.ID, err)
	}
	return nil
}

// RunNotices reads the notice ring until ctx is done or the Probe is
// closed, calling handle with each process that called exec (Exec) or made
// its first TLS connection (TLSSeen). Notices have a ring of their own, so
// that a flood of data never delays or drops them.
func (p *Probe) RunNotices(ctx context.Context, handle func(kind Kind, pid uint32)) error {
	r, err := ringbuf.NewReader(p.objs.Notices)
	if err != nil {
		return fmt.Errorf("open notice ring: %w", err)
	}
	go func() {
		<-ctx.Done()
		r.Close()
	}()
	defer r.Close()
	var rec ringbuf.Record
	for {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read notice ring: %w", err)
		}
		if len(rec.RawSample) < int(unsafe.Sizeof(observerNotice{})) {
			continue
		}
		n := (*observerNotice)(unsafe.Pointer(&rec.RawSample[0]))
		handle(Kind(n.Kind), n.Pid)
	}
}
