package gobin

import (
	"bytes"
	"compress/zlib"
	"debug/dwarf"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"go/version"
	"io"
	"slices"
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
func connLayout(f *elf.File, r sized, lang string) (ConnLayout, error) {
	l, err := dwarfLayout(f, r)
	if err == nil {
		return l, nil
	}
	for _, row := range layoutTable {
		if version.Compare(lang, row.from) >= 0 && version.Compare(lang, row.to) <= 0 {
			return row.layout, nil
		}
	}
	detail := "no DWARF and no struct layout known for this Go version; supported without DWARF: " + SupportedWithoutDWARF
	if !errors.Is(err, errNoDWARF) {
		detail = fmt.Sprintf("%v, and no struct layout known for this Go version; supported without DWARF: %s", err, SupportedWithoutDWARF)
	}
	return ConnLayout{}, &UnsupportedError{Reason: ReasonNoLayout, Detail: detail}
}

var errNoDWARF = errors.New("no DWARF")

// dwarfLayout reads the chain's offsets from the struct types in DWARF.
//
// Go compresses its DWARF and puts every type in the runtime package's
// compile unit, partway through .debug_info. So the section is inflated one
// unit at a time only until every type name has been seen, and each struct
// is found where its name is, checked by the DWARF reader, instead of by
// decoding every entry before it. When that fails the whole section is read
// and walked.
func dwarfLayout(f *elf.File, r sized) (ConnLayout, error) {
	s := f.Section(".debug_info")
	if s == nil || s.Type == elf.SHT_NOBITS {
		return ConnLayout{}, errNoDWARF
	}
	rd, err := openSection(f, r, s)
	if err != nil {
		return ConnLayout{}, err
	}
	info, err := readUnitsUntil(rd, nil, chainTypeNames())
	if err != nil {
		return ConnLayout{}, err
	}
	d, err := typeDWARF(f, info)
	if err != nil {
		return ConnLayout{}, err
	}
	offsets, err := structOffsets(d, info, true)
	if err != nil {
		// Read on to the end and look at every entry.
		if info, err = readUnitsUntil(rd, info, nil); err != nil {
			return ConnLayout{}, err
		}
		if d, err = typeDWARF(f, info); err != nil {
			return ConnLayout{}, err
		}
		if offsets, err = structOffsets(d, info, false); err != nil {
			return ConnLayout{}, err
		}
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

// openSection opens a section's contents for reading, inflating a
// zlib-compressed one from memory: elf.Section.Open inflates straight from
// the file, one small read system call after another.
func openSection(f *elf.File, r sized, s *elf.Section) (io.Reader, error) {
	const chdrSize = 24 // Elf64_Chdr: type, reserved, size, alignment
	if s.Flags&elf.SHF_COMPRESSED == 0 || f.Class != elf.ELFCLASS64 || s.FileSize < chdrSize {
		return s.Open(), nil
	}
	raw, err := readBytes(r, s.Offset, s.FileSize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Name, err)
	}
	if elf.CompressionType(binary.LittleEndian.Uint32(raw)) != elf.COMPRESS_ZLIB {
		return s.Open(), nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw[chdrSize:]))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Name, err)
	}
	return zr, nil
}

// chain lists the fields the fd chain goes through.
var chain = []structMember{tlsConnConn, ifaceData, tcpConnConn, connFD, netFDPFD, pollFDSysfd}

// chainTypeNames gives the names of the chain's struct types as they
// appear in a DWARF entry: NUL-terminated.
func chainTypeNames() map[string]bool {
	names := map[string]bool{}
	for _, m := range chain {
		names[m.typ+"\x00"] = true
	}
	return names
}

