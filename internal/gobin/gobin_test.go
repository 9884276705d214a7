package gobin

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"go/version"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// A build of a test program with the installed Go. Stripped builds name the
// unstripped build of the same kind, whose result they must equal.
type build struct {
	name, pkg  string
	env        []string
	args       []string
	unstripped string
}

var builds = []build{
	{name: "default", pkg: "tlsclient"},
	{name: "stripped", pkg: "tlsclient", args: []string{"-ldflags=-s -w"}, unstripped: "default"},
	{name: "static", pkg: "tlsclient", env: []string{"CGO_ENABLED=0"}},
	{name: "static_stripped", pkg: "tlsclient", env: []string{"CGO_ENABLED=0"}, args: []string{"-ldflags=-s -w"}, unstripped: "static"},
	{name: "pie", pkg: "tlsclient", args: []string{"-buildmode=pie"}},
	{name: "pie_stripped", pkg: "tlsclient", args: []string{"-buildmode=pie", "-ldflags=-s -w"}, unstripped: "pie"},
	{name: "external", pkg: "tlsclient", env: []string{"CGO_ENABLED=1"}, args: []string{"-ldflags=-linkmode=external"}},
	{name: "external_stripped", pkg: "tlsclient", env: []string{"CGO_ENABLED=1"}, args: []string{"-ldflags=-linkmode=external -s -w"}, unstripped: "external"},
	{name: "notls", pkg: "notls", args: []string{"-ldflags=-s -w"}},
}

var (
	buildDir  string
	buildMu   sync.Mutex
	buildDone = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gobin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// built builds (once per test process) the named build with the installed
// Go and returns the executable's path.
func built(tb testing.TB, name string) string {
	return builtWith(tb, "", name)
}

// builtWith builds the named build with the Go toolchain given (as
// GOTOOLCHAIN takes it; "" is the installed Go) and returns the
// executable's path. Another toolchain builds a copy of the program in a
// module of its own, since this module needs the installed Go.
func builtWith(tb testing.TB, toolchain, name string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := toolchain + "/" + name
	if p, ok := buildDone[key]; ok {
		return p
	}
	i := slices.IndexFunc(builds, func(b build) bool { return b.name == name })
	if i < 0 {
		tb.Fatalf("no build %q", name)
	}
	b := builds[i]
	out := filepath.Join(buildDir, strings.ReplaceAll(key, "/", "_"))
	args := append([]string{"build", "-o", out}, b.args...)
	cmd := exec.Command("go", append(args, "./testdata/"+b.pkg)...)
	cmd.Env = append(os.Environ(), b.env...)
	if toolchain != "" {
		mod := filepath.Join(buildDir, "module_"+toolchain+"_"+b.pkg)
		src, err := os.ReadFile(filepath.Join("testdata", b.pkg, "main.go"))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.MkdirAll(mod, 0o755); err != nil {
			tb.Fatal(err)
		}
		for name, data := range map[string][]byte{"main.go": src, "go.mod": []byte("module " + b.pkg + "\n\ngo 1.17\n")} {
			if err := os.WriteFile(filepath.Join(mod, name), data, 0o644); err != nil {
				tb.Fatal(err)
			}
		}
		cmd = exec.Command("go", append(args, ".")...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), append(b.env, "GOTOOLCHAIN="+toolchain, "GOFLAGS=")...)
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, msg)
	}
	buildDone[key] = out
	return out
}

// toolchains are the Go versions TestInspectBuilds builds with: the
// installed one, and those named in LLM_OBSERVER_TEST_GO_TOOLCHAINS
// (space-separated GOTOOLCHAIN values such as "go1.21.13 go1.24.6", fetched
// through the module proxy), which cover the version table beyond the
// installed Go.
func toolchains() []string {
	return append([]string{""}, strings.Fields(os.Getenv("LLM_OBSERVER_TEST_GO_TOOLCHAINS"))...)
}

