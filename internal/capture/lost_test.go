package capture

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestInFlightLossIsFlagged fills the map of system calls in flight (one
// entry here) with a read that blocks, so that a write on another tracked
// connection finds no room: its bytes are lost, and the connection's next
// record must say so, counted, rather than follow on as if nothing were
// missing.
func TestInFlightLossIsFlagged(t *testing.T) {
	requireRoot(t)
	inFlightEntries = 1
	defer func() { inFlightEntries = 0 }()
	p, err := Load(Config{ObserveSelf: true})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer p.Close()
	addr, accepted := acceptor(t)
	c, stop := collect(t, p)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	blocked := trackedSocket(t, addr)
	defer unix.Close(blocked)
	srvBlocked := <-accepted
	writer := trackedSocket(t, addr)
	defer unix.Close(writer)
	<-accepted

	// Another thread blocks in read on a tracked socket, holding the one
	// entry; this thread's write then finds the map full.
	readDone := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := make([]byte, 64)
		_, err := unix.Read(blocked, buf)
		readDone <- err
	}()
	time.Sleep(200 * time.Millisecond)
	lostChunk := []byte("LOST-WHILE-THE-MAP-WAS-FULL")
	if _, err := unix.Write(writer, lostChunk); err != nil {
		t.Fatal(err)
	}
	srvBlocked.Write([]byte("wake up"))
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(writer, []byte("AFTER")); err != nil {
		t.Fatal(err)
	}
	stop()

	counters, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if counters.ActiveMapFull == 0 {
		t.Fatal("the in-flight map never filled: the test proves nothing")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	found := false
	for key, s := range c.streams {
		lost := c.lost[key]
		if s == nil || !bytes.Contains(s[Egress].Bytes(), []byte("AFTER")) {
			continue
		}
		found = true
		if bytes.Contains(s[Egress].Bytes(), lostChunk) {
			t.Fatal("the write made while the map was full reached the ring")
		}
		if lost == nil || !lost[Egress] {
			t.Errorf("the record after the lost write does not carry the loss flag: stream %q", s[Egress].Bytes())
		}
	}
	if !found {
		t.Fatal("the writer's connection was not captured")
	}
}
