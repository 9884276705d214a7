package discover

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/llm-observer/llm-observer/internal/gobin"
)

// TLSAttacher puts TLS probes on one file; capture's Probe is one.
type TLSAttacher interface {
	// AttachOpenSSL probes the OpenSSL functions of the ELF file at path,
	// found at the given file offsets by symbol name; closing the result
	// removes the probes.
	AttachOpenSSL(path string, offsets map[string]uint64) (io.Closer, error)
	// AttachGoTLS probes Go's crypto/tls in the executable at path.
	AttachGoTLS(path string, target *gobin.TLSTarget) (io.Closer, error)
	// AllowTLS adds or removes a process from those the probes follow,
	// when following is limited by TLSOptions.
	AllowTLS(pid uint32, allow bool) error
}

// TLSOptions limit which processes get TLS probes. Empty lists mean every
// process.
type TLSOptions struct {
	// Executables are base names of executables to follow (e.g. python3).
	Executables []string
	// PIDs are processes to follow.
	PIDs []int
	// Cgroups are substrings of /proc/PID/cgroup to follow (a pod UID, a
	// container id, a systemd unit).
	Cgroups []string
	// SystemDirs are searched at start for libssl files, which are probed
	// for as long as the observer runs, so that a process that starts and
	// speaks TLS within milliseconds is not missed. Nil means
	// DefaultSystemDirs.
	SystemDirs []string
	// Rescan is how often every process is looked at again (default 30s);
	// exec and TLS notices make new processes be probed well before.
	Rescan time.Duration
	// Logf reports each file that could not be probed, once.
	Logf func(format string, args ...any)
}

// Filtered reports whether following is limited to some processes.
func (o TLSOptions) Filtered() bool {
	return len(o.Executables) > 0 || len(o.PIDs) > 0 || len(o.Cgroups) > 0
}

// DefaultSystemDirs are where distributions keep the system OpenSSL.
var DefaultSystemDirs = []string{
	"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64", "/lib",
	"/usr/local/lib", "/usr/local/lib64",
}

// TLSStats count what TLS probing did. Failures carry their reason.
type TLSStats struct {
	FilesProbed int               // files with probes now
	Processes   int               // processes followed now
	Attaches    uint64            // files probed since start
	Detaches    uint64            // files whose probes went with their last user
	Failures    map[string]uint64 // files that could not be probed, by reason
}

// fileID names a file across mount namespaces.
type fileID struct {
	dev, ino uint64
}

type probedFile struct {
	path   string
	closer io.Closer
	pinned bool             // a system library, probed for the observer's lifetime
	users  map[int]struct{} // processes mapping it
	idle   time.Time        // when its last user went; zero while it has one
}

// linger is how long a file keeps its probes after its last process went,
// so that a program run again and again (a CLI, a job, a test) finds them
// still there: removing probes takes the kernel a tenth of a second each
// on a busy machine, and attaching them again only after the new process
// has started would miss its first calls.
const linger = 3 * time.Second

type tlsProc struct {
	start uint64 // start ticks: tells a reused pid apart
	files []fileID
}

// TLSProbes decides which files carry OpenSSL or Go's crypto/tls and keeps
// probes on them for as long as a process uses them: one attachment per
// file (by device and inode), shared by every process that maps it, found
// through /proc/PID/root so that files inside containers work too.
type TLSProbes struct {
	fs     procfs.FS
	root   string
	att    TLSAttacher
	opts   TLSOptions
	notice chan int

	mu       sync.Mutex
	files    map[fileID]*probedFile
	procs    map[int]*tlsProc
	noTLS    map[fileID]bool // files known to carry no TLS stack the probes know
	analyzed map[fileID]analysis
	failed   map[fileID]bool // files that failed once; not retried
	stats    TLSStats
	allowed  map[int]bool
	retries  map[int]int // processes to look at again, and how many times; only Run's goroutine
	scanned  chan struct{}
	stop     <-chan struct{}          // closed when Run's ctx is done
	closing  map[fileID]chan struct{} // files whose probes are being removed
}

// Scanned is closed once Run has probed the system libraries and every
// process that was running when it started.
func (t *TLSProbes) Scanned() <-chan struct{} { return t.scanned }

