package capture

// RingPending is how many bytes of records wait in the ring buffer for the
// reader: the backlog that becomes ring_full losses once it reaches the
// ring's size, so an operator sees pressure before loss. Safe to call from
// any goroutine while Run reads; 0 once the Probe is closed.
func (p *Probe) RingPending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.reader == nil {
		return 0
	}
	return p.reader.AvailableBytes()
}
