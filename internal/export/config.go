package export

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
)

// Environment variables read by ConfigFromEnv. The OTLP exporters also read
// the OTEL_EXPORTER_OTLP_* variables for headers, TLS, timeout and
// compression themselves; see the package doc for the full list.
const (
	envEndpoint        = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint  = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envMetricsEndpoint = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
	envLogsEndpoint    = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
	envProtocol        = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol  = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envMetricsProtocol = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
	envLogsProtocol    = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
	envTemporality     = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
	envTracesExporter  = "OTEL_TRACES_EXPORTER"
	envMetricsExporter = "OTEL_METRICS_EXPORTER"
	envLogsExporter    = "OTEL_LOGS_EXPORTER"
	envMetricInterval  = "OTEL_METRIC_EXPORT_INTERVAL"
	envMetricTimeout   = "OTEL_METRIC_EXPORT_TIMEOUT"
	envResourceAttrs   = "OTEL_RESOURCE_ATTRIBUTES"
	envServiceName     = "OTEL_SERVICE_NAME"
	envSemconvOptIn    = "OTEL_SEMCONV_STABILITY_OPT_IN"

	envConsole            = "LLM_OBSERVER_CONSOLE"
	envCaptureContent     = "LLM_OBSERVER_CAPTURE_CONTENT"
	envContentDestination = "LLM_OBSERVER_CONTENT_DESTINATION"
	envContentMaxBytes    = "LLM_OBSERVER_CONTENT_MAX_BYTES"
	envRedact             = "LLM_OBSERVER_REDACT"
	envEmitGenAISystem    = "LLM_OBSERVER_EMIT_GEN_AI_SYSTEM"
	envPairWait           = "LLM_OBSERVER_PAIR_WAIT"
	envIdleTimeout        = "LLM_OBSERVER_PROCESS_IDLE_TIMEOUT"
	envMaxProcesses       = "LLM_OBSERVER_MAX_PROCESSES"
)

// optInLatestGenAI is the OTEL_SEMCONV_STABILITY_OPT_IN value that asks for
// the newest GenAI names only.
const optInLatestGenAI = "gen_ai_latest_experimental"

// Defaults for zero Config fields.
const (
	defaultSelfServiceName = "llm-observer"
	defaultMetricInterval  = 60 * time.Second
	defaultMetricTimeout   = 30 * time.Second
	defaultContentMaxBytes = 32 << 10
	minContentMaxBytes     = 256
	defaultPairWait        = 2 * time.Second
	defaultIdleTimeout     = 5 * time.Minute
	defaultMaxProcesses    = 256
)

// Protocol is an OTLP transport, spelled as in OTEL_EXPORTER_OTLP_PROTOCOL.
type Protocol string

// The OTLP transports supported.
const (
	ProtocolGRPC         Protocol = "grpc"
	ProtocolHTTPProtobuf Protocol = "http/protobuf"
)

func parseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(strings.TrimSpace(s))); p {
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		return p, nil
	case "":
		return ProtocolGRPC, nil
	}
	return "", fmt.Errorf("OTLP protocol %q is not supported: use grpc or http/protobuf", s)
}

// Temporality is the metric temporality preference, spelled as in
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE.
type Temporality string

// The temporality preferences of the OTLP metric exporter specification.
const (
	TemporalityCumulative Temporality = "cumulative"
	TemporalityDelta      Temporality = "delta"
	TemporalityLowMemory  Temporality = "lowmemory"
)

func parseTemporality(s string) (Temporality, error) {
	switch t := Temporality(strings.ToLower(strings.TrimSpace(s))); t {
	case TemporalityCumulative, TemporalityDelta, TemporalityLowMemory:
		return t, nil
	case "":
		return TemporalityCumulative, nil
	}
	return "", fmt.Errorf("metrics temporality %q: want cumulative, delta or lowmemory", s)
}

// ContentCapture says which message content is recorded.
type ContentCapture uint8