// maxRetries bounds the processes looked at again after a notice: a build
// starting hundreds of compilers must not keep the prober busy.
const maxRetries = 256

// NewTLSProbes returns a prober of the processes under procRoot.
func NewTLSProbes(procRoot string, att TLSAttacher, opts TLSOptions) (*TLSProbes, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", procRoot, err)
	}
	if opts.SystemDirs == nil {
		opts.SystemDirs = DefaultSystemDirs
	}
	if opts.Rescan <= 0 {
		opts.Rescan = 30 * time.Second
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &TLSProbes{
		fs: fs, root: procRoot, att: att, opts: opts,
		notice:   make(chan int, 1024),
		files:    map[fileID]*probedFile{},
		procs:    map[int]*tlsProc{},
		noTLS:    map[fileID]bool{},
		analyzed: map[fileID]analysis{},
		failed:   map[fileID]bool{},
		allowed:  map[int]bool{},
		retries:  map[int]int{},
		scanned:  make(chan struct{}),
		closing:  map[fileID]chan struct{}{},
		stats:    TLSStats{Failures: map[string]uint64{}},
	}, nil
}

// Notice asks for pid to be looked at soon: it just called exec, or started
// speaking TLS. It never blocks; a full queue leaves pid to the rescan.
func (t *TLSProbes) Notice(pid int) {
	select {
	case t.notice <- pid:
	default:
	}
}

// Run probes the system libraries and every process, then follows notices
// and rescans until ctx is done, and finally removes every probe.
func (t *TLSProbes) Run(ctx context.Context) {
	t.stop = ctx.Done()
	defer t.Close()
	t.probeSystem()
	// The first scan reads every process's executable; notices that come
	// meanwhile are served between processes, so a process started now is
	// not kept waiting behind hundreds that were there before.
	t.ScanAll()
	close(t.scanned)
	rescan := time.NewTicker(t.opts.Rescan)
	defer rescan.Stop()
	exits := time.NewTicker(time.Second)
	defer exits.Stop()
	retry := time.NewTicker(50 * time.Millisecond)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case pid := <-t.notice:
			t.noticed(pid)
		case <-retry.C:
			for pid, n := range t.retries {
				t.ScanPID(pid)
				if n <= 1 {
					delete(t.retries, pid)
				} else {
					t.retries[pid] = n - 1
				}
			}
		case <-exits.C:
			t.ReleaseExited()
		case <-rescan.C:
			t.ScanAll()
		}
	}
}

// noticed scans a process that just called exec or started speaking TLS,
// and again a few times over the next 300 ms: a process maps its libraries
// over its first milliseconds, and may load libssl only when it first needs
// it.
func (t *TLSProbes) noticed(pid int) {
	t.ScanPID(pid)
	if len(t.retries) < maxRetries {
		t.retries[pid] = 6
	}
}

// serveNotices handles the notices waiting now, without blocking.
func (t *TLSProbes) serveNotices() {
	for {
		select {
		case pid := <-t.notice:
			t.noticed(pid)
		default:
			return
		}
	}
}

func (t *TLSProbes) probeSystem() {
	for _, dir := range t.opts.SystemDirs {
		matches, _ := filepath.Glob(filepath.Join(dir, "libssl.so*"))
		for _, path := range matches {
			id, err := statID(path)
			if err != nil {
				continue
			}
			t.mu.Lock()
			if f := t.files[id]; f != nil {
				f.pinned = true
			} else if f := t.attach(id, path); f != nil {
				f.pinned = true
			}
			t.mu.Unlock()
		}
	}
}

// ScanAll looks at every process, and lets go of those that have exited.
func (t *TLSProbes) ScanAll() {
	procs, err := t.fs.AllProcs()
	if err != nil {
		t.opts.Logf("list processes: %v", err)
		return
	}
	for _, p := range procs {
		select {
		case <-t.stop:
			// Shutting down: a scan of a busy host takes seconds that
			// the shutdown budget does not have.
			return
		default:
		}
		t.serveNotices()
		t.ScanPID(p.PID)
	}
	t.ReleaseExited()
}

