package top

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/llm-observer/llm-observer/internal/feed"
)

func keys(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

// TestModelKeys drives the view's model as bubbletea would, without a
// terminal: each key changes what View draws.
func TestModelKeys(t *testing.T) {
	now := at(100 * time.Second)
	agg := NewAggregator(10*time.Second, 10, t0)
	agg.Add(call(99*time.Second, tokens(12, 4), ttfc(0.15)))
	agg.Add(call(99*time.Second, model("qwen2.5:7b"), func(c *feed.Call) { c.Process = "python3"; c.Line = "python3 line" }))
	m := NewModel(agg, Options{Source: "test"}, func() time.Time { return now })
	m.Update(tea.WindowSizeMsg{Width: 200, Height: 40})
	update := func(msg tea.Msg) tea.Cmd {
		_, cmd := m.Update(msg)
		return cmd
	}

	view := m.View()
	for _, want := range []string{"llama3.2", "qwen2.5:7b", "python3", "curl", "sort: calls/s", Keys} {
		if !strings.Contains(view, want) {
			t.Errorf("view lacks %q:\n%s", want, view)
		}
	}

	// "/" opens the filter, runes type it (several to a message, as a
	// fast typist or tmux send them), Enter applies it.
	update(keys("/qw"))
	update(keys("e"))
	update(tea.KeyMsg{Type: tea.KeyBackspace})
	update(keys("en"))
	if view := m.View(); !strings.Contains(view, "filter (process or model): qwen") {
		t.Errorf("the filter being typed is not shown:\n%s", view)
	}
	update(tea.KeyMsg{Type: tea.KeyEnter})
	view = m.View()
	if !strings.Contains(view, "filter: qwen") || strings.Contains(view, "llama3.2") || !strings.Contains(view, "qwen2.5:7b") {
		t.Errorf("filter qwen not applied:\n%s", view)
	}
	update(tea.KeyMsg{Type: tea.KeyEsc})
	if view := m.View(); strings.Contains(view, "filter:") || !strings.Contains(view, "llama3.2") {
		t.Errorf("Esc did not clear the filter:\n%s", view)
	}

	update(keys("s"))
	if !strings.Contains(m.View(), "sort: active") {
		t.Errorf("s did not move the sort to the next column")
	}

	// Paused, ticks keep the old snapshot; unpaused, the next one shows.
	update(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}})
	agg.Add(call(100*time.Second, model("mistral:new")))
	update(tickMsg{})
	if view := m.View(); !strings.Contains(view, "PAUSED") || strings.Contains(view, "mistral:new") {
		t.Errorf("paused view changed:\n%s", view)
	}
	update(keys("p"))
	if view := m.View(); strings.Contains(view, "PAUSED") || !strings.Contains(view, "mistral:new") {
		t.Errorf("unpaused view did not catch up:\n%s", view)
	}

	// Inside the filter, q is a letter; outside, it quits, as does Ctrl-C.
	update(keys("/"))
	if isQuit(update(keys("q"))) {
		t.Error("q typed in the filter quit")
	}
	update(tea.KeyMsg{Type: tea.KeyEsc})
	if !isQuit(update(keys("q"))) {
		t.Error("q did not quit")
	}
	if !isQuit(update(tea.KeyMsg{Type: tea.KeyCtrlC})) {
		t.Error("Ctrl-C did not quit")
	}
}

func TestRender(t *testing.T) {
	agg := NewAggregator(10*time.Second, 10, t0)
	agg.Add(call(99*time.Second, tokens(12, 4), ttfc(0.152), tpoc(0.041), func(c *feed.Call) {
		c.Line = "10:01:39.000 curl[100] ollama chat llama3.2 in=12 out=4 ttfc=152ms dur=200ms ok"
	}))
	agg.Add(call(99*time.Second, failed("rate_limit_exceeded"), model("gpt-4o")))
	agg.Add(&feed.Frame{Type: feed.TypeHealth, Health: &feed.Health{RecordsPerSecond: 35, Calls: 2, ExportQueueCapacity: 4096,
		ExportDelayMax: 0.012, Losses: []feed.Loss{{Counter: "dropped.records", Reason: "ring_full", Count: 3}}, FeedDropped: 7}})
	agg.Add(&feed.Frame{Type: feed.TypeDropped, Dropped: &feed.Dropped{Count: 5, Total: 5}})
	snap := agg.Snapshot(at(100 * time.Second))

	plain := Render(snap, Layout{Source: "attached to /run/x.sock", Sort: ByCalls})
	for _, want := range []string{
		"attached to /run/x.sock",
		"PROCESS  SIDE    PROVIDER  MODEL     CALLS/S  ACTIVE  IN_TOK/S  OUT_TOK/S  TTFC_P50  TTFC_P95  TPOC_P50  CALLS  TRUNC  ERRORS",
		"curl     client  ollama    llama3.2      0.1       0       1.2        0.4     152ms     152ms      41ms      1      0  -",
		"rate_limit_exceeded:1",
		"10:01:39.000 curl[100] ollama chat llama3.2 in=12 out=4 ttfc=152ms dur=200ms ok",
		"OBSERVER 35.0 records/s   2 calls   export queue 0/4096   export delay max 12ms",
		"LOSSES   dropped.records{ring_full}=3   feed frames dropped: 5 for this view, 7 in all",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain view lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "\x1b[") {
		t.Errorf("plain view has escape sequences:\n%q", plain)
	}

	small := Render(snap, Layout{Source: "s", Width: 40, Height: 12, Styled: true, Footer: Keys})
	lines := strings.Split(small, "\n")
	if len(lines) > 12 {
		t.Errorf("%d lines for a 12-line screen:\n%s", len(lines), small)
	}
	for _, l := range lines {
		if w := len([]rune(stripANSI(l))); w > 40 {
			t.Errorf("line of %d columns on a 40-column screen: %q", w, l)
		}
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			for i < len(s) && !(s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
				i++
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// frames is a Source of fixed frames that then fails.
type frames struct {
	list []*feed.Frame
	err  error
}

func (f *frames) Next(ctx context.Context) (*feed.Frame, error) {
	if len(f.list) == 0 {
		return nil, f.err
	}
	fr := f.list[0]
	f.list = f.list[1:]
	return fr, nil
}

func TestOnce(t *testing.T) {
	src := &frames{list: []*feed.Frame{
		{Type: feed.TypeCall, Call: &feed.Call{Process: "curl", Model: "llama3.2", Provider: "ollama", End: time.Now(), OutputTokens: ptr(int64(40)), Line: "the line"}},
	}, err: errors.New("the observer closed the feed")}
	var out strings.Builder
	if err := Once(context.Background(), src, Options{Source: "test"}, 50*time.Millisecond, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"llama3.2", "the line", "feed ended: the observer closed the feed", "rates over 1s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("snapshot lacks %q:\n%s", want, out.String())
		}
	}
}
