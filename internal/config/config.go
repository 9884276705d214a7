// Package config turns environment variables and command-line flags into
// the observer's one typed Config. Every setting is declared once, in the
// settings table, with its variable, its flag, its default and the values
// it accepts; Load applies the defaults, then the environment, then the
// flags, and names the variable or flag and the accepted values when a value
// is wrong. The README's settings table is generated from the same list.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
	"github.com/llm-observer/llm-observer/internal/decode"
	"github.com/llm-observer/llm-observer/internal/export"
)

// Config is everything the observer can be told.
type Config struct {
	// Export configures the exporter: OTLP, console, content, redaction.
	Export export.Config
	// Capture configures the kernel side: path prefixes, ports, ring size,
	// and FilterTLS from the TLS settings.
	Capture capture.Config
	// Limits bound what the HTTP decoder keeps per connection.
	Limits decode.Limits
	// ProcRoot is the host's /proc.
	ProcRoot string
	// Providers maps host, host:port or :port to a provider name.
	Providers map[string]string
	// UserIDSalt salts the hash of end-user ids; empty: random per start.
	UserIDSalt string
	// MCPPaths are the request-path prefixes of MCP traffic; the kernel
	// follows them beside Capture.Paths (see KernelPaths). Empty: none.
	MCPPaths []string
	// HealthAddr serves /healthz, /readyz and /metrics; empty: off.
	HealthAddr string
	// Feed is where the live feed of calls is offered: a Unix socket path
	// or a loopback host:port; empty: off.
	Feed string
	// NodeName is the Kubernetes node whose pods are looked up.
	NodeName string
	// ShutdownTimeout bounds the time from SIGTERM to exit.
	ShutdownTimeout time.Duration
	// TLS probes TLS libraries; TLSExecutables, TLSPIDs and TLSCgroups
	// limit it to some processes.
	TLS            bool
	TLSExecutables []string
	TLSPIDs        []int
	TLSCgroups     []string
	// PprofAddr serves net/http/pprof on a loopback address; empty: off.
	PprofAddr string
}

// DefaultShutdownTimeout is how long the observer takes at most from SIGTERM
// to exit, well inside Kubernetes' default 30 s grace period.
const DefaultShutdownTimeout = 10 * time.Second

// KernelPaths are the path prefixes the kernel follows: the LLM ones and
// then the MCP ones it does not already have.
func (c *Config) KernelPaths() []string {
	paths := c.Capture.Paths
	if len(paths) == 0 {
		paths = capture.DefaultPaths
	}
	out := slices.Clone(paths)
	for _, p := range c.MCPPaths {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Load builds the Config from the defaults, the environment (read through
// lookup, os.LookupEnv in the binary) and then args, so a flag wins over
// its variable. fs receives the flags; its name and output are the caller's.
func Load(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) (Config, error) {
	var c Config
	for _, s := range settings {
		if s.set == nil || s.def == "" {
			continue
		}
		if err := s.set(&c, s.def); err != nil {
			panic(fmt.Sprintf("config: default of %s: %v", s.env, err)) // a bug in the table
		}
	}
	var errs []error
	for _, s := range settings {
		v, ok := lookup(s.env)
		if !ok || s.set == nil || (strings.TrimSpace(v) == "" && !s.keepEmpty) {
			continue
		}
		if err := s.set(&c, strings.TrimSpace(v)); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %v; accepted: %s", s.env, v, err, s.accepts))
		}
	}
	for _, s := range settings {
		if s.flag == "" {
			continue
		}
		s := s
		// Backquotes are Markdown here; flag would take them for a value name.
		usage := strings.ReplaceAll(s.help, "`", "") + " (env " + s.env
		if d := s.shownDefault(); d != "" {
			usage += ", default " + d
		}
		usage += ")"
		if s.boolFlag {
			fs.BoolFunc(s.flag, usage, func(v string) error { return s.flagSet(&c, v) })
		} else {
			fs.Func(s.flag, usage, func(v string) error { return s.flagSet(&c, v) })
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration from the environment: %w", errors.Join(errs...))
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, nil
}

func (s *setting) shownDefault() string {
	if s.def != "" {
		return s.def
	}
	return s.shown
}

// flagSet applies a flag's value; the flag package adds the flag's name.
func (s *setting) flagSet(c *Config, v string) error {
	set := s.set
	if s.setFlag != nil {
		set = s.setFlag
	}
	if err := set(c, strings.TrimSpace(v)); err != nil {
		return fmt.Errorf("%v; accepted: %s", err, s.accepts)
	}
	return nil
}

// FromEnvironment is Load with the process's environment and a flag set
// that reports its errors to the caller rather than exiting.
func FromEnvironment(args []string, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("llm-observer", flag.ContinueOnError)
	fs.SetOutput(usage)
	return Load(fs, args, os.LookupEnv)
}

// Setting describes one setting for people: the README's table and -h.
type Setting struct {
	Env     string // environment variable
	Flag    string // flag name without the dash; empty when there is none
	Default string // as the variable would spell it; empty: unset
	Accepts string // the values accepted
	Help    string // what it does
}

// Settings lists every setting, in the order of the README's table.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	for i, s := range settings {
		out[i] = Setting{Env: s.env, Flag: s.flag, Default: s.shownDefault(), Accepts: s.accepts, Help: s.help}
	}
	return out
}

// Markdown renders Settings as the README's settings table.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| variable | flag | default | accepted values | meaning |\n|---|---|---|---|---|\n")
	code := func(s string) string {
		if s == "" {
			return ""
		}
		return "`" + s + "`"
	}
	for _, s := range Settings() {
		flagName := ""
		if s.Flag != "" {
			flagName = "-" + s.Flag
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", code(s.Env), code(flagName), code(s.Default), s.Accepts, s.Help)
	}
	return b.String()
}

// parse helpers shared by the table.

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not a boolean", v)
	}
	return b, nil
}

func parseMillis(v string) (time.Duration, error) {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("%q is not a positive number of milliseconds", v)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", v)
	}
	return d, nil
}

func parsePositive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive whole number", v)
	}
	return n, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