// Content capture settings; none is the default.
const (
	CaptureNone ContentCapture = iota
	CaptureInput
	CaptureOutput
	CaptureAll
)

var captureNames = []string{"none", "input", "output", "all"}

// String returns the setting as ConfigFromEnv and the flag spell it.
func (c ContentCapture) String() string {
	if int(c) < len(captureNames) {
		return captureNames[c]
	}
	return "ContentCapture(" + strconv.Itoa(int(c)) + ")"
}

// Set parses none, input, output or all, so a ContentCapture can be a flag.
func (c *ContentCapture) Set(s string) error {
	i, err := choose(s, captureNames, "content capture")
	*c = ContentCapture(i)
	return err
}

// Input reports whether input content (messages, system instructions, tool
// definitions) is recorded.
func (c ContentCapture) Input() bool { return c == CaptureInput || c == CaptureAll }

// Output reports whether output messages are recorded.
func (c ContentCapture) Output() bool { return c == CaptureOutput || c == CaptureAll }

// ContentDestination says where captured content goes.
type ContentDestination uint8

// Content destinations; span is the default.
const (
	DestinationSpan ContentDestination = iota
	DestinationLog
	DestinationBoth
)

var destinationNames = []string{"span", "log", "both"}

// String returns the setting as ConfigFromEnv and the flag spell it.
func (d ContentDestination) String() string {
	if int(d) < len(destinationNames) {
		return destinationNames[d]
	}
	return "ContentDestination(" + strconv.Itoa(int(d)) + ")"
}

// Set parses span, log or both, so a ContentDestination can be a flag.
func (d *ContentDestination) Set(s string) error {
	i, err := choose(s, destinationNames, "content destination")
	*d = ContentDestination(i)
	return err
}

func (d ContentDestination) toSpan() bool { return d == DestinationSpan || d == DestinationBoth }
func (d ContentDestination) toLog() bool  { return d == DestinationLog || d == DestinationBoth }

