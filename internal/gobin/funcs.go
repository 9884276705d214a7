package gobin

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"

	"golang.org/x/arch/x86/x86asm"
)

// pclntab header magics, by the Go version that introduced the format.
const (
	magic116 = 0xfffffffa
	magic118 = 0xfffffff0
	magic120 = 0xfffffff1
)

// stackguard0 is the offset of runtime.g.stackguard0 (after g.stack's lo
// and hi), which every splittable Go function compares its stack pointer
// with at entry through the goroutine register.
const stackguard0 = 0x10

// maxFuncSize bounds the code read for one function: crypto/tls's Read and
// Write are a few kilobytes, and a size beyond this means a misread table.
const maxFuncSize = 1 << 20

// findFuncs finds the probed functions of a Go executable: their entries
// from .gopclntab, their returns by disassembly. It returns Write then
// Read.
func findFuncs(f *elf.File, r sized) ([2]Func, error) {
	var out [2]Func
	tab, vaddr, err := pclntab(f, r)
	if err != nil {
		return out, err
	}
	if err := checkPclntabHeader(tab); err != nil {
		return out, err
	}
	// Entries are relative to runtime.text from the Go 1.18 format on. The
	// table is read once with a zero base and each candidate base tried.
	relative := binary.LittleEndian.Uint32(tab) != magic116
	lt := gosym.NewLineTable(tab, 0)
	st, err := gosym.NewTable(nil, lt)
	if err != nil {
		return out, fmt.Errorf("read .gopclntab: %w", err)
	}
	if len(st.Funcs) == 0 {
		return out, errors.New("read .gopclntab: no functions")
	}
	var fns [2]*gosym.Func
	for i, name := range [2]string{writeSym, readSym} {
		fns[i] = st.LookupFunc(name)
		if fns[i] == nil {
			return out, &UnsupportedError{Reason: ReasonNoTLS, Detail: "no " + name}
		}
		if fns[i].End <= fns[i].Entry || fns[i].End-fns[i].Entry > maxFuncSize {
			return out, fmt.Errorf("%s: implausible size %d", name, int64(fns[i].End-fns[i].Entry))
		}
	}

	bases := slices.Values([]uint64{0})
	if relative {
		bases = textStarts(f, r, tab, vaddr)
	}
	var firstErr error
	for base := range bases {
		for i, fn := range fns {
			out[i], err = probeFunc(f, r, fn.Name, base+fn.Entry, fn.End-fn.Entry)
			if err != nil {
				break
			}
		}
		if err == nil {
			return out, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no text start address found")
	}
	return out, firstErr
}

// probeFunc reads one function's code, checks that its prologue is the
// register ABI's (which also proves the address right) and finds its RETs.
func probeFunc(f *elf.File, r sized, name string, addr, size uint64) (Func, error) {
	fn := Func{Name: name, Addr: addr, Size: size}
	off, ok := fileOffset(f, addr, size)
	if !ok {
		return fn, fmt.Errorf("%s at %#x: not in a loaded segment", name, addr)
	}
	code, err := readBytes(r, off, size)
	if err != nil {
		return fn, fmt.Errorf("%s: read code: %w", name, err)
	}
	if !checksStackInR14(code) {
		return fn, &UnsupportedError{Reason: ReasonUnknownCode, Detail: fmt.Sprintf("%s at %#x does not start with a stack check through R14", name, addr)}
	}
	rets, err := returns(code, addr)
	if err != nil {
		return fn, fmt.Errorf("%s: %w", name, err)
	}
	fn.Entry = off
	fn.ProbeEntry = off
	if n, ok := framePush(code); ok {
		fn.ProbeEntry = off + uint64(n)
	}
	for _, a := range rets {
		fn.Returns = append(fn.Returns, a-addr+off)
	}
	return fn, nil
}

// framePush finds, after the stack check, the PUSH RBP that opens the
// frame, and returns its distance from the entry. A uprobe there costs less
// than at the entry: the kernel emulates a push, where the stack check's
// CMP with a memory operand must be stepped out of line, a second trap; and
// it fires once even when the stack has to grow first (morestack jumps back
// to the entry). The instructions before it may only compute the frame's
// bound into R12, compare and branch, so that the arguments in RAX, RBX and
// RCX and the goroutine in R14 are as they were at the entry.
func framePush(code []byte) (int, bool) {
	off := 0
	for i := 0; i < 4 && off < len(code); i++ {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil || inst.Len <= 0 {
			return 0, false
		}
		switch inst.Op {
		case x86asm.PUSH:
			if r, ok := inst.Args[0].(x86asm.Reg); ok && r == x86asm.RBP {
				return off, true
			}
			return 0, false
		case x86asm.LEA:
			if r, ok := inst.Args[0].(x86asm.Reg); !ok || r != x86asm.R12 {
				return 0, false
			}
		case x86asm.CMP, x86asm.JBE, x86asm.JB, x86asm.JA, x86asm.JAE:
		default:
			return 0, false
		}
		off += inst.Len
	}
	return 0, false
}

// checksStackInR14 tells whether code starts the way the register ABI's
// functions do: comparing the stack pointer (or, for a large frame, the
// stack pointer less the frame, in R12) with g.stackguard0 through R14.
// That is what makes R14 the goroutine at entry; a function built with the
// old stack-based ABI loads g from thread-local storage instead.
func checksStackInR14(code []byte) bool {
	for i := 0; i < 3 && len(code) > 0; i++ {
		inst, err := x86asm.Decode(code, 64)
		if err != nil || inst.Len <= 0 {
			return false
		}
		if inst.Op == x86asm.CMP {
			for _, a := range inst.Args {
				if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.R14 && m.Index == 0 && m.Disp == stackguard0 {
					return true
				}
			}
			return false
		}
		code = code[inst.Len:]
	}
	return false
}

// returns disassembles a function's code, which starts at virtual address
// addr, and gives the addresses of its RET instructions. A jump out of the
// function would be an exit a RET probe misses, so it is an error, as is
// code that does not decode.
func returns(code []byte, addr uint64) ([]uint64, error) {
	var rets []uint64
	end := addr + uint64(len(code))
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err == nil && inst.Len <= 0 {
			err = errors.New("empty instruction")
		}
		if err != nil {
			return nil, fmt.Errorf("disassemble at %#x: %w", addr+uint64(pc), err)
		}
		next := addr + uint64(pc+inst.Len)
		switch inst.Op {
		case x86asm.RET:
			rets = append(rets, addr+uint64(pc))
		case x86asm.JMP:
			if rel, ok := inst.Args[0].(x86asm.Rel); ok {
				if to := next + uint64(int64(rel)); to < addr || to >= end {
					return nil, &UnsupportedError{Reason: ReasonUnknownCode, Detail: fmt.Sprintf("jump out of the function at %#x", addr+uint64(pc))}
				}
			}
		}
		pc += inst.Len
	}
	if len(rets) == 0 {
		return nil, &UnsupportedError{Reason: ReasonUnknownCode, Detail: "no RET instruction"}
	}
	return rets, nil
}

