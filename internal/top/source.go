package top

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/llm-observer/llm-observer/internal/feed"
)

// Conn reads a running observer's feed.
type Conn struct {
	c     net.Conn
	r     *bufio.Reader
	Hello feed.Hello

	once sync.Once
}

// maxFrame bounds one frame's line; calls are a few hundred bytes, health
// a few kilobytes at most.
const maxFrame = 1 << 20

// Dial connects to the feed at addr (a socket path or host:port) and reads
// its hello.
func Dial(ctx context.Context, addr string) (*Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, feed.Network(addr), addr)
	if err != nil {
		return nil, err
	}
	fc := &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	fr, err := fc.read()
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read the feed's hello from %s: %w", addr, err)
	}
	if fr.Type != feed.TypeHello || fr.Hello == nil {
		c.Close()
		return nil, fmt.Errorf("%s is not an llm-observer feed (first frame %q)", addr, fr.Type)
	}
	fc.Hello = *fr.Hello
	return fc, nil
}

// Next returns the next frame; it fails when the observer goes away, the
// connection closes or ctx ends.
func (c *Conn) Next(ctx context.Context) (*feed.Frame, error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fr, err := c.read()
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return fr, err
}

func (c *Conn) read() (*feed.Frame, error) { return readFrame(c.r) }

// readFrame reads one frame: a line of JSON of at most maxFrame bytes.
func readFrame(r *bufio.Reader) (*feed.Frame, error) {
	var line []byte
	for {
		part, err := r.ReadSlice('\n')
		line = append(line, part...)
		if err == bufio.ErrBufferFull {
			if len(line) > maxFrame {
				return nil, fmt.Errorf("a feed frame is longer than %d bytes", maxFrame)
			}
			continue
		}
		if err == io.EOF && len(line) == 0 {
			return nil, fmt.Errorf("the observer closed the feed")
		}
		if err != nil {
			return nil, fmt.Errorf("read the feed: %w", err)
		}
		break
	}
	var fr feed.Frame
	if err := json.Unmarshal(line, &fr); err != nil {
		return nil, fmt.Errorf("a feed frame is not JSON: %w", err)
	}
	return &fr, nil
}

// Close ends the connection.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() { err = c.c.Close() })
	return err
}