// ScanPID probes the OpenSSL files pid maps, or its executable if it
// carries OpenSSL, when pid is one to follow.
func (t *TLSProbes) ScanPID(pid int) {
	if pid == os.Getpid() {
		return
	}
	proc, err := t.fs.Proc(pid)
	if err != nil {
		return
	}
	st, err := proc.Stat()
	if err != nil {
		return
	}
	if !t.selected(proc, pid) {
		return
	}
	var ids []fileID
	var paths []string
	if exe, err := os.Readlink(filepath.Join(t.root, strconv.Itoa(pid), "exe")); err == nil {
		path := t.inRoot(pid, exe)
		if id, err := statID(path); err == nil {
			ids, paths = append(ids, id), append(paths, path)
		}
	}
	maps, err := proc.ProcMaps()
	if err != nil {
		return
	}
	seen := map[fileID]bool{}
	for _, m := range maps {
		if m.Inode == 0 || !isLibSSL(m.Pathname) {
			continue
		}
		id := fileID{dev: uint64(m.Dev), ino: m.Inode}
		if seen[id] {
			continue
		}
		seen[id] = true
		path := t.inRoot(pid, strings.TrimSuffix(m.Pathname, " (deleted)"))
		if sid, err := statID(path); err == nil {
			id = sid // the device number as stat reports it
		}
		ids, paths = append(ids, id), append(paths, path)
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.procs[pid]
	if old != nil && old.start != st.Starttime {
		t.releaseLocked(pid)
		old = nil
	}
	p := &tlsProc{start: st.Starttime}
	for i, id := range ids {
		f := t.files[id]
		if f == nil {
			if t.noTLS[id] || t.failed[id] {
				continue
			}
			if f = t.attach(id, paths[i]); f == nil {
				continue
			}
		}
		f.users[pid] = struct{}{}
		f.idle = time.Time{}
		p.files = append(p.files, id)
	}
	if old != nil {
		// Files the process no longer maps (it called exec) lose it.
		for _, id := range old.files {
			if !containsID(p.files, id) {
				t.dropUserLocked(id, pid)
			}
		}
	}
	if len(p.files) == 0 {
		delete(t.procs, pid)
		return
	}
	t.procs[pid] = p
	if t.opts.Filtered() && !t.allowed[pid] {
		if err := t.att.AllowTLS(uint32(pid), true); err == nil {
			t.allowed[pid] = true
		}
	}
}

// attach probes one file; nil when it carries no TLS stack the probes know
// or failed, which is remembered so the file is not tried again.
func (t *TLSProbes) attach(id fileID, path string) *probedFile {
	// What is remembered of files is bounded: a host that builds and runs
	// new binaries all day would otherwise grow it without end.
	for _, m := range []map[fileID]bool{t.noTLS, t.failed} {
		if len(m) >= maxRemembered {
			clear(m)
		}
	}
	if len(t.analyzed) >= maxRemembered {
		clear(t.analyzed)
	}
	if done, ok := t.closing[id]; ok {
		<-done
		delete(t.closing, id)
	}
	began := time.Now()
	c, err := t.probeFile(id, path)
	took := time.Since(began)
	if err == nil && c == nil {
		t.noTLS[id] = true
		return nil
	}
	if err != nil {
		reason := "attach_failed"
		var ue *gobin.UnsupportedError
		switch {
		case errors.As(err, &ue):
			reason = "go_" + strings.TrimPrefix(string(ue.Reason), "go_")
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission):
			reason = "open_failed"
		}
		t.failed[id] = true
		t.stats.Failures[reason]++
		t.opts.Logf("cannot probe TLS in %s (%s): %v", path, reason, err)
		return nil
	}
	f := &probedFile{path: path, closer: c, users: map[int]struct{}{}}
	t.files[id] = f
	t.stats.Attaches++
	t.opts.Logf("TLS probes on %s (in %v)", path, took.Round(time.Millisecond))
	return f
}

