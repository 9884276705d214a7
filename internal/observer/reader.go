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
// runs as before.
func raiseReaderPriority() bool {
	runtime.LockOSThread()
	return unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), readerNice) == nil
}