// TestInspectBuilds checks every kind of build against what the file says
// independently: the symbol table of the unstripped builds, Go's own
// disassembler, the bytes at the offsets, and the unstripped twin of each
// stripped build.
func TestInspectBuilds(t *testing.T) {
	for _, tc := range toolchains() {
		wantVersion := tc
		if tc == "" {
			wantVersion = runtime.Version()
		}
		for _, b := range builds {
			if b.pkg != "tlsclient" {
				continue
			}
			t.Run(wantVersion+"/"+b.name, func(t *testing.T) {
				path := builtWith(t, tc, b.name)
				got, err := Inspect(path)
				if err != nil {
					t.Fatal(err)
				}
				if got.GoVersion != wantVersion {
					t.Errorf("GoVersion %q, want %q", got.GoVersion, wantVersion)
				}
				file, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				for _, fn := range []Func{got.Write, got.Read} {
					checkReturnsAreRETs(t, file, fn)
				}
				if got.Write.Name != writeSym || got.Read.Name != readSym {
					t.Errorf("names %q, %q", got.Write.Name, got.Read.Name)
				}

				if b.unstripped == "" {
					if !got.Layout.FromDWARF {
						t.Error("unstripped build: layout not read from DWARF")
					}
					checkTableRow(t, got)
					for _, fn := range []Func{got.Write, got.Read} {
						checkAgainstSymtab(t, path, fn)
						checkAgainstObjdump(t, path, fn)
					}
					return
				}
				if got.Layout.FromDWARF {
					t.Error("stripped build: layout claims DWARF")
				}
				want, err := Inspect(builtWith(t, tc, b.unstripped))
				if err != nil {
					t.Fatal(err)
				}
				want.Layout.FromDWARF = false
				if !equalTargets(got, want) {
					t.Errorf("stripped build differs from %s:\n got %+v\nwant %+v", b.unstripped, got, want)
				}
			})
		}
	}
}

// checkTableRow: the version table's row for the target's Go equals the
// layout read from its DWARF.
func checkTableRow(t *testing.T, got *TLSTarget) {
	t.Helper()
	lang := langVersion(got.GoVersion)
	for _, row := range layoutTable {
		if version.Compare(lang, row.from) >= 0 && version.Compare(lang, row.to) <= 0 {
			want := row.layout
			want.FromDWARF = true
			if got.Layout != want {
				t.Errorf("%s: DWARF layout %+v, table %+v", got.GoVersion, got.Layout, want)
			}
			return
		}
	}
	t.Errorf("%s: no table row", got.GoVersion)
}

func equalTargets(a, b *TLSTarget) bool {
	eq := func(x, y Func) bool {
		return x.Name == y.Name && x.Addr == y.Addr && x.Size == y.Size && x.Entry == y.Entry && x.ProbeEntry == y.ProbeEntry && slices.Equal(x.Returns, y.Returns)
	}
	return a.GoVersion == b.GoVersion && eq(a.Write, b.Write) && eq(a.Read, b.Read) && a.Layout == b.Layout
}

// checkReturnsAreRETs: every return offset holds a RET opcode inside the
// function, and the entry holds the function's first byte.
func checkReturnsAreRETs(t *testing.T, file []byte, fn Func) {
	t.Helper()
	if len(fn.Returns) == 0 {
		t.Fatalf("%s: no returns", fn.Name)
	}
	// The entry probe sits on the frame's PUSH RBP, a few bytes in, past
	// nothing but the stack check.
	if fn.ProbeEntry <= fn.Entry || fn.ProbeEntry > fn.Entry+16 || file[fn.ProbeEntry] != 0x55 {
		t.Errorf("%s: entry probe at %#x (entry %#x) is not on a PUSH RBP (0x55) just after the stack check", fn.Name, fn.ProbeEntry, fn.Entry)
	}
	for _, off := range fn.Returns {
		if off <= fn.Entry || off >= fn.Entry+fn.Size {
			t.Errorf("%s: return at %#x outside [%#x, %#x)", fn.Name, off, fn.Entry, fn.Entry+fn.Size)
			continue
		}
		if file[off] != 0xc3 {
			t.Errorf("%s: byte at return offset %#x is %#x, not RET (0xc3)", fn.Name, off, file[off])
		}
	}
}

// checkAgainstSymtab computes the file offset from .symtab through the
// symbol's own section, not the program headers Inspect uses.
func checkAgainstSymtab(t *testing.T, path string, fn Func) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(syms, func(s elf.Symbol) bool { return s.Name == fn.Name })
	if i < 0 {
		t.Fatalf("%s not in .symtab", fn.Name)
	}
	s := syms[i]
	sect := f.Sections[s.Section]
	wantEntry := s.Value - sect.Addr + sect.Offset
	if fn.Addr != s.Value || fn.Entry != wantEntry {
		t.Errorf("%s: addr %#x entry %#x, .symtab says addr %#x entry %#x", fn.Name, fn.Addr, fn.Entry, s.Value, wantEntry)
	}
	for _, off := range fn.Returns {
		if off >= wantEntry+s.Size {
			t.Errorf("%s: return at %#x past the symbol's end %#x", fn.Name, off, wantEntry+s.Size)
		}
	}
}

