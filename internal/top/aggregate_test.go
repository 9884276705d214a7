package top

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/feed"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

// call is a finished call frame of curl calling llama3.2 on ollama,
// ending at end, changed by opts.
func call(end time.Duration, opts ...func(*feed.Call)) *feed.Frame {
	c := &feed.Call{Process: "curl", PID: 100, Provider: "ollama", Operation: "chat", Model: "llama3.2",
		Start: at(end - 200*time.Millisecond), End: at(end)}
	for _, o := range opts {
		o(c)
	}
	return &feed.Frame{Type: feed.TypeCall, Call: c}
}

func tokens(in, out int64) func(*feed.Call) {
	return func(c *feed.Call) { c.InputTokens, c.OutputTokens = ptr(in), ptr(out) }
}
func ttfc(s float64) func(*feed.Call) { return func(c *feed.Call) { c.TimeToFirstChunk = ptr(s) } }
func tpoc(s float64) func(*feed.Call) { return func(c *feed.Call) { c.TimePerChunk = ptr(s) } }
func model(m string) func(*feed.Call) { return func(c *feed.Call) { c.Model = m } }
func pid(p int) func(*feed.Call)      { return func(c *feed.Call) { c.PID = p } }
func failed(t string) func(*feed.Call) {
	return func(c *feed.Call) { c.ErrorType = t }
}
func truncated(c *feed.Call) { c.Truncated = true }
func server(c *feed.Call)    { c.Process, c.Server = "ollama", true }
func startedAt(d time.Duration) func(*feed.Call) {
	return func(c *feed.Call) { c.Start = at(d) }
}

func start(d time.Duration, p int) *feed.Frame {
	return &feed.Frame{Type: feed.TypeStart, Start: &feed.Start{Process: "curl", PID: p, Provider: "ollama", Operation: "chat", Model: "llama3.2", Start: at(d), Stream: true}}
}

var curlKey = Key{Process: "curl", Provider: "ollama", Model: "llama3.2"}

