// Package feed is the running observer's local, read-only live feed: every
// finished call, the start of every call, and the observer's health once a
// second, for `llm-observer top` and scripts on the same host. It takes
// calls from the agent beside the exporter (a Feed is an observer
// Exporter) and hands them on as frames; it reads nothing from its
// consumers.
//
// # Protocol
//
// The feed listens on a Unix socket (mode 0600, owned by the observer's
// user, root for the service) or on a loopback TCP port. A consumer
// connects and reads; it never writes. Each frame is one JSON object on one
// line (newline-delimited JSON) with a "type" and one member of that name:
//
//	{"type":"hello","hello":{"version":1,"pid":4242,"health_interval_s":1,"queue":1024}}
//	{"type":"start","start":{"process":"curl","pid":5150,"provider":"ollama","operation":"chat","model":"llama3.2","start":"…","stream":true}}
//	{"type":"call","call":{"process":"curl","pid":5150,"provider":"ollama","operation":"chat","model":"llama3.2","start":"…","end":"…","input_tokens":26,"output_tokens":4,"ttfc_s":0.063,"tpoc_s":0.021,"chunks":4,"line":"20:17:57.588 curl[5150] ollama chat llama3.2 in=26 out=4 ttfc=63ms dur=216ms ok"}}
//	{"type":"health","health":{"time":"…","records":1200,"records_per_second":35,"calls":40,"losses":[{"counter":"dropped.records","reason":"ring_full","count":3}],"export_queue_depth":0,…}}
//	{"type":"dropped","dropped":{"count":812,"total":812}}
//
// hello comes first, once. start and call carry the process (executable
// name and pid), "server":true when the process served the call rather
// than made it, and the call's start time; a call frame ends the call its
// start frame began (same pid, side and start). Fields the wire did not
// carry are absent, never zero: token counts, time to first chunk (ttfc_s)
// and mean time per output chunk after the first (tpoc_s), in seconds.
// "line" is the call exactly as the console prints it. health comes once a
// second with the observer's totals since it started.
//
// A consumer that reads too slowly never slows the observer: each has a
// bounded queue, frames that do not fit are dropped and counted, and when
// there is room again the consumer first gets a dropped frame saying how
// many it missed since the last such notice ("count") and in all
// ("total"). Drops are also counted across consumers in the health frame
// (feed_dropped) and in the self-metric llm_observer.feed.frames_dropped.
// New fields may be added to any frame; consumers ignore what they do not
// know.
package feed

import "time"

// Version is the protocol version in the hello frame; it changes only
// when a field changes meaning or goes away.
const Version = 1

// Frame types.
const (
	TypeHello   = "hello"
	TypeStart   = "start"
	TypeCall    = "call"
	TypeHealth  = "health"
	TypeDropped = "dropped"
)

// Frame is one line of the feed: Type says which member is set.
type Frame struct {
	Type    string   `json:"type"`
	Hello   *Hello   `json:"hello,omitempty"`
	Start   *Start   `json:"start,omitempty"`
	Call    *Call    `json:"call,omitempty"`
	Health  *Health  `json:"health,omitempty"`
	Dropped *Dropped `json:"dropped,omitempty"`
}

// Hello opens every connection.
type Hello struct {
	Version int `json:"version"`
	// PID is the observer's process id.
	PID int `json:"pid"`
	// HealthInterval is how often health frames come, in seconds.
	HealthInterval float64 `json:"health_interval_s"`
	// Queue is how many frames wait for this consumer at most.
	Queue int `json:"queue"`
}

// Start is a call that began: its request was recognised.
type Start struct {
	Process   string    `json:"process"` // executable name
	PID       int       `json:"pid"`
	Server    bool      `json:"server,omitempty"` // the process served the call
	Provider  string    `json:"provider,omitempty"`
	Operation string    `json:"operation,omitempty"`
	Model     string    `json:"model,omitempty"`
	Start     time.Time `json:"start"` // first byte of the request
	Stream    bool      `json:"stream,omitempty"`
}

// Call is a finished call.
type Call struct {
	Process   string    `json:"process"`
	PID       int       `json:"pid"`
	Server    bool      `json:"server,omitempty"`
	Provider  string    `json:"provider,omitempty"`
	Operation string    `json:"operation,omitempty"`
	Model     string    `json:"model,omitempty"` // requested, else the response's
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"` // last byte of the response
	Stream    bool      `json:"stream,omitempty"`
	Status    int       `json:"status,omitempty"` // HTTP status; absent when no response was seen

	InputTokens  *int64 `json:"input_tokens,omitempty"`
	OutputTokens *int64 `json:"output_tokens,omitempty"`
	// TimeToFirstChunk is from the request's first byte to the first
	// chunk carrying content, in seconds.
	TimeToFirstChunk *float64 `json:"ttfc_s,omitempty"`
	// TimePerChunk is the mean time between content chunks after the
	// first, in seconds.
	TimePerChunk *float64 `json:"tpoc_s,omitempty"`
	// Chunks counts the content chunks.
	Chunks int `json:"chunks,omitempty"`

	ErrorType string `json:"error_type,omitempty"` // what the wire said; empty on success
	Truncated bool   `json:"truncated,omitempty"`  // capture lost bytes of the call
	Line      string `json:"line"`                 // the console line
}

// Health is the observer's state, totals since it started.
type Health struct {
	Time time.Time `json:"time"`
	// Records are the kernel records the agent handled.
	Records          uint64  `json:"records"`
	RecordsPerSecond float64 `json:"records_per_second"`
	// Calls are the calls that ended.
	Calls uint64 `json:"calls"`
	// Losses lists every loss counter that is not zero.
	Losses []Loss `json:"losses,omitempty"`
	// ExportQueueDepth of ExportQueueCapacity calls wait for the exporter.
	ExportQueueDepth    int `json:"export_queue_depth"`
	ExportQueueCapacity int `json:"export_queue_capacity"`
	// ExportDelayMax is the longest time, over the last 15 to 30 s, from a
	// response's last byte to its call reaching the exporter, in seconds.
	ExportDelayMax float64 `json:"export_delay_max_s"`
	// RingPendingBytes wait in the kernel ring for the reader.
	RingPendingBytes int64 `json:"ring_pending_bytes"`
	// FeedDropped counts frames dropped across every feed consumer.
	FeedDropped uint64 `json:"feed_dropped"`
	Consumers   int    `json:"consumers"`
}

// Loss is one loss counter: what was lost (the self-metric's name without
// its llm_observer. prefix), why, and how many.
type Loss struct {
	Counter string `json:"counter"`
	Reason  string `json:"reason"`
	Count   uint64 `json:"count"`
}

// Dropped tells a consumer how many frames it missed.
type Dropped struct {
	Count uint64 `json:"count"` // since the previous notice
	Total uint64 `json:"total"` // since it connected
}