// checkAgainstObjdump compares the returns with the RETs that Go's own
// disassembler lists for the function.
func checkAgainstObjdump(t *testing.T, path string, fn Func) {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", "^"+regexp.QuoteMeta(fn.Name)+"$", path).Output()
	if err != nil {
		t.Fatalf("go tool objdump: %v", err)
	}
	var want []uint64
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) >= 4 && fields[3] == "RET" {
			a, err := strconv.ParseUint(strings.TrimPrefix(fields[1], "0x"), 16, 64)
			if err != nil {
				t.Fatalf("objdump line %q: %v", line, err)
			}
			want = append(want, a-fn.Addr+fn.Entry)
		}
	}
	if len(want) == 0 {
		t.Fatalf("objdump lists no RET in %s:\n%s", fn.Name, out)
	}
	if !slices.Equal(fn.Returns, want) {
		t.Errorf("%s: returns %#x, objdump's RETs %#x", fn.Name, fn.Returns, want)
	}
}

// TestRegisterABI reads the code of Write and Read for what the probes
// assume of registers: the goroutine in R14 (the stack check at entry), the
// receiver and b in RAX, RBX, RCX (the order the morestack path spills
// them to the argument slots), and the results n, err in RAX, RBX, RCX
// (the only registers loaded right before any RET).
func TestRegisterABI(t *testing.T) {
	path := built(t, "stripped")
	target, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []Func{target.Write, target.Read} {
		t.Run(fn.Name, func(t *testing.T) {
			code := file[fn.Entry : fn.Entry+fn.Size]
			insts := disassemble(t, code)

			// Entry: [LEA R12, [RSP-frame]]; CMP RSP|R12, [R14+0x10]; JBE morestack.
			i := 0
			if insts[0].Op == x86asm.LEA {
				i = 1
			}
			cmp, jbe := insts[i], insts[i+1]
			if cmp.Op != x86asm.CMP || cmp.Args[1] != (x86asm.Mem{Base: x86asm.R14, Disp: stackguard0}) {
				t.Fatalf("entry compares %v, want the stack pointer with [R14+0x10]", cmp)
			}
			if jbe.Op != x86asm.JBE {
				t.Fatalf("stack check followed by %v, want JBE to morestack", jbe)
			}

			// The morestack path spills the argument registers in order:
			// receiver, b's pointer, length, capacity.
			target := offsetOf(insts, i+1) + int(jbe.Len) + int(jbe.Args[0].(x86asm.Rel))
			spill := disassemble(t, code[target:])
			wantSpill := []x86asm.Reg{x86asm.RAX, x86asm.RBX, x86asm.RCX, x86asm.RDI}
			for k, reg := range wantSpill {
				in := spill[k]
				m, ok := in.Args[0].(x86asm.Mem)
				if in.Op != x86asm.MOV || !ok || m.Base != x86asm.RSP || m.Index != 0 || m.Disp != int64(8*(k+1)) || in.Args[1] != reg {
					t.Errorf("spill %d is %v, want MOV [RSP+%#x], %v", k, in, 8*(k+1), reg)
				}
			}
			if spill[len(wantSpill)].Op != x86asm.CALL {
				t.Errorf("after the spills %v, want CALL runtime.morestack", spill[len(wantSpill)])
			}

			// Results: the registers a RET's block leaves set, i.e. written
			// and not read again before the RET (a temporary is read), are
			// result registers. Walked backwards from each RET.
			results := map[x86asm.Reg]bool{}
			for k, in := range insts {
				if in.Op != x86asm.RET {
					continue
				}
				written, readLater := map[x86asm.Reg]bool{}, map[x86asm.Reg]bool{}
				for j := k - 1; j >= 0; j-- {
					p := insts[j]
					if p.Op == x86asm.JMP || p.Op == x86asm.RET || p.Op == x86asm.CALL || (p.Op >= x86asm.JA && p.Op <= x86asm.JS) {
						break
					}
					if reg, ok := p.Args[0].(x86asm.Reg); ok {
						reg = full(reg)
						if !written[reg] && !readLater[reg] && reg != x86asm.RSP && reg != x86asm.RBP {
							results[reg] = true
						}
						written[reg] = true
					}
					for a, arg := range p.Args {
						switch arg := arg.(type) {
						case x86asm.Reg:
							if a > 0 {
								readLater[full(arg)] = true
							}
						case x86asm.Mem:
							readLater[full(arg.Base)] = true
							readLater[full(arg.Index)] = true
						}
					}
				}
			}
			for reg := range results {
				if reg != x86asm.RAX && reg != x86asm.RBX && reg != x86asm.RCX {
					t.Errorf("%v left set at a RET: not a result register", reg)
				}
			}
			for _, reg := range []x86asm.Reg{x86asm.RAX, x86asm.RBX, x86asm.RCX} {
				if !results[reg] {
					t.Errorf("no RET path sets %v", reg)
				}
			}
		})
	}
}

