package gobin

import (
	"bufio"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// tracefs is where the kernel's tracing file system is mounted.
const tracefs = "/sys/kernel/tracing"

// TestUprobeRegisters puts the kernel's own uprobes (tracefs uprobe_events,
// the mechanism the eBPF probes share) at the offsets Inspect gives, runs
// the stripped client against an HTTP/2 TLS server, and checks in the
// recorded registers what the TLSTarget documentation promises: at entry
// RBX points at the plaintext (the HTTP/2 preface is seen) and RCX is its
// length, R14 pairs each entry with one return, RAX at a return is n and
// RBX is zero without error, and the Layout chain from RAX at entry yields
// the fd the process then writes to. The entry uprobe sits at ProbeEntry,
// as the eBPF one does: at Entry a goroutine whose stack must grow passes
// twice, once before morestack and once after.
func TestUprobeRegisters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test defines uprobes in tracefs and must run as root (sudo make test)")
	}
	if _, err := os.Stat(filepath.Join(tracefs, "uprobe_events")); err != nil {
		t.Fatalf("tracefs is not mounted at %s (mount -t tracefs nodev %s): %v", tracefs, tracefs, err)
	}
	// A copy of its own: a uprobe belongs to the file, and the comm names
	// the process in the trace.
	exe := filepath.Join(t.TempDir(), "gobinprobe")
	b, err := os.ReadFile(built(t, "stripped"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	target, err := Inspect(exe)
	if err != nil {
		t.Fatal(err)
	}

	l := target.Layout
	fd := fmt.Sprintf("+%d(+%d(+%d(%%ax))):s64", l.NetFDSysfd, l.TCPConnFD, l.TLSConnConn+l.IfaceData)
	group := fmt.Sprintf("gobin_test_%d", os.Getpid())
	var defs []string
	for _, fn := range []struct {
		kind string
		fn   Func
	}{{"write", target.Write}, {"read", target.Read}} {
		defs = append(defs, fmt.Sprintf("p:%s/%s_enter %s:%#x len=%%cx:s64 g=%%r14:x64 head=+0(%%bx):x64 fd=%s", group, fn.kind, exe, fn.fn.ProbeEntry, fd))
		for i, ret := range fn.fn.Returns {
			defs = append(defs, fmt.Sprintf("p:%s/%s_ret%d %s:%#x n=%%ax:s64 errtab=%%bx:x64 g=%%r14:x64", group, fn.kind, i, exe, ret))
		}
	}
	trace := startTrace(t, group, defs)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, srv.URL+"/v1/chat/completions")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+roots)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "HTTP/2.0 200") {
		t.Fatalf("client: %v: %s", err, out)
	}
	events := trace()

	// The HTTP/2 client preface starts "PRI * HT".
	preface := binary.LittleEndian.Uint64([]byte("PRI * HT"))
	type entry struct {
		kind   string
		len    int64
		fd     int64
		thread string
	}
	pending := map[string]entry{}
	var sawPreface, sawRead bool
	var fds = map[int64]bool{}
	written := map[int64]bool{}
	moved := 0
	for _, e := range events {
		if e.comm != "gobinprobe" {
			continue
		}
		if e.name == "sys_write" {
			written[e.int(t, "fd")] = true
			continue
		}
		kind, what, _ := strings.Cut(e.name, "_")
		if what == "enter" {
			if _, ok := pending[e.args["g"]]; ok {
				t.Errorf("goroutine %s enters %s while inside another call", e.args["g"], kind)
			}
			pending[e.args["g"]] = entry{kind, e.int(t, "len"), e.int(t, "fd"), e.thread}
			fds[e.int(t, "fd")] = true
			if kind == "write" && e.uint(t, "head") == preface {
				sawPreface = true
			}
			continue
		}
		in, ok := pending[e.args["g"]]
		if !ok || in.kind != kind {
			t.Errorf("%s return on goroutine %s without its entry", kind, e.args["g"])
			continue
		}
		delete(pending, e.args["g"])
		if in.thread != e.thread {
			moved++
		}
		n, errtab := e.int(t, "n"), e.uint(t, "errtab")
		switch {
		case kind == "write" && (n != in.len || errtab != 0):
			t.Errorf("write of %d bytes returned n=%d err itab %#x", in.len, n, errtab)
		case kind == "read" && (n < 0 || n > in.len):
			t.Errorf("read into %d bytes returned n=%d", in.len, n)
		case kind == "read" && n > 0 && errtab == 0:
			sawRead = true
		}
	}
	if !sawPreface {
		t.Error("no Write entry with RBX pointing at the HTTP/2 preface")
	}
	if !sawRead {
		t.Error("no Read returned bytes without error")
	}
	for _, in := range pending {
		if in.kind == "write" {
			t.Errorf("a write of %d bytes never returned", in.len)
		}
	}
	if len(fds) != 1 {
		t.Errorf("fd chain gave %v, want the one connection's fd", fds)
	}
	for fd := range fds {
		if fd < 3 || !written[fd] {
			t.Errorf("fd chain gave %d, which the process never wrote to (it wrote to %v)", fd, written)
		}
	}
	t.Logf("%d events; %d calls returned on another thread than they entered on", len(events), moved)
}