// readUnitsUntil appends whole compile units from the inflated .debug_info
// stream to info until every string in names has appeared in what was
// read (nil names: to the end of the section), and returns info.
func readUnitsUntil(rd io.Reader, info []byte, names map[string]bool) ([]byte, error) {
	seen := map[string]bool{}
	for names == nil || len(seen) < len(names) {
		var hdr [4]byte
		if _, err := io.ReadFull(rd, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("read .debug_info: %w", err)
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n >= 0xfffffff0 {
			return nil, errors.New("read .debug_info: 64-bit DWARF units are not read")
		}
		start := len(info)
		info = append(info, hdr[:]...)
		// Grow as the bytes arrive, not by the length the header claims.
		for left := int(n); left > 0; {
			chunk := min(left, 1<<20)
			at := len(info)
			info = slices.Grow(info, chunk)[:at+chunk]
			if _, err := io.ReadFull(rd, info[at:]); err != nil {
				return nil, fmt.Errorf("read .debug_info: %w", err)
			}
			left -= chunk
		}
		for name := range names {
			if !seen[name] && bytes.Contains(info[start:], []byte(name)) {
				seen[name] = true
			}
		}
	}
	return info, nil
}

// typeDWARF makes a dwarf.Data of the given .debug_info bytes with only the
// other sections that type entries need, leaving line, frame and location
// tables unread.
func typeDWARF(f *elf.File, info []byte) (*dwarf.Data, error) {
	data := func(name string) ([]byte, error) {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			return nil, nil
		}
		b, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return b, nil
	}
	abbrev, err := data(".debug_abbrev")
	if err != nil {
		return nil, err
	}
	str, err := data(".debug_str")
	if err != nil {
		return nil, err
	}
	d, err := dwarf.New(abbrev, nil, nil, info, nil, nil, nil, str)
	if err != nil {
		return nil, fmt.Errorf("read DWARF: %w", err)
	}
	for _, name := range []string{".debug_addr", ".debug_str_offsets", ".debug_line_str"} {
		b, err := data(name)
		if err != nil {
			return nil, err
		}
		if b != nil {
			if err := d.AddSection(name, b); err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
		}
	}
	return d, nil
}

// structOffsets finds the chain's struct types in d and reads the offsets
// of the fields it needs. With byName it looks only where each type's name
// occurs in info (Go writes a struct's name inline, first after the entry's
// one-byte abbreviation code), and the reader confirms each find; else it
// walks the top-level entries of every compile unit.
func structOffsets(d *dwarf.Data, info []byte, byName bool) (map[structMember]int64, error) {
	offsets := map[structMember]int64{}
	pending := map[string]bool{}
	for _, m := range chain {
		offsets[m] = -1
		pending[m.typ] = true
	}
	r := d.Reader()
	if byName {
		for typ := range pending {
			name := []byte(typ + "\x00")
			for from := 0; pending[typ]; {
				i := bytes.Index(info[from:], name)
				if i < 0 {
					break
				}
				at := from + i - 1
				from += i + 1
				if at < 0 || structAt(r, dwarf.Offset(at), typ) != nil {
					continue
				}
				if err := memberOffsets(r, typ, offsets); err != nil {
					return nil, fmt.Errorf("DWARF struct %s: %w", typ, err)
				}
				delete(pending, typ)
			}
		}
	} else {
		for len(pending) > 0 {
			e, err := r.Next()
			if err != nil {
				return nil, fmt.Errorf("read DWARF: %w", err)
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
				return nil, fmt.Errorf("DWARF struct %s: %w", name, err)
			}
			delete(pending, name)
		}
	}
	if len(pending) > 0 {
		return nil, fmt.Errorf("DWARF lacks %d of the fd chain's struct types", len(pending))
	}
	return offsets, nil
}

// structAt positions r at the entry at off and reads it, returning nil if
// it is the struct type typ with members to read next. off is only a guess,
// so a decoding failure, even a panic, means no.
func structAt(r *dwarf.Reader, off dwarf.Offset, typ string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("no entry at %#x", off)
		}
	}()
	r.Seek(off)
	e, err := r.Next()
	if err != nil {
		return err
	}
	if e == nil || e.Tag != dwarf.TagStructType || !e.Children || e.Offset != off {
		return fmt.Errorf("no struct at %#x", off)
	}
	if name, _ := e.Val(dwarf.AttrName).(string); name != typ {
		return fmt.Errorf("struct at %#x is %q", off, name)
	}
	return nil
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
