// Package gobin reads, from a Go executable file, what the Go crypto/tls
// probes need: the Go version, the file offsets of crypto/tls.(*Conn).Write
// and Read and of every RET inside them, and the struct offsets that lead
// from a *tls.Conn to its socket's file descriptor. It only reads files;
// attaching the probes and reading registers is the capture package's job.
package gobin

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"go/version"
	"io"
	"os"
	"strings"
)

// TLSTarget is where and how to probe crypto/tls in one Go executable
// (linux/amd64, Go 1.17 or later, so the register ABI).
//
// Registers at a uprobe on Entry of Write(b []byte) (n int, err error) and
// Read(b []byte) (n int, err error):
//
//	RAX  receiver, the *tls.Conn
//	RBX  b's data pointer
//	RCX  b's length
//	R14  the current goroutine (runtime.g); the key that pairs an entry with
//	     its return, since a goroutine may move to another thread in between
//
// Registers at a uprobe on each of Returns (the RET instruction, before it
// runs; the stack pointer still points at the return address):
//
//	RAX  n, the bytes written or read
//	RBX  err's type word (itab): zero means err == nil
//	RCX  err's data word
//	R14  the same goroutine as at entry
//
// The arguments are not live at a RET: RAX/RBX/RCX hold results there, so
// whatever the return probe needs from the entry (the buffer pointer, the
// *tls.Conn) must be saved at entry under the goroutine key (with the
// process id: goroutine addresses are per process).
//
// Read blocks until a record arrives: its goroutine parks and may resume
// on another thread, so a thread id cannot pair entry and return, and an
// entry may never see its return (the process exits, or the call is still
// waiting), so the saved state needs an LRU map. While parked, the
// goroutine's stack may be moved by the garbage collector; a b that points
// into it (between g.stack.lo at [R14+0] and g.stack.hi at [R14+8]) is
// best saved as an offset from stack.hi and rebased at return. Write's
// plaintext is complete at entry; its return says how much of it was sent
// (n < len(b) only with an error).
type TLSTarget struct {
	// GoVersion is the toolchain that built the file, as debug/buildinfo
	// reports it, e.g. "go1.26.8".
	GoVersion string
	// Write is crypto/tls.(*Conn).Write: at entry b holds plaintext about
	// to be encrypted and sent.
	Write Func
	// Read is crypto/tls.(*Conn).Read: at its returns the first n bytes of
	// b (saved at entry) hold plaintext received.
	Read Func
	// Layout leads from the *tls.Conn in RAX at entry to the socket's fd.
	Layout ConnLayout
}

// Func is one probed function. Offsets are file offsets, what a uprobe on
// the executable takes (link.UprobeOptions.Address); Addr and Size are the
// virtual address and length the offsets were derived from.
type Func struct {
	// Name is the function's symbol, e.g. "crypto/tls.(*Conn).Write".
	Name string
	// Addr is the entry's virtual address as linked.
	Addr uint64
	// Size is the length of the function's code in bytes, padding included.
	Size uint64
	// Entry is the file offset of the first instruction.
	Entry uint64
	// ProbeEntry is where to put the entry probe: the PUSH RBP that opens
	// the frame, after the stack check, when the code has one (the
	// registers are still as at Entry there, a uprobe on it is cheaper,
	// and a goroutine whose stack must grow passes it once where it passes
	// Entry twice); else Entry.
	ProbeEntry uint64
	// Returns are the file offsets of every RET instruction in the
	// function, in address order. Never empty.
	Returns []uint64
}

// ConnLayout holds the byte offsets of the pointer chain from a *tls.Conn
// to the socket's file descriptor, for a net.Conn that is a *net.TCPConn
// (or *net.UnixConn, which has the same shape):
//
//	iface := conn + TLSConnConn          // net.Conn: {itab, data}
//	tcp   := *(iface + IfaceData)        // *net.TCPConn
//	nfd   := *(tcp + TCPConnFD)          // *net.netFD
//	fd    := *(int64*)(nfd + NetFDSysfd) // poll.FD.Sysfd
//
// A net.Conn of another type (a user's wrapper) leads elsewhere; the
// kernel side must check that the result is a socket of the process.
type ConnLayout struct {
	// FromDWARF tells whether the offsets were read from the file's DWARF
	// (true) or taken from the table for its Go version.
	FromDWARF bool
	// TLSConnConn is the offset of crypto/tls.Conn.conn, a net.Conn.
	TLSConnConn uint64
	// IfaceData is the offset of the data word in an interface value.
	IfaceData uint64
	// TCPConnFD is the offset of net.TCPConn's embedded conn.fd (*netFD).
	TCPConnFD uint64
	// NetFDSysfd is the offset of pfd.Sysfd (an int) in net.netFD.
	NetFDSysfd uint64
}

