package gobin

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// FuzzReturns disassembles arbitrary code as a probed function: no panic,
// and every return found is a RET inside the code, in address order.
// Seeds: the code of crypto/tls.(*Conn).Write and Read as Go 1.26 built it.
func FuzzReturns(f *testing.F) {
	f.Add([]byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x01, 0xc3, 0xcc}, uint64(0x401000))
	f.Fuzz(func(t *testing.T, code []byte, addr uint64) {
		checksStackInR14(code)
		rets, err := returns(code, addr)
		if err != nil {
			return
		}
		prev := uint64(0)
		for i, a := range rets {
			if a < addr || a-addr >= uint64(len(code)) || (i > 0 && a <= prev) {
				t.Fatalf("return %#x outside [%#x, +%d) or out of order", a, addr, len(code))
			}
			in, err := x86asm.Decode(code[a-addr:], 64)
			if err != nil || in.Op != x86asm.RET {
				t.Fatalf("return %#x decodes as %v, %v", a, in, err)
			}
			prev = a
		}
	})
}

// Regions of a real executable that FuzzInspect overwrites.
const (
	regionELFHeader = iota
	regionProgramHeaders
	regionSectionHeaders
	regionPclntab
	regionBuildInfo
	regionWriteCode
	regionModuledata
	regionDebugInfo
	regionDebugAbbrev
	regionCount
)

// FuzzInspect overwrites bytes in one region of a real Go executable (the
// stripped build, or the one with DWARF for the DWARF regions) and
// inspects the result: never a panic or a memory blow-up, and a result
// that is returned holds RETs at its return offsets.
func FuzzInspect(f *testing.F) {
	f.Add(uint8(regionPclntab), uint32(0), []byte{0xf1, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, region uint8, off uint32, patch []byte) {
		region %= regionCount
		name := "stripped"
		if region == regionDebugInfo || region == regionDebugAbbrev {
			name = "default"
		}
		orig := fuzzFile(t, name)
		key := [2]uint8{region, name[0]}
		r, ok := fuzzRegions[key]
		if !ok {
			r[0], r[1] = fuzzRegion(t, orig, region)
			fuzzRegions[key] = r
		}
		start, size := r[0], r[1]
		if size == 0 || len(patch) == 0 {
			return
		}
		if len(patch) > 64 {
			patch = patch[:64]
		}
		b := bytes.Clone(orig)
		at := start + uint64(off)%size
		copy(b[at:min(at+uint64(len(patch)), uint64(len(b)))], patch)

		got, err := inspect(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, fn := range []Func{got.Write, got.Read} {
			if len(fn.Returns) == 0 {
				t.Fatalf("%s: no returns and no error", fn.Name)
			}
			// Damaged code may hold a RET with a prefix or an operand, so
			// the check is the decoding, not the byte 0xc3.
			for _, r := range fn.Returns {
				if r <= fn.Entry || r >= fn.Entry+fn.Size || r >= uint64(len(b)) {
					t.Fatalf("%s: return offset %#x outside [%#x, +%d)", fn.Name, r, fn.Entry, fn.Size)
				}
				if in, err := x86asm.Decode(b[r:], 64); err != nil || in.Op != x86asm.RET {
					t.Fatalf("%s: return offset %#x decodes as %v, %v", fn.Name, r, in, err)
				}
			}
		}
	})
}

var (
	fuzzFiles   = map[string][]byte{}
	fuzzRegions = map[[2]uint8][2]uint64{}
)

func fuzzFile(t *testing.T, name string) []byte {
	if b, ok := fuzzFiles[name]; ok {
		return b
	}
	b, err := os.ReadFile(built(t, name))
	if err != nil {
		t.Fatal(err)
	}
	fuzzFiles[name] = b
	return b
}

// fuzzRegion gives the file range of a region, read from the unpatched
// file.
func fuzzRegion(t *testing.T, b []byte, region uint8) (start, size uint64) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	section := func(name string) (uint64, uint64) {
		if s := f.Section(name); s != nil {
			return s.Offset, s.FileSize
		}
		return 0, 0
	}
	switch region {
	case regionELFHeader:
		return 0, 64
	case regionProgramHeaders:
		return binary.LittleEndian.Uint64(b[0x20:]), uint64(len(f.Progs)) * 56
	case regionSectionHeaders:
		return binary.LittleEndian.Uint64(b[0x28:]), uint64(len(f.Sections)) * 64
	case regionPclntab:
		return section(".gopclntab")
	case regionBuildInfo:
		return section(".go.buildinfo")
	case regionWriteCode:
		target, err := inspect(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return target.Write.Entry, target.Write.Size
	case regionModuledata:
		return section(".go.module")
	case regionDebugInfo:
		return section(".debug_info")
	case regionDebugAbbrev:
		return section(".debug_abbrev")
	}
	return 0, 0
}
