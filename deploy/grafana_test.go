package deploy

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
	"github.com/llm-observer/llm-observer/internal/observer"
	"github.com/llm-observer/llm-observer/internal/otlptest"
)

const dashboardPath = "grafana/llm-observer.json"

// promTranslation is how the collector's prometheus exporter, as
// collector.yaml configures it, turns OTLP metrics into Prometheus series.
// The exporter's translation_strategy defaults to
// UnderscoreEscapingWithSuffixes:
//
//   - the name is cut into words at every character outside [A-Za-z0-9]
//     and joined with "_";
//   - the unit, without its {annotations}, is added as a word unless the
//     name already has it (s → seconds, By → bytes, …; "X/Y" gives
//     X_per_Y, and "{token}/s" just per_second); a gauge of unit 1 gets
//     ratio;
//   - a monotonic sum (a counter) ends in total; a histogram becomes the
//     series _bucket (with the label le), _sum and _count; a gauge and a
//     non-monotonic sum keep the name;
//   - every attribute becomes a label, with each character outside
//     [A-Za-z0-9_] replaced by "_";
//   - with resource_to_telemetry_conversion enabled (as collector.yaml
//     has it), every resource attribute becomes a label too; the exporter
//     always adds job and instance (from service.name and
//     service.instance.id) and otel_scope_name and otel_scope_version.
//
// A namespace would prefix every name; the test fails if the config sets
// one, so that it is applied here first.
type promTranslation struct {
	resourceLabels bool
}

// collectorTranslation reads the prometheus exporter's settings from
// collector.yaml.
func collectorTranslation(t *testing.T) promTranslation {
	t.Helper()
	cfg := collectorConfig(t, loadManifest(t, "collector.yaml"))
	prom := dig(cfg, "exporters", "prometheus")
	for _, k := range []string{"namespace", "translation_strategy", "add_metric_suffixes", "resource_constant_labels", "const_labels"} {
		if dig(prom, k) != nil {
			t.Fatalf("collector.yaml sets prometheus.%s, which promTranslation does not apply yet", k)
		}
	}
	on, _ := dig(prom, "resource_to_telemetry_conversion", "enabled").(bool)
	return promTranslation{resourceLabels: on}
}

// Units as the translator spells them in names.
var (
	promUnits = map[string]string{
		"d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
		"us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
		"MiBy": "mebibytes", "GiBy": "gibibytes", "KBy": "kilobytes", "MBy": "megabytes",
		"GBy": "gigabytes", "bit": "bits", "%": "percent", "Hz": "hertz", "Cel": "celsius",
	}
	promPerUnits = map[string]string{
		"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year",
	}
	annotation = regexp.MustCompile(`\{[^}]*\}`)
)

func promWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	})
}

