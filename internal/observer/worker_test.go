package observer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// tap records real loopback connections as the capture reports them: an
// open record, one data record per read or write (writes before the bytes
// leave, reads once they arrived), a close record. Each connection gets a
// pid of its own, so connections never share a key whatever the agent keys
// them by.
type tap struct {
	mu      sync.Mutex
	events  []capture.Event
	nextPID uint32
}

type tappedConn struct {
	net.Conn
	t      *tap
	key    capture.ConnKey
	comm   string
	role   capture.Role
	off    [2]uint64
	closed sync.Once
}

func addrPort(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (t *tap) wrap(c net.Conn, comm string, role capture.Role) net.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nextPID++
	key := capture.ConnKey{PID: 1<<30 + t.nextPID, FD: 3, ID: uint64(t.nextPID)}
	t.events = append(t.events, capture.Event{Kind: capture.Open, Conn: key, Comm: comm, Role: role, Time: time.Now(),
		Local: addrPort(c.LocalAddr()), Remote: addrPort(c.RemoteAddr())})
	return &tappedConn{Conn: c, t: t, key: key, comm: comm, role: role}
}

func (c *tappedConn) record(dir capture.Direction, b []byte) {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.t.events = append(c.t.events, capture.Event{Kind: capture.Data, Conn: c.key, Comm: c.comm, Dir: dir, Role: c.role,
		Offset: c.off[dir], Time: time.Now(), Data: append([]byte(nil), b...)})
	c.off[dir] += uint64(len(b))
}

func (c *tappedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.record(capture.Ingress, b[:n])
	}
	return n, err
}

func (c *tappedConn) Write(b []byte) (int, error) {
	c.record(capture.Egress, b)
	return c.Conn.Write(b)
}

func (c *tappedConn) Close() error {
	c.closed.Do(func() {
		c.t.mu.Lock()
		c.t.events = append(c.t.events, capture.Event{Kind: capture.Close, Conn: c.key, Time: time.Now()})
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

type tapListener struct {
	net.Listener
	t    *tap
	comm string
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.t.wrap(c, l.comm, capture.RoleServer), nil
}

// serve starts a loopback HTTP server whose connections the tap records as
// the server process comm.
func (t *tap) serve(comm string, h http.Handler) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	s.Listener = &tapListener{Listener: s.Listener, t: t, comm: comm}
	s.Start()
	return s
}

// client returns an HTTP client whose connections the tap records as the
// client process comm.
func (t *tap) client(comm string) *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return t.wrap(c, comm, capture.RoleClient), nil
		},
	}}
}

// runnerExchange reads the recording of Ollama's runner exchange that the
// genai tests build from Ollama's own request and response types: the
// request body the server posts and the lines the runner streams back.
func runnerExchange(t *testing.T) (request []byte, lines [][]byte) {
	raw, err := os.ReadFile(filepath.Join("..", "genai", "testdata", "internal", "ollama_runner_completion.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range strings.Split(string(raw), "\n=== ")[1:] {
		hdr, text, _ := strings.Cut(sec, "\n")
		switch {
		case strings.HasPrefix(hdr, "request"):
			_, body, _ := strings.Cut(text, "\n\n")
			request = []byte(strings.TrimRight(body, "\n") + "\n")
		case strings.HasPrefix(hdr, "event"):
			lines = append(lines, []byte(strings.TrimRight(text, "\n")+"\n"))
		}
	}
	if request == nil || len(lines) == 0 {
		t.Fatal("recording without a request or lines")
	}
	return request, lines
}

// One user call to a fake Ollama whose handler calls a fake runner on
// loopback, as Ollama does, all four connection ends captured: the agent
// reports the user's call once from the client and once inside the server,
// and the runner hop, seen from both of its ends, never.
func TestOllamaRunnerHopIsNotReported(t *testing.T) {
	reqBody, lines := runnerExchange(t)
	tp := &tap{}

	runner := tp.serve("ollama", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]json.RawMessage
		if r.Method != http.MethodPost || r.URL.Path != "/completion" || json.NewDecoder(r.Body).Decode(&req) != nil || req["Prompt"] == nil {
			http.Error(w, "Bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Transfer-Encoding", "chunked")
		for _, l := range lines {
			w.Write(l)
			w.(http.Flusher).Flush()
		}
	}))
	defer runner.Close()

	toRunner := tp.client("ollama")
	server := tp.serve("ollama", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		resp, err := toRunner.Post(runner.URL+"/completion", "application/json", bytes.NewReader(reqBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/x-ndjson")
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var c struct {
				Content         string `json:"content"`
				Done            bool   `json:"done"`
				PromptEvalCount int    `json:"prompt_eval_count"`
				EvalCount       int    `json:"eval_count"`
			}
			if json.Unmarshal(sc.Bytes(), &c) != nil {
				continue
			}
			line := fmt.Sprintf(`{"model":"llama3.2","created_at":"2026-11-21T10:00:00Z","message":{"role":"assistant","content":%q},"done":false}`, c.Content)
			if c.Done {
				line = fmt.Sprintf(`{"model":"llama3.2","created_at":"2026-11-21T10:00:01Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"prompt_eval_count":%d,"eval_count":%d}`, c.PromptEvalCount, c.EvalCount)
			}
			fmt.Fprintln(w, line)
			w.(http.Flusher).Flush()
		}
	}))
	defer server.Close()

	user := tp.client("python3")
	resp, err := user.Post(server.URL+"/api/chat", "application/json",
		strings.NewReader(`{"model":"llama3.2","messages":[{"role":"user","content":"Color of the sky?"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`"done":true`)) {
		t.Fatalf("the fake server answered %q", body)
	}
	user.CloseIdleConnections()
	toRunner.CloseIdleConnections()
	server.Close()
	runner.Close()

	a, rec := newAgent(t)
	tp.mu.Lock()
	events := tp.events
	tp.mu.Unlock()
	for i := range events {
		a.Handle(&events[i])
	}
	a.Close(time.Now())

	var client, inside int
	for _, c := range rec.ended {
		if c.Path == "/completion" || c.Provider == genai.ProviderLlamaCpp {
			t.Errorf("the runner hop was reported: %s %s %s", c.Provider, c.API, c.Path)
			continue
		}
		if c.API != "ollama.chat" || c.Provider != genai.ProviderOllama || c.Usage.OutputTokens == nil || *c.Usage.OutputTokens != 5 {
			t.Errorf("call %s %s %s, output tokens %v", c.Provider, c.API, c.Path, c.Usage.OutputTokens)
		}
		if c.Endpoint.ClientSide {
			client++
		} else {
			inside++
		}
	}
	if client != 1 || inside != 1 {
		t.Errorf("%d client-side and %d server-side calls, want one of each", client, inside)
	}
	if v, _ := sampleValue(SelfSamples(a, nil), genaiRequests, "worker_hops"); v != 2 {
		t.Errorf("worker hops %v, want 2 (the server's end and the runner's)", v)
	}
}
