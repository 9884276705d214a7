package capture

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cilium/ebpf/link"
)

// GoTLSTarget says where to probe Go's crypto/tls in one executable, and how to
// reach the socket from a *tls.Conn. Offsets into the file are what a
// uprobe takes; struct offsets are in bytes.
type GoTLSTarget struct {
	// WriteEntry and ReadEntry are the file offsets of the first
	// instruction of crypto/tls.(*Conn).Write and .Read.
	WriteEntry, ReadEntry uint64
	// Returns are the file offsets of every RET instruction of both
	// functions: Go's moving stacks forbid uretprobes.
	Returns []uint64
	// ConnData is the offset of the data word of tls.Conn's conn field (a
	// net.Conn interface holding a *net.TCPConn); NetFD the offset of the
	// *netFD in net.TCPConn; Sysfd the offset of poll.FD.Sysfd in netFD.
	ConnData, NetFD, Sysfd uint64
}

// goSlots hands out the entries of the go_layouts map, one per probed
// executable; the uprobes carry the index as their attach cookie.
type goSlots struct {
	mu   sync.Mutex
	used [256]bool
}

func (s *goSlots) take() (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, u := range s.used {
		if !u {
			s.used[i] = true
			return uint32(i), true
		}
	}
	return 0, false
}

func (s *goSlots) free(i uint32) {
	s.mu.Lock()
	s.used[i] = false
	s.mu.Unlock()
}

// AttachGoTLS puts the Go TLS probes on the executable at path: entry
// probes on (*Conn).Write and .Read and a probe on each of their RET
// instructions. Attach cookies need Linux 5.15. Close the returned value to
// remove them.
func (p *Probe) AttachGoTLS(path string, t GoTLSTarget) (io.Closer, error) {
	if t.WriteEntry == 0 || t.ReadEntry == 0 || len(t.Returns) == 0 {
		return nil, errors.New("Go TLS target without entry or return offsets")
	}
	slot, ok := p.goSlots.take()
	if !ok {
		return nil, errors.New("too many Go executables probed at once (256)")
	}
	layout := observerGoOffsets{ConnData: t.ConnData, Netfd: t.NetFD, Sysfd: t.Sysfd}
	if err := p.objs.GoLayouts.Put(slot, &layout); err != nil {
		p.goSlots.free(slot)
		return nil, fmt.Errorf("store Go struct layout of %s: %w", path, err)
	}
	ex, err := link.OpenExecutable(path)
	if err != nil {
		p.goSlots.free(slot)
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	att := &tlsAttachment{}
	att.release = func() { p.goSlots.free(slot) }
	probe := func(what string, off uint64, enter bool) error {
		prog := p.objs.GotlsExit
		switch {
		case enter && what == "Write":
			prog = p.objs.GotlsWriteEnter
		case enter:
			prog = p.objs.GotlsReadEnter
		}
		l, err := ex.Uprobe("crypto/tls.(*Conn)."+what, prog, &link.UprobeOptions{Address: off, Cookie: uint64(slot)})
		if err != nil {
			return fmt.Errorf("uprobe crypto/tls.(*Conn).%s at %#x in %s: %w", what, off, path, err)
		}
		att.links = append(att.links, l)
		return nil
	}
	if err := probe("Write", t.WriteEntry, true); err != nil {
		att.Close()
		return nil, err
	}
	if err := probe("Read", t.ReadEntry, true); err != nil {
		att.Close()
		return nil, err
	}
	for _, off := range t.Returns {
		if err := probe("return", off, false); err != nil {
			att.Close()
			return nil, err
		}
	}
	return att, nil
}
