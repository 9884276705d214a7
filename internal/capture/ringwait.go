package capture

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringWaiter waits for records through the Go runtime's network poller
// instead of in a blocking epoll_wait.
//
// The reader sleeps between drains (every DrainInterval, or when
// WakeupBytes wait). Asleep in a system call, a goroutine keeps its
// scheduler slot (P); when the other slots are busy the runtime's monitor
// thread takes it back after 20 µs, and every such retake sets the monitor
// polling every 20 µs again for a millisecond or more; the reader, back
// from the call, then waits for a slot. Under load that was a fifth of the
// observer's CPU in perf (the monitor alone 18 %, context switches being
// dear on a virtual machine). Parked on the poller, the reader holds no
// slot while it sleeps: at 1,000 JSON calls/s the observer's CPU fell by
// about a third, the monitor's share to 10 %.
type ringWaiter struct {
	f     *os.File
	rc    syscall.RawConn
	woken atomic.Bool
}

// newRingWaiter registers a duplicate of the ring's descriptor with the
// poller. It fails where the descriptor cannot be polled that way; Run
// then waits in the ring reader as before.
func newRingWaiter(ring *ebpf.Map) (*ringWaiter, error) {
	fd, err := unix.FcntlInt(uintptr(ring.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate ring descriptor: %w", err)
	}
	// Non-blocking first: os.NewFile registers only such descriptors.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring descriptor: %w", err)
	}
	f := os.NewFile(uintptr(fd), "ring buffer")
	// A descriptor the poller refused has no deadlines.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("ring descriptor is not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ring descriptor: %w", err)
	}
	return &ringWaiter{f: f, rc: rc}, nil
}

// wait returns at the ring's next signal, or with os.ErrDeadlineExceeded
// at deadline or when wake is called. A record that arrived after the
// caller's last read is not slept through: the registration is
// edge-triggered and persistent, so a signal since then is already
// recorded and the wait returns at once; and a record written without a
// signal is read at the deadline, as before. (The ring is not asked
// whether it holds data here: Close may be freeing it concurrently.)
func (w *ringWaiter) wait(deadline time.Time) error {
	if err := w.f.SetReadDeadline(deadline); err != nil {
		return err
	}
	// A wake between the caller's last check and the line above had its
	// deadline overwritten; its flag was set first.
	if w.woken.Load() {
		return os.ErrDeadlineExceeded
	}
	slept := false
	return w.rc.Read(func(uintptr) bool {
		if slept {
			return true
		}
		slept = true
		return false
	})
}

// wake ends a wait in progress (and the next one) at once.
func (w *ringWaiter) wake() {
	w.woken.Store(true)
	w.f.SetReadDeadline(time.Unix(1, 0))
}

func (w *ringWaiter) close() error { return w.f.Close() }
