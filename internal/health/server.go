// Package health serves the observer's own state over HTTP for whoever runs
// it: /healthz says the process is alive, /readyz says whether it is doing
// its job (the agent decides what that means), and /metrics exposes the
// agent's counters in the Prometheus text format. It takes a readiness
// function and a Gatherer from the agent and hands nothing on.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where the server listens unless told otherwise. Loopback,
// because on a workstation nothing else needs it; a pod that must answer
// the kubelet's probes listens on all of its own addresses instead.
// 9464 is the port OpenTelemetry's Prometheus exporters use by convention.
const DefaultAddr = "127.0.0.1:9464"

// Server is a running health server.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	served chan error
}

// Start listens on addr and serves in the background until Shutdown.
//
// ready reports whether the agent is ready: nil for ready, else an error
// whose text /readyz returns with status 503 so that whoever looks sees
// why. A nil ready means always ready. metrics is what /metrics exposes; nil
// leaves /metrics out.
//
// The listen error comes back from Start itself, so a port already in use
// stops the agent at start-up instead of leaving it running without probes.
func Start(addr string, ready func() error, metrics prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health server: listen on %s: %w (set LLM_OBSERVER_HEALTH_ADDR to a free address)", addr, err)
	}
	s := &Server{
		srv: &http.Server{
			Handler: newMux(ready, metrics),
			// Probes and scrapes are small; these keep a stuck or
			// malicious client from holding connections open forever.
			ReadHeaderTimeout: 5 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
		},
		ln:     ln,
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on, with the port filled in when
// Start was given port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown stops accepting connections and waits, until ctx is done, for
// requests in flight to finish, so a scrape during shutdown still gets its
// answer.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("health server: shutdown: %w", err)
	}
	return nil
}

func newMux(ready func() error, metrics prometheus.Gatherer) *http.ServeMux {
	mux := http.NewServeMux()
	// A "GET" pattern answers HEAD too, which some probers use.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Answering at all is the proof of life; checking more here would
		// let a slow dependency get a healthy process restarted.
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
				return
			}
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	if metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{
			// One failing collector should cost its own series, not the
			// whole scrape.
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	return mux
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
