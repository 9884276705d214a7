package observer

import "time"

// lagSamples are the measurements that show pressure before loss: what
// waits in the ring for the reader, what waits in the queue for the
// exporter, and how late calls reach the exporter.
func (a *Agent) lagSamples() []SelfSample {
	ring := 0
	if r, ok := a.ex.ring.Load().(ringBacklog); ok {
		ring = r.RingPending()
	}
	depth := 0
	a.mu.Lock()
	if a.ex.queue != nil {
		depth = len(a.ex.queue)
	}
	a.mu.Unlock()
	capacity := a.cfg.ExportQueue
	if capacity <= 0 {
		capacity = defaultExportQueue
	}
	return []SelfSample{
		{Name: "llm_observer.ring.pending_bytes", Help: "bytes of records waiting in the kernel ring buffer for the reader; at the ring's size records are lost", Value: float64(ring), Gauge: true},
		{Name: "llm_observer.export.queue.depth", Help: "finished calls waiting for the exporter", Value: float64(depth), Gauge: true},
		{Name: "llm_observer.export.queue.capacity", Help: "calls the export queue holds; beyond it calls are dropped", Value: float64(capacity), Gauge: true},
		{Name: "llm_observer.export.delay.max_seconds", Help: "longest time, over the last 15 to 30 s, from a response's last byte (kernel time) to its call reaching the exporter", Value: a.ex.delayMax.read(time.Now()), Gauge: true},
		{Name: "llm_observer.export.delay.seconds", Help: "sum of the times from a response's last byte to its call reaching the exporter; divide by llm_observer.calls for the mean", Value: float64(a.ex.delayNanos.Load()) / 1e9},
		{Name: "llm_observer.dropped.calls", Reason: "export_queue_full", Help: "finished calls not exported", Value: float64(a.ex.queueFull.Load())},
		{Name: "llm_observer.reader.priority_raised", Help: "1 when the thread draining the ring runs at a raised scheduling priority (needs CAP_SYS_NICE)", Value: boolValue(a.ex.readerRaised.Load()), Gauge: true},
		{Name: "llm_observer.export.starts.skipped", Help: "call starts not queued because the export queue was full; the call is still exported when it ends, without an active-requests count", Value: float64(a.ex.startsSkipped.Load())},
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
