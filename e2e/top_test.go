package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/otlptest"
)

// terminal is a tmux session of its own (its own server, whose socket is
// in the test's temporary directory) running one command in a pane of a
// fixed size, read with capture-pane as a person would see it.
type terminal struct {
	t      *testing.T
	socket string
	status string // the command's exit status is written here
}

func startTerminal(t *testing.T, command ...string) *terminal {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("these tests drive a real terminal with tmux: install tmux")
	}
	dir := t.TempDir()
	term := &terminal{t: t, socket: filepath.Join(dir, "tmux"), status: filepath.Join(dir, "status")}
	var quoted []string
	for _, c := range command {
		quoted = append(quoted, "'"+strings.ReplaceAll(c, "'", `'\''`)+"'")
	}
	script := strings.Join(quoted, " ") + "; echo $? > " + term.status + "; sleep 600"
	cmd := exec.Command("tmux", "-S", term.socket, "new-session", "-d", "-s", "top", "-x", "200", "-y", "50", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "TERM=xterm-256color")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screen at the end:\n%s", term.screen())
		}
		exec.Command("tmux", "-S", term.socket, "kill-server").Run()
	})
	return term
}

func (term *terminal) screen() string {
	out, err := exec.Command("tmux", "-S", term.socket, "capture-pane", "-p", "-t", "top").Output()
	if err != nil {
		term.t.Fatalf("tmux capture-pane: %v", err)
	}
	return string(out)
}

func (term *terminal) keys(keys ...string) {
	term.t.Helper()
	args := append([]string{"-S", term.socket, "send-keys", "-t", "top"}, keys...)
	if out, err := exec.Command("tmux", args...).CombinedOutput(); err != nil {
		term.t.Fatalf("tmux send-keys %v: %v\n%s", keys, err, out)
	}
}

