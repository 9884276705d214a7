package discover

import (
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/gobin"
)

// elfOffset computes a function's file offset the slow, obvious way: every
// dynamic symbol decoded by debug/elf.
func elfOffset(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name && s.Value != 0 {
			off, ok := fileOffset(f, s.Value)
			if !ok {
				t.Fatalf("%s: %s at %#x is in no executable segment", path, name, s.Value)
			}
			return off
		}
	}
	return 0
}

func TestOpenSSLOffsets(t *testing.T) {
	libssl, err := filepath.EvalSymlinks("/usr/lib/x86_64-linux-gnu/libssl.so.3")
	if err != nil {
		t.Fatalf("the system libssl the tests use is missing: %v", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed (it carries OpenSSL in its executable): %v", err)
	}
	for _, path := range []string{libssl, node} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			got, err := openSSLOffsets(path)
			if err != nil || got == nil {
				t.Fatalf("openSSLOffsets(%s) = %v, %v", path, got, err)
			}
			for _, name := range tlsSymbols {
				if want := elfOffset(t, path, name); got[name] != want {
					t.Errorf("%s: %#x, debug/elf says %#x", name, got[name], want)
				}
			}
		})
	}
	// Files that are not OpenSSL: no offsets, no error.
	self, _ := os.Executable()
	for _, path := range []string{"/bin/true", self, "/etc/hostname"} {
		if got, err := openSSLOffsets(path); got != nil || err != nil {
			t.Errorf("openSSLOffsets(%s) = %v, %v; want nothing", path, got, err)
		}
	}
}

func TestIsLibSSL(t *testing.T) {
	for path, want := range map[string]bool{
		"/usr/lib/x86_64-linux-gnu/libssl.so.3":    true,
		"/usr/lib64/libssl.so.1.1":                 true,
		"/opt/app/lib/libssl-7a3b.so":              true,
		"/usr/lib/x86_64-linux-gnu/libcrypto.so.3": false,
		"/usr/lib/libssl.a":                        false,
		"/usr/lib/x86_64-linux-gnu/libsslx.txt":    false,
	} {
		if got := isLibSSL(path); got != want {
			t.Errorf("isLibSSL(%s) = %v, want %v", path, got, want)
		}
	}
}

// fakeAttacher records what TLSProbes asks of the kernel side.
type fakeAttacher struct {
	mu     sync.Mutex
	open   map[string]int // path base name -> live attachments
	allows map[uint32]bool
}

type fakeAttachment struct {
	a    *fakeAttacher
	name string
	once sync.Once
}

func (f *fakeAttachment) Close() error {
	f.once.Do(func() {
		f.a.mu.Lock()
		f.a.open[f.name]--
		f.a.mu.Unlock()
	})
	return nil
}

func (a *fakeAttacher) add(path string) io.Closer {
	a.mu.Lock()
	defer a.mu.Unlock()
	name := filepath.Base(path)
	a.open[name]++
	return &fakeAttachment{a: a, name: name}
}

func (a *fakeAttacher) AttachOpenSSL(path string, _ map[string]uint64) (io.Closer, error) {
	return a.add(path), nil
}

func (a *fakeAttacher) AttachGoTLS(path string, _ *gobin.TLSTarget) (io.Closer, error) {
	return a.add(path), nil
}

func (a *fakeAttacher) AllowTLS(pid uint32, allow bool) error {
	a.mu.Lock()
	a.allows[pid] = allow
	a.mu.Unlock()
	return nil
}

func (a *fakeAttacher) live(prefix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for name, c := range a.open {
		if strings.HasPrefix(name, prefix) {
			n += c
		}
	}
	return n
}

// TestTLSProbesLifecycle: a private copy of libssl mapped by a real process
// is probed once however many processes map it, and loses its probes when
// the last of them exits; a system library stays probed.
func TestTLSProbesLifecycle(t *testing.T) {
	dir := t.TempDir()
	sys, err := filepath.EvalSymlinks("/usr/lib/x86_64-linux-gnu/libssl.so.3")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sys)
	if err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(dir, "libssl.so.3")
	if err := os.WriteFile(private, data, 0o644); err != nil {
		t.Fatal(err)
	}
	att := &fakeAttacher{open: map[string]int{}, allows: map[uint32]bool{}}
	probes, err := NewTLSProbes("/proc", att, TLSOptions{SystemDirs: []string{filepath.Dir(sys)}})
	if err != nil {
		t.Fatal(err)
	}
	probes.probeSystem()
	if att.live("libssl.so") == 0 {
		t.Fatal("the system libssl was not probed at start")
	}
	system := att.live("libssl.so")

	// Two processes load the private copy (ctypes maps it by path).
	var procs []*exec.Cmd
	for range 2 {
		cmd := exec.Command("python3", "-c", "import ctypes, sys, time; ctypes.CDLL(sys.argv[1]); print('up', flush=True); time.sleep(30)", private)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		buf := make([]byte, 3)
		if _, err := io.ReadFull(out, buf); err != nil {
			t.Fatal(err)
		}
		probes.ScanPID(cmd.Process.Pid)
		procs = append(procs, cmd)
	}
	if got := att.live("libssl.so") - system; got != 1 {
		t.Fatalf("private libssl has %d attachments with two users, want 1", got)
	}
	procs[0].Process.Kill()
	procs[0].Wait()
	probes.ReleaseExited()
	if got := att.live("libssl.so") - system; got != 1 {
		t.Fatalf("private libssl has %d attachments after one of two users left, want 1", got)
	}
	procs[1].Process.Kill()
	procs[1].Wait()
	probes.ReleaseExited()
	if got := att.live("libssl.so") - system; got != 1 {
		t.Fatalf("private libssl has %d attachments just after its last user left, want 1: they linger", got)
	}
	probes.removeIdle(time.Now().Add(linger))
	probes.mu.Lock()
	for _, done := range probes.closing {
		<-done
	}
	probes.mu.Unlock()
	if got := att.live("libssl.so") - system; got != 0 {
		t.Fatalf("private libssl keeps %d attachments after its last user left and the linger passed", got)
	}
	if att.live("libssl.so") != system {
		t.Fatal("the system libssl lost its probes")
	}
	st := probes.Stats()
	if st.Detaches != 1 || st.Processes != 0 {
		t.Errorf("stats %+v: want 1 detach and no process followed", st)
	}
	probes.Close()
	if n := att.live(""); n != 0 {
		t.Errorf("%d attachments left after Close", n)
	}
}

// TestTLSProbesFilter: with a filter, only matching processes are followed,
// and the kernel is told which.
func TestTLSProbesFilter(t *testing.T) {
	att := &fakeAttacher{open: map[string]int{}, allows: map[uint32]bool{}}
	cmd := exec.Command("python3", "-c", "import ssl, time; print('up', flush=True); time.sleep(30)")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	io.ReadFull(out, make([]byte, 3))
	pid := cmd.Process.Pid
	for _, tt := range []struct {
		name string
		opts TLSOptions
		want bool
	}{
		{"other executable", TLSOptions{Executables: []string{"curl"}}, false},
		{"by pid", TLSOptions{PIDs: []int{pid}}, true},
		{"by cgroup", TLSOptions{Cgroups: []string{"/"}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.SystemDirs = []string{}
			probes, err := NewTLSProbes("/proc", att, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer probes.Close()
			probes.ScanPID(pid)
			att.mu.Lock()
			got := att.allows[uint32(pid)]
			delete(att.allows, uint32(pid))
			att.mu.Unlock()
			if got != tt.want {
				t.Errorf("pid followed = %v, want %v", got, tt.want)
			}
		})
	}
}
