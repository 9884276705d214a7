// Command client is the load benchmark's application: it makes LLM calls
// to the benchmark server over keep-alive connections, at a fixed rate or
// as fast as its connections allow, reads every answer to its end, and
// prints what it did as one JSON object on stdout: calls, errors, events
// read, latency percentiles and its own CPU time.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Result is what one client run reports; the harness reads it back.
type Result struct {
	Calls      int     `json:"calls"`
	Errors     int     `json:"errors"`
	Events     int     `json:"events"`  // SSE data lines or NDJSON lines read; 1 per plain JSON answer
	Missed     int     `json:"missed"`  // paced calls not sent because every connection was busy
	Seconds    float64 `json:"seconds"` // time from the first call to the last answer
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	CPUSeconds float64 `json:"cpu_seconds"` // user+system of this process
	FirstError string  `json:"first_error,omitempty"`
}

func main() {
	base := flag.String("url", "http://127.0.0.1:8000", "server base URL")
	mode := flag.String("mode", "sse", "sse (OpenAI stream), ndjson (Ollama stream) or json (OpenAI, not streamed)")
	rate := flag.Float64("rate", 0, "calls per second across all connections; 0 sends as fast as the connections allow")
	conns := flag.Int("conns", 16, "keep-alive connections, one call in flight on each")
	duration := flag.Duration("duration", 10*time.Second, "how long to send calls")
	flag.Parse()

	url, body, err := request(*base, *mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	tr := &http.Transport{
		MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns,
		DisableCompression: true, IdleConnTimeout: time.Minute,
	}
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()

	// Paced runs get their slots from one dispatcher; a slot no connection
	// is free to take is missed, not queued, so the rate stays the rate.
	var slots chan struct{}
	missed := 0
	if *rate > 0 {
		slots = make(chan struct{}, *conns)
		go func() {
			start := time.Now()
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			sent := 0
			for {
				select {
				case <-ctx.Done():
					close(slots)
					return
				case now := <-t.C:
					due := int(now.Sub(start).Seconds() * *rate)
					for ; sent < due; sent++ {
						select {
						case slots <- struct{}{}:
						default:
							missed++
						}
					}
				}
			}
		}()
	}

	type tally struct {
		lat            []time.Duration
		events, errors int
		firstErr       error
	}
	tallies := make([]tally, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *conns {
		wg.Go(func() {
			t := &tallies[i]
			for {
				if slots != nil {
					if _, ok := <-slots; !ok {
						return
					}
				} else if ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				n, err := call(client, url, body, *mode)
				if err != nil {
					t.errors++
					if t.firstErr == nil {
						t.firstErr = err
					}
					continue
				}
				t.lat = append(t.lat, time.Since(t0))
				t.events += n
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := Result{Missed: missed, Seconds: elapsed.Seconds()}
	var lat []time.Duration
	for _, t := range tallies {
		lat = append(lat, t.lat...)
		res.Events += t.events
		res.Errors += t.errors
		if t.firstErr != nil && res.FirstError == "" {
			res.FirstError = t.firstErr.Error()
		}
	}
	res.Calls = len(lat)
	slices.Sort(lat)
	res.P50ms = percentile(lat, 0.50)
	res.P99ms = percentile(lat, 0.99)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		res.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	json.NewEncoder(os.Stdout).Encode(res)
}

func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))].Nanoseconds()) / 1e6
}

// request is the URL and body of a call of the given mode.
func request(base, mode string) (string, []byte, error) {
	msgs := `"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Why is the sky blue? Answer in one paragraph."}]`
	switch mode {
	case "sse":
		return base + "/v1/chat/completions", []byte(`{"model":"llama-3.1-8b-instruct","stream":true,"stream_options":{"include_usage":true},"max_tokens":256,` + msgs + `}`), nil
	case "json":
		return base + "/v1/chat/completions", []byte(`{"model":"llama-3.1-8b-instruct","stream":false,"max_tokens":256,` + msgs + `}`), nil
	case "ndjson":
		return base + "/api/chat", []byte(`{"model":"llama3.2","stream":true,` + msgs + `}`), nil
	}
	return "", nil, fmt.Errorf("mode %q: want sse, ndjson or json", mode)
}

// call makes one call and reads the answer to its end, returning how many
// events it held.
func call(client *http.Client, url string, body []byte, mode string) (int, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if mode == "json" {
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n == 0 {
			err = errors.New("empty answer")
		}
		return 1, err
	}
	events := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case mode == "sse" && bytes.HasPrefix(line, []byte("data: ")):
			events++
		case mode == "ndjson" && len(line) > 0:
			events++
		}
	}
	if err := sc.Err(); err != nil {
		return events, err
	}
	if events == 0 {
		return 0, errors.New("no events in the answer")
	}
	return events, nil
}