// fileOffset turns the virtual address range [addr, addr+size) into a file
// offset through the loadable segment that holds it from the file.
func fileOffset(f *elf.File, addr, size uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr+size >= addr && addr+size <= p.Vaddr+p.Filesz {
			return addr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// pclntab finds the Go function table and its virtual address: by section
// name (".data.rel.ro.gopclntab" in position-independent builds), by the
// runtime.pclntab symbol, by the moduledata's pointer to it (Go 1.26 put
// moduledata in its own .go.module section), or by its header's magic in the
// read-only data.
func pclntab(f *elf.File, r sized) ([]byte, uint64, error) {
	for _, name := range []string{".gopclntab", ".data.rel.ro.gopclntab"} {
		if s := f.Section(name); s != nil && s.Type != elf.SHT_NOBITS {
			b, err := s.Data()
			if err != nil {
				return nil, 0, fmt.Errorf("read %s: %w", name, err)
			}
			return b, s.Addr, nil
		}
	}
	syms, _ := f.Symbols()
	if start, ok := symbolValue(syms, "runtime.pclntab"); ok {
		if end, ok := symbolValue(syms, "runtime.epclntab"); ok && end > start {
			if b, err := readVaddr(f, r, start, end-start); err == nil {
				return b, start, nil
			}
		}
	}
	if s := f.Section(".go.module"); s != nil {
		// moduledata.pcHeader is its first word.
		if addr, ok := pointerAt(f, r, s.Addr); ok {
			if b, err := readSegmentFrom(f, r, addr); err == nil && isPclntab(b) {
				return b, addr, nil
			}
		}
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X != 0 {
			continue
		}
		seg, err := readBytes(r, p.Off, p.Filesz)
		if err != nil {
			continue
		}
		for _, m := range []uint32{magic120, magic118, magic116} {
			var hdr [8]byte
			binary.LittleEndian.PutUint32(hdr[:], m)
			hdr[6], hdr[7] = 1, 8 // instruction quantum and pointer size on amd64
			for from := 0; ; {
				i := bytes.Index(seg[from:], hdr[:])
				if i < 0 {
					break
				}
				b := seg[from+i:]
				if isPclntab(b) {
					return b, p.Vaddr + uint64(from+i), nil
				}
				from += i + 1
			}
		}
	}
	return nil, 0, &UnsupportedError{Reason: ReasonNotGo, Detail: "no .gopclntab"}
}

// checkPclntabHeader checks that a pclntab's header is one of the formats
// read here and that its function table fits in it. debug/gosym trusts the
// count and allocates for it: a corrupt count would exhaust memory, which
// no recover catches.
func checkPclntabHeader(tab []byte) error {
	const ptrSize = 8
	if len(tab) < 8+8*ptrSize {
		return errors.New(".gopclntab too short")
	}
	var functabWord uint64 // header word holding the function table's offset
	fieldSize := uint64(4) // functab entries: 32-bit offsets from runtime.text
	switch binary.LittleEndian.Uint32(tab) {
	case magic116:
		functabWord, fieldSize = 6, ptrSize // absolute addresses
	case magic118, magic120:
		functabWord = 7
	default:
		return errors.New(".gopclntab: unknown header magic")
	}
	if tab[4] != 0 || tab[5] != 0 || tab[6] != 1 || tab[7] != ptrSize {
		return errors.New(".gopclntab: header not for amd64")
	}
	size := uint64(len(tab))
	nfunc := binary.LittleEndian.Uint64(tab[8:])
	off := binary.LittleEndian.Uint64(tab[8+functabWord*ptrSize:])
	if off > size || nfunc > (size-off)/fieldSize/2 {
		return fmt.Errorf(".gopclntab: %d functions do not fit in %d bytes", nfunc, size)
	}
	return nil
}

// isPclntab tells whether b starts with a pclntab that debug/gosym reads
// with functions in it.
func isPclntab(b []byte) bool {
	if checkPclntabHeader(b) != nil {
		return false
	}
	t, err := gosym.NewTable(nil, gosym.NewLineTable(b, 0))
	return err == nil && len(t.Funcs) > 0
}

// textStarts gives the candidates for runtime.text, the base of a Go 1.18+
// pclntab's entries, cheapest first: moduledata.text (Go 1.26 stores zero in
// the pclntab header and keeps moduledata in .go.module); the pclntab
// header's own field (Go 1.18 to 1.25); the runtime.text symbol; the .text
// section. With
// external linking .text starts with C start-up code before runtime.text,
// so the section is the last resort. The caller tries them in order and
// keeps the first whose functions start with a register ABI prologue, so
// later, costlier candidates are only computed when needed.
func textStarts(f *elf.File, r sized, tab []byte, tabAddr uint64) iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		var tried []uint64
		try := func(v uint64) bool {
			if v == 0 || slices.Contains(tried, v) {
				return true
			}
			tried = append(tried, v)
			return yield(v)
		}
		// moduledata starts with a pointer to the pclntab; text is its
		// 23rd word, after six slices, findfunctab, minpc and maxpc.
		const moduledataText = 22 * 8
		if s := f.Section(".go.module"); s != nil {
			if v, ok := pointerAt(f, r, s.Addr+moduledataText); ok && !try(v) {
				return
			}
		}
		const headerTextStart = 8 + 2*8 // magic, pad, quantum, ptrsize, nfunc, nfiles
		if len(tab) >= headerTextStart+8 {
			v := binary.LittleEndian.Uint64(tab[headerTextStart:])
			if v == 0 {
				v, _ = relocated(f, tabAddr+headerTextStart)
			}
			if !try(v) {
				return
			}
		}
		syms, _ := f.Symbols()
		if v, ok := symbolValue(syms, "runtime.text"); ok && !try(v) {
			return
		}
		if s := f.Section(".text"); s != nil && !try(s.Addr) {
			return
		}
		if len(f.Sections) == 0 {
			// No section headers: look for moduledata in the writable
			// segments by its pointer to the pclntab.
			for _, md := range pointersTo(f, r, tabAddr) {
				if v, ok := pointerAt(f, r, md+moduledataText); ok && inExecSegment(f, v) && !try(v) {
					return
				}
			}
		}
	}
}

