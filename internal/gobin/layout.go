package gobin

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"go/version"
)

// layoutTable gives the fd chain's offsets by Go language version, for
// executables without DWARF. Read from Go's sources, unchanged over the
// whole range:
//
//   - src/crypto/tls/conn.go: Conn's first field is conn net.Conn.
//   - src/runtime/runtime2.go: a non-empty interface is iface{tab, data}.
//   - src/net/tcpsock.go, src/net/net.go: TCPConn embeds conn as its only
//     field, and conn's only field is fd *netFD.
//   - src/net/fd_posix.go: netFD's first field is pfd poll.FD.
//   - src/internal/poll/fd_unix.go, fd_mutex.go: FD starts with fdmu
//     fdMutex{state uint64; rsema, wsema uint32}, 16 bytes, then Sysfd int.
//
// The tests check the row for the installed Go against its DWARF. A
// version past the last row needs DWARF, since a field may have moved.
var layoutTable = []struct {
	from, to string // language versions, inclusive
	layout   ConnLayout
}{
	{"go1.17", "go1.26", ConnLayout{TLSConnConn: 0, IfaceData: 8, TCPConnFD: 0, NetFDSysfd: 16}},
}

// SupportedWithoutDWARF is the range of Go versions, inclusive, whose
// struct layout is known without the executable's DWARF (stripped with
// -ldflags=-w or -s). With DWARF, any Go from 1.17 on is supported.
const SupportedWithoutDWARF = "go1.17-go1.26"

// structMember names one field the fd chain goes through.
type structMember struct{ typ, field string }

var (
	tlsConnConn = structMember{"crypto/tls.Conn", "conn"}
	ifaceData   = structMember{"runtime.iface", "data"}
	tcpConnConn = structMember{"net.TCPConn", "conn"}
	connFD      = structMember{"net.conn", "fd"}
	netFDPFD    = structMember{"net.netFD", "pfd"}
	pollFDSysfd = structMember{"internal/poll.FD", "Sysfd"}
)

// connLayout reads the fd chain's offsets from DWARF, or takes them from
// the table for the Go language version lang when the file has none.
func connLayout(f *elf.File, lang string) (ConnLayout, error) {
	d, err := typeDWARF(f)
	if err == nil {
		var l ConnLayout
		if l, err = dwarfLayout(d); err == nil {
			return l, nil
		}
	}
	for _, row := range layoutTable {
		if version.Compare(lang, row.from) >= 0 && version.Compare(lang, row.to) <= 0 {
			return row.layout, nil
		}
	}
	detail := "no DWARF and no struct layout known for this Go version; supported without DWARF: " + SupportedWithoutDWARF
	if err != nil && !errors.Is(err, errNoDWARF) {
		detail = fmt.Sprintf("%v, and no struct layout known for this Go version; supported without DWARF: %s", err, SupportedWithoutDWARF)
	}
	return ConnLayout{}, &UnsupportedError{Reason: ReasonNoLayout, Detail: detail}
}

var errNoDWARF = errors.New("no DWARF")

// typeDWARF loads only the DWARF sections that type entries need. Go
// compresses its DWARF, and leaving line, frame and location tables
// unread halves the cost of elf.File.DWARF.
func typeDWARF(f *elf.File) (*dwarf.Data, error) {
	data := func(name string) ([]byte, error) {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			return nil, nil
		}
		return s.Data()
	}
	info, err := data(".debug_info")
	if err != nil {
		return nil, fmt.Errorf("read .debug_info: %w", err)
	}
	if info == nil {
		return nil, errNoDWARF
	}
	abbrev, err := data(".debug_abbrev")
	if err != nil {
		return nil, fmt.Errorf("read .debug_abbrev: %w", err)
	}
	str, err := data(".debug_str")
	if err != nil {
		return nil, fmt.Errorf("read .debug_str: %w", err)
	}
	d, err := dwarf.New(abbrev, nil, nil, info, nil, nil, nil, str)
	if err != nil {
		return nil, fmt.Errorf("read DWARF: %w", err)
	}
	for _, name := range []string{".debug_addr", ".debug_str_offsets", ".debug_line_str"} {
		b, err := data(name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if b != nil {
			if err := d.AddSection(name, b); err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
		}
	}
	return d, nil
}

// dwarfLayout walks the top-level entries of every compile unit (skipping
// function bodies) for the chain's struct types and reads the offsets of
// the fields it needs.
func dwarfLayout(d *dwarf.Data) (ConnLayout, error) {
	chain := []structMember{tlsConnConn, ifaceData, tcpConnConn, connFD, netFDPFD, pollFDSysfd}
	offsets := map[structMember]int64{}
	pending := map[string]bool{}
	for _, m := range chain {
		offsets[m] = -1
		pending[m.typ] = true
	}
	r := d.Reader()
	for len(pending) > 0 {
		e, err := r.Next()
		if err != nil {
			return ConnLayout{}, fmt.Errorf("read DWARF: %w", err)
		}
		if e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit || !e.Children {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if e.Tag != dwarf.TagStructType || !pending[name] {
			r.SkipChildren()
			continue
		}
		if err := memberOffsets(r, name, offsets); err != nil {
			return ConnLayout{}, fmt.Errorf("DWARF struct %s: %w", name, err)
		}
		delete(pending, name)
	}
	if len(pending) > 0 {
		return ConnLayout{}, fmt.Errorf("DWARF lacks %d of the fd chain's struct types", len(pending))
	}
	off := func(m structMember) uint64 { return uint64(offsets[m]) }
	return ConnLayout{
		FromDWARF:   true,
		TLSConnConn: off(tlsConnConn),
		IfaceData:   off(ifaceData),
		TCPConnFD:   off(tcpConnConn) + off(connFD),
		NetFDSysfd:  off(netFDPFD) + off(pollFDSysfd),
	}, nil
}

// memberOffsets reads the children of the struct entry typ just returned
// by r and fills in the offsets of its fields that offsets holds.
func memberOffsets(r *dwarf.Reader, typ string, offsets map[structMember]int64) error {
	for {
		e, err := r.Next()
		if err != nil {
			return err
		}
		if e == nil || e.Tag == 0 {
			break
		}
		if e.Children {
			r.SkipChildren()
		}
		if e.Tag != dwarf.TagMember {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		m := structMember{typ, name}
		if _, ok := offsets[m]; !ok {
			continue
		}
		loc, ok := e.Val(dwarf.AttrDataMemberLoc).(int64)
		if !ok || loc < 0 {
			return fmt.Errorf("field %s has no constant offset", name)
		}
		offsets[m] = loc
	}
	for m, loc := range offsets {
		if m.typ == typ && loc < 0 {
			return fmt.Errorf("no field %s", m.field)
		}
	}
	return nil
}
