package export

import (
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/llm-observer/llm-observer/internal/genai"
)

// Pairing makes the SERVER span of an exchange the child of its CLIENT span
// when both processes run on this host.
//
// The two views of one exchange are recognised by the connection: the
// client's address and port and the server's port are the same from both
// ends (the server's address is left out, as the client may know it by a
// name), and the two request starts lie within pairWindow of each other;
// among several candidates on a keep-alive connection the nearest start wins.
//
// The client span's IDs are reserved when the client call is first seen,
// usually at CallStarted, long before either end finishes. A server call that
// ends finds them there and is emitted at once as their child. If no client
// has been seen yet (the hooks of the two processes raced, or the client is
// on another host) the server call is held for up to PairWait; a client call
// arriving in that time releases it under its own reserved IDs, otherwise it
// is emitted without a parent. A finished client call stays findable for
// PairWait too, for a server call that reports late.
//
// Deriving both IDs from a hash of the connection and a time bucket instead
// would need no state, but two ends whose starts straddle a bucket edge would
// silently part, and a bucket coarse enough to avoid that merges
// back-to-back requests of a keep-alive connection. The table here is
// bounded (maxPairSlots); when it is full, calls are simply not paired.
type pairing struct {
	mu    sync.Mutex
	wait  time.Duration
	slots map[exchangeKey][]*pairSlot
	n     int
	max   int
}

const (
	// pairWindow bounds the difference between the two ends' request starts.
	// Both are kernel times on one clock; they differ by the time the request
	// spends between the two sockets.
	pairWindow = time.Second
	// openCallLimit drops the reservation of a client call whose end never
	// arrived.
	openCallLimit = 30 * time.Minute
	maxPairSlots  = 4096
)

// exchangeKey identifies a connection from either end.
type exchangeKey struct {
	clientIP   netip.Addr
	clientHost string // when the client address is not an IP literal
	clientPort int
	serverPort int
	stream     uint32 // HTTP/2 stream: concurrent calls of one connection
}

func exchangeKeyOf(c *genai.Call) (exchangeKey, bool) {
	ep := c.Endpoint
	if ep.ClientAddress == "" || ep.ClientPort <= 0 || ep.ServerPort <= 0 {
		return exchangeKey{}, false
	}
	k := exchangeKey{clientPort: ep.ClientPort, serverPort: ep.ServerPort, stream: c.HTTP2Stream}
	if ip, err := netip.ParseAddr(ep.ClientAddress); err == nil {
		k.clientIP = ip.Unmap()
	} else {
		k.clientHost = strings.ToLower(ep.ClientAddress)
	}
	return k, true
}

// pairSlot is one exchange as far as it is known.
type pairSlot struct {
	start       time.Time         // request start of the end that created the slot
	client      trace.SpanContext // reserved client span; invalid until the client is seen
	clientEnded bool
	held        *heldCall // server call waiting for its client
	serverDone  bool      // the server span has been given its parent
	deadline    time.Time
}

// heldCall is a server call waiting for its client, with the process whose
// providers it will be emitted by (acquired, so it is not retired meanwhile).
type heldCall struct {
	pt   *processTelemetry
	call *genai.Call
}

func newPairing(wait time.Duration) *pairing {
	return &pairing{wait: wait, slots: map[exchangeKey][]*pairSlot{}, max: maxPairSlots}
}

