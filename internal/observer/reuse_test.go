package observer

import (
	"os"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/capture"
)

// A process's fd number names one socket at a time, and the kernel numbers
// tracked connections in increasing order. A connection whose close record
// was lost (ring full, or the fd replaced by dup2 or close_range) is over
// once the same pid and fd carry a newer connection: its call must end
// then, not stay in flight until the process exits.
func TestAgentNewConnectionOnSameFDEndsTheOldOne(t *testing.T) {
	pid := uint32(os.Getpid())
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	oldKey := capture.ConnKey{PID: pid, FD: 7, ID: 1}
	newKey := capture.ConnKey{PID: pid, FD: 7, ID: 2}
	for _, tc := range []struct {
		name       string
		newOpen    bool // the new connection's open record arrived
		lateOld    bool // a record of the old connection arrives after the new one started
		wantStale  uint64
		wantMissed uint64
	}{
		{name: "new open", newOpen: true},
		{name: "new open lost too", wantMissed: 1},
		{name: "late record of the old connection", newOpen: true, lateOld: true, wantStale: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, rec := newAgent(t)
			old := conversation(oldKey, t0)
			for _, ev := range old[:3] { // open, request, response head: in flight, then no close
				ev := ev
				a.Handle(&ev)
			}
			next := conversation(newKey, t0.Add(time.Minute))
			if !tc.newOpen {
				next = next[1:]
			}
			for i, ev := range next[:len(next)-1] {
				ev := ev
				a.Handle(&ev)
				if i == 1 && tc.lateOld {
					late := old[3]
					a.Handle(&late)
				}
			}
			if len(rec.ended) != 2 {
				t.Fatalf("%d calls ended, want 2 (the cut one and the whole one)", len(rec.ended))
			}
			if c := rec.ended[0]; !c.Truncated || c.ErrorType != "" {
				t.Errorf("first call ended truncated=%v error=%q, want cut short: truncated, no error type", c.Truncated, c.ErrorType)
			}
			if c := rec.ended[1]; c.Truncated || c.ErrorType != "" {
				t.Errorf("second call ended truncated=%v error=%q, want whole", c.Truncated, c.ErrorType)
			}
			st := a.Stats()
			if n := st.Conns.Load(); n != 1 {
				t.Errorf("%d connections followed, want 1", n)
			}
			if n := st.StaleEvents.Load(); n != tc.wantStale {
				t.Errorf("%d stale records, want %d", n, tc.wantStale)
			}
			if n := st.OpensMissed.Load(); n != tc.wantMissed {
				t.Errorf("%d opens missed, want %d", n, tc.wantMissed)
			}
		})
	}
}