func choose(s string, names []string, what string) (int, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for i, n := range names {
		if s == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%s %q: want one of %s", what, s, strings.Join(names, ", "))
}

// Config is everything the exporter can be told. The zero value prints calls
// on stdout and sends nothing; ConfigFromEnv fills it from the environment
// and RegisterFlags lets command-line flags override that. Each field names
// its environment variable and flag.
type Config struct {
	// Endpoint is the OTLP endpoint URL for every signal, e.g.
	// http://collector:4317 (gRPC) or https://collector:4318 (HTTP; the
	// exporters add /v1/traces and so on). Setting it switches OTLP on and
	// overrides the OTEL_EXPORTER_OTLP_*ENDPOINT variables. Empty: the
	// exporters read those variables themselves. Flag -otlp-endpoint.
	Endpoint string
	// OTLP switches OTLP export on with the endpoints the OTLP exporters find
	// in the environment. ConfigFromEnv sets it when OTEL_EXPORTER_OTLP_ENDPOINT
	// or any OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT is set. With
	// neither OTLP nor Endpoint, calls only go to the console.
	OTLP bool
	// TracesProtocol, MetricsProtocol and LogsProtocol are the OTLP transport
	// per signal, grpc (default) or http/protobuf: OTEL_EXPORTER_OTLP_PROTOCOL,
	// overridden per signal by OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_PROTOCOL.
	// Flag -otlp-protocol sets all three.
	TracesProtocol, MetricsProtocol, LogsProtocol Protocol
	// DisableTraces, DisableMetrics and DisableLogs turn one OTLP signal off:
	// OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none (otlp is the other accepted
	// value). Flags -traces-exporter, -metrics-exporter, -logs-exporter.
	DisableTraces, DisableMetrics, DisableLogs bool
	// Temporality is the metric temporality preference: cumulative (default),
	// delta or lowmemory, with the meaning the OTLP exporter specification
	// gives them. OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, flag
	// -otlp-metrics-temporality.
	Temporality Temporality
	// MetricInterval is how often metrics are collected and exported (default
	// 60s). OTEL_METRIC_EXPORT_INTERVAL in milliseconds, flag
	// -metric-export-interval.
	MetricInterval time.Duration
	// MetricTimeout bounds one metric export (default 30s).
	// OTEL_METRIC_EXPORT_TIMEOUT in milliseconds.
	MetricTimeout time.Duration

	// ResourceAttributes are added to every resource, the observed processes'
	// and the observer's own; the process's own attributes win over them.
	// OTEL_RESOURCE_ATTRIBUTES (key=value,… percent-encoded), flag
	// -resource-attributes. A service.name there names the observer itself,
	// a host.name there sets HostName.
	ResourceAttributes []attribute.KeyValue
	// SelfServiceName is the service.name of the observer's own telemetry
	// (default llm-observer). OTEL_SERVICE_NAME.
	SelfServiceName string
	// HostName is host.name on every resource (default: the kernel's host
	// name). From host.name in OTEL_RESOURCE_ATTRIBUTES; in a DaemonSet, pass
	// the node name that way.
	HostName string

	// LatestGenAIConventions emits only the newest GenAI names the build knows
	// and never a deprecated one, even when EmitGenAISystem asks for it.
	// OTEL_SEMCONV_STABILITY_OPT_IN containing gen_ai_latest_experimental,
	// flag -semconv-stability-opt-in.
	LatestGenAIConventions bool
	// EmitGenAISystem adds the deprecated gen_ai.system attribute (same value
	// as gen_ai.provider.name) to spans, metrics and events, for dashboards
	// built on the older conventions. LLM_OBSERVER_EMIT_GEN_AI_SYSTEM=true,
	// flag -emit-gen-ai-system.
	EmitGenAISystem bool

	// Console prints one line per call even when OTLP is on; without OTLP
	// the console is always used. LLM_OBSERVER_CONSOLE=true, flag -console.
	Console bool
	// ConsoleWriter receives the console lines (default os.Stdout).
	ConsoleWriter io.Writer

	// CaptureContent records message content: none (default), input,
	// output or all. Input is the input messages, system instructions and
	// tool definitions; output is the output messages.
	// LLM_OBSERVER_CAPTURE_CONTENT, flag -capture-content.
	CaptureContent ContentCapture
	// ContentDestination sends captured content to span attributes (span,
	// default), to a gen_ai.client.inference.operation.details log record
	// (log), or both. LLM_OBSERVER_CONTENT_DESTINATION, flag
	// -content-destination.
	ContentDestination ContentDestination
	// ContentMaxBytes caps each content attribute's JSON (default 32768,
	// at least 256); longer text is cut and marked, the JSON stays valid.
	// LLM_OBSERVER_CONTENT_MAX_BYTES, flag -content-max-bytes.
	ContentMaxBytes int
	// Redact holds extra regular expressions (RE2 syntax) whose matches are
	// replaced by [REDACTED] in captured content and error messages, on top
	// of the built-in credential and e-mail patterns, which are always on.
	// LLM_OBSERVER_REDACT holds one expression (join several with |); flag
	// -redact may be repeated.
	Redact []string

	// PairWait is how long a call seen inside a server waits for the client
	// side of the same exchange on this host, and how long a finished client
	// call stays pairable (default 2s; negative: do not wait).
	// LLM_OBSERVER_PAIR_WAIT, flag -pair-wait.
	PairWait time.Duration
	// ProcessIdleTimeout is how long a process may go without calls before
	// its providers are flushed and dropped (default 5m).
	// LLM_OBSERVER_PROCESS_IDLE_TIMEOUT, flag -process-idle-timeout.
	ProcessIdleTimeout time.Duration
	// MaxProcesses bounds how many processes have providers at once (default
	// 256); beyond it the least recently used idle one is dropped.
	// LLM_OBSERVER_MAX_PROCESSES, flag -max-processes.
	MaxProcesses int
}

// ConfigFromEnv reads the OTEL_* and LLM_OBSERVER_* variables listed in the
// package doc into a Config. Command-line flags registered with
// Config.RegisterFlags and parsed afterwards override what it found.
func ConfigFromEnv() (Config, error) {
	return configFrom(os.LookupEnv)
}

func configFrom(lookup func(string) (string, bool)) (Config, error) {
	var cfg Config
	var errs []error
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	fail := func(name string, err error) {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}

	for _, name := range []string{envEndpoint, envTracesEndpoint, envMetricsEndpoint, envLogsEndpoint} {
		if _, ok := get(name); ok {
			cfg.OTLP = true
		}
	}

	base, _ := get(envProtocol)
	for _, p := range []struct {
		env string
		dst *Protocol
	}{{envTracesProtocol, &cfg.TracesProtocol}, {envMetricsProtocol, &cfg.MetricsProtocol}, {envLogsProtocol, &cfg.LogsProtocol}} {
		v, ok := get(p.env)
		name := p.env
		if !ok {
			v, name = base, envProtocol
		}
		proto, err := parseProtocol(v)
		if err != nil {
			fail(name, err)
		}
		*p.dst = proto
	}

	for _, s := range []struct {
		env string
		dst *bool
	}{{envTracesExporter, &cfg.DisableTraces}, {envMetricsExporter, &cfg.DisableMetrics}, {envLogsExporter, &cfg.DisableLogs}} {
		if v, ok := get(s.env); ok {
			if err := setDisabled(s.dst, v); err != nil {
				fail(s.env, err)
			}
		}
	}

	if v, ok := get(envTemporality); ok {
		t, err := parseTemporality(v)
		if err != nil {
			fail(envTemporality, err)
		}
		cfg.Temporality = t
	}
	for _, d := range []struct {
		env string
		dst *time.Duration
	}{{envMetricInterval, &cfg.MetricInterval}, {envMetricTimeout, &cfg.MetricTimeout}} {
		if v, ok := get(d.env); ok {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ms <= 0 {
				fail(d.env, fmt.Errorf("%q is not a positive number of milliseconds", v))
				continue
			}
			*d.dst = time.Duration(ms) * time.Millisecond
		}
	}

	if v, ok := get(envResourceAttrs); ok {
		if err := cfg.addResourceAttributes(v); err != nil {
			fail(envResourceAttrs, err)
		}
	}
	if v, ok := get(envServiceName); ok {
		cfg.SelfServiceName = v
	}
	if v, ok := get(envSemconvOptIn); ok {
		cfg.LatestGenAIConventions = optsInLatestGenAI(v)
	}

	for _, b := range []struct {
		env string
		dst *bool
	}{{envEmitGenAISystem, &cfg.EmitGenAISystem}, {envConsole, &cfg.Console}} {
		if v, ok := get(b.env); ok {
			t, err := strconv.ParseBool(v)
			if err != nil {
				fail(b.env, fmt.Errorf("%q is not a boolean", v))
			}
			*b.dst = t
		}
	}

	if v, ok := get(envCaptureContent); ok {
		if err := cfg.CaptureContent.Set(v); err != nil {
			fail(envCaptureContent, err)
		}
	}
	if v, ok := get(envContentDestination); ok {
		if err := cfg.ContentDestination.Set(v); err != nil {
			fail(envContentDestination, err)
		}
	}
	if v, ok := get(envContentMaxBytes); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < minContentMaxBytes {
			fail(envContentMaxBytes, fmt.Errorf("%q: want a byte count of at least %d", v, minContentMaxBytes))
		}
		cfg.ContentMaxBytes = n
	}
	if v, ok := get(envRedact); ok {
		if _, err := regexp.Compile(v); err != nil {
			fail(envRedact, err)
		}
		cfg.Redact = append(cfg.Redact, v)
	}

	for _, d := range []struct {
		env string
		dst *time.Duration
	}{{envPairWait, &cfg.PairWait}, {envIdleTimeout, &cfg.ProcessIdleTimeout}} {
		if v, ok := get(d.env); ok {
			t, err := time.ParseDuration(v)
			if err != nil {
				fail(d.env, fmt.Errorf("%q is not a duration like 2s or 5m", v))
			}
			*d.dst = t
		}
	}
	if v, ok := get(envMaxProcesses); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail(envMaxProcesses, fmt.Errorf("%q is not a positive count", v))
		}
		cfg.MaxProcesses = n
	}

	if len(errs) > 0 {
		return cfg, fmt.Errorf("configuration from the environment: %w", errors.Join(errs...))
	}
	return cfg, nil
}