// ErrUnsupported is the error every UnsupportedError matches with
// errors.Is: the file is fine but holds nothing the Go TLS probes can use.
var ErrUnsupported = errors.New("unsupported executable for Go TLS probes")

// Reason says in a short label why an executable is unsupported, fit for a
// metric attribute.
type Reason string

// The reasons an executable cannot have Go TLS probes.
const (
	ReasonNotELF      Reason = "not_elf"
	ReasonNotAMD64    Reason = "not_amd64"
	ReasonNotGo       Reason = "not_go"
	ReasonGoTooOld    Reason = "go_too_old"
	ReasonNoTLS       Reason = "no_crypto_tls"
	ReasonNoLayout    Reason = "no_struct_layout"
	ReasonUnknownCode Reason = "unexpected_code"
)

// UnsupportedError is why an executable gets no Go TLS probes, with the Go
// version when the file has one, so the caller can count it by reason and
// log it once per executable.
type UnsupportedError struct {
	Reason    Reason
	GoVersion string // empty unless the file is a Go executable
	Detail    string
}

func (e *UnsupportedError) Error() string {
	var b strings.Builder
	b.WriteString(ErrUnsupported.Error())
	b.WriteString(": ")
	b.WriteString(string(e.Reason))
	if e.GoVersion != "" {
		b.WriteString(" (" + e.GoVersion + ")")
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUnsupported) hold.
func (e *UnsupportedError) Unwrap() error { return ErrUnsupported }

// minVersion is the first Go with the register ABI on amd64, which the
// probes' register reading assumes.
const minVersion = "go1.17"

// Names of the probed functions in .gopclntab.
const (
	writeSym = "crypto/tls.(*Conn).Write"
	readSym  = "crypto/tls.(*Conn).Read"
)

// Inspect reads the Go executable at path and says where to put the
// crypto/tls probes. Supported: linux/amd64 executables built by Go 1.17
// or later with DWARF, or by Go 1.17 through 1.26 without (stripped), in
// any build mode (static, cgo, PIE, external linking). An executable that
// cannot be probed (not Go, Go before 1.17, not amd64, no crypto/tls, no
// known struct layout, unexpected code) gives an *UnsupportedError; a file
// that cannot be read or parsed gives another error. It reads a few
// megabytes and takes milliseconds: run it once per executable (by device
// and inode), not per process.
func Inspect(path string) (*TLSTarget, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inspect Go executable: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("inspect Go executable: %w", err)
	}
	t, err := inspect(io.NewSectionReader(f, 0, st.Size()))
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	return t, nil
}

// inspect does Inspect's work on an open file. The debug packages are not
// hardened against every malformed input, so a panic in them becomes an
// error: a corrupt executable must never take the observer down.
func inspect(r sized) (t *TLSTarget, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("malformed executable: %v", p)
		}
	}()

	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, &UnsupportedError{Reason: ReasonNotELF}
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return nil, &UnsupportedError{Reason: ReasonNotAMD64, Detail: f.Machine.String()}
	}

	bi, err := buildinfo.Read(r)
	if err != nil {
		return nil, &UnsupportedError{Reason: ReasonNotGo, Detail: err.Error()}
	}
	lang := langVersion(bi.GoVersion)
	if lang == "" {
		return nil, &UnsupportedError{Reason: ReasonNotGo, GoVersion: bi.GoVersion, Detail: "unparsable Go version"}
	}
	if version.Compare(lang, minVersion) < 0 {
		return nil, &UnsupportedError{Reason: ReasonGoTooOld, GoVersion: bi.GoVersion, Detail: "the probes need the register ABI of " + minVersion + " or later"}
	}

	funcs, err := findFuncs(f, r)
	if err != nil {
		return nil, withVersion(err, bi.GoVersion)
	}
	layout, err := connLayout(f, r, lang)
	if err != nil {
		return nil, withVersion(err, bi.GoVersion)
	}
	return &TLSTarget{GoVersion: bi.GoVersion, Write: funcs[0], Read: funcs[1], Layout: layout}, nil
}

// withVersion puts the Go version into an *UnsupportedError in err.
func withVersion(err error, goVersion string) error {
	var u *UnsupportedError
	if errors.As(err, &u) {
		u.GoVersion = goVersion
	}
	return err
}

// langVersion reduces a toolchain version as buildinfo gives it ("go1.22.3",
// "go1.23rc1 X:boringcrypto", "devel go1.24-abcdef ...") to the language
// version ("go1.22"), or "" when it names no Go release.
func langVersion(v string) string {
	v = strings.TrimPrefix(v, "devel ")
	if i := strings.IndexAny(v, " -+"); i >= 0 {
		v = v[:i]
	}
	return version.Lang(v)
}