// probeFile attaches the probes for the TLS stack the file at path
// carries: OpenSSL's exported functions, or Go's crypto/tls. Neither gives
// a nil Closer and no error; a Go executable the probes cannot handle
// (too old, unknown layout) gives a *gobin.UnsupportedError.
func (t *TLSProbes) probeFile(id fileID, path string) (io.Closer, error) {
	// A file's analysis is kept: a short-lived process run again and
	// again (a CLI, a cron job) is probed at its next exec without it.
	if a, ok := t.analyzed[id]; ok {
		if a.offsets != nil {
			return t.att.AttachOpenSSL(path, a.offsets)
		}
		return t.att.AttachGoTLS(path, a.goTLS)
	}
	offsets, err := openSSLOffsets(path)
	if err != nil {
		return nil, err
	}
	if offsets != nil {
		t.analyzed[id] = analysis{offsets: offsets}
		return t.att.AttachOpenSSL(path, offsets)
	}
	target, err := gobin.Inspect(path)
	var ue *gobin.UnsupportedError
	if errors.As(err, &ue) {
		switch ue.Reason {
		case gobin.ReasonNotELF, gobin.ReasonNotGo, gobin.ReasonNoTLS:
			return nil, nil
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	t.analyzed[id] = analysis{goTLS: target}
	return t.att.AttachGoTLS(path, target)
}

// maxRemembered bounds each of the per-file memories of TLSProbes.
const maxRemembered = 4096

// analysis is what probing a file needs, found once per file.
type analysis struct {
	offsets map[string]uint64 // OpenSSL functions
	goTLS   *gobin.TLSTarget  // or Go's crypto/tls
}

// tlsSymbols are the OpenSSL functions the probes hook.
var tlsSymbols = []string{"SSL_read", "SSL_write", "SSL_read_ex", "SSL_write_ex"}

// openSSLOffsets finds OpenSSL's functions in the ELF file at path and
// returns their file offsets, the form a uprobe takes; nil when the file does
// not export SSL_read and SSL_write (it is not OpenSSL, or not ELF). It scans
// the dynamic symbol table in place rather than decoding every symbol: an
// executable such as node exports some 75,000, which debug/elf takes a
// quarter of a second to decode, longer than node takes to make its first
// request after exec.
func openSSLOffsets(path string) (map[string]uint64, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var magic [4]byte
	if _, err := io.ReadFull(file, magic[:]); err != nil || string(magic[:]) != elf.ELFMAG {
		return nil, nil // not ELF: a script, a short file
	}
	f, err := elf.NewFile(file)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return nil, nil
		}
		return nil, err
	}
	if f.Class != elf.ELFCLASS64 {
		return nil, nil
	}
	symSec, strSec := f.Section(".dynsym"), f.Section(".dynstr")
	if symSec == nil || strSec == nil {
		return nil, nil
	}
	syms, err := symSec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .dynsym of %s: %w", path, err)
	}
	strs, err := strSec.Data()
	if err != nil {
		return nil, fmt.Errorf("read .dynstr of %s: %w", path, err)
	}
	const symSize = 24 // Elf64_Sym
	found := map[string]uint64{}
	for off := symSize; off+symSize <= len(syms); off += symSize {
		e := syms[off : off+symSize]
		if elf.ST_TYPE(e[4]) != elf.STT_FUNC {
			continue
		}
		value := f.ByteOrder.Uint64(e[8:16])
		name := int(f.ByteOrder.Uint32(e[0:4]))
		if value == 0 || name >= len(strs) || strs[name] != 'S' {
			continue
		}
		for _, want := range tlsSymbols {
			end := name + len(want)
			if end < len(strs) && strs[end] == 0 && string(strs[name:end]) == want {
				if fo, ok := fileOffset(f, value); ok {
					found[want] = fo
				}
			}
		}
	}
	if found["SSL_read"] == 0 || found["SSL_write"] == 0 {
		return nil, nil
	}
	return found, nil
}

