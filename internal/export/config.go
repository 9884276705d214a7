package export

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
)

// Defaults for zero Config fields. internal/config shows and applies the
// same values, so each is defined here once.
const (
	DefaultSelfServiceName    = "llm-observer"
	DefaultMetricInterval     = 60 * time.Second
	DefaultMetricTimeout      = 30 * time.Second
	DefaultContentMaxBytes    = 32 << 10
	MinContentMaxBytes        = 256
	DefaultPairWait           = 2 * time.Second
	DefaultProcessIdleTimeout = 5 * time.Minute
	DefaultMaxProcesses       = 256
)

// DefaultSpanQueue and DefaultLogQueue are the OpenTelemetry specification's
// defaults for the batch span and log record processors.
var (
	DefaultSpanQueue = QueueConfig{Size: 2048, Batch: 512, Delay: 5 * time.Second, Timeout: 30 * time.Second}
	DefaultLogQueue  = QueueConfig{Size: 2048, Batch: 512, Delay: time.Second, Timeout: 30 * time.Second}
)

// errorLogInterval is how often at most one signal's export failures are
// written to the operator's log.
const errorLogInterval = time.Minute

// Protocol is an OTLP transport, spelled as in OTEL_EXPORTER_OTLP_PROTOCOL.
type Protocol string

// The OTLP transports supported.
const (
	ProtocolGRPC         Protocol = "grpc"
	ProtocolHTTPProtobuf Protocol = "http/protobuf"
)

// ParseProtocol reads an OTLP transport; empty means grpc.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(strings.TrimSpace(s))); p {
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		return p, nil
	case "":
		return ProtocolGRPC, nil
	}
	return "", fmt.Errorf("OTLP protocol %q is not supported: want grpc or http/protobuf", s)
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

// ParseTemporality reads a temporality preference; empty means cumulative.
func ParseTemporality(s string) (Temporality, error) {
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
// on stdout and sends nothing; zero fields take the Default* values.
// internal/config fills it from environment variables and flags; each field
// names its variable and flag.
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
	// toolWait is how long a tool call waits for its result (zero: 10m);
	// not a setting, tests shorten it.
	toolWait time.Duration
	// ProcessIdleTimeout is how long a process may go without calls before
	// its providers are flushed and dropped (default 5m).
	// LLM_OBSERVER_PROCESS_IDLE_TIMEOUT, flag -process-idle-timeout.
	ProcessIdleTimeout time.Duration
	// MaxProcesses bounds how many processes have providers at once (default
	// 256); beyond it the least recently used idle one is dropped.
	// LLM_OBSERVER_MAX_PROCESSES, flag -max-processes.
	MaxProcesses int

	// SpanQueue and LogQueue bound the queues between the calls and the
	// OTLP exporters (default DefaultSpanQueue, DefaultLogQueue); what does
	// not fit, or fails to export, is counted by Exporter.Losses.
	// OTEL_BSP_* and OTEL_BLRP_*.
	SpanQueue, LogQueue QueueConfig
	// ErrorWriter receives export failures, at most one line per signal
	// per minute (default os.Stderr).
	ErrorWriter io.Writer
}

// AddResourceAttributes parses key=value pairs in the OTEL_RESOURCE_ATTRIBUTES
// format. service.name and host.name are taken out into SelfServiceName and
// HostName, because the observed processes get their own service.name and
// every resource gets the one host.name.
func (c *Config) AddResourceAttributes(s string) error {
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

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	var err error
	for _, p := range []*Protocol{&c.TracesProtocol, &c.MetricsProtocol, &c.LogsProtocol} {
		if *p, err = ParseProtocol(string(*p)); err != nil {
			return c, err
		}
	}
	if c.Temporality, err = ParseTemporality(string(c.Temporality)); err != nil {
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
		return c, fmt.Errorf("content destination %s needs OTLP logs, which OTEL_LOGS_EXPORTER=none turns off: use destination span or enable logs",
			c.ContentDestination)
	}
	if c.MetricInterval <= 0 {
		c.MetricInterval = DefaultMetricInterval
	}
	if c.MetricTimeout <= 0 {
		c.MetricTimeout = DefaultMetricTimeout
	}
	if c.SelfServiceName == "" {
		c.SelfServiceName = DefaultSelfServiceName
	}
	if c.HostName == "" {
		c.HostName, _ = os.Hostname()
	}
	if c.ContentMaxBytes == 0 {
		c.ContentMaxBytes = DefaultContentMaxBytes
	}
	c.ContentMaxBytes = max(c.ContentMaxBytes, MinContentMaxBytes)
	if c.PairWait == 0 {
		c.PairWait = DefaultPairWait
	}
	if c.ProcessIdleTimeout <= 0 {
		c.ProcessIdleTimeout = DefaultProcessIdleTimeout
	}
	if c.MaxProcesses <= 0 {
		c.MaxProcesses = DefaultMaxProcesses
	}
	c.SpanQueue = c.SpanQueue.withDefaults(DefaultSpanQueue)
	c.LogQueue = c.LogQueue.withDefaults(DefaultLogQueue)
	if c.ConsoleWriter == nil {
		c.ConsoleWriter = os.Stdout
	}
	if c.ErrorWriter == nil {
		c.ErrorWriter = os.Stderr
	}
	if !c.OTLP {
		c.Console = true
	}
	return c, nil
}

// withDefaults fills zero fields from def; a batch is never larger than the
// queue.
func (q QueueConfig) withDefaults(def QueueConfig) QueueConfig {
	if q.Size <= 0 {
		q.Size = def.Size
	}
	if q.Batch <= 0 {
		q.Batch = def.Batch
	}
	q.Batch = min(q.Batch, q.Size)
	if q.Delay <= 0 {
		q.Delay = def.Delay
	}
	if q.Timeout <= 0 {
		q.Timeout = def.Timeout
	}
	return q
}
