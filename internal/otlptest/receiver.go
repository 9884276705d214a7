// Package otlptest runs an OTLP receiver inside a test: a gRPC server and an
// HTTP/protobuf server on loopback ports that accept traces, metrics and logs
// the way a collector would, keep every request, and let the test wait for and
// query what arrived (spans, metric data points, log records, each with its
// resource). It exists so exporters can be tested end to end, over the real
// wire, without a collector binary.
package otlptest

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // exporters may be configured with gzip compression
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Protocol names the transport a request arrived on, with the values of
// OTEL_EXPORTER_OTLP_PROTOCOL.
type Protocol string

// The transports the receiver serves.
const (
	GRPC         Protocol = "grpc"
	HTTPProtobuf Protocol = "http/protobuf"
)

// Signal names one of the three OTLP signals.
type Signal string

// The signals the receiver accepts.
const (
	Traces  Signal = "traces"
	Metrics Signal = "metrics"
	Logs    Signal = "logs"
)

// maxBody bounds an HTTP request body; a test exporter sending more is broken.
const maxBody = 64 << 20

// Receiver is a running OTLP receiver. All methods are safe for concurrent use.
type Receiver struct {
	grpcLis net.Listener
	grpcSrv *grpc.Server
	httpLis net.Listener
	httpSrv *http.Server

	mu       sync.Mutex
	arrived  chan struct{} // closed and replaced whenever something is recorded
	requests map[Protocol]map[Signal]int
	seq      int // export requests recorded so far, of any signal
	spans    []Span
	points   []DataPoint
	logs     []LogRecord
}

// Start starts a receiver on two random loopback ports and stops it when the
// test ends.
func Start(tb testing.TB) *Receiver {
	tb.Helper()
	r, err := start()
	if err != nil {
		tb.Fatalf("otlptest: %v", err)
	}
	tb.Cleanup(r.Close)
	return r
}

func start() (*Receiver, error) {
	r := &Receiver{
		arrived:  make(chan struct{}),
		requests: map[Protocol]map[Signal]int{GRPC: {}, HTTPProtobuf: {}},
	}
	var err error
	if r.grpcLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("listen for gRPC: %w", err)
	}
	if r.httpLis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		r.grpcLis.Close()
		return nil, fmt.Errorf("listen for HTTP: %w", err)
	}

	r.grpcSrv = grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(r.grpcSrv, traceService{r: r})
	colmetricspb.RegisterMetricsServiceServer(r.grpcSrv, metricsService{r: r})
	collogspb.RegisterLogsServiceServer(r.grpcSrv, logsService{r: r})
	go r.grpcSrv.Serve(r.grpcLis) //nolint:errcheck // Serve returns when Close stops it

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.httpHandler(Traces))
	mux.HandleFunc("POST /v1/metrics", r.httpHandler(Metrics))
	mux.HandleFunc("POST /v1/logs", r.httpHandler(Logs))
	r.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go r.httpSrv.Serve(r.httpLis) //nolint:errcheck // Serve returns when Close stops it
	return r, nil
}

// Close stops both servers. Recorded data stays readable.
func (r *Receiver) Close() {
	r.grpcSrv.Stop()
	r.httpSrv.Close()
}

// GRPCAddr is the gRPC server's host:port.
func (r *Receiver) GRPCAddr() string { return r.grpcLis.Addr().String() }

// HTTPAddr is the HTTP server's host:port.
func (r *Receiver) HTTPAddr() string { return r.httpLis.Addr().String() }

// Endpoint is the base URL for an exporter using p, in the form
// OTEL_EXPORTER_OTLP_ENDPOINT takes (plain-text http:// scheme; HTTP
// exporters append /v1/{signal} to it).
func (r *Receiver) Endpoint(p Protocol) string {
	if p == HTTPProtobuf {
		return "http://" + r.HTTPAddr()
	}
	return "http://" + r.GRPCAddr()
}

// Requests counts the export requests received for s over p.
func (r *Receiver) Requests(p Protocol, s Signal) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[p][s]
}

// Reset forgets everything recorded so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spans, r.points, r.logs = nil, nil, nil
	r.requests = map[Protocol]map[Signal]int{GRPC: {}, HTTPProtobuf: {}}
}

