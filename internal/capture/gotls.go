package capture

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cilium/ebpf/link"

	"github.com/llm-observer/llm-observer/internal/gobin"
)

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

// AttachGoTLS puts the Go TLS probes on the executable at path, where t
// (from gobin.Inspect) says: entry probes on crypto/tls.(*Conn).Write and
// .Read and a probe on each of their RET instructions, since Go's moving
// stacks forbid uretprobes. Attach cookies need Linux 5.15. Close the
// returned value to remove them.
func (p *Probe) AttachGoTLS(path string, t *gobin.TLSTarget) (io.Closer, error) {
	if t == nil || t.Write.ProbeEntry == 0 || t.Read.ProbeEntry == 0 || len(t.Write.Returns) == 0 || len(t.Read.Returns) == 0 {
		return nil, errors.New("Go TLS target without entry or return offsets")
	}
	slot, ok := p.goSlots.take()
	if !ok {
		return nil, errors.New("too many Go executables probed at once (256)")
	}
	l := t.Layout
	layout := observerGoOffsets{ConnData: l.TLSConnConn + l.IfaceData, Netfd: l.TCPConnFD, Sysfd: l.NetFDSysfd}
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
	// Attaching a hundred probes one by one takes a while, and the process
	// runs meanwhile. Returns go first and Write's entry last: a call seen
	// at its entry then always has its returns probed, and a request seen
	// going out always has the probes for its response in place, rather
	// than a captured request whose response is lost.
	for _, off := range append(append([]uint64(nil), t.Write.Returns...), t.Read.Returns...) {
		if err := probe("return", off, false); err != nil {
			att.Close()
			return nil, err
		}
	}
	if err := probe("Read", t.Read.ProbeEntry, true); err != nil {
		att.Close()
		return nil, err
	}
	if err := probe("Write", t.Write.ProbeEntry, true); err != nil {
		att.Close()
		return nil, err
	}
	return att, nil
}
