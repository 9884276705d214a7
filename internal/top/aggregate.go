package top

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/llm-observer/llm-observer/internal/feed"
)

// Bounds of what the aggregator keeps, whatever the traffic.
const (
	// MaxWindow is the longest rate window: the per-second buckets cover it.
	MaxWindow = 60 * time.Second
	// samplesPerRow bounds the recent calls each row keeps for percentiles.
	samplesPerRow = 512
	// maxRows bounds the rows; the one seen longest ago goes first.
	maxRows = 1000
	// maxOpen bounds the calls under way that are followed for the active
	// count; openTimeout forgets one whose end never came (dropped by a
	// full queue, or cut off by a restart).
	maxOpen     = 10000
	openTimeout = 10 * time.Minute
	buckets     = 64 // > MaxWindow in seconds
)

// Key is one row of the table: the calls of one executable on one side
// with one provider and model.
type Key struct {
	Process  string
	Server   bool // calls the process served rather than made
	Provider string
	Model    string
}

// Row is what the table shows for one Key.
type Row struct {
	Key
	// Rates over the window, per second.
	CallsPerSec, InTokensPerSec, OutTokensPerSec float64
	// Active counts calls under way now.
	Active int
	// Percentiles over the row's recent calls (at most samplesPerRow);
	// negative when none had the value.
	TTFCp50, TTFCp95, TPOCp50 time.Duration
	// Totals since top started.
	Calls     int
	Errors    []ErrorCount // by count, most first
	Truncated int
	last      time.Time // end of the newest call, or the newest start
}

// ErrorCount is how many calls of a row failed with one error type.
type ErrorCount struct {
	Type  string
	Count int
}

// Snapshot is the whole view at one moment.
type Snapshot struct {
	Time time.Time
	// Window is the span the rates were taken over: the configured window,
	// or less right after top started.
	Window time.Duration
	Rows   []Row
	// Recent are the newest calls, newest first.
	Recent []*feed.Call
	// Health is the observer's last report; nil before the first.
	Health *feed.Health
	// Dropped counts the frames the feed could not send to this view.
	Dropped uint64
	// Ended says why the feed stopped; empty while it runs.
	Ended string
}

type bucket struct {
	sec     int64 // unix second the bucket holds
	calls   int
	in, out int64
}

type sample struct {
	ttfc, tpoc time.Duration // negative: absent
}

type series struct {
	key       Key
	buckets   [buckets]bucket
	samples   [samplesPerRow]sample
	n, next   int
	errors    map[string]int
	truncated int
	calls     int
	last      time.Time
}

type openCall struct {
	pid    int
	server bool
	start  int64
}

type openEntry struct {
	key   Key
	start time.Time
}

// Aggregator turns frames into rows: windowed rates from per-second
// buckets, percentiles from a bounded ring of recent calls per row, totals
// of errors and truncations. Its methods are safe for concurrent use.
type Aggregator struct {
	mu      sync.Mutex
	window  time.Duration
	since   time.Time
	rows    map[Key]*series
	open    map[openCall]openEntry
	recent  []*feed.Call // ring of the newest calls
	next    int
	health  *feed.Health
	dropped uint64
	ended   string
}

// NewAggregator keeps rates over window (at most MaxWindow) and the
// recent newest calls; since is when collection began.
func NewAggregator(window time.Duration, recent int, since time.Time) *Aggregator {
	window = min(max(window, time.Second), MaxWindow)
	return &Aggregator{
		window: window, since: since,
		rows:   map[Key]*series{},
		open:   map[openCall]openEntry{},
		recent: make([]*feed.Call, 0, max(recent, 1)),
	}
}

// Add takes one frame into account.
func (a *Aggregator) Add(fr *feed.Frame) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case fr.Start != nil:
		a.addStart(fr.Start)
	case fr.Call != nil:
		a.addCall(fr.Call)
	case fr.Health != nil:
		a.health = fr.Health
	case fr.Dropped != nil:
		a.dropped = max(a.dropped, fr.Dropped.Total)
	}
}

