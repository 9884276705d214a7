package main

import (
	"context"
	"fmt"
	"net"
	"sync"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // the observer may compress
)

// receiver is an OTLP/gRPC endpoint that counts the spans of calls to one
// server port and discards everything else: the harness needs totals, and
// keeping every span of a long run would only grow its own memory.
type receiver struct {
	lis net.Listener
	srv *grpc.Server

	mu     sync.Mutex
	port   int64
	counts spanCounts
}

// spanCounts are the spans of the benchmark's calls, by side.
type spanCounts struct {
	Client, Server int
	// Paired are server spans whose parent is a client span, as the
	// observer links the two ends of one exchange.
	Paired int
}

func startReceiver() (*receiver, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for OTLP: %w", err)
	}
	r := &receiver{lis: lis, srv: grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))}
	coltracepb.RegisterTraceServiceServer(r.srv, traces{r: r})
	colmetricspb.RegisterMetricsServiceServer(r.srv, metrics{})
	collogspb.RegisterLogsServiceServer(r.srv, logs{})
	go r.srv.Serve(lis) //nolint:errcheck // returns when stopped
	return r, nil
}

func (r *receiver) addr() string { return r.lis.Addr().String() }

func (r *receiver) stop() { r.srv.Stop() }

// reset starts counting afresh, for calls to port.
func (r *receiver) reset(port int) {
	r.mu.Lock()
	r.port, r.counts = int64(port), spanCounts{}
	r.mu.Unlock()
}

func (r *receiver) spans() spanCounts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

func (r *receiver) record(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				if !r.ours(s) {
					continue
				}
				switch s.GetKind() {
				case tracepb.Span_SPAN_KIND_CLIENT:
					r.counts.Client++
				case tracepb.Span_SPAN_KIND_SERVER:
					r.counts.Server++
					if len(s.GetParentSpanId()) > 0 {
						r.counts.Paired++
					}
				}
			}
		}
	}
}

// ours: the span is of a call to the benchmark server, not other traffic
// on the host.
func (r *receiver) ours(s *tracepb.Span) bool {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == "server.port" {
			return kv.GetValue().GetIntValue() == r.port
		}
	}
	return false
}

type traces struct {
	coltracepb.UnimplementedTraceServiceServer
	r *receiver
}

func (t traces) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	t.r.record(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type metrics struct {
	colmetricspb.UnimplementedMetricsServiceServer
}

func (metrics) Export(context.Context, *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

type logs struct {
	collogspb.UnimplementedLogsServiceServer
}

func (logs) Export(context.Context, *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	return &collogspb.ExportLogsServiceResponse{}, nil
}
