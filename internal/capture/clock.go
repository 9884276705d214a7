package capture

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// clock converts the kernel's CLOCK_MONOTONIC stamps to wall time. The offset
// is measured once and refreshed now and then, so NTP steps reach span times
// within a minute while each record costs one addition.
type clock struct {
	offset    atomic.Int64 // wall ns - monotonic ns
	refreshed time.Time
}

func newClock() *clock {
	c := &clock{}
	c.calibrate()
	return c
}

func (c *clock) calibrate() {
	var ts unix.Timespec
	// Read the monotonic clock between two wall-clock reads and take the
	// midpoint, so the offset's error is half the read time.
	before := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	after := time.Now()
	wall := before.UnixNano() + after.Sub(before).Nanoseconds()/2
	c.offset.Store(wall - ts.Nano())
	c.refreshed = after
}

func (c *clock) maybeRecalibrate() {
	if time.Since(c.refreshed) > time.Minute {
		c.calibrate()
	}
}

func (c *clock) wall(mono uint64) time.Time {
	return time.Unix(0, int64(mono)+c.offset.Load())
}