// Wait blocks until cond, called with the receiver's lock released, returns
// true, and fails the test after timeout with what in the message.
func (r *Receiver) Wait(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		arrived := r.arrived
		r.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-arrived:
		case <-deadline.C:
			tb.Fatalf("otlptest: timed out after %v waiting for %s", timeout, what)
		}
	}
}

// WaitSpans waits until at least n spans arrived and returns all spans.
func (r *Receiver) WaitSpans(tb testing.TB, n int, timeout time.Duration) []Span {
	tb.Helper()
	r.Wait(tb, timeout, fmt.Sprintf("%d spans", n), func() bool { return len(r.Spans()) >= n })
	return r.Spans()
}

// WaitDataPoints waits until at least n data points of the named metric
// arrived and returns them.
func (r *Receiver) WaitDataPoints(tb testing.TB, metric string, n int, timeout time.Duration) []DataPoint {
	tb.Helper()
	r.Wait(tb, timeout, fmt.Sprintf("%d data points of %s", n, metric), func() bool { return len(r.DataPoints(metric)) >= n })
	return r.DataPoints(metric)
}

// WaitLogs waits until at least n log records arrived and returns all records.
func (r *Receiver) WaitLogs(tb testing.TB, n int, timeout time.Duration) []LogRecord {
	tb.Helper()
	r.Wait(tb, timeout, fmt.Sprintf("%d log records", n), func() bool { return len(r.Logs()) >= n })
	return r.Logs()
}

// record stores one decoded request under the lock and wakes waiters.
func (r *Receiver) record(p Protocol, s Signal, add func(seq int)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[p][s]++
	r.seq++
	add(r.seq)
	close(r.arrived)
	r.arrived = make(chan struct{})
}

// httpHandler serves one OTLP/HTTP path, in protobuf or JSON encoding and
// optionally gzip-compressed, answering in the encoding it was asked in.
func (r *Receiver) httpHandler(s Signal) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		body, err := readBody(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		jsonEncoded := req.Header.Get("Content-Type") == "application/json"
		unmarshal := proto.Unmarshal
		marshal := proto.Marshal
		if jsonEncoded {
			unmarshal = func(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }
			marshal = protojson.Marshal
		}

		var resp proto.Message
		switch s {
		case Traces:
			m := &coltracepb.ExportTraceServiceRequest{}
			if err = unmarshal(body, m); err == nil {
				r.addTraces(HTTPProtobuf, m)
			}
			resp = &coltracepb.ExportTraceServiceResponse{}
		case Metrics:
			m := &colmetricspb.ExportMetricsServiceRequest{}
			if err = unmarshal(body, m); err == nil {
				r.addMetrics(HTTPProtobuf, m)
			}
			resp = &colmetricspb.ExportMetricsServiceResponse{}
		case Logs:
			m := &collogspb.ExportLogsServiceRequest{}
			if err = unmarshal(body, m); err == nil {
				r.addLogs(HTTPProtobuf, m)
			}
			resp = &collogspb.ExportLogsServiceResponse{}
		}
		if err != nil {
			http.Error(w, "decode "+string(s)+": "+err.Error(), http.StatusBadRequest)
			return
		}
		out, err := marshal(resp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if jsonEncoded {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "application/x-protobuf")
		}
		w.Write(out) //nolint:errcheck // the exporter sees a short response as an error itself
	}
}

func readBody(req *http.Request) ([]byte, error) {
	var src io.Reader = http.MaxBytesReader(nil, req.Body, maxBody)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		src = io.LimitReader(zr, maxBody)
	}
	return io.ReadAll(src)
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if req == nil {
		return nil, errors.New("empty request")
	}
	s.r.addTraces(GRPC, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	colmetricspb.UnimplementedMetricsServiceServer
	r *Receiver
}

func (s metricsService) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	if req == nil {
		return nil, errors.New("empty request")
	}
	s.r.addMetrics(GRPC, req)
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

type logsService struct {
	collogspb.UnimplementedLogsServiceServer
	r *Receiver
}

func (s logsService) Export(_ context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	if req == nil {
		return nil, errors.New("empty request")
	}
	s.r.addLogs(GRPC, req)
	return &collogspb.ExportLogsServiceResponse{}, nil
}
