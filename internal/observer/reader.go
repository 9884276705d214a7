package observer

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// readerNice is the scheduling priority of the thread that drains the ring.
// On a node whose cores the applications keep busy, a reader at their
// priority gets its fair share in slices that can come too late: the ring
// fills while the observer sits at a fraction of a core, waiting to run.
// Raised, it runs as soon as records wait; it still only takes the CPU its
// records cost, which is what would be spent anyway.
const readerNice = -10

// raiseReaderPriority binds the calling goroutine to its thread for good
// and raises that thread's priority; the thread ends with the goroutine,
// so no other goroutine ever runs at this priority. It reports whether the
// priority was raised: it needs CAP_SYS_NICE, and without it the reader
// runs as before. Call the returned function before the goroutine ends: a
// goroutine that happens to run on the process's main thread does not end
// it (Go keeps that thread), and it must not stay raised.
func raiseReaderPriority() (raised bool, restore func()) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil || unix.Setpriority(unix.PRIO_PROCESS, tid, readerNice) != nil {
		return false, func() {}
	}
	// Getpriority answers 20 - nice.
	return true, func() { unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prio) }
}
