package capture

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/cilium/ebpf"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireRoot fails, never skips: the kernel side is what this package is.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("capture tests load eBPF programs and must run as root (sudo make test)")
	}
}

func startServer(t *testing.T, host string) (port string, pid int) {
	t.Helper()
	cmd := exec.Command("python3", "testdata/echo_server.py", host)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start python3 server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read server port: %v", err)
	}
	return strings.TrimSpace(line), cmd.Process.Pid
}

type stream struct {
	bytes.Buffer
	next uint64
	gaps int
}

type collected struct {
	mu      sync.Mutex
	opens   map[ConnKey]*Event
	closes  map[ConnKey]bool
	streams map[ConnKey]*[2]stream
	lost    map[ConnKey]*[2]bool // directions with a record flagged Lost
}

func (c *collected) handle(ev *Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Kind {
	case Open:
		e := *ev
		c.opens[ev.Conn] = &e
	case Close:
		c.closes[ev.Conn] = true
	case Data:
		s := c.streams[ev.Conn]
		if s == nil {
			s = new([2]stream)
			c.streams[ev.Conn] = s
		}
		if ev.Lost {
			l := c.lost[ev.Conn]
			if l == nil {
				l = new([2]bool)
				c.lost[ev.Conn] = l
			}
			l[ev.Dir] = true
		}
		d := &s[ev.Dir]
		if ev.Offset != d.next {
			d.gaps++
		}
		d.Write(ev.Data)
		d.next = ev.Offset + uint64(len(ev.Data))
	}
}

// collect runs p into a new collection until the returned stop is called;
// stop gives the ring a moment to drain and fails the test if Run failed.
func collect(t *testing.T, p *Probe) (c *collected, stop func()) {
	c = &collected{opens: map[ConnKey]*Event{}, closes: map[ConnKey]bool{}, streams: map[ConnKey]*[2]stream{}, lost: map[ConnKey]*[2]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, c.handle) }()
	return c, func() {
		t.Helper()
		time.Sleep(300 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	}
}