// client returns the span context reserved for client call c (invalid when
// c cannot be paired), reserving one when c is first seen. A server call that
// was waiting for c is handed back, to be emitted under that context.
func (p *pairing) client(c *genai.Call, ended bool, now time.Time) (trace.SpanContext, *heldCall) {
	k, ok := exchangeKeyOf(c)
	if !ok {
		return trace.SpanContext{}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.slots[k]
	var released *heldCall
	s := first(list, func(s *pairSlot) bool {
		return s.client.IsValid() && !s.clientEnded && s.start.Equal(c.Start)
	})
	if s == nil {
		s = nearest(list, c.Start, func(s *pairSlot) bool { return s.client.IsValid() && !s.clientEnded })
	}
	if s == nil {
		if s = nearest(list, c.Start, func(s *pairSlot) bool { return s.held != nil }); s != nil {
			s.client = reserveClientSpan(c)
			released, s.held, s.serverDone = s.held, nil, true
		}
	}
	if s == nil {
		if p.n >= p.max {
			return trace.SpanContext{}, nil
		}
		s = &pairSlot{start: c.Start, client: reserveClientSpan(c)}
		p.slots[k] = append(list, s)
		p.n++
	}
	s.deadline = now.Add(openCallLimit)
	if ended {
		s.clientEnded = true
		s.deadline = now.Add(max(p.wait, 0))
		if s.serverDone {
			p.remove(k, s)
		}
	}
	return s.client, released
}

// server returns the reserved client span server call c belongs under. When
// none is known and waiting is on, it keeps c and reports held: c comes back
// from client or expire.
func (p *pairing) server(pt *processTelemetry, c *genai.Call, now time.Time) (parent trace.SpanContext, held bool) {
	k, ok := exchangeKeyOf(c)
	if !ok {
		return trace.SpanContext{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.slots[k]
	if s := nearest(list, c.Start, func(s *pairSlot) bool { return s.client.IsValid() && !s.serverDone }); s != nil {
		s.serverDone = true
		if s.clientEnded {
			p.remove(k, s)
		}
		return s.client, false
	}
	if p.wait <= 0 || p.n >= p.max {
		return trace.SpanContext{}, false
	}
	p.slots[k] = append(list, &pairSlot{start: c.Start, held: &heldCall{pt: pt, call: c}, deadline: now.Add(p.wait)})
	p.n++
	return trace.SpanContext{}, true
}

// expire drops the slots whose deadline is before now and returns the server
// calls that waited in vain.
func (p *pairing) expire(now time.Time) []*heldCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*heldCall
	for k, list := range p.slots {
		kept := list[:0]
		for _, s := range list {
			if s.deadline.After(now) {
				kept = append(kept, s)
				continue
			}
			if s.held != nil {
				out = append(out, s.held)
			}
			p.n--
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(p.slots, k)
		} else {
			p.slots[k] = kept
		}
	}
	return out
}

func first(list []*pairSlot, match func(*pairSlot) bool) *pairSlot {
	for _, s := range list {
		if match(s) {
			return s
		}
	}
	return nil
}

// nearest is the matching slot whose start is closest to t, within pairWindow.
func nearest(list []*pairSlot, t time.Time, match func(*pairSlot) bool) *pairSlot {
	var best *pairSlot
	bestGap := pairWindow + 1
	for _, s := range list {
		if !match(s) {
			continue
		}
		gap := s.start.Sub(t)
		if gap < 0 {
			gap = -gap
		}
		if gap < bestGap {
			best, bestGap = s, gap
		}
	}
	return best
}

func (p *pairing) remove(k exchangeKey, s *pairSlot) {
	list := p.slots[k]
	for i, x := range list {
		if x == s {
			list = append(list[:i], list[i+1:]...)
			p.n--
			break
		}
	}
	if len(list) == 0 {
		delete(p.slots, k)
	} else {
		p.slots[k] = list
	}
}

// reserveClientSpan picks the IDs of a client span ahead of time: in the
// application's trace when the request carries a traceparent, else in a new
// one.
func reserveClientSpan(c *genai.Call) trace.SpanContext {
	cfg := trace.SpanContextConfig{SpanID: newSpanID(), TraceFlags: trace.FlagsSampled}
	if app := requestSpanContext(c); app.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = app.TraceID(), app.TraceFlags(), app.TraceState()
	} else {
		cfg.TraceID = newTraceID()
	}
	return trace.NewSpanContext(cfg)
}
