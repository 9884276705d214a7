package feed

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-observer/llm-observer/internal/export"
	"github.com/llm-observer/llm-observer/internal/genai"
)

// Defaults of Config.
const (
	DefaultQueue          = 1024
	DefaultMaxConsumers   = 16
	DefaultHealthInterval = time.Second
)

// Config tunes a Feed; zero fields take the defaults.
type Config struct {
	// Queue is the most frames waiting for one consumer.
	Queue int
	// MaxConsumers bounds the connected consumers; more are turned away.
	MaxConsumers int
	// HealthInterval is how often health frames go out.
	HealthInterval time.Duration
	// Health reads the observer's state; the Feed fills in the rate and
	// its own fields. Nil: no health frames.
	Health func() Health
	// Logf reports consumers turned away or cut off; nil: silent.
	Logf func(format string, args ...any)
}

// Feed fans calls and health out to its consumers. CallStarted and
// CallEnded never block and cost one atomic load while nobody listens.
type Feed struct {
	cfg Config

	mu   sync.Mutex // serialises changes to subs
	subs atomic.Pointer[[]*Subscription]

	dropped atomic.Uint64 // frames dropped, every consumer together
	frames  atomic.Uint64 // frames queued, every consumer together

	healthMu   sync.Mutex
	lastHealth Health
}

// New returns a feed without consumers. Run sends its health frames;
// Listen offers it on a socket; Subscribe reads it in-process.
func New(cfg Config) *Feed {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxConsumers <= 0 {
		cfg.MaxConsumers = DefaultMaxConsumers
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	f := &Feed{cfg: cfg}
	f.subs.Store(&[]*Subscription{})
	return f
}

// Stats are the feed's totals, for the observer's self-metrics.
type Stats struct {
	Consumers     int
	Frames        uint64 // frames queued for consumers
	FramesDropped uint64 // frames that did not fit a consumer's queue
}

// Stats returns the feed's totals.
func (f *Feed) Stats() Stats {
	return Stats{Consumers: len(*f.subs.Load()), Frames: f.frames.Load(), FramesDropped: f.dropped.Load()}
}

// CallStarted publishes the start of a call.
func (f *Feed) CallStarted(p *export.Process, c *genai.Call) {
	if c == nil || len(*f.subs.Load()) == 0 {
		return
	}
	f.publish(&Frame{Type: TypeStart, Start: startOf(p, c)})
}

// CallEnded publishes a finished call. It reads c and keeps nothing of it.
func (f *Feed) CallEnded(p *export.Process, c *genai.Call) {
	if c == nil || len(*f.subs.Load()) == 0 {
		return
	}
	f.publish(&Frame{Type: TypeCall, Call: CallOf(p, c)})
}

// publish offers fr to every consumer; the frame is shared and never
// changed afterwards.
func (f *Feed) publish(fr *Frame) {
	for _, s := range *f.subs.Load() {
		s.offer(fr)
	}
}

// Run sends a health frame every HealthInterval while anyone listens,
// until ctx ends.
func (f *Feed) Run(ctx context.Context) {
	if f.cfg.Health == nil {
		return
	}
	t := time.NewTicker(f.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Reading the observer's counters costs a few syscalls: only
		// when someone looks.
		if len(*f.subs.Load()) == 0 {
			continue
		}
		h := f.health()
		f.publish(&Frame{Type: TypeHealth, Health: &h})
	}
}

// health reads the observer's state and adds the record rate since the
// previous reading and the feed's own numbers.
func (f *Feed) health() Health {
	h := f.cfg.Health()
	if h.Time.IsZero() {
		h.Time = time.Now()
	}
	f.healthMu.Lock()
	prev := f.lastHealth
	f.lastHealth = h
	f.healthMu.Unlock()
	if dt := h.Time.Sub(prev.Time).Seconds(); !prev.Time.IsZero() && dt > 0 && h.Records >= prev.Records {
		h.RecordsPerSecond = float64(h.Records-prev.Records) / dt
	}
	st := f.Stats()
	h.FeedDropped, h.Consumers = st.FramesDropped, st.Consumers
	return h
}

// Subscribe adds an in-process consumer with the feed's queue size. The
// caller reads it with Next and ends it with Close.
func (f *Feed) Subscribe() *Subscription {
	s, _ := f.subscribe(false)
	return s
}

// subscribe adds a consumer; limited ones count against MaxConsumers and
// are refused (nil) beyond it.
func (f *Feed) subscribe(limited bool) (*Subscription, bool) {
	s := &Subscription{f: f, ch: make(chan *Frame, f.cfg.Queue), done: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.subs.Load()
	if limited && len(old) >= f.cfg.MaxConsumers {
		return nil, false
	}
	subs := make([]*Subscription, len(old), len(old)+1)
	copy(subs, old)
	subs = append(subs, s)
	f.subs.Store(&subs)
	return s, true
}

func (f *Feed) unsubscribe(s *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := *f.subs.Load()
	subs := make([]*Subscription, 0, len(old))
	for _, o := range old {
		if o != s {
			subs = append(subs, o)
		}
	}
	f.subs.Store(&subs)
}

// hello is the first frame a consumer gets.
func (f *Feed) hello() *Frame {
	return &Frame{Type: TypeHello, Hello: &Hello{Version: Version, PID: os.Getpid(),
		HealthInterval: f.cfg.HealthInterval.Seconds(), Queue: f.cfg.Queue}}
}

// Subscription is one consumer's bounded queue of frames.
type Subscription struct {
	f    *Feed
	ch   chan *Frame
	once sync.Once
	done chan struct{}

	pending atomic.Uint64 // dropped since the last notice was queued
	total   atomic.Uint64 // dropped since it subscribed
}

// offer queues fr without waiting, after a notice of the frames dropped
// before it, so the notice sits where the gap is; what does not fit is
// dropped and counted. Several goroutines may offer at once.
func (s *Subscription) offer(fr *Frame) {
	if n := s.pending.Swap(0); n > 0 {
		notice := &Frame{Type: TypeDropped, Dropped: &Dropped{Count: n, Total: s.total.Load()}}
		select {
		case s.ch <- notice:
		default:
			s.pending.Add(n)
			s.drop()
			return
		}
	}
	select {
	case s.ch <- fr:
		s.f.frames.Add(1)
	default:
		s.drop()
	}
}

func (s *Subscription) drop() {
	s.pending.Add(1)
	s.total.Add(1)
	s.f.dropped.Add(1)
}

// Dropped returns how many frames this consumer missed in all.
func (s *Subscription) Dropped() uint64 { return s.total.Load() }

// Next returns the next frame, waiting until one comes, ctx ends or the
// subscription is closed (then it returns ctx's error or
// context.Canceled).
func (s *Subscription) Next(ctx context.Context) (*Frame, error) {
	select {
	case fr := <-s.ch:
		return fr, nil
	default:
	}
	select {
	case fr := <-s.ch:
		return fr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, context.Canceled
	}
}

// Close ends the subscription; frames still queued are discarded.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.f.unsubscribe(s)
		close(s.done)
	})
}