// waitScreen waits until ok accepts the screen, and returns that screen.
func (term *terminal) waitScreen(what string, timeout time.Duration, ok func(screen string) bool) string {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := term.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the screen never showed %s:\n%s", what, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exitStatus waits for the command to end and returns its exit status.
func (term *terminal) exitStatus(timeout time.Duration) string {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(term.status); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the command did not exit within %v:\n%s", timeout, term.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// topRow is one row of top's table, by column header.
type topRow map[string]string

// topTable reads the table off a screen: the line starting with PROCESS
// names the columns, the lines below it up to a blank line are rows.
func topTable(screen string) []topRow {
	var header []string
	var rows []topRow
	for _, line := range strings.Split(screen, "\n") {
		fields := strings.Fields(line)
		switch {
		case header == nil && len(fields) > 0 && fields[0] == "PROCESS":
			header = fields
		case header != nil && len(fields) == 0:
			return rows
		case header != nil && len(fields) == len(header):
			r := topRow{}
			for i, h := range header {
				r[h] = fields[i]
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func (r topRow) num(col string) float64 {
	v, err := strconv.ParseFloat(r[col], 64)
	if err != nil {
		return -1
	}
	return v
}

// findRow returns the row of model whose process name starts with process
// (python3 runs as python3.11 and the like), or nil.
func findRow(rows []topRow, process, model string) topRow {
	for _, r := range rows {
		if strings.HasPrefix(r["PROCESS"], process) && r["MODEL"] == model {
			return r
		}
	}
	return nil
}

// hasTokenRates says whether the screen has a row of process and model
// with non-zero input and output token rates.
func hasTokenRates(screen, process, model string) bool {
	r := findRow(topTable(screen), process, model)
	return r != nil && r.num("IN_TOK/S") > 0 && r.num("OUT_TOK/S") > 0
}

// callLoop makes LLM calls with real client processes until the test
// ends: curl streaming an Ollama chat, and python3 streaming an OpenAI
// chat with usage, each with its own model.
func callLoop(t *testing.T, base, curlModel, pythonModel string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	loop := func(name string, args ...string) {
		wg.Go(func() {
			for ctx.Err() == nil {
				exec.CommandContext(ctx, name, args...).Run() //nolint:errcheck // the screen tells
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		})
	}
	loop("curl", "-sS", "-o", "/dev/null", "-H", "Content-Type: application/json", "--data-binary",
		`{"model":"`+curlModel+`","messages":[{"role":"user","content":"Why is the sky blue?"}]}`, base+"/api/chat")
	loop("python3", "testdata/client.py", base+"/v1/chat/completions",
		`{"model":"`+pythonModel+`","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello in French"}]}`)
}

// driveTop checks a running top: both clients' rows with their token
// rates, a filter that keeps only the python3 calls, Esc, and q. It
// returns the screen before the filter.
func driveTop(t *testing.T, term *terminal, title, curlModel, pythonModel string) string {
	t.Helper()
	screen := term.waitScreen("both clients with token rates", 120*time.Second, func(s string) bool {
		return strings.Contains(s, title) && hasTokenRates(s, "curl", curlModel) && hasTokenRates(s, "python3", pythonModel) &&
			strings.Contains(s, "OBSERVER ") && strings.Contains(s, " records/s")
	})
	unfiltered := screen
	rows := topTable(screen)
	for _, r := range []topRow{findRow(rows, "curl", curlModel), findRow(rows, "python3", pythonModel)} {
		if r["SIDE"] != "client" || r.num("CALLS/S") <= 0 || r["TTFC_P50"] == "-" || r["ERRORS"] != "-" {
			t.Errorf("row %v: want a client with calls/s, a time to first chunk and no errors", r)
		}
	}
	if !strings.Contains(screen, "curl[") || !strings.Contains(screen, "LAST CALLS") {
		t.Errorf("no console lines of the calls:\n%s", screen)
	}

	// Filter by model: only the python3 rows and calls stay.
	term.keys("/", pythonModel[:8], "Enter")
	screen = term.waitScreen("the filter applied", 10*time.Second, func(s string) bool {
		return strings.Contains(s, "filter: "+pythonModel[:8])
	})
	rows = topTable(screen)
	if len(rows) == 0 {
		t.Errorf("the filter left no rows:\n%s", screen)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r["MODEL"], pythonModel[:8]) {
			t.Errorf("filter %q kept row %v", pythonModel[:8], r)
		}
	}
	if strings.Contains(screen, curlModel) {
		t.Errorf("filter %q kept the curl calls:\n%s", pythonModel[:8], screen)
	}
	term.keys("Escape")
	term.waitScreen("the filter cleared", 10*time.Second, func(s string) bool {
		return !strings.Contains(s, "filter:") && strings.Contains(s, curlModel)
	})
	term.keys("q")
	if status := term.exitStatus(30 * time.Second); status != "0" {
		t.Errorf("top exited with status %s, want 0", status)
	}
	return unfiltered
}

// TestTopAttached runs top in a terminal beside a running observer
// service, attached to its feed on a socket.
func TestTopAttached(t *testing.T) {
	srv := startLLMServer(t)
	sock := filepath.Join(t.TempDir(), "feed.sock")
	startObserver(t, "LLM_OBSERVER_FEED="+sock)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("feed socket %s: %v %v, want a socket with mode 0600", sock, fi, err)
	}
	curlModel, pythonModel := "llama3.2:top-attached", "qwen2.5:top-attached"
	callLoop(t, srv.url, curlModel, pythonModel)
	term := startTerminal(t, observerBin, "top", "-feed", sock)
	screen := driveTop(t, term, "attached to "+sock, curlModel, pythonModel)
	t.Logf("the screen before the filter:\n%s", screen)
}

// TestTopStandalone runs top with no service: it loads the probes itself.
func TestTopStandalone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("top loads eBPF programs when no service runs: run as root")
	}
	srv := startLLMServer(t)
	curlModel, pythonModel := "llama3.2:top-standalone", "qwen2.5:top-standalone"
	callLoop(t, srv.url, curlModel, pythonModel)
	// No service answers at this socket: top runs the data path itself.
	absent := filepath.Join(t.TempDir(), "no-service.sock")
	term := startTerminal(t, observerBin, "top", "-feed", absent)
	driveTop(t, term, "standalone", curlModel, pythonModel)
}

// TestTopOnce: -once, and stdout that is not a terminal, print one plain
// snapshot and exit 0.
func TestTopOnce(t *testing.T) {
	srv := startLLMServer(t)
	sock := filepath.Join(t.TempDir(), "feed.sock")
	obs := startObserver(t, "LLM_OBSERVER_FEED="+sock)
	// curl calls several times a second; python3, which takes a second or
	// more to start on a busy machine, may miss a window, so only curl's
	// row is required.
	curlModel := "llama3.2:top-once"
	callLoop(t, srv.url, curlModel, "qwen2.5:top-once")
	waitFor(t, 30*time.Second, "a curl call on the observer's console", func() bool {
		return strings.Contains(obs.stdout.String(), "] ollama chat "+curlModel)
	})
	for _, args := range [][]string{
		{"top", "-once", "-collect", "5s", "-feed", sock},
		{"top", "-collect", "5s", "-feed", sock}, // stdout is a pipe here
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := exec.Command(observerBin, args...).Output()
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			text := string(out)
			if strings.Contains(text, "\x1b[") {
				t.Errorf("escape sequences in the plain snapshot:\n%q", text)
			}
			if !strings.Contains(text, "attached to "+sock) || !hasTokenRates(text, "curl", curlModel) || !strings.Contains(text, "OBSERVER ") {
				t.Errorf("snapshot lacks curl's row with token rates, or the observer's health:\n%s", text)
			}
			if !strings.Contains(text, curlModel+" in=12 out=4 ttfc=") {
				t.Errorf("snapshot lacks the console line of a curl call:\n%s", text)
			}
		})
	}
}

// feedPath is a prefix only TestTopSlowFeedConsumer uses: with the
// kernel following only it, and TLS off, the observer's counts of calls
// and losses are this test's alone.
const feedPath = "/e2e-feed/v1/chat/completions"

// TestTopSlowFeedConsumer: a feed consumer that connects and never reads
// changes nothing the observer counts or exports; its frames are dropped
// and counted, and it hears how many when it reads again.
func TestTopSlowFeedConsumer(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+feedPath, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-f","object":"chat.completion","model":"gpt-4o-mini:feed","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	})
	addr := serve(t, mux)
	host, port, _ := net.SplitHostPort(addr)
	recv := otlptest.Start(t)
	sock := filepath.Join(t.TempDir(), "feed.sock")
	obs := startObserver(t,
		"LLM_OBSERVER_FEED="+sock, "LLM_OBSERVER_PATHS=/e2e-feed/", "LLM_OBSERVER_MCP_PATHS=", "LLM_OBSERVER_TLS=false",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+recv.Endpoint(otlptest.GRPC), "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_INSECURE=true",
	)
	const perPhase = 800 // four frames each (two sides, start and end): more than a queue and a socket buffer hold
	calls := func() {
		t.Helper()
		body := `{"model":"gpt-4o-mini:feed","messages":[{"role":"user","content":"hi"}]}`
		for done := 0; done < perPhase; done += 200 {
			args := []string{"testdata/keepalive_client.py", host, port, feedPath}
			for range 200 {
				args = append(args, body)
			}
			if out, err := exec.Command("python3", args...).CombinedOutput(); err != nil {
				t.Fatalf("keep-alive client: %v\n%s", err, out)
			}
		}
	}
	// counts are what the observer counted: calls, and every loss of
	// this test's traffic (HTTP/2 decoding is left out: the host's gRPC
	// connections are dropped there whatever the test does).
	type counts struct{ calls, losses, feedDropped float64 }
	read := func() counts {
		t.Helper()
		text := scrape(t, obs)
		var c counts
		for _, line := range strings.Split(text, "\n") {
			name, value, ok := strings.Cut(line, " ")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			switch {
			case name == "llm_observer_calls_total":
				c.calls = v
			case name == "llm_observer_feed_frames_dropped_total":
				c.feedDropped = v
			case strings.Contains(name, "http2"):
			case strings.HasPrefix(name, "llm_observer_dropped_") || strings.HasPrefix(name, "llm_observer_decode_l") ||
				strings.HasPrefix(name, "llm_observer_genai_losses") || strings.HasPrefix(name, "llm_observer_export_dropped"):
				c.losses += v
			}
		}
		return c
	}

	start := read()
	calls()
	waitExactSpans(t, recv, port, 2*perPhase)
	without := read()

	// The consumer connects, takes nothing from its socket, and stays.
	slow, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	waitFor(t, 10*time.Second, "the slow consumer to be counted", func() bool {
		return metricValue(scrape(t, obs), "llm_observer_feed_consumers") == 1
	})
	calls()
	waitExactSpans(t, recv, port, 4*perPhase)
	with := read()

	if d := without.calls - start.calls; d != 2*perPhase {
		t.Errorf("without a slow consumer: %v calls counted, want %d", d, 2*perPhase)
	}
	if d := with.calls - without.calls; d != 2*perPhase {
		t.Errorf("with a slow consumer: %v calls counted, want %d", d, 2*perPhase)
	}
	if without.losses != start.losses || with.losses != without.losses {
		t.Errorf("losses %v at start, %v without a slow consumer, %v with one: want no change", start.losses, without.losses, with.losses)
	}
	if without.feedDropped != 0 || with.feedDropped <= 0 {
		t.Errorf("feed frames dropped: %v without a slow consumer, %v with one; want 0, then more", without.feedDropped, with.feedDropped)
	}

	// Reading at last, it finds a notice of what it missed.
	slow.SetReadDeadline(time.Now().Add(20 * time.Second))
	sc := bufio.NewScanner(slow)
	sc.Buffer(nil, 1<<20)
	var notice struct {
		Type    string
		Dropped struct{ Count, Total float64 }
	}
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &notice); err != nil {
			t.Fatalf("frame %q: %v", sc.Text(), err)
		}
		if notice.Type == "dropped" {
			break
		}
	}
	if notice.Type != "dropped" || notice.Dropped.Count <= 0 || notice.Dropped.Total > metricValue(scrape(t, obs), "llm_observer_feed_frames_dropped_total") {
		t.Errorf("the slow consumer's notice %+v (scan error %v); the observer counted %v dropped", notice, sc.Err(), with.feedDropped)
	}
	t.Logf("%d calls per phase; the consumer that never read missed %v frames", perPhase, with.feedDropped)
}
