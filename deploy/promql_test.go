package deploy

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The dashboard's queries are checked against the exported series by
// what they name: metric names and the labels of matchers, groupings and
// vector matching. A full PromQL parser (the Prometheus module) would pull
// in most of Prometheus for that; the few constructs below are all the
// dashboard uses, and anything the scanner does not understand is an
// error rather than a silent pass.

// promSelector is one vector selector: a metric and the labels its
// matchers name.
type promSelector struct {
	metric string
	labels []string
}

// promRefs is what one PromQL expression refers to.
type promRefs struct {
	selectors []promSelector
	// grouping holds the labels of by, without, on, ignoring,
	// group_left and group_right clauses.
	grouping []string
}

// grafanaVar matches Grafana's variable forms: $name, ${name}, ${name:fmt}
// and the deprecated [[name]].
var grafanaVar = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]`)

// grafanaVars returns the variable names an expression uses.
func grafanaVars(expr string) []string {
	var out []string
	for _, m := range grafanaVar.FindAllString(expr, -1) {
		m = strings.Trim(m, "$[]{}")
		m, _, _ = strings.Cut(m, ":")
		out = append(out, m)
	}
	return out
}

// promKeywords are words that are neither metrics nor functions.
var promKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"atan2": true, "inf": true, "nan": true, "Inf": true, "NaN": true,
}

// promAggregations may take their grouping before their argument.
var promAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// promGroupings introduce a parenthesised list of label names.
var promGroupings = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

type promToken struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, else the punctuation itself; 'o' other operator
	text string
}

func promLex(expr string) ([]promToken, error) {
	var toks []promToken
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			toks = append(toks, promToken{'s', expr[i+1 : j]})
			i = j + 1
		case isIdentStart(c):
			j := i + 1
			for j < len(expr) && (isIdentStart(expr[j]) || isDigit(expr[j])) {
				j++
			}
			toks = append(toks, promToken{'i', expr[i:j]})
			i = j
		case isDigit(c) || c == '.':
			j := i + 1
			for j < len(expr) && (isIdentStart(expr[j]) || isDigit(expr[j]) || expr[j] == '.') {
				j++
			}
			toks = append(toks, promToken{'n', expr[i:j]})
			i = j
		case strings.IndexByte("{}()[],", c) >= 0:
			toks = append(toks, promToken{c, string(c)})
			i++
		case strings.IndexByte("=!~<>+-*/%^@", c) >= 0:
			j := i + 1
			for j < len(expr) && strings.IndexByte("=!~<>", expr[j]) >= 0 {
				j++
			}
			toks = append(toks, promToken{'o', expr[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	// ':' belongs to recording rules' names, and to subquery ranges,
	// which are skipped.
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parsePromQL returns the selectors and grouping labels of expr. Grafana
// variables are replaced first: a variable in a range stands for a
// duration, in a matcher's value for a string.
func parsePromQL(expr string) (promRefs, error) {
	toks, err := promLex(grafanaVar.ReplaceAllString(expr, "1m"))
	if err != nil {
		return promRefs{}, err
	}
	var refs promRefs
	depth := map[byte]int{}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func() byte {
			if i+1 < len(toks) {
				return toks[i+1].kind
			}
			return 0
		}
		switch t.kind {
		case '(', ')', '[', ']', '{', '}':
			open := map[byte]byte{')': '(', ']': '[', '}': '{'}
			if o, closing := open[t.kind]; closing {
				if depth[o] == 0 {
					return promRefs{}, fmt.Errorf("unbalanced %q", t.text)
				}
				depth[o]--
			} else {
				depth[t.kind]++
			}
			if t.kind == '{' {
				// A selector without a metric name before it.
				sel, end, err := parseMatchers(toks, i)
				if err != nil {
					return promRefs{}, err
				}
				if sel.metric == "" {
					return promRefs{}, errors.New("selector names no metric")
				}
				refs.selectors = append(refs.selectors, sel)
				depth['{']--
				i = end
			}
		case 'i':
			if depth['['] > 0 {
				continue // a duration or subquery step
			}
			switch {
			case promGroupings[t.text]:
				if next() != '(' {
					return promRefs{}, fmt.Errorf("%s without a label list", t.text)
				}
				labels, end, err := labelList(toks, i+1)
				if err != nil {
					return promRefs{}, fmt.Errorf("%s: %w", t.text, err)
				}
				refs.grouping = append(refs.grouping, labels...)
				i = end
			case promKeywords[t.text]:
			case next() == '(' || promAggregations[t.text] && i+1 < len(toks) && promGroupings[toks[i+1].text]:
				// A function or an aggregation.
			case next() == '{':
				sel, end, err := parseMatchers(toks, i+1)
				if err != nil {
					return promRefs{}, err
				}
				if sel.metric != "" {
					return promRefs{}, fmt.Errorf("%s also named by __name__", t.text)
				}
				sel.metric = t.text
				refs.selectors = append(refs.selectors, sel)
				i = end
			default:
				refs.selectors = append(refs.selectors, promSelector{metric: t.text})
			}
		}
	}
	for b, d := range depth {
		if d != 0 {
			return promRefs{}, fmt.Errorf("unbalanced %q", b)
		}
	}
	return refs, nil
}

// parseMatchers reads the matchers from the '{' at toks[open] to its '}',
// and returns the index of the '}'.
func parseMatchers(toks []promToken, open int) (promSelector, int, error) {
	var sel promSelector
	i := open + 1
	for i < len(toks) && toks[i].kind != '}' {
		if i+2 >= len(toks) || toks[i].kind != 'i' || toks[i+1].kind != 'o' || toks[i+2].kind != 's' {
			return sel, 0, fmt.Errorf("malformed matcher at %q", toks[i].text)
		}
		label, op, value := toks[i].text, toks[i+1].text, toks[i+2].text
		if !slices.Contains([]string{"=", "!=", "=~", "!~"}, op) {
			return sel, 0, fmt.Errorf("matcher %s has operator %q", label, op)
		}
		if label == "__name__" {
			if op != "=" {
				return sel, 0, errors.New("__name__ matched by a pattern: its metrics cannot be checked")
			}
			sel.metric = value
		} else {
			sel.labels = append(sel.labels, label)
		}
		i += 3
		if i < len(toks) && toks[i].kind == ',' {
			i++
		}
	}
	if i >= len(toks) {
		return sel, 0, errors.New("unterminated selector")
	}
	return sel, i, nil
}

// labelList reads "( label, … )" from toks[open] and returns the index of
// the ')'.
func labelList(toks []promToken, open int) ([]string, int, error) {
	var labels []string
	for i := open + 1; i < len(toks); i++ {
		switch toks[i].kind {
		case ')':
			return labels, i, nil
		case ',':
		case 'i':
			labels = append(labels, toks[i].text)
		default:
			return nil, 0, fmt.Errorf("unexpected %q in a label list", toks[i].text)
		}
	}
	return nil, 0, errors.New("unterminated label list")
}

// parseLabelValues reads Grafana's Prometheus variable query
// label_values(selector, label) or label_values(label).
func parseLabelValues(q string) (promRefs, string, error) {
	inner, ok := strings.CutPrefix(strings.TrimSpace(q), "label_values(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return promRefs{}, "", fmt.Errorf("%q is not label_values(…)", q)
	}
	inner = strings.TrimSuffix(inner, ")")
	comma := strings.LastIndexByte(inner, ',')
	label := strings.TrimSpace(inner[comma+1:])
	if !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(label) {
		return promRefs{}, "", fmt.Errorf("label_values names label %q", label)
	}
	if comma < 0 {
		return promRefs{}, label, nil
	}
	refs, err := parsePromQL(inner[:comma])
	return refs, label, err
}

func TestParsePromQL(t *testing.T) {
	tests := []struct {
		expr     string
		want     []promSelector
		grouping []string
		err      string
	}{
		{expr: `up`, want: []promSelector{{metric: "up"}}},
		{
			expr:     `sum by (gen_ai_request_model, gen_ai_provider_name) (rate(gen_ai_client_operation_duration_seconds_count{service_name=~"$service", gen_ai_request_model=~"${model}"}[$__rate_interval]))`,
			want:     []promSelector{{metric: "gen_ai_client_operation_duration_seconds_count", labels: []string{"service_name", "gen_ai_request_model"}}},
			grouping: []string{"gen_ai_request_model", "gen_ai_provider_name"},
		},
		{
			expr:     `histogram_quantile(0.95, sum(rate(a_bucket{x="1"}[5m])) by (le)) / on (job) group_left(host_name) b`,
			want:     []promSelector{{metric: "a_bucket", labels: []string{"x"}}, {metric: "b"}},
			grouping: []string{"le", "job", "host_name"},
		},
		{expr: `{__name__="m", reason!~"a|b"}`, want: []promSelector{{metric: "m", labels: []string{"reason"}}}},
		{expr: `max_over_time(m[1h:5m]) > bool 0 and n offset 5m`, want: []promSelector{{metric: "m"}, {metric: "n"}}},
		{expr: `topk(5, m) # a comment naming not_a_metric`, want: []promSelector{{metric: "m"}}},
		{expr: `sum(m{a="}{"})`, want: []promSelector{{metric: "m", labels: []string{"a"}}}},
		{expr: `sum(m`, err: "unbalanced"},
		{expr: `m{a="x"`, err: "unterminated"},
		{expr: `m{a}`, err: "malformed matcher"},
		{expr: `m{a=="x"}`, err: "operator"},
		{expr: `{a="x"}`, err: "names no metric"},
		{expr: `{__name__=~"m.*"}`, err: "pattern"},
		{expr: `sum by m`, err: "without a label list"},
		{expr: `m{a="x}`, err: "unterminated string"},
	}
	for _, tt := range tests {
		got, err := parsePromQL(tt.expr)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one with %q", tt.expr, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		if fmt.Sprint(got.selectors) != fmt.Sprint(tt.want) || !slices.Equal(got.grouping, tt.grouping) {
			t.Errorf("%s:\n got %v by %v\nwant %v by %v", tt.expr, got.selectors, got.grouping, tt.want, tt.grouping)
		}
	}
}