// TestCaptureCurlAgainstPythonServer runs once with system calls in flight
// kept in task storage, which this kernel offers, and once in the hash map
// that older kernels fall back to.
func TestCaptureCurlAgainstPythonServer(t *testing.T) {
	requireRoot(t)
	if !taskStorageOffered() {
		t.Fatal("this kernel refuses bpf_task_storage_get to tracepoint programs; the task-storage path would go untested")
	}
	for _, hash := range []bool{false, true} {
		name := "task-storage"
		if hash {
			name = "hash"
		}
		t.Run(name, func(t *testing.T) {
			inFlightHash = hash
			defer func() { inFlightHash = false }()
			p, err := Load(Config{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer p.Close()
			if p.taskStorage == hash {
				t.Fatalf("probe keeps calls in task storage: %v, want %v", p.taskStorage, !hash)
			}
			for _, host := range []string{"127.0.0.1", "::1"} {
				t.Run(host, func(t *testing.T) { testCapture(t, p, host) })
			}
			if n := mapEntries(t, p.objs.Active); n != 0 {
				t.Errorf("%d system calls left in flight in the hash map", n)
			}
		})
	}
}

// mapEntries counts the entries of a hash map.
func mapEntries(t *testing.T, m *ebpf.Map) int {
	t.Helper()
	var (
		k, v []byte
		n    int
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func testCapture(t *testing.T, p *Probe, host string) {
	port, serverPID := startServer(t, host)
	base := "http://" + net.JoinHostPort(host, port)

	c, stop := collect(t, p)

	body := `{"model":"m","prompt":"` + strings.Repeat("x", 40000) + `"}`
	llm := exec.Command("curl", "-sS", "-o", "/dev/null", "-H", "Content-Type: application/json",
		"--data-binary", body, "-g", base+"/api/generate")
	if out, err := llm.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	plain := exec.Command("curl", "-sS", "-o", "/dev/null", "-g", base+"/index.html")
	if out, err := plain.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	stop()

	c.mu.Lock()
	defer c.mu.Unlock()
	var client, server *ConnKey
	for k, ev := range c.opens {
		k := k
		switch {
		case k.PID == uint32(llm.Process.Pid):
			client = &k
			if ev.Role != RoleClient || fmt.Sprint(ev.Remote.Port()) != port || ev.Remote.Addr().String() != host {
				t.Errorf("client open: role %d remote %v, want client to port %s", ev.Role, ev.Remote, port)
			}
		case k.PID == uint32(serverPID):
			server = &k
			if ev.Role != RoleServer || fmt.Sprint(ev.Local.Port()) != port || ev.Local.Addr().String() != host {
				t.Errorf("server open: role %d local %v, want server on port %s", ev.Role, ev.Local, port)
			}
		case k.PID == uint32(plain.Process.Pid):
			t.Errorf("plain GET /index.html was tracked: %+v", ev)
		}
	}
	if client == nil || server == nil {
		t.Fatalf("want an open for curl (pid %d) and the server (pid %d), got %v", llm.Process.Pid, serverPID, c.opens)
	}
	cs, ss := c.streams[*client], c.streams[*server]
	if cs == nil || ss == nil {
		t.Fatal("no data for the client or the server")
	}
	if !bytes.HasPrefix(cs[Egress].Bytes(), []byte("POST /api/generate HTTP/1.1\r\n")) || !bytes.HasSuffix(cs[Egress].Bytes(), []byte(body)) {
		t.Errorf("client egress is not the request: %.80q…", cs[Egress].Bytes())
	}
	if !bytes.Equal(cs[Egress].Bytes(), ss[Ingress].Bytes()) {
		t.Errorf("client egress (%d bytes) differs from server ingress (%d bytes)", cs[Egress].Len(), ss[Ingress].Len())
	}
	if !bytes.Equal(cs[Ingress].Bytes(), ss[Egress].Bytes()) || !bytes.HasSuffix(cs[Ingress].Bytes(), []byte(`{"model":"m","done":true}`)) {
		t.Errorf("response differs: client read %q, server wrote %q", cs[Ingress].Bytes(), ss[Egress].Bytes())
	}
	for _, s := range []*[2]stream{cs, ss} {
		if s[0].gaps+s[1].gaps != 0 {
			t.Errorf("gaps in offsets: %d, %d", s[0].gaps, s[1].gaps)
		}
	}
	if !c.closes[*client] {
		t.Error("no close event for the client connection")
	}
	cnt, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt.Records == 0 || cnt.ConnsTracked < 2 || cnt.RingFull != 0 {
		t.Errorf("counters: %+v", cnt)
	}
}

func TestCheckPassesHere(t *testing.T) {
	requireRoot(t)
	for _, r := range Check() {
		if !r.OK {
			t.Errorf("%s: %s", r.Name, r.Detail)
		}
	}
}

// TestAttachMidExchange starts the observer while a keep-alive connection
// waits for a response: the response is the first thing the kernel sees on
// it, and the LLM call that follows on the same connection must be tracked.
func TestAttachMidExchange(t *testing.T) {
	requireRoot(t)
	port, _ := startServer(t, "127.0.0.1")
	// The client waits 3 s between its two requests: loading the programs
	// takes about a second on a quiet machine, several on a busy one.
	client := exec.Command("python3", "testdata/keepalive_client.py", "127.0.0.1", port, "3")
	out, err := client.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	client.Stderr = os.Stderr
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer client.Wait()
	lines := bufio.NewReader(out)
	if l, err := lines.ReadString('\n'); err != nil || l != "sent\n" {
		t.Fatalf("client: %q %v", l, err)
	}
	p, err := Load(Config{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer p.Close()
	c, stop := collect(t, p)
	if l, err := lines.ReadString('\n'); err != nil || l != "done\n" {
		t.Fatalf("client: %q %v", l, err)
	}
	stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ev := range c.opens {
		if k.PID != uint32(client.Process.Pid) {
			continue
		}
		s := c.streams[k]
		if ev.Role != RoleClient || s == nil || !bytes.HasPrefix(s[Egress].Bytes(), []byte("POST /api/generate ")) {
			t.Fatalf("tracked connection: role %d, egress %q", ev.Role, s[Egress].Bytes())
		}
		if bytes.Contains(s[Ingress].Bytes(), []byte("plain")) {
			t.Error("the response that predates the LLM call was sent too")
		}
		return
	}
	for k, ev := range c.opens {
		t.Logf("open %+v role %d comm %s local %v remote %v", k, ev.Role, ev.Comm, ev.Local, ev.Remote)
	}
	t.Fatalf("the LLM call after the straddling response was not tracked (client pid %d)", client.Process.Pid)
}

// TestKeepAliveSwitchesToLLM: a fresh connection whose first request is not
// an LLM call is tracked from its first LLM request on.
func TestKeepAliveSwitchesToLLM(t *testing.T) {
	requireRoot(t)
	p, err := Load(Config{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer p.Close()
	port, _ := startServer(t, "127.0.0.1")
	c, stop := collect(t, p)
	client := exec.Command("python3", "testdata/keepalive_client.py", "127.0.0.1", port, "0")
	if out, err := client.CombinedOutput(); err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.opens {
		if k.PID != uint32(client.Process.Pid) {
			continue
		}
		s := c.streams[k]
		if s == nil || !bytes.HasPrefix(s[Egress].Bytes(), []byte("POST /api/generate ")) || !bytes.HasSuffix(s[Ingress].Bytes(), []byte(`"done":true}`)) {
			t.Fatalf("tracked from the wrong place: egress %.40q ingress %.40q", s[Egress].Bytes(), s[Ingress].Bytes())
		}
		return
	}
	t.Fatal("the LLM request after a plain one on the same connection was not tracked")
}

// TestForgetExited: a process killed with a connection open leaves kernel
// state behind, which ForgetExited frees.
func TestForgetExited(t *testing.T) {
	requireRoot(t)
	p, err := Load(Config{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer p.Close()
	port, _ := startServer(t, "127.0.0.1")
	client := exec.Command("python3", "testdata/hold_client.py", "127.0.0.1", port)
	out, err := client.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("client: %q %v", l, err)
	}
	pid := uint32(client.Process.Pid)
	alive := func(q uint32) bool { return q != pid }
	if n, err := p.ForgetExited(func(uint32) bool { return true }); err != nil || n != 0 {
		t.Fatalf("with every process alive: forgot %d, %v", n, err)
	}
	client.Process.Kill()
	client.Wait()
	n, err := p.ForgetExited(alive)
	if err != nil || n == 0 {
		t.Fatalf("after the kill: forgot %d, %v; want the client's connection", n, err)
	}
	if n, _ := p.ForgetExited(alive); n != 0 {
		t.Errorf("a second sweep forgot %d more", n)
	}
}