// fileOffset turns a virtual address into the offset in the file of the
// loadable segment holding it.
func fileOffset(f *elf.File, addr uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && addr >= p.Vaddr && addr < p.Vaddr+p.Memsz {
			return addr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// ReleaseExited lets go of the processes that have exited; a file whose
// last user went loses its probes, unless it is a system library.
func (t *TLSProbes) ReleaseExited() {
	t.mu.Lock()
	pids := make([]int, 0, len(t.procs))
	starts := make([]uint64, 0, len(t.procs))
	for pid, p := range t.procs {
		pids, starts = append(pids, pid), append(starts, p.start)
	}
	t.mu.Unlock()
	for i, pid := range pids {
		if t.alive(pid, starts[i]) {
			continue
		}
		t.mu.Lock()
		t.releaseLocked(pid)
		t.mu.Unlock()
	}
	t.removeIdle(time.Now())
}

func (t *TLSProbes) alive(pid int, start uint64) bool {
	proc, err := t.fs.Proc(pid)
	if err != nil {
		return false
	}
	st, err := proc.Stat()
	return err == nil && st.Starttime == start
}

func (t *TLSProbes) releaseLocked(pid int) {
	p := t.procs[pid]
	if p == nil {
		return
	}
	delete(t.procs, pid)
	for _, id := range p.files {
		t.dropUserLocked(id, pid)
	}
	if t.allowed[pid] {
		delete(t.allowed, pid)
		_ = t.att.AllowTLS(uint32(pid), false)
	}
}

func (t *TLSProbes) dropUserLocked(id fileID, pid int) {
	f := t.files[id]
	if f == nil {
		return
	}
	delete(f.users, pid)
	if len(f.users) == 0 && !f.pinned && f.idle.IsZero() {
		f.idle = time.Now()
	}
}

// removeIdle takes the probes off files that have had no process for
// linger. The kernel's removal is slow, so it happens off this goroutine;
// a file probed again meanwhile waits for it (see attach), so that two sets
// of probes never fire for one call.
func (t *TLSProbes) removeIdle(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, f := range t.files {
		if f.idle.IsZero() || now.Sub(f.idle) < linger {
			continue
		}
		delete(t.files, id)
		t.stats.Detaches++
		done := make(chan struct{})
		t.closing[id] = done
		go func() {
			defer close(done)
			if err := f.closer.Close(); err != nil {
				t.opts.Logf("remove TLS probes from %s: %v", f.path, err)
			}
		}()
	}
}

// Close removes every probe.
func (t *TLSProbes) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	// In parallel: removing probes waits on the kernel per file.
	var wg sync.WaitGroup
	for id, f := range t.files {
		wg.Go(func() { f.closer.Close() })
		delete(t.files, id)
	}
	for id, done := range t.closing {
		wg.Go(func() { <-done })
		delete(t.closing, id)
	}
	wg.Wait()
	t.procs = map[int]*tlsProc{}
}

// Stats returns a copy of the counters.
func (t *TLSProbes) Stats() TLSStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.FilesProbed = len(t.files)
	s.Processes = len(t.procs)
	s.Failures = make(map[string]uint64, len(t.stats.Failures))
	for k, v := range t.stats.Failures {
		s.Failures[k] = v
	}
	return s
}

func (t *TLSProbes) selected(proc procfs.Proc, pid int) bool {
	if !t.opts.Filtered() {
		return true
	}
	for _, p := range t.opts.PIDs {
		if p == pid {
			return true
		}
	}
	if len(t.opts.Executables) > 0 {
		if exe, err := proc.Executable(); err == nil {
			for _, name := range t.opts.Executables {
				if filepath.Base(exe) == name {
					return true
				}
			}
		}
	}
	if len(t.opts.Cgroups) > 0 {
		if cg, err := os.ReadFile(filepath.Join(t.root, strconv.Itoa(pid), "cgroup")); err == nil {
			for _, s := range t.opts.Cgroups {
				if strings.Contains(string(cg), s) {
					return true
				}
			}
		}
	}
	return false
}

// inRoot is path as seen from pid's mount namespace, reached through its
// root, so that libraries inside containers are found.
func (t *TLSProbes) inRoot(pid int, path string) string {
	return filepath.Join(t.root, strconv.Itoa(pid), "root", path)
}

// isLibSSL says whether a mapped file is an OpenSSL (or BoringSSL, or
// LibreSSL) libssl, whatever its soname.
func isLibSSL(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "libssl") && strings.Contains(base, ".so")
}

func statID(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino}, nil
}

func containsID(ids []fileID, id fileID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
