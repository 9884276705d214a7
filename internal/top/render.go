package top

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
)

// Layout says how a snapshot is drawn.
type Layout struct {
	Source string // where the data comes from, for the title
	Sort   Column
	Filter string
	Paused bool
	// Width and Height bound the screen; zero: unbounded (plain text).
	Width, Height int
	// Styled adds colour and emphasis; off for plain text.
	Styled bool
	// Recent is how many of the newest calls to list at most.
	Recent int
	// Footer is the last line (the keys, or the filter being typed).
	Footer string
}

var (
	titleStyle  = lipgloss.NewStyle().Bold(true)
	headerStyle = lipgloss.NewStyle().Bold(true).Reverse(true)
	sortStyle   = lipgloss.NewStyle().Bold(true).Underline(true).Reverse(true)
	errorStyle  = lipgloss.NewStyle().Foreground(lipgloss.Color("9"))
	dimStyle    = lipgloss.NewStyle().Faint(true)
)

// column of the table: its header, how a row fills it, and whether it is
// a number (right-aligned).
type column struct {
	header string
	sort   Column // the column's sort key; -1 when it has none
	number bool
	cell   func(r Row) string
}

var table = []column{
	{"PROCESS", ByProcess, false, func(r Row) string { return r.Process }},
	{"SIDE", -1, false, func(r Row) string {
		if r.Server {
			return "server"
		}
		return "client"
	}},
	{"PROVIDER", -1, false, func(r Row) string { return orDash(r.Provider) }},
	{"MODEL", ByModel, false, func(r Row) string { return orDash(r.Model) }},
	{"CALLS/S", ByCalls, true, func(r Row) string { return rate(r.CallsPerSec) }},
	{"ACTIVE", ByActive, true, func(r Row) string { return strconv.Itoa(r.Active) }},
	{"IN_TOK/S", ByInTokens, true, func(r Row) string { return rate(r.InTokensPerSec) }},
	{"OUT_TOK/S", ByOutTokens, true, func(r Row) string { return rate(r.OutTokensPerSec) }},
	{"TTFC_P50", ByTTFC, true, func(r Row) string { return duration(r.TTFCp50) }},
	{"TTFC_P95", -1, true, func(r Row) string { return duration(r.TTFCp95) }},
	{"TPOC_P50", ByTPOC, true, func(r Row) string { return duration(r.TPOCp50) }},
	{"CALLS", -1, true, func(r Row) string { return strconv.Itoa(r.Calls) }},
	{"TRUNC", ByTruncated, true, func(r Row) string { return strconv.Itoa(r.Truncated) }},
	{"ERRORS", ByErrors, false, func(r Row) string {
		if len(r.Errors) == 0 {
			return "-"
		}
		parts := make([]string, len(r.Errors))
		for i, e := range r.Errors {
			parts[i] = fmt.Sprintf("%s:%d", e.Type, e.Count)
		}
		return strings.Join(parts, ",")
	}},
}

