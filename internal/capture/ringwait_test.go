package capture

import (
	"context"
	"net"
	"os/exec"
	"testing"
	"time"
)

// TestRunWaitsOnThePoller: on this kernel the ring is waited for through
// the runtime's poller; with every record waking the reader, records arrive
// as they are written (not at the drain interval, set here to an hour); and
// Run returns at once when its context ends or the probe is closed.
func TestRunWaitsOnThePoller(t *testing.T) {
	requireRoot(t)
	for _, end := range []string{"cancel", "close"} {
		t.Run(end, func(t *testing.T) {
			p, err := Load(Config{DrainInterval: time.Hour, WakeupBytes: 1})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer p.Close()
			w, err := newRingWaiter(p.objs.Events)
			if err != nil {
				t.Fatalf("the ring cannot be polled through the runtime here, so Run would fall back: %v", err)
			}
			w.close()

			port, _ := startServer(t, "127.0.0.1")
			got := make(chan struct{}, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- p.Run(ctx, func(ev *Event) {
					if ev.Kind == Data {
						select {
						case got <- struct{}{}:
						default:
						}
					}
				})
			}()
			// Give Run time to park before anything is written.
			time.Sleep(200 * time.Millisecond)
			url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/api/generate"
			sent := time.Now()
			if out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "--data-binary", `{"model":"m"}`, url).CombinedOutput(); err != nil {
				t.Fatalf("curl: %v: %s", err, out)
			}
			select {
			case <-got:
				t.Logf("first record %v after the request was started", time.Since(sent).Round(time.Millisecond))
			case <-time.After(5 * time.Second):
				t.Fatal("no record within 5 s: the wait did not wake for the ring")
			}

			time.Sleep(100 * time.Millisecond) // parked again
			ended := time.Now()
			if end == "cancel" {
				cancel()
			} else {
				p.Close()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				if d := time.Since(ended); d > time.Second {
					t.Errorf("Run returned %v after %s", d, end)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Run still waiting 5 s after %s", end)
			}
		})
	}
}