// metricName is the Prometheus name of an OTLP metric, before the
// histogram's _bucket, _sum and _count.
func (promTranslation) metricName(name, unit string, kind otlptest.MetricType, monotonic bool) string {
	words := promWords(name)
	main, per, _ := strings.Cut(annotation.ReplaceAllString(unit, ""), "/")
	add := func(w string) {
		if w != "" && !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	add(promUnits[main])
	if p := promPerUnits[per]; p != "" {
		if !slices.Contains(words, "per") || !slices.Contains(words, p) {
			words = append(words, "per", p)
		}
	}
	counter := kind == otlptest.Sum && monotonic
	if counter {
		words = slices.DeleteFunc(words, func(w string) bool { return w == "total" })
		words = append(words, "total")
	}
	if kind == otlptest.Gauge && main == "1" {
		add("ratio")
	}
	out := strings.Join(words, "_")
	if out != "" && '0' <= out[0] && out[0] <= '9' {
		out = "_" + out
	}
	return out
}

func (promTranslation) labelName(key string) string {
	b := []byte(key)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	s := string(b)
	if s != "" && '0' <= s[0] && s[0] <= '9' {
		s = "key_" + s
	}
	return s
}

func TestPromTranslation(t *testing.T) {
	tr := promTranslation{}
	tests := []struct {
		name, unit string
		kind       otlptest.MetricType
		monotonic  bool
		want       string
	}{
		{"gen_ai.client.operation.duration", "s", otlptest.Histogram, false, "gen_ai_client_operation_duration_seconds"},
		{"gen_ai.client.token.usage", "{token}", otlptest.Histogram, false, "gen_ai_client_token_usage"},
		{"llm_observer.client.requests", "{request}", otlptest.Sum, true, "llm_observer_client_requests_total"},
		{"llm_observer.client.active_requests", "{request}", otlptest.Sum, false, "llm_observer_client_active_requests"},
		{"llm_observer.client.token.throughput", "{token}/s", otlptest.Histogram, false, "llm_observer_client_token_throughput_per_second"},
		{"llm_observer.dropped.records", "", otlptest.Sum, true, "llm_observer_dropped_records_total"},
		{"requests.total", "", otlptest.Sum, true, "requests_total"},
		{"x.duration_seconds", "s", otlptest.Gauge, false, "x_duration_seconds"},
		{"cpu.utilization", "1", otlptest.Gauge, false, "cpu_utilization_ratio"},
		{"io", "By/s", otlptest.Sum, true, "io_bytes_per_second_total"},
		{"2xx", "", otlptest.Gauge, false, "_2xx"},
	}
	for _, tt := range tests {
		if got := tr.metricName(tt.name, tt.unit, tt.kind, tt.monotonic); got != tt.want {
			t.Errorf("%s [%s] %s: %s, want %s", tt.name, tt.unit, tt.kind, got, tt.want)
		}
	}
	for key, want := range map[string]string{"gen_ai.request.model": "gen_ai_request_model", "error.type": "error_type", "reason": "reason", "0x": "key_0x", "k8s.pod.name": "k8s_pod_name"} {
		if got := tr.labelName(key); got != want {
			t.Errorf("label %s: %s, want %s", key, got, want)
		}
	}
}

// zeroKernel stands for the kernel side; its counters' names are what
// matter here, not their values.
type zeroKernel struct{}

func (zeroKernel) Counters() (capture.Counters, error) { return capture.Counters{}, nil }

// commandSamples are the self-samples that the command adds to the
// agent's own (TLS probing, for one), read from the source of
// cmd/llm-observer: every observer.SelfSample literal there, with a
// placeholder reason where it has one. They are then exported like the
// rest, so their names go through the same path.
func commandSamples(t *testing.T) []observer.SelfSample {
	t.Helper()
	files, err := filepath.Glob("../cmd/llm-observer/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources of cmd/llm-observer (%v)", err)
	}
	var out []observer.SelfSample
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			var elems []ast.Expr
			switch {
			case isSelfSample(lit.Type):
				elems = []ast.Expr{lit}
			case isSelfSampleSlice(lit.Type):
				elems = lit.Elts
			default:
				return true
			}
			for _, e := range elems {
				if s, ok := selfSampleLiteral(e); ok {
					out = append(out, s)
				}
			}
			return false
		})
	}
	if len(out) == 0 {
		t.Fatal("cmd/llm-observer has no observer.SelfSample literals: the scan is broken")
	}
	return out
}

func isSelfSample(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "observer" && sel.Sel.Name == "SelfSample"
}

func isSelfSampleSlice(e ast.Expr) bool {
	arr, ok := e.(*ast.ArrayType)
	return ok && isSelfSample(arr.Elt)
}

func selfSampleLiteral(e ast.Expr) (observer.SelfSample, bool) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return observer.SelfSample{}, false
	}
	var s observer.SelfSample
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, _ := kv.Key.(*ast.Ident)
		if key == nil {
			continue
		}
		switch key.Name {
		case "Name":
			if bl, ok := kv.Value.(*ast.BasicLit); ok {
				s.Name, _ = strconv.Unquote(bl.Value)
			}
		case "Reason":
			s.Reason = "any"
		case "Gauge":
			id, ok := kv.Value.(*ast.Ident)
			s.Gauge = !ok || id.Name != "false"
		}
	}
	return s, s.Name != ""
}