// pointersTo gives the addresses of the aligned words in writable segments
// that hold the value addr.
func pointersTo(f *elf.File, r sized, addr uint64) []uint64 {
	var want [8]byte
	binary.LittleEndian.PutUint64(want[:], addr)
	var out []uint64
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W == 0 {
			continue
		}
		seg, err := readBytes(r, p.Off, p.Filesz)
		if err != nil {
			continue
		}
		for i := 0; i+8 <= len(seg); i += 8 {
			if bytes.Equal(seg[i:i+8], want[:]) {
				out = append(out, p.Vaddr+uint64(i))
			}
		}
	}
	return out
}

// inExecSegment tells whether addr lies in an executable loaded segment.
func inExecSegment(f *elf.File, addr uint64) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return true
		}
	}
	return false
}

// pointerAt reads the pointer stored at virtual address addr, as the
// dynamic loader would leave it: in a position-independent executable the
// file holds zero there and the value is a relative relocation's addend.
func pointerAt(f *elf.File, r sized, addr uint64) (uint64, bool) {
	b, err := readVaddr(f, r, addr, 8)
	if err != nil {
		return 0, false
	}
	if v := binary.LittleEndian.Uint64(b); v != 0 {
		return v, true
	}
	return relocated(f, addr)
}

// relocated finds the R_X86_64_RELATIVE relocation for addr and returns its
// addend, the link-time address the loader adds the load base to.
func relocated(f *elf.File, addr uint64) (uint64, bool) {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA {
			continue
		}
		b, err := s.Data()
		if err != nil {
			continue
		}
		for ; len(b) >= 24; b = b[24:] {
			if binary.LittleEndian.Uint64(b) == addr && elf.R_X86_64(binary.LittleEndian.Uint64(b[8:])&0xffffffff) == elf.R_X86_64_RELATIVE {
				return binary.LittleEndian.Uint64(b[16:]), true
			}
		}
	}
	return 0, false
}