// Render draws s as text: a title, the table, the newest calls and the
// observer's health, cut to the layout's width and height.
func Render(s Snapshot, l Layout) string {
	s = s.Filter(l.Filter)
	rows := slices.Clone(s.Rows)
	SortRows(rows, l.Sort)
	style := func(st lipgloss.Style, text string) string {
		if !l.Styled {
			return text
		}
		return st.Render(text)
	}

	var head []string
	title := "llm-observer top — " + l.Source
	status := fmt.Sprintf("%s   rates over %s   sort: %s", s.Time.Format("15:04:05"), s.Window, l.Sort)
	if l.Filter != "" {
		status += "   filter: " + l.Filter
	}
	if l.Paused {
		status += "   PAUSED"
	}
	head = append(head, style(titleStyle, title)+"   "+status)
	if s.Ended != "" {
		head = append(head, style(errorStyle, "feed ended: "+s.Ended))
	}
	head = append(head, "")

	// The table: widths from the widest cell of each column.
	cells := make([][]string, len(rows))
	width := make([]int, len(table))
	for j, c := range table {
		width[j] = len(c.header)
	}
	for i, r := range rows {
		cells[i] = make([]string, len(table))
		for j, c := range table {
			cells[i][j] = c.cell(r)
			width[j] = max(width[j], lipgloss.Width(cells[i][j]))
		}
	}
	pad := func(j int, text string) string {
		gap := strings.Repeat(" ", max(width[j]-lipgloss.Width(text), 0))
		if table[j].number {
			return gap + text
		}
		return text + gap
	}
	var header []string
	for j, c := range table {
		h := pad(j, c.header)
		if l.Styled && c.sort == l.Sort {
			h = sortStyle.Render(h)
		} else if l.Styled {
			h = headerStyle.Render(h)
		}
		header = append(header, h)
	}
	sep := "  "
	if l.Styled {
		sep = headerStyle.Render("  ")
	}
	tableLines := []string{strings.Join(header, sep)}
	for i, r := range rows {
		line := make([]string, len(table))
		for j := range table {
			line[j] = pad(j, cells[i][j])
		}
		text := strings.Join(line, "  ")
		if l.Styled && len(r.Errors) > 0 {
			text = errorStyle.Render(text)
		}
		tableLines = append(tableLines, text)
	}
	if len(rows) == 0 {
		tableLines = append(tableLines, style(dimStyle, "no calls yet"))
	}

	tail := []string{""}
	tail = append(tail, healthLines(s)...)
	if l.Footer != "" {
		tail = append(tail, "", l.Footer)
	}

	recentHeader := []string{"", style(titleStyle, "LAST CALLS (newest first)")}
	recent := s.Recent
	if l.Recent > 0 && len(recent) > l.Recent {
		recent = recent[:l.Recent]
	}
	var recentLines []string
	for _, c := range recent {
		line := c.Line
		if l.Styled && c.ErrorType != "" {
			line = errorStyle.Render(line)
		}
		recentLines = append(recentLines, line)
	}
	if len(recent) == 0 {
		recentLines = append(recentLines, style(dimStyle, "none yet"))
	}

	if l.Height > 0 {
		// The table first, the calls in what is left; both keep at least
		// their header and one line.
		room := l.Height - len(head) - len(tail) - len(recentHeader)
		tableRoom := max(room-min(len(recentLines), max(room/3, 1)), 2)
		if len(tableLines) > tableRoom {
			more := len(tableLines) - tableRoom + 1
			tableLines = append(tableLines[:tableRoom-1], style(dimStyle, fmt.Sprintf("… %d more rows", more)))
		}
		recentRoom := max(room-len(tableLines), 1)
		if len(recentLines) > recentRoom {
			recentLines = recentLines[:recentRoom]
		}
	}
	lines := append(head, tableLines...)
	lines = append(lines, recentHeader...)
	lines = append(lines, recentLines...)
	lines = append(lines, tail...)
	if l.Width > 0 {
		cut := lipgloss.NewStyle().MaxWidth(l.Width)
		for i, line := range lines {
			lines[i] = cut.Render(line)
		}
	}
	return strings.Join(lines, "\n")
}

// healthLines are the observer's own numbers: its throughput, its losses
// by reason, and the lag before loss.
func healthLines(s Snapshot) []string {
	h := s.Health
	if h == nil {
		return []string{"OBSERVER waiting for its first health report", fmt.Sprintf("LOSSES   feed frames dropped for this view: %d", s.Dropped)}
	}
	first := fmt.Sprintf("OBSERVER %s records/s   %d calls   export queue %d/%d   export delay max %s   ring pending %s   feed consumers %d",
		rate(h.RecordsPerSecond), h.Calls, h.ExportQueueDepth, h.ExportQueueCapacity,
		duration(time.Duration(h.ExportDelayMax*float64(time.Second))), bytesText(h.RingPendingBytes), h.Consumers)
	losses := "none"
	if len(h.Losses) > 0 {
		parts := make([]string, len(h.Losses))
		for i, l := range h.Losses {
			parts[i] = fmt.Sprintf("%s{%s}=%d", l.Counter, l.Reason, l.Count)
		}
		losses = strings.Join(parts, " ")
	}
	second := fmt.Sprintf("LOSSES   %s   feed frames dropped: %d for this view, %d in all", losses, s.Dropped, h.FeedDropped)
	return []string{first, second}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rate shows a per-second rate with one decimal, more when it is small.
func rate(v float64) string {
	if v > 0 && v < 0.1 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// duration is written as the console line writes it: 0.4ms, 52ms, 1.21s;
// "-" when unknown (negative).
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Second:
		return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func matches(text string, fields ...string) bool {
	text = strings.ToLower(text)
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), text) {
			return true
		}
	}
	return false
}