// exportedSeries runs the export path in process: calls of both sides,
// streamed and failed, go through a real Exporter to an in-test OTLP
// receiver, together with the agent's self-metrics; what arrives is
// translated by tr. It returns every series name with its labels.
func exportedSeries(t *testing.T, tr promTranslation) map[string]map[string]bool {
	t.Helper()
	rcv := otlptest.Start(t)
	// Metrics go to the receiver; spans to a port nobody listens on, so
	// that the export failure and loss counters have points too.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", rcv.Endpoint(otlptest.GRPC))
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+dead.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "300")
	exp, err := export.New(context.Background(), export.Config{
		OTLP:           true,
		HostName:       "node-1",
		ConsoleWriter:  io.Discard,
		ErrorWriter:    io.Discard,
		MetricInterval: time.Hour, // flushed below
		PairWait:       time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	agent := observer.New(observer.Config{}, nil, nil, exp)
	extra := commandSamples(t)
	agent.AddSamples(func() []observer.SelfSample { return extra })
	if err := observer.RegisterSelfMetrics(exp.SelfMeter(), agent, zeroKernel{}); err != nil {
		t.Fatal(err)
	}

	n := func(v int64) *int64 { return &v }
	t0 := time.Now().Add(-time.Minute)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	client := &export.Process{PID: 4242, ExecutableName: "python3", ExecutablePath: "/usr/bin/python3", Command: "python3", ServiceName: "chatbot", StartTime: t0.Add(-time.Hour)}
	server := &export.Process{PID: 812, ExecutableName: "ollama", ExecutablePath: "/usr/local/bin/ollama", Command: "ollama", ServiceName: "ollama"}
	calls := []struct {
		p *export.Process
		c *genai.Call
	}{
		{client, &genai.Call{
			Operation: genai.OpChat, Provider: genai.ProviderOpenAI, API: "openai.chat_completions",
			Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "api.openai.com", ServerPort: 443},
			Method:   "POST", Path: "/v1/chat/completions", Status: 200, Stream: true, Messages: 3,
			RequestModel: "gpt-4o-mini", ResponseModel: "gpt-4o-mini-2024-07-18",
			Usage: genai.Usage{InputTokens: n(12), OutputTokens: n(40)},
			Start: at(0), End: at(1210), ContentChunks: []time.Time{at(52), at(80), at(130), at(1200)}, Chunks: 7,
		}},
		{client, &genai.Call{
			Operation: genai.OpChat, Provider: genai.ProviderAnthropic, API: "anthropic.messages",
			Endpoint: genai.Endpoint{ClientSide: true, ServerAddress: "api.anthropic.com", ServerPort: 443},
			Method:   "POST", Path: "/v1/messages", Status: 429, ErrorType: "rate_limit_error",
			RequestModel: "claude-sonnet-4", Start: at(0), End: at(240), Truncated: true,
		}},
		{server, &genai.Call{
			Operation: genai.OpChat, Provider: genai.ProviderOllama, API: "ollama.chat",
			Endpoint: genai.Endpoint{ClientSide: false, ServerAddress: "127.0.0.1", ServerPort: 11434},
			Method:   "POST", Path: "/api/chat", Status: 200, Stream: true, Messages: 2,
			RequestModel: "llama3.2", ResponseModel: "llama3.2",
			Usage:        genai.Usage{InputTokens: n(20), OutputTokens: n(31)},
			ServerTiming: genai.ServerTiming{Source: "ollama", TimeToFirstToken: 150 * time.Millisecond, TimePerOutputToken: 20 * time.Millisecond, Total: 900 * time.Millisecond},
			Start:        at(0), End: at(1000), ContentChunks: []time.Time{at(160), at(180), at(200), at(990)}, Chunks: 32,
		}},
		{server, &genai.Call{
			Operation: genai.OpChat, Provider: genai.ProviderOllama, API: "ollama.chat",
			Endpoint: genai.Endpoint{ClientSide: false, ServerAddress: "127.0.0.1", ServerPort: 11434},
			Method:   "POST", Path: "/api/chat", Status: 500, ErrorType: "500",
			RequestModel: "llama3.2", Start: at(0), End: at(30),
		}},
	}
	for _, c := range calls {
		exp.CallStarted(c.p, c.c)
		exp.CallEnded(c.p, c.c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The first flush fails the spans; Shutdown's last collection then
	// carries the failure and the loss.
	if err := exp.ForceFlush(ctx); err == nil {
		t.Fatal("ForceFlush reported no error exporting spans to a closed port")
	}
	exp.Shutdown(ctx) //nolint:errcheck // the span export fails again, on purpose

	series := map[string]map[string]bool{}
	addSeries := func(name string, labels map[string]bool, extra ...string) {
		if series[name] == nil {
			series[name] = map[string]bool{}
		}
		maps.Copy(series[name], labels)
		for _, l := range extra {
			series[name][l] = true
		}
	}
	for _, metric := range rcv.MetricNames() {
		for _, p := range rcv.DataPoints(metric) {
			labels := map[string]bool{"job": true, "instance": true, "otel_scope_name": true, "otel_scope_version": true}
			for k := range p.Attributes {
				labels[tr.labelName(k)] = true
			}
			if tr.resourceLabels {
				for k := range p.Resource {
					labels[tr.labelName(k)] = true
				}
			}
			name := tr.metricName(p.Metric, p.Unit, p.Type, p.Monotonic)
			switch p.Type {
			case otlptest.Histogram:
				addSeries(name+"_bucket", labels, "le")
				addSeries(name+"_sum", labels)
				addSeries(name+"_count", labels)
			case otlptest.Sum, otlptest.Gauge:
				addSeries(name, labels)
			default:
				t.Fatalf("%s is a %s, which promTranslation does not translate", p.Metric, p.Type)
			}
		}
	}
	// The calls above must have reached every kind of instrument, or the
	// check below would pass over names that were simply not exercised.
	for _, want := range []string{
		"gen_ai_client_operation_duration_seconds_count", "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
		"gen_ai_client_operation_time_per_output_chunk_seconds_bucket", "gen_ai_client_token_usage_bucket",
		"gen_ai_server_request_duration_seconds_bucket", "gen_ai_server_time_to_first_token_seconds_bucket",
		"gen_ai_server_time_per_output_token_seconds_bucket", "llm_observer_events_total", "llm_observer_export_dropped_total",
	} {
		if series[want] == nil {
			t.Fatalf("the export run produced no %s; series: %v", want, slices.Sorted(maps.Keys(series)))
		}
	}
	return series
}

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	Title      string           `json:"title"`
	UID        string           `json:"uid"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []dashboardVar `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	Title      string           `json:"title"`
	Type       string           `json:"type"`
	Datasource *datasourceRef   `json:"datasource"`
	Targets    []panelTarget    `json:"targets"`
	Panels     []dashboardPanel `json:"panels"` // a collapsed row's
}

type panelTarget struct {
	Expr         string         `json:"expr"`
	LegendFormat string         `json:"legendFormat"`
	Format       string         `json:"format"`
	Datasource   *datasourceRef `json:"datasource"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *datasourceRef  `json:"datasource"`
	IncludeAll bool            `json:"includeAll"`
	Multi      bool            `json:"multi"`
}

// varQuery is a query variable's query, which Grafana stores either as a
// string or as an object with a query field.
func (v dashboardVar) varQuery(t *testing.T) string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &obj); err != nil {
		t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
	}
	return obj.Query
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

func allPanels(ps []dashboardPanel) []dashboardPanel {
	var out []dashboardPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// usesDatasourceVar reports whether ref is the dashboard's datasource
// variable, so the dashboard works with whatever Prometheus it is imported
// against.
func usesDatasourceVar(ref *datasourceRef) bool {
	return ref != nil && ref.Type == "prometheus" && ref.UID == "${datasource}"
}

var legendLabel = regexp.MustCompile(`\{\{\s*([^}\s]+)\s*\}\}`)

func TestDashboardQueriesNameExportedSeries(t *testing.T) {
	tr := collectorTranslation(t)
	if !tr.resourceLabels {
		t.Fatal("collector.yaml no longer turns resource attributes into labels; the dashboard's service_name needs them")
	}
	series := exportedSeries(t, tr)
	d := loadDashboard(t)

	// checkSelectors fails on any metric or matcher label not exported,
	// and returns the labels the expression's series carry.
	checkSelectors := func(where string, refs promRefs) map[string]bool {
		have := map[string]bool{}
		for _, s := range refs.selectors {
			labels, ok := series[s.metric]
			if !ok {
				t.Errorf("%s: metric %s is not exported", where, s.metric)
				continue
			}
			for _, l := range s.labels {
				if !labels[l] {
					t.Errorf("%s: %s has no label %s (it has %v)", where, s.metric, l, slices.Sorted(maps.Keys(labels)))
				}
			}
			maps.Copy(have, labels)
		}
		return have
	}

	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		if !usesDatasourceVar(v.Datasource) {
			t.Errorf("variable %s: datasource %+v, want the datasource variable", v.Name, v.Datasource)
		}
		refs, label, err := parseLabelValues(v.varQuery(t))
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		if len(refs.selectors) == 0 {
			t.Errorf("variable %s: label_values without a metric looks through every series", v.Name)
		}
		if have := checkSelectors("variable "+v.Name, refs); !have[label] {
			t.Errorf("variable %s: label %s is not on its metric", v.Name, label)
		}
	}

	used := map[string]bool{}
	queries := 0
	for _, p := range allPanels(d.Panels) {
		if p.Type == "row" {
			continue
		}
		if !usesDatasourceVar(p.Datasource) {
			t.Errorf("panel %q: datasource %+v, want the datasource variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			where := "panel " + strconv.Quote(p.Title) + " query " + strconv.Itoa(i)
			queries++
			if tg.Datasource != nil && !usesDatasourceVar(tg.Datasource) {
				t.Errorf("%s: datasource %+v", where, tg.Datasource)
			}
			refs, err := parsePromQL(tg.Expr)
			if err != nil {
				t.Errorf("%s: %v\n%s", where, err, tg.Expr)
				continue
			}
			if len(refs.selectors) == 0 {
				t.Errorf("%s names no metric", where)
			}
			have := checkSelectors(where, refs)
			for _, l := range refs.grouping {
				if !have[l] {
					t.Errorf("%s: groups by %s, which none of its series has", where, l)
				}
			}
			for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
				if !have[m[1]] {
					t.Errorf("%s: legend shows %s, which none of its series has", where, m[1])
				}
			}
			for _, v := range grafanaVars(tg.Expr) {
				if !vars[v] {
					t.Errorf("%s: uses $%s, which the dashboard does not define", where, v)
				}
			}
			for _, s := range refs.selectors {
				used[s.metric] = true
			}
			if p.Type == "heatmap" {
				if tg.Format != "heatmap" || !slices.Contains(refs.grouping, "le") ||
					!slices.ContainsFunc(refs.selectors, func(s promSelector) bool { return strings.HasSuffix(s.metric, "_bucket") }) {
					t.Errorf("%s: a heat map wants buckets summed by le in format heatmap", where)
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}

	// Every loss the observer exports is on the dashboard: a counter
	// nobody sees is a loss nobody notices.
	loss := regexp.MustCompile(`dropped|losses|lost|failures|probe_failures|truncated`)
	for name := range series {
		if loss.MatchString(name) && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_bucket") && !used[name] {
			t.Errorf("loss counter %s is on no panel", name)
		}
	}
}

func TestDashboardVariables(t *testing.T) {
	d := loadDashboard(t)
	byName := map[string]dashboardVar{}
	for _, v := range d.Templating.List {
		byName[v.Name] = v
	}
	ds, ok := byName["datasource"]
	if !ok || ds.Type != "datasource" || string(ds.Query) != `"prometheus"` {
		t.Errorf("no datasource variable of Prometheus data sources: %+v", ds)
	}
	for _, name := range []string{"service", "provider", "model"} {
		v, ok := byName[name]
		if !ok || v.Type != "query" || !v.IncludeAll || !v.Multi {
			t.Errorf("variable %s: want a query variable with All and multiple values: %+v", name, v)
		}
	}
	if d.UID == "" || d.Title == "" {
		t.Error("the dashboard has no uid or title: a second import would make a copy")
	}
}