// symbolValue finds a symbol's value in .symtab (absent from stripped
// files).
func symbolValue(syms []elf.Symbol, name string) (uint64, bool) {
	for _, s := range syms {
		if s.Name == name {
			return s.Value, true
		}
	}
	return 0, false
}

// readVaddr reads size bytes at virtual address addr.
func readVaddr(f *elf.File, r sized, addr, size uint64) ([]byte, error) {
	off, ok := fileOffset(f, addr, size)
	if !ok {
		return nil, fmt.Errorf("address %#x not in a loaded segment", addr)
	}
	return readBytes(r, off, size)
}

// sized is an executable's contents and their length, which bounds every
// allocation made for what a header claims.
type sized interface {
	io.ReaderAt
	Size() int64
}

// readBytes reads n bytes at file offset off, refusing a range the file
// does not hold before allocating for it.
func readBytes(r sized, off, n uint64) ([]byte, error) {
	if size := uint64(r.Size()); off > size || n > size-off {
		return nil, fmt.Errorf("%d bytes at %#x: past the end of the file", n, off)
	}
	b := make([]byte, n)
	if _, err := r.ReadAt(b, int64(off)); err != nil {
		return nil, err
	}
	return b, nil
}

// readSegmentFrom reads from virtual address addr to the end of the file
// part of the segment that holds it.
func readSegmentFrom(f *elf.File, r sized, addr uint64) ([]byte, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return readVaddr(f, r, addr, p.Vaddr+p.Filesz-addr)
		}
	}
	return nil, fmt.Errorf("address %#x not in a loaded segment", addr)
}