// traceEvent is one line of a tracefs trace.
type traceEvent struct {
	comm, thread, name string
	args               map[string]string
}

func (e traceEvent) int(t *testing.T, key string) int64 {
	v, err := strconv.ParseInt(e.args[key], 0, 64)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", e.name, key, e.args[key], err)
	}
	return v
}

func (e traceEvent) uint(t *testing.T, key string) uint64 {
	v, err := strconv.ParseUint(e.args[key], 0, 64)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", e.name, key, e.args[key], err)
	}
	return v
}

var (
	traceLine = regexp.MustCompile(`^\s*(.+)-(\d+)\s+\[\d+\]\s+\S+\s+[\d.]+: (\w+)(?:: |\()(.*)$`)
	traceArg  = regexp.MustCompile(`(\w+)[=:] ?([^ ,)]+)`)
)

// startTrace defines the uprobe events defs (tracefs uprobe_events syntax)
// in group, and records them and write system calls in a tracefs instance
// of their own. The returned function stops recording and returns what was
// recorded; cleanup removes the instance and the events.
func startTrace(t *testing.T, group string, defs []string) func() []traceEvent {
	t.Helper()
	events := filepath.Join(tracefs, "uprobe_events")
	instance := filepath.Join(tracefs, "instances", group)
	appendLine := func(path, line string) error {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteString(line + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	t.Cleanup(func() {
		os.Remove(instance)
		for _, d := range defs {
			name, _, _ := strings.Cut(strings.TrimPrefix(d, "p:"), " ")
			appendLine(events, "-:"+name)
		}
	})
	for _, d := range defs {
		if err := appendLine(events, d); err != nil {
			t.Fatalf("define uprobe %q: %v", d, err)
		}
	}
	if err := os.Mkdir(instance, 0o755); err != nil {
		t.Fatal(err)
	}
	enable := func(v string) {
		for _, e := range []string{"events/" + group + "/enable", "events/syscalls/sys_enter_write/enable"} {
			if err := os.WriteFile(filepath.Join(instance, e), []byte(v), 0); err != nil {
				t.Fatalf("%s: %v", e, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(instance, "buffer_size_kb"), []byte("8192"), 0); err != nil {
		t.Fatal(err)
	}
	enable("1")
	return func() []traceEvent {
		enable("0")
		f, err := os.Open(filepath.Join(instance, "trace"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out []traceEvent
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			m := traceLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			e := traceEvent{comm: strings.TrimSpace(m[1]), thread: m[2], name: m[3], args: map[string]string{}}
			if e.name != "sys_write" || strings.HasPrefix(m[4], "fd") {
				for _, a := range traceArg.FindAllStringSubmatch(m[4], -1) {
					e.args[a[1]] = a[2]
				}
			}
			out = append(out, e)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
}