// full names the 64-bit register of a 32-, 16- or 8-bit one.
func full(r x86asm.Reg) x86asm.Reg {
	switch {
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return r - x86asm.EAX + x86asm.RAX
	case r >= x86asm.AX && r <= x86asm.R15W:
		return r - x86asm.AX + x86asm.RAX
	}
	return r
}

func disassemble(t *testing.T, code []byte) []x86asm.Inst {
	t.Helper()
	var out []x86asm.Inst
	for pc := 0; pc < len(code); {
		in, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			t.Fatalf("decode at +%#x: %v", pc, err)
		}
		out = append(out, in)
		pc += in.Len
	}
	return out
}

func offsetOf(insts []x86asm.Inst, n int) int {
	off := 0
	for _, in := range insts[:n] {
		off += in.Len
	}
	return off
}

// TestLayoutTableMatchesDWARF: the table's row for the installed Go equals
// the offsets in the DWARF of a program it built.
func TestLayoutTableMatchesDWARF(t *testing.T) {
	got, err := Inspect(built(t, "default"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Layout.FromDWARF {
		t.Fatal("layout not from DWARF")
	}
	stripped, err := os.ReadFile(built(t, "stripped"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(stripped))
	if err != nil {
		t.Fatal(err)
	}
	table, err := connLayout(f, bytes.NewReader(stripped), langVersion(runtime.Version()))
	if err != nil {
		t.Fatalf("no table row for %s: %v", runtime.Version(), err)
	}
	if table.FromDWARF {
		t.Fatal("stripped build's layout claims DWARF")
	}
	table.FromDWARF = true
	if table != got.Layout {
		t.Errorf("table %+v, DWARF %+v", table, got.Layout)
	}
}

// TestUnsupported: executables without usable Go TLS are reported by
// reason, with the Go version where there is one.
func TestUnsupported(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(built(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	lang := langVersion(runtime.Version())
	old := "go1.16" // before the register ABI
	newer := "go1.99"
	if len(lang) != len(old) {
		t.Fatalf("installed %s: the version patch below needs go1.NN", lang)
	}
	patchVersion := func(b []byte, to string) []byte {
		b = bytes.Clone(b)
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		s := f.Section(".go.buildinfo")
		seg := b[s.Offset : s.Offset+s.Size]
		i := bytes.Index(seg, []byte(runtime.Version()))
		if i < 0 {
			t.Fatal("version not in .go.buildinfo")
		}
		copy(seg[i:], to)
		return b
	}
	arm64 := bytes.Clone(read("stripped"))
	binary.LittleEndian.PutUint16(arm64[18:], uint16(elf.EM_AARCH64))
	// Write starting with NOPs instead of the stack check through R14.
	target, err := Inspect(built(t, "stripped"))
	if err != nil {
		t.Fatal(err)
	}
	noPrologue := bytes.Clone(read("stripped"))
	copy(noPrologue[target.Write.Entry:], bytes.Repeat([]byte{0x90}, 8))

	for _, tc := range []struct {
		name    string
		path    string
		reason  Reason
		version string
	}{
		{"C program", "/bin/true", ReasonNotGo, ""},
		{"curl", "/usr/bin/curl", ReasonNotGo, ""},
		{"shell script", write("script", []byte("#!/bin/sh\nexit 0\n")), ReasonNotELF, ""},
		{"empty file", write("empty", nil), ReasonNotELF, ""},
		{"arm64", write("arm64", arm64), ReasonNotAMD64, ""},
		{"Go without crypto/tls", built(t, "notls"), ReasonNoTLS, runtime.Version()},
		{"Write without the register ABI prologue", write("noprologue", noPrologue), ReasonUnknownCode, runtime.Version()},
		{"Go 1.16", write("go116", patchVersion(read("stripped"), old)), ReasonGoTooOld, strings.Replace(runtime.Version(), lang, old, 1)},
		{"Go past the table without DWARF", write("go199", patchVersion(read("stripped"), newer)), ReasonNoLayout, strings.Replace(runtime.Version(), lang, newer, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Inspect(tc.path)
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Inspect = %+v, %v; want ErrUnsupported", got, err)
			}
			var u *UnsupportedError
			if !errors.As(err, &u) {
				t.Fatalf("%v is not an *UnsupportedError", err)
			}
			if u.Reason != tc.reason || u.GoVersion != tc.version {
				t.Errorf("reason %q version %q, want %q %q (%v)", u.Reason, u.GoVersion, tc.reason, tc.version, err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}

	t.Run("Go past the table with DWARF", func(t *testing.T) {
		got, err := Inspect(write("go199dwarf", patchVersion(read("default"), newer)))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Layout.FromDWARF {
			t.Error("layout not from DWARF")
		}
	})
}

// TestCorrupt: damaged files give an error, never a panic or a result.
func TestCorrupt(t *testing.T) {
	stripped, err := os.ReadFile(built(t, "stripped"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(stripped))
	if err != nil {
		t.Fatal(err)
	}
	pcln := f.Section(".gopclntab")
	text := f.Section(".text")
	target, err := Inspect(built(t, "stripped"))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		bytes func() []byte
	}{
		{"ELF header only", func() []byte { return stripped[:64] }},
		{"truncated in the headers", func() []byte { return stripped[:1000] }},
		{"truncated in .text", func() []byte { return stripped[:text.Offset+text.Size/2] }},
		{"truncated in .gopclntab", func() []byte { return stripped[:pcln.Offset+pcln.Size/2] }},
		{"truncated by one byte", func() []byte { return stripped[:len(stripped)-1] }},
		{"pclntab zeroed", func() []byte {
			b := bytes.Clone(stripped)
			clear(b[pcln.Offset : pcln.Offset+pcln.Size])
			return b
		}},
		{"Write's code zeroed", func() []byte {
			b := bytes.Clone(stripped)
			clear(b[target.Write.Entry : target.Write.Entry+target.Write.Size])
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, tc.bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Inspect(p)
			if err == nil {
				t.Fatalf("Inspect = %+v, want an error", got)
			}
		})
	}
	if _, err := Inspect(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}

// TestNoSectionHeaders: with the section headers gone, the pclntab is found
// by its magic and runtime.text through moduledata.
func TestNoSectionHeaders(t *testing.T) {
	for _, name := range []string{"stripped", "static_stripped"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(built(t, name))
			if err != nil {
				t.Fatal(err)
			}
			want, err := Inspect(built(t, name))
			if err != nil {
				t.Fatal(err)
			}
			// e_shoff, e_shnum, e_shstrndx.
			binary.LittleEndian.PutUint64(b[0x28:], 0)
			binary.LittleEndian.PutUint16(b[0x3c:], 0)
			binary.LittleEndian.PutUint16(b[0x3e:], 0)
			p := filepath.Join(t.TempDir(), "noshdr")
			if err := os.WriteFile(p, b, 0o755); err != nil {
				t.Fatal(err)
			}
			got, err := Inspect(p)
			if err != nil {
				t.Fatal(err)
			}
			if !equalTargets(got, want) {
				t.Errorf("without section headers:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLangVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"go1.26.8", "go1.26"},
		{"go1.17", "go1.17"},
		{"go1.23rc1 X:boringcrypto", "go1.23"},
		{"devel go1.27-0123abcd Tue Dec 1 00:00:00 2026 +0000", "go1.27"},
		{"go1.16.15", "go1.16"},
		{"gccgo", ""},
		{"", ""},
	} {
		if got := langVersion(tc.in); got != tc.want {
			t.Errorf("langVersion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// BenchmarkInspect measures what a new Go process costs the observer the
// first time its executable is seen. Besides wall time it reports the
// process's CPU time per call (cpu-ns/op), which a busy machine does not
// inflate.
func BenchmarkInspect(b *testing.B) {
	for _, name := range []string{"default", "stripped", "pie_stripped", "external_stripped"} {
		b.Run(name, func(b *testing.B) {
			path := built(b, name)
			b.ReportAllocs()
			cpu0 := cpuTime(b)
			for b.Loop() {
				if _, err := Inspect(path); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far, in ns.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestDWARFWalkMatchesLookup: the full walk that backs up the lookup by
// name finds the same offsets in the whole .debug_info.
func TestDWARFWalkMatchesLookup(t *testing.T) {
	b, err := os.ReadFile(built(t, "default"))
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(b)
	f, err := elf.NewFile(r)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := openSection(f, r, f.Section(".debug_info"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := readUnitsUntil(rd, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := typeDWARF(f, info)
	if err != nil {
		t.Fatal(err)
	}
	byName, err := structOffsets(d, info, true)
	if err != nil {
		t.Fatal(err)
	}
	walked, err := structOffsets(d, info, false)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(byName, walked) {
		t.Errorf("by name %v, walked %v", byName, walked)
	}
	if len(walked) != len(chain) {
		t.Errorf("%d offsets for %d fields", len(walked), len(chain))
	}
}