func setDisabled(dst *bool, v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "otlp":
		*dst = false
	case "none":
		*dst = true
	default:
		return fmt.Errorf("exporter %q is not supported: use otlp or none (LLM_OBSERVER_CONSOLE=true prints calls)", v)
	}
	return nil
}

func optsInLatestGenAI(list string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.TrimSpace(v) == optInLatestGenAI {
			return true
		}
	}
	return false
}

// addResourceAttributes parses key=value pairs in the OTEL_RESOURCE_ATTRIBUTES
// format. service.name and host.name are taken out into SelfServiceName and
// HostName, because the observed processes get their own service.name and
// every resource gets the one host.name.
func (c *Config) addResourceAttributes(s string) error {
	for _, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("%q is not key=value", pair)
		}
		key, err1 := url.PathUnescape(strings.TrimSpace(k))
		val, err2 := url.PathUnescape(strings.TrimSpace(v))
		if err1 != nil || err2 != nil || key == "" {
			return fmt.Errorf("%q is not a valid percent-encoded key=value", pair)
		}
		switch attribute.Key(key) {
		case semconv.ServiceNameKey:
			if c.SelfServiceName == "" {
				c.SelfServiceName = val
			}
		case semconv.HostNameKey:
			c.HostName = val
		default:
			c.ResourceAttributes = append(c.ResourceAttributes, attribute.String(key, val))
		}
	}
	return nil
}

