package feed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultSocket is where the service offers its feed unless told otherwise.
const DefaultSocket = "/run/llm-observer/feed.sock"

// IsUnix reports whether addr names a Unix socket (an absolute path)
// rather than a host:port.
func IsUnix(addr string) bool { return strings.HasPrefix(addr, "/") }

// Network returns the network of addr for net.Dial.
func Network(addr string) string {
	if IsUnix(addr) {
		return "unix"
	}
	return "tcp"
}

// Server offers a Feed on a socket.
type Server struct {
	f    *Feed
	ln   net.Listener
	path string // the socket file, removed on Close; empty for TCP

	mu     sync.Mutex
	conns  map[net.Conn]*Subscription
	closed bool
	wg     sync.WaitGroup
}

// Listen offers f at addr: an absolute path for a Unix socket that only
// the observer's own user may use (mode 0600; root for the service), or a
// loopback host:port. A socket file left by an observer that is gone is
// replaced; one that still answers is not.
func Listen(f *Feed, addr string) (*Server, error) {
	if !IsUnix(addr) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("feed: listen on %s: %w", addr, err)
		}
		return newServer(f, ln, ""), nil
	}
	ln, err := listenUnix(addr)
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	return newServer(f, ln, addr), nil
}

func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("make %s: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use: another observer offers its feed there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale %s: %w", path, err)
		}
	}
	// Bound under a private name and made 0600 before it takes the real
	// one, so nobody can connect in between; accept checks the peer too.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("rename %s: %w", path, err)
	}
	return ln, nil
}

func newServer(f *Feed, ln net.Listener, path string) *Server {
	return &Server{f: f, ln: ln, path: path, conns: map[net.Conn]*Subscription{}}
}

// Addr is where the server listens.
func (s *Server) Addr() string {
	if s.path != "" {
		return s.path
	}
	return s.ln.Addr().String()
}

// Serve accepts consumers until Close.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("feed: accept: %w", err)
		}
		if uc, ok := c.(*net.UnixConn); ok {
			if err := checkPeer(uc); err != nil {
				s.logf("feed: refused a consumer: %v", err)
				c.Close()
				continue
			}
		}
		sub, ok := s.f.subscribe(true)
		if !ok {
			s.logf("feed: refused a consumer: %d are connected already", s.f.cfg.MaxConsumers)
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			sub.Close()
			c.Close()
			return nil
		}
		s.conns[c] = sub
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c, sub)
	}
}

// checkPeer lets in only root and the observer's own user: the file mode
// says the same, and this holds even for a connection made between bind
// and chmod.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("uid %d (pid %d) is neither root nor the observer's user", cred.Uid, cred.Pid)
	}
	return nil
}

// serveConn writes the consumer's frames until it goes away or the server
// closes. It never reads: the feed is read-only.
func (s *Server) serveConn(c net.Conn, sub *Subscription) {
	defer s.wg.Done()
	defer func() {
		sub.Close()
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		if n := sub.Dropped(); n > 0 {
			s.logf("feed: a consumer left having missed %d frames (it read too slowly)", n)
		}
	}()
	w := bufio.NewWriterSize(c, 16<<10)
	enc := json.NewEncoder(w)
	if err := enc.Encode(s.f.hello()); err != nil {
		return
	}
	ctx := context.Background()
	for {
		if len(sub.ch) == 0 {
			// Caught up: what is buffered goes out now.
			if err := w.Flush(); err != nil {
				return
			}
		}
		fr, err := sub.Next(ctx)
		if err != nil {
			return
		}
		if err := enc.Encode(fr); err != nil {
			return
		}
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.f.cfg.Logf != nil {
		s.f.cfg.Logf(format, args...)
	}
}

// Close stops accepting, cuts every consumer off, waits for their
// goroutines and removes the socket file.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c, sub := range s.conns {
		sub.Close()
		c.Close() // unblocks a write to a consumer that stopped reading
	}
	s.mu.Unlock()
	s.wg.Wait()
	if s.path != "" {
		if rmErr := os.Remove(s.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EINVAL) {
		err = nil
	}
	return err
}