// TestAggregator: rates over the window from per-second buckets,
// percentiles from each row's recent calls, calls under way from start
// and call frames, totals of errors and truncations.
func TestAggregator(t *testing.T) {
	tests := []struct {
		name   string
		window time.Duration
		since  time.Time // zero: long before the calls
		frames []*feed.Frame
		now    time.Duration
		want   []Row // compared on the fields the case sets, by key
	}{{
		name:   "rates over the last ten whole seconds",
		window: 10 * time.Second,
		frames: []*feed.Frame{
			call(100*time.Second+500*time.Millisecond, tokens(10, 40)),
			call(95*time.Second, tokens(20, 60)),
			call(91*time.Second, tokens(30, 100)),    // second 91 is the oldest in (90, 100]
			call(90*time.Second, tokens(1000, 1000)), // second 90 is out
			call(50*time.Second, tokens(1000, 1000)),
		},
		now:  100*time.Second + 900*time.Millisecond,
		want: []Row{{Key: curlKey, CallsPerSec: 0.3, InTokensPerSec: 6, OutTokensPerSec: 20, Calls: 5, TTFCp50: -1, TTFCp95: -1, TPOCp50: -1}},
	}, {
		name:   "a fresh view divides by the seconds since it began",
		window: 10 * time.Second,
		since:  at(98*time.Second + 500*time.Millisecond),
		frames: []*feed.Frame{call(99*time.Second, tokens(6, 9)), call(100*time.Second, tokens(6, 9))},
		now:    100*time.Second + 400*time.Millisecond, // 1.9 s: two whole seconds
		want:   []Row{{Key: curlKey, CallsPerSec: 1, InTokensPerSec: 6, OutTokensPerSec: 9, Calls: 2, TTFCp50: -1, TTFCp95: -1, TPOCp50: -1}},
	}, {
		name:   "percentiles by nearest rank; calls without the value do not count",
		window: 10 * time.Second,
		frames: func() []*feed.Frame {
			var fs []*feed.Frame
			for i := 1; i <= 20; i++ {
				fs = append(fs, call(100*time.Second, ttfc(float64(i)/100), tpoc(float64(i)/1000)))
			}
			return append(fs, call(100*time.Second)) // an embedding: no chunks
		}(),
		now: 100 * time.Second,
		want: []Row{{Key: curlKey, CallsPerSec: 2.1, Calls: 21,
			TTFCp50: 100 * time.Millisecond, TTFCp95: 190 * time.Millisecond, TPOCp50: 10 * time.Millisecond}},
	}, {
		name:   "percentiles over the newest calls only",
		window: 10 * time.Second,
		frames: func() []*feed.Frame {
			var fs []*feed.Frame
			for range samplesPerRow {
				fs = append(fs, call(10*time.Second, ttfc(5)))
			}
			for range samplesPerRow {
				fs = append(fs, call(100*time.Second, ttfc(0.05)))
			}
			return fs
		}(),
		now:  100 * time.Second,
		want: []Row{{Key: curlKey, CallsPerSec: samplesPerRow / 10.0, Calls: 2 * samplesPerRow, TTFCp50: 50 * time.Millisecond, TTFCp95: 50 * time.Millisecond, TPOCp50: -1}},
	}, {
		name:   "calls under way: a start without its end, an end without its start",
		window: 10 * time.Second,
		frames: []*feed.Frame{
			start(98*time.Second, 1), start(99*time.Second, 2), start(99*time.Second, 3),
			call(100*time.Second, pid(2), startedAt(99*time.Second)),
			call(100*time.Second, pid(4), startedAt(97*time.Second)), // started before the view
		},
		now:  100 * time.Second,
		want: []Row{{Key: curlKey, Active: 2, CallsPerSec: 0.2, Calls: 2, TTFCp50: -1, TTFCp95: -1, TPOCp50: -1}},
	}, {
		name:   "a start whose end never came is forgotten",
		window: 10 * time.Second,
		frames: []*feed.Frame{start(0, 1), start(590*time.Second, 2)},
		now:    601 * time.Second,
		want:   []Row{{Key: curlKey, Active: 1, TTFCp50: -1, TTFCp95: -1, TPOCp50: -1}},
	}, {
		name:   "errors by type, most first, and truncations; rows by side and model",
		window: 10 * time.Second,
		frames: []*feed.Frame{
			call(100*time.Second, failed("rate_limit_exceeded")),
			call(100*time.Second, failed("_OTHER")),
			call(100*time.Second, failed("_OTHER"), truncated),
			call(100*time.Second, truncated),
			call(100*time.Second, server),
			call(100*time.Second, model("qwen2.5")),
		},
		now: 100 * time.Second,
		want: []Row{
			{Key: curlKey, CallsPerSec: 0.4, Calls: 4, Truncated: 2, TTFCp50: -1, TTFCp95: -1, TPOCp50: -1,
				Errors: []ErrorCount{{"_OTHER", 2}, {"rate_limit_exceeded", 1}}},
			{Key: Key{Process: "ollama", Server: true, Provider: "ollama", Model: "llama3.2"}, CallsPerSec: 0.1, Calls: 1, TTFCp50: -1, TTFCp95: -1, TPOCp50: -1},
			{Key: Key{Process: "curl", Provider: "ollama", Model: "qwen2.5"}, CallsPerSec: 0.1, Calls: 1, TTFCp50: -1, TTFCp95: -1, TPOCp50: -1},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			since := tt.since
			if since.IsZero() {
				since = t0
			}
			a := NewAggregator(tt.window, 10, since)
			for _, fr := range tt.frames {
				a.Add(fr)
			}
			snap := a.Snapshot(at(tt.now))
			if len(snap.Rows) != len(tt.want) {
				t.Fatalf("%d rows, want %d: %+v", len(snap.Rows), len(tt.want), snap.Rows)
			}
			got := map[Key]Row{}
			for _, r := range snap.Rows {
				r.last = time.Time{}
				got[r.Key] = r
			}
			for _, w := range tt.want {
				g, ok := got[w.Key]
				if !ok {
					t.Errorf("no row %+v", w.Key)
					continue
				}
				for _, f := range []struct {
					name      string
					got, want float64
				}{
					{"calls/s", g.CallsPerSec, w.CallsPerSec},
					{"input tokens/s", g.InTokensPerSec, w.InTokensPerSec},
					{"output tokens/s", g.OutTokensPerSec, w.OutTokensPerSec},
				} {
					if diff := f.got - f.want; diff > 1e-9 || diff < -1e-9 {
						t.Errorf("%v: %s = %v, want %v", w.Key, f.name, f.got, f.want)
					}
				}
				g.CallsPerSec, g.InTokensPerSec, g.OutTokensPerSec = w.CallsPerSec, w.InTokensPerSec, w.OutTokensPerSec
				if !reflect.DeepEqual(g, w) {
					t.Errorf("row\n got  %+v\n want %+v", g, w)
				}
			}
		})
	}
}