// End records why the feed stopped.
func (a *Aggregator) End(reason string) {
	a.mu.Lock()
	a.ended = reason
	a.mu.Unlock()
}

func (a *Aggregator) series(k Key, seen time.Time) *series {
	s := a.rows[k]
	if s == nil {
		if len(a.rows) >= maxRows {
			a.evictOldest()
		}
		s = &series{key: k, errors: map[string]int{}}
		a.rows[k] = s
	}
	if seen.After(s.last) {
		s.last = seen
	}
	return s
}

func (a *Aggregator) evictOldest() {
	var oldest *series
	for _, s := range a.rows {
		if oldest == nil || s.last.Before(oldest.last) {
			oldest = s
		}
	}
	delete(a.rows, oldest.key)
}

func (a *Aggregator) addStart(st *feed.Start) {
	if len(a.open) >= maxOpen {
		return
	}
	k := Key{Process: st.Process, Server: st.Server, Provider: st.Provider, Model: st.Model}
	a.series(k, st.Start)
	a.open[openCall{st.PID, st.Server, st.Start.UnixNano()}] = openEntry{key: k, start: st.Start}
}

func (a *Aggregator) addCall(c *feed.Call) {
	delete(a.open, openCall{c.PID, c.Server, c.Start.UnixNano()})
	s := a.series(Key{Process: c.Process, Server: c.Server, Provider: c.Provider, Model: c.Model}, c.End)
	s.calls++
	if c.ErrorType != "" {
		s.errors[c.ErrorType]++
	}
	if c.Truncated {
		s.truncated++
	}
	sec := c.End.Unix()
	b := &s.buckets[uint64(sec)%buckets]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.calls++
	if c.InputTokens != nil {
		b.in += *c.InputTokens
	}
	if c.OutputTokens != nil {
		b.out += *c.OutputTokens
	}
	smp := sample{ttfc: -1, tpoc: -1}
	if c.TimeToFirstChunk != nil {
		smp.ttfc = seconds(*c.TimeToFirstChunk)
	}
	if c.TimePerChunk != nil {
		smp.tpoc = seconds(*c.TimePerChunk)
	}
	s.samples[s.next] = smp
	s.next = (s.next + 1) % samplesPerRow
	s.n = min(s.n+1, samplesPerRow)

	if len(a.recent) < cap(a.recent) {
		a.recent = append(a.recent, c)
	} else {
		a.recent[a.next] = c
		a.next = (a.next + 1) % len(a.recent)
	}
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// Snapshot computes the view at now. Rates count the calls that ended in
// the last Window whole seconds, the current one included; Window is the
// configured window, or the whole seconds since collection began when
// that is shorter (at least one), so a fresh view shows true rates.
func (a *Aggregator) Snapshot(now time.Time) Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.window
	if since := now.Sub(a.since); since < w {
		w = max(time.Duration(math.Ceil(since.Seconds()))*time.Second, time.Second)
	}
	snap := Snapshot{Time: now, Window: w, Dropped: a.dropped, Ended: a.ended}
	if a.health != nil {
		h := *a.health
		snap.Health = &h
	}
	active := map[Key]int{}
	for id, o := range a.open {
		if now.Sub(o.start) > openTimeout {
			delete(a.open, id)
			continue
		}
		active[o.key]++
	}
	nowSec, wSec := now.Unix(), int64(w/time.Second)
	for k, s := range a.rows {
		r := Row{Key: k, Active: active[k], Calls: s.calls, Truncated: s.truncated, last: s.last}
		var calls int
		var in, out int64
		for _, b := range s.buckets {
			if b.sec > nowSec-wSec && b.sec <= nowSec {
				calls += b.calls
				in += b.in
				out += b.out
			}
		}
		r.CallsPerSec = float64(calls) / float64(wSec)
		r.InTokensPerSec = float64(in) / float64(wSec)
		r.OutTokensPerSec = float64(out) / float64(wSec)
		var ttfc, tpoc []time.Duration
		for _, smp := range s.samples[:s.n] {
			if smp.ttfc >= 0 {
				ttfc = append(ttfc, smp.ttfc)
			}
			if smp.tpoc >= 0 {
				tpoc = append(tpoc, smp.tpoc)
			}
		}
		slices.Sort(ttfc)
		slices.Sort(tpoc)
		r.TTFCp50, r.TTFCp95, r.TPOCp50 = percentile(ttfc, 0.50), percentile(ttfc, 0.95), percentile(tpoc, 0.50)
		for t, n := range s.errors {
			r.Errors = append(r.Errors, ErrorCount{t, n})
		}
		slices.SortFunc(r.Errors, func(x, y ErrorCount) int {
			return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.Type, y.Type))
		})
		snap.Rows = append(snap.Rows, r)
	}
	SortRows(snap.Rows, ByCalls)
	n := len(a.recent)
	for i := range n {
		// a.next is the oldest once the ring is full; before, the newest
		// is the last appended.
		idx := (a.next - 1 - i + 2*n) % n
		if n < cap(a.recent) {
			idx = n - 1 - i
		}
		snap.Recent = append(snap.Recent, a.recent[idx])
	}
	return snap
}