// RegisterFlags defines on fs one flag per setting, each defaulting to the
// value c holds now, so that the usual order is ConfigFromEnv, RegisterFlags,
// fs.Parse: flags override the environment, which overrides the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Endpoint, "otlp-endpoint", c.Endpoint,
		"OTLP endpoint URL for all signals, e.g. http://localhost:4317; switches OTLP on (env "+envEndpoint+")")
	fs.Func("otlp-protocol", "OTLP transport for all signals: grpc or http/protobuf (env "+envProtocol+")", func(s string) error {
		p, err := parseProtocol(s)
		c.TracesProtocol, c.MetricsProtocol, c.LogsProtocol = p, p, p
		return err
	})
	for _, s := range []struct {
		name string
		dst  *bool
		env  string
	}{{"traces-exporter", &c.DisableTraces, envTracesExporter}, {"metrics-exporter", &c.DisableMetrics, envMetricsExporter}, {"logs-exporter", &c.DisableLogs, envLogsExporter}} {
		dst := s.dst
		fs.Func(s.name, "otlp or none (env "+s.env+")", func(v string) error { return setDisabled(dst, v) })
	}
	fs.Func("otlp-metrics-temporality", "cumulative, delta or lowmemory (env "+envTemporality+")", func(s string) error {
		t, err := parseTemporality(s)
		c.Temporality = t
		return err
	})
	fs.DurationVar(&c.MetricInterval, "metric-export-interval", c.MetricInterval,
		"how often metrics are exported; 0 means 60s (env "+envMetricInterval+", in ms)")
	fs.Func("resource-attributes", "key=value,… added to every resource (env "+envResourceAttrs+")", c.addResourceAttributes)
	fs.Func("semconv-stability-opt-in", "comma list; "+optInLatestGenAI+" emits only the newest GenAI names (env "+envSemconvOptIn+")", func(s string) error {
		c.LatestGenAIConventions = optsInLatestGenAI(s)
		return nil
	})
	fs.BoolVar(&c.EmitGenAISystem, "emit-gen-ai-system", c.EmitGenAISystem,
		"also emit the deprecated gen_ai.system attribute (env "+envEmitGenAISystem+")")
	fs.BoolVar(&c.Console, "console", c.Console,
		"print one line per call even when exporting over OTLP (env "+envConsole+")")
	fs.Var(&c.CaptureContent, "capture-content", "record message content: none, input, output or all (env "+envCaptureContent+")")
	fs.Var(&c.ContentDestination, "content-destination", "where content goes: span, log or both (env "+envContentDestination+")")
	fs.IntVar(&c.ContentMaxBytes, "content-max-bytes", c.ContentMaxBytes,
		"cap per content attribute in bytes; 0 means 32768 (env "+envContentMaxBytes+")")
	fs.Func("redact", "extra regular expression to redact from content; repeatable (env "+envRedact+")", func(s string) error {
		if _, err := regexp.Compile(s); err != nil {
			return err
		}
		c.Redact = append(c.Redact, s)
		return nil
	})
	fs.DurationVar(&c.PairWait, "pair-wait", c.PairWait,
		"how long a server-side call waits for its client-side twin; 0 means 2s, negative off (env "+envPairWait+")")
	fs.DurationVar(&c.ProcessIdleTimeout, "process-idle-timeout", c.ProcessIdleTimeout,
		"drop a process's providers after this long without calls; 0 means 5m (env "+envIdleTimeout+")")
	fs.IntVar(&c.MaxProcesses, "max-processes", c.MaxProcesses,
		"most processes with providers at once; 0 means 256 (env "+envMaxProcesses+")")
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	var err error
	for _, p := range []*Protocol{&c.TracesProtocol, &c.MetricsProtocol, &c.LogsProtocol} {
		if *p, err = parseProtocol(string(*p)); err != nil {
			return c, err
		}
	}
	if c.Temporality, err = parseTemporality(string(c.Temporality)); err != nil {
		return c, err
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return c, fmt.Errorf("OTLP endpoint %q: want a URL like http://host:4317", c.Endpoint)
		}
		c.OTLP = true
	}
	if c.CaptureContent > CaptureAll {
		return c, fmt.Errorf("content capture %d is not a known setting", c.CaptureContent)
	}
	if c.ContentDestination > DestinationBoth {
		return c, fmt.Errorf("content destination %d is not a known setting", c.ContentDestination)
	}
	if c.OTLP && c.DisableLogs && c.CaptureContent != CaptureNone && c.ContentDestination.toLog() {
		return c, fmt.Errorf("content destination %s needs OTLP logs, which %s=none turns off: use destination span or enable logs",
			c.ContentDestination, envLogsExporter)
	}
	if c.MetricInterval <= 0 {
		c.MetricInterval = defaultMetricInterval
	}
	if c.MetricTimeout <= 0 {
		c.MetricTimeout = defaultMetricTimeout
	}
	if c.SelfServiceName == "" {
		c.SelfServiceName = defaultSelfServiceName
	}
	if c.HostName == "" {
		c.HostName, _ = os.Hostname()
	}
	if c.ContentMaxBytes == 0 {
		c.ContentMaxBytes = defaultContentMaxBytes
	}
	c.ContentMaxBytes = max(c.ContentMaxBytes, minContentMaxBytes)
	if c.PairWait == 0 {
		c.PairWait = defaultPairWait
	}
	if c.ProcessIdleTimeout <= 0 {
		c.ProcessIdleTimeout = defaultIdleTimeout
	}
	if c.MaxProcesses <= 0 {
		c.MaxProcesses = defaultMaxProcesses
	}
	if c.ConsoleWriter == nil {
		c.ConsoleWriter = os.Stdout
	}
	if !c.OTLP {
		c.Console = true
	}
	return c, nil
}
