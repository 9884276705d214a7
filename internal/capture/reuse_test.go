package capture

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReusedFDNeverLeaks tracks an LLM connection of this process, then
// makes its fd number name a regular file without a close call, and writes
// a marker through it: the marker must never reach the ring. Each way an fd
// can be replaced behind the observer's back is tried: dup2 and dup3 (whose
// target the kernel closes silently) and close_range (no close call at
// all), after which a new file takes the lowest free number.
func TestReusedFDNeverLeaks(t *testing.T) {
	requireRoot(t)
	p, err := Load(Config{ObserveSelf: true})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer p.Close()
	addr, _ := acceptor(t)
	// Raw system calls on one OS thread, so the fd numbers are the test's
	// to choose and Go's runtime does not touch them.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	c, stop := collect(t, p)
	marker := []byte("FILE-BYTES-MUST-NOT-LEAK")
	for _, how := range []string{"dup2", "dup3", "close_range"} {
		t.Run(how, func(t *testing.T) {
			fd := trackedSocket(t, addr)
			file, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			switch how {
			case "dup2":
				err = unix.Dup2(int(file.Fd()), fd)
			case "dup3":
				err = unix.Dup3(int(file.Fd()), fd, 0)
			case "close_range":
				if err = unix.CloseRange(uint(fd), uint(fd), 0); err == nil {
					var nfd int
					nfd, err = unix.Open(file.Name(), unix.O_WRONLY|unix.O_APPEND, 0)
					if err == nil && nfd != fd {
						t.Fatalf("the new file took fd %d, not the freed %d", nfd, fd)
					}
				}
			}
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			defer unix.Close(fd)
			for range 3 {
				if _, err := unix.Write(fd, marker); err != nil {
					t.Fatalf("write the file through fd %d: %v", fd, err)
				}
			}
		})
	}
	stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	tracked := 0
	for _, s := range c.streams {
		if bytes.Contains(s[0].Bytes(), []byte("POST /v1/chat/completions")) {
			tracked++
		}
		for dir := range s {
			if bytes.Contains(s[dir].Bytes(), marker) {
				t.Errorf("bytes written to a file through a reused fd number reached the ring")
			}
		}
	}
	if tracked < 3 {
		t.Errorf("%d of the 3 sockets were tracked before their fd was replaced; the test proves nothing", tracked)
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// close_range leaves no trace but the fd's new identity.
	if after.FDReused == before.FDReused {
		t.Errorf("the fd reused after close_range was not counted")
	}
}

// acceptor listens on loopback for the test's raw sockets and hands over
// the server side of each connection (closed when the test ends).
func acceptor(t *testing.T) (*net.TCPAddr, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- c:
			default:
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr), accepted
}

// trackedSocket connects to addr with raw system calls and sends an LLM
// request line, so the kernel tracks the connection; it returns the fd.
func trackedSocket(t *testing.T, addr *net.TCPAddr) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := unix.Connect(fd, sa); err != nil {
		t.Fatal(err)
	}
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	if _, err := unix.Write(fd, []byte(req)); err != nil {
		t.Fatal(err)
	}
	return fd
}