// percentile is the nearest-rank percentile of sorted values; -1 when
// there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return -1
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Column is a column the table can be sorted by.
type Column int

// The sortable columns, in the order the sort key cycles through them.
const (
	ByCalls Column = iota
	ByActive
	ByInTokens
	ByOutTokens
	ByTTFC
	ByTPOC
	ByErrors
	ByTruncated
	ByProcess
	ByModel
	columns
)

var columnNames = [...]string{"calls/s", "active", "input tokens/s", "output tokens/s", "ttfc p50", "tpoc p50", "errors", "truncated", "process", "model"}

// String names the column as the title line shows it.
func (c Column) String() string { return columnNames[c] }

// Next is the column the sort key moves to.
func (c Column) Next() Column { return (c + 1) % columns }

// SortRows orders rows by col: numbers largest first, names in order;
// ties by process, side, provider and model, so rows keep their places.
func SortRows(rows []Row, col Column) {
	errs := func(r Row) int {
		n := 0
		for _, e := range r.Errors {
			n += e.Count
		}
		return n
	}
	byKey := func(x, y Row) int {
		return cmp.Or(cmp.Compare(x.Process, y.Process), boolCompare(x.Server, y.Server),
			cmp.Compare(x.Provider, y.Provider), cmp.Compare(x.Model, y.Model))
	}
	sort.SliceStable(rows, func(i, j int) bool {
		x, y := rows[i], rows[j]
		var c int
		switch col {
		case ByCalls:
			c = cmp.Compare(y.CallsPerSec, x.CallsPerSec)
		case ByActive:
			c = cmp.Compare(y.Active, x.Active)
		case ByInTokens:
			c = cmp.Compare(y.InTokensPerSec, x.InTokensPerSec)
		case ByOutTokens:
			c = cmp.Compare(y.OutTokensPerSec, x.OutTokensPerSec)
		case ByTTFC:
			c = cmp.Compare(y.TTFCp50, x.TTFCp50)
		case ByTPOC:
			c = cmp.Compare(y.TPOCp50, x.TPOCp50)
		case ByErrors:
			c = cmp.Compare(errs(y), errs(x))
		case ByTruncated:
			c = cmp.Compare(y.Truncated, x.Truncated)
		case ByProcess:
			c = cmp.Compare(x.Process, y.Process)
		case ByModel:
			c = cmp.Compare(x.Model, y.Model)
		}
		return cmp.Or(c, byKey(x, y)) < 0
	})
}

func boolCompare(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}

// Filter keeps the rows and calls whose process or model contains text,
// ignoring case; an empty text keeps everything.
func (s Snapshot) Filter(text string) Snapshot {
	if text == "" {
		return s
	}
	out := s
	out.Rows, out.Recent = nil, nil
	for _, r := range s.Rows {
		if matches(text, r.Process, r.Model) {
			out.Rows = append(out.Rows, r)
		}
	}
	for _, c := range s.Recent {
		if matches(text, c.Process, c.Model) {
			out.Recent = append(out.Recent, c)
		}
	}
	return out
}
