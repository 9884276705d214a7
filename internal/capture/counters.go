package capture

import "fmt"

// Counters are the kernel side's running totals since load. Every loss has
// its own field so that nothing is dropped silently.
type Counters struct {
	Records          uint64 // ring records written
	Bytes            uint64 // ring bytes written, headers included
	ConnsTracked     uint64 // connections classified as LLM traffic
	RingFull         uint64 // records lost because the ring buffer was full
	RingFullBytes    uint64 // bytes of those records
	TruncatedBuffers uint64 // buffers larger than the kernel copies per call
	TruncatedBytes   uint64 // bytes of those buffers not copied
	ConnMapFull      uint64 // connections not followed because the state map was full
	ActiveMapFull    uint64 // system calls not followed because the in-flight map was full
	ReadFaults       uint64 // user buffers the kernel could not read
	FDReused         uint64 // connection states dropped because their fd came to name another file
	TLSCalls         uint64 // SSL_read/SSL_write calls seen by the TLS probes
	TLSCallMapFull   uint64 // TLS calls not followed because the in-flight map was full
	TLSNoSocket      uint64 // TLS records sent without knowing the connection's socket
	JoinedMidway     uint64 // connections first seen in a response: the exchange in progress is not reported
	VerdictDropped   uint64 // HTTP/2 connections dropped on userspace's verdict: not LLM traffic
	NoticesLost      uint64 // exec and TLS notices lost because their ring was full
}

// Counters sums the per-CPU counters.
func (p *Probe) Counters() (Counters, error) {
	var c Counters
	fields := []*uint64{
		observerCounterCOUNTER_RECORDS:            &c.Records,
		observerCounterCOUNTER_BYTES:              &c.Bytes,
		observerCounterCOUNTER_CONNS_TRACKED:      &c.ConnsTracked,
		observerCounterCOUNTER_RINGBUF_FULL:       &c.RingFull,
		observerCounterCOUNTER_RINGBUF_FULL_BYTES: &c.RingFullBytes,
		observerCounterCOUNTER_TRUNCATED_BUFFERS:  &c.TruncatedBuffers,
		observerCounterCOUNTER_TRUNCATED_BYTES:    &c.TruncatedBytes,
		observerCounterCOUNTER_CONN_MAP_FULL:      &c.ConnMapFull,
		observerCounterCOUNTER_ACTIVE_MAP_FULL:    &c.ActiveMapFull,
		observerCounterCOUNTER_READ_FAULTS:        &c.ReadFaults,
		observerCounterCOUNTER_FD_REUSED:          &c.FDReused,
		observerCounterCOUNTER_TLS_CALLS:          &c.TLSCalls,
		observerCounterCOUNTER_TLS_CALL_MAP_FULL:  &c.TLSCallMapFull,
		observerCounterCOUNTER_TLS_NO_SOCKET:      &c.TLSNoSocket,
		observerCounterCOUNTER_JOINED_MIDWAY:      &c.JoinedMidway,
		observerCounterCOUNTER_VERDICT_DROPPED:    &c.VerdictDropped,
		observerCounterCOUNTER_NOTICES_LOST:       &c.NoticesLost,
	}
	var perCPU []uint64
	for i, f := range fields {
		if err := p.objs.Counters.Lookup(uint32(i), &perCPU); err != nil {
			return c, fmt.Errorf("read kernel counter %d: %w", i, err)
		}
		for _, v := range perCPU {
			*f += v
		}
	}
	return c, nil
}