// TestRecent: the newest calls, newest first, however often the ring
// has wrapped.
func TestRecent(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 5, 11} {
		t.Run(fmt.Sprint(n, " calls"), func(t *testing.T) {
			a := NewAggregator(10*time.Second, 4, t0)
			for i := range n {
				a.Add(call(time.Duration(i)*time.Second, pid(i)))
			}
			var got []int
			for _, c := range a.Snapshot(at(time.Minute)).Recent {
				got = append(got, c.PID)
			}
			var want []int
			for i := n - 1; i >= 0 && len(want) < 4; i-- {
				want = append(want, i)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("recent pids %v, want %v", got, want)
			}
		})
	}
}

func TestSortAndFilter(t *testing.T) {
	rows := []Row{
		{Key: Key{Process: "curl", Model: "llama3.2"}, CallsPerSec: 1, OutTokensPerSec: 50, TTFCp50: 80 * time.Millisecond},
		{Key: Key{Process: "python3", Model: "qwen2.5"}, CallsPerSec: 3, OutTokensPerSec: 10, Errors: []ErrorCount{{"x", 2}}},
		{Key: Key{Process: "node", Model: "gpt-4o"}, CallsPerSec: 2, OutTokensPerSec: 30, TTFCp50: -1, Truncated: 1},
	}
	for _, tc := range []struct {
		col  Column
		want string
	}{
		{ByCalls, "python3 node curl"},
		{ByOutTokens, "curl node python3"},
		{ByTTFC, "curl python3 node"},
		{ByErrors, "python3 curl node"},
		{ByTruncated, "node curl python3"},
		{ByProcess, "curl node python3"},
		{ByModel, "node curl python3"},
	} {
		t.Run(tc.col.String(), func(t *testing.T) {
			SortRows(rows, tc.col)
			var got []string
			for _, r := range rows {
				got = append(got, r.Process)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("order %v, want %s", got, tc.want)
			}
		})
	}
	snap := Snapshot{Rows: rows, Recent: []*feed.Call{{Process: "curl", Model: "llama3.2"}, {Process: "python3", Model: "qwen2.5"}}}
	for _, tc := range []struct{ filter, want string }{
		{"", "curl node python3"},
		{"QWEN", "python3"},
		{"o", "node python3"}, // by process name; node's model too
		{"llama", "curl"},     // by model
		{"curl", "curl"},
		{"nothing", ""},
	} {
		got := snap.Filter(tc.filter)
		var names []string
		for _, r := range got.Rows {
			names = append(names, r.Process)
		}
		slices.Sort(names)
		if strings.Join(names, " ") != tc.want {
			t.Errorf("filter %q: rows %v, want %s", tc.filter, names, tc.want)
		}
		for _, c := range got.Recent {
			if !matches(tc.filter, c.Process, c.Model) {
				t.Errorf("filter %q kept call %+v", tc.filter, c)
			}
		}
	}
	seen := 1
	for c := ByCalls.Next(); c != ByCalls; c = c.Next() {
		seen++
	}
	if seen != int(columns) {
		t.Errorf("the sort key visits %d columns, want %d", seen, columns)
	}
}

// BenchmarkAggregator: what a call costs the view as it arrives, and what
// one refresh costs with 50 rows of full sample rings.
func BenchmarkAggregator(b *testing.B) {
	frames := make([]*feed.Frame, 50*samplesPerRow)
	for i := range frames {
		frames[i] = call(100*time.Second, model(fmt.Sprint("m", i%50)), tokens(12, 40), ttfc(0.15), tpoc(0.02))
	}
	b.Run("Add", func(b *testing.B) {
		a := NewAggregator(10*time.Second, 10, t0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			a.Add(frames[i%len(frames)])
			i++
		}
	})
	b.Run("Snapshot", func(b *testing.B) {
		a := NewAggregator(10*time.Second, 10, t0)
		for _, fr := range frames {
			a.Add(fr)
		}
		b.ReportAllocs()
		for b.Loop() {
			a.Snapshot(at(100 * time.Second))
		}
	})
}
