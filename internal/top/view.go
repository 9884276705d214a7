// Package top is `llm-observer top`: a live terminal view of the calls the
// observer sees and of its own health. It reads feed frames from a Source
// (the running service's socket, or an observer running in the same
// process), folds them into windowed rates, percentiles and totals per
// (process, side, provider, model) in an Aggregator, and draws them with
// bubbletea, or once as plain text for scripts.
package top

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/llm-observer/llm-observer/internal/feed"
)

// Source yields feed frames; *feed.Subscription and *Conn are sources.
type Source interface {
	Next(ctx context.Context) (*feed.Frame, error)
}

// Options tune the view.
type Options struct {
	// Source names where the frames come from, for the title.
	Source string
	// Window is the span of the rates (at most MaxWindow).
	Window time.Duration
	// Recent is how many of the newest calls are listed.
	Recent int
	// Refresh is how often the screen is redrawn (default 500ms).
	Refresh time.Duration
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.Recent <= 0 {
		o.Recent = 10
	}
	if o.Refresh <= 0 {
		o.Refresh = 500 * time.Millisecond
	}
	return o
}

// Pump feeds src's frames to agg until src fails or ctx ends, and records
// why it stopped.
func Pump(ctx context.Context, src Source, agg *Aggregator) {
	for {
		fr, err := src.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				agg.End(err.Error())
			}
			return
		}
		agg.Add(fr)
	}
}

// Run shows the live view on the terminal until the user quits or ctx
// ends.
func Run(ctx context.Context, src Source, opts Options) error {
	opts = opts.withDefaults()
	agg := NewAggregator(opts.Window, opts.Recent, time.Now())
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go Pump(pctx, src, agg)
	p := tea.NewProgram(NewModel(agg, opts, time.Now), tea.WithAltScreen(), tea.WithContext(ctx))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// Once collects frames for the collect window, then writes one plain
// snapshot to w.
func Once(ctx context.Context, src Source, opts Options, collect time.Duration, w io.Writer) error {
	opts = opts.withDefaults()
	start := time.Now()
	agg := NewAggregator(opts.Window, opts.Recent, start)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go Pump(pctx, src, agg)
	select {
	case <-time.After(collect):
	case <-ctx.Done():
	}
	snap := agg.Snapshot(time.Now())
	_, err := fmt.Fprintln(w, Render(snap, Layout{Source: opts.Source, Sort: ByCalls, Recent: opts.Recent}))
	return err
}

// Model is the bubbletea model of the live view. Frames go straight into
// the aggregator from the pump; the model takes a snapshot at each tick,
// so drawing costs the same whatever the call rate.
type Model struct {
	agg  *Aggregator
	opts Options
	now  func() time.Time

	snap    Snapshot
	sort    Column
	filter  string
	editing bool   // the filter is being typed
	input   string // the filter as typed so far
	paused  bool
	width   int
	height  int
}

// NewModel returns the view of agg; now is the clock (time.Now outside
// tests).
func NewModel(agg *Aggregator, opts Options, now func() time.Time) *Model {
	opts = opts.withDefaults()
	m := &Model{agg: agg, opts: opts, now: now}
	m.snap = agg.Snapshot(now())
	return m
}

type tickMsg struct{}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

// Init starts the refresh ticks.
func (m *Model) Init() tea.Cmd { return m.tick() }

// Update handles keys, window sizes and ticks.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tickMsg:
		if !m.paused {
			m.snap = m.agg.Snapshot(m.now())
		}
		return m, m.tick()
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// key applies one key press: while the filter is typed, keys edit it;
// otherwise they are commands. Typed characters can come several to a
// message (a paste, or keys sent faster than they are read), so runes go
// one at a time: "/qwen" opens the filter and types "qwen".
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	switch k.Type {
	case tea.KeyCtrlC:
		return tea.Quit
	case tea.KeyRunes, tea.KeySpace:
		runes := k.Runes
		if k.Type == tea.KeySpace && len(runes) == 0 {
			runes = []rune{' '}
		}
		for _, r := range runes {
			if cmd := m.rune(r); cmd != nil {
				return cmd
			}
		}
		return nil
	case tea.KeyEnter:
		if m.editing {
			m.filter, m.editing = m.input, false
		}
	case tea.KeyEsc:
		m.filter, m.input, m.editing = "", "", false
	case tea.KeyBackspace:
		if r := []rune(m.input); m.editing && len(r) > 0 {
			m.input = string(r[:len(r)-1])
		}
	}
	return nil
}

// rune applies one typed character.
func (m *Model) rune(r rune) tea.Cmd {
	if m.editing {
		m.input += string(r)
		return nil
	}
	switch r {
	case 'q':
		return tea.Quit
	case 's':
		m.sort = m.sort.Next()
	case '/':
		m.editing, m.input = true, m.filter
	case ' ', 'p':
		m.paused = !m.paused
		if !m.paused {
			m.snap = m.agg.Snapshot(m.now())
		}
	}
	return nil
}

// Keys is the help line of the view.
const Keys = "keys: s sort   / filter (Enter applies, Esc clears)   space or p pause   q quit"

// View draws the current snapshot.
func (m *Model) View() string {
	footer := Keys
	if m.editing {
		footer = "filter (process or model): " + m.input + "█   Enter applies, Esc clears"
	}
	return Render(m.snap, Layout{
		Source: m.opts.Source, Sort: m.sort, Filter: m.filter, Paused: m.paused,
		Width: m.width, Height: m.height, Styled: true, Recent: m.opts.Recent, Footer: footer,
	})
}