func TestParseLabelValues(t *testing.T) {
	tests := []struct {
		q, metric, label string
		err              bool
	}{
		{q: `label_values(m{service_name=~"$service"}, gen_ai_request_model)`, metric: "m", label: "gen_ai_request_model"},
		{q: `label_values(service_name)`, label: "service_name"},
		{q: `query_result(m)`, err: true},
		{q: `label_values(m, "x")`, err: true},
	}
	for _, tt := range tests {
		refs, label, err := parseLabelValues(tt.q)
		if tt.err {
			if err == nil {
				t.Errorf("%s: no error", tt.q)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.q, err)
			continue
		}
		metric := ""
		if len(refs.selectors) == 1 {
			metric = refs.selectors[0].metric
		}
		if metric != tt.metric || label != tt.label {
			t.Errorf("%s: metric %q label %q, want %q %q", tt.q, metric, label, tt.metric, tt.label)
		}
	}
}

func TestGrafanaVars(t *testing.T) {
	got := grafanaVars(`rate(m{a=~"$model",b="${provider:regex}"}[$__rate_interval]) [[old]]`)
	want := []string{"model", "provider", "__rate_interval", "old"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func FuzzParsePromQL(f *testing.F) {
	for _, s := range []string{
		`sum by (le) (increase(gen_ai_client_operation_time_to_first_chunk_seconds_bucket{service_name=~"$service"}[$__rate_interval]))`,
		`histogram_quantile(0.95, sum(rate(a_bucket{x="1"}[5m])) by (le)) / on (job) group_left(host_name) b`,
		`{__name__="m", reason!~"a|b"} offset 5m`,
		`max_over_time(m[1h:5m]) > bool 0 and n`,
		`m{a="\"}"}`,
	} {
		f.Add(s)
	}
	ident := regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:]*$`)
	f.Fuzz(func(t *testing.T, expr string) {
		refs, err := parsePromQL(expr)
		if err != nil {
			return
		}
		// Whatever it accepts names real identifiers, or the check of the
		// dashboard would compare garbage.
		for _, s := range refs.selectors {
			for _, l := range s.labels {
				if !ident.MatchString(l) {
					t.Errorf("label %q from %q", l, expr)
				}
			}
			if s.metric == "" {
				t.Errorf("selector without a metric from %q", expr)
			}
		}
		for _, l := range refs.grouping {
			if !ident.MatchString(l) {
				t.Errorf("grouping label %q from %q", l, expr)
			}
		}
	})
}
