package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Brotli and zstd are decoded by libraries that pull their input from an
// io.Reader, while a Conn is pushed bytes as the capture delivers them and
// keeps no goroutine per stream. Each is driven by a source that hands the
// library the bytes pushed so far and, once they run out, signals "need
// more input" in the way that library can resume from:
//
//   - brotli.Reader is a port of the C streaming decoder, which consumes
//     every byte it is given into its own state. When its source returns
//     (0, err) it returns that error at once and keeps its state, so the
//     source answers errNeedInput and the next write carries on. The cost
//     is one copy of the input into the reader's 32 KiB buffer.
//   - zstd.Decoder in its synchronous mode (concurrency 1, no goroutines)
//     reads whole units with io.ReadFull (a frame header, a block, a
//     block's checksum) and keeps any read error for good. So the source
//     is framed here: bytes are shown to the library only up to the end of
//     the last complete unit, and when the library asks for the first byte
//     of a unit that has not fully arrived the source panics with
//     needInput, which the driver recovers. Nothing is half-read at that
//     point (the library has just finished a unit and reads the next
//     header), so it resumes cleanly at the next write; a starvation
//     anywhere else fails the body instead of risking wrong output. The
//     cost is buffering at most one incomplete unit (a block is at most
//     128 KiB compressed) and one recovered panic per write that completes
//     a unit; fuzzing checks the output against the library's one-shot
//     decode at every split.
//
// Both bound their history window by Limits.MaxWindowBytes, read from the
// stream's own header before the library allocates it.

var (
	errNeedInput       = errors.New("content coding: waiting for more input")
	errWindowTooLarge  = errors.New("content coding: history window over the limit")
	errZstdMagic       = errors.New("zstd: not a zstd frame")
	errZstdHeader      = errors.New("zstd: invalid frame header")
	errZstdDictionary  = errors.New("zstd: frame needs a dictionary")
	errZstdBlock       = errors.New("zstd: invalid block header")
	errZstdSkippable   = errors.New("zstd: skippable frame over the limit")
	errZstdStarved     = errors.New("zstd: input ended inside a unit")
	errStopped         = errors.New("content coding: body full")
	errBrotliLargeWind = errors.New("brotli: large-window stream")
	errLibraryPanic    = errors.New("content coding: the decoder failed on this input")
)

// bodyDecoder undoes one content coding on bytes pushed in pieces.
type bodyDecoder interface {
	// write decodes p; after an error all further input is ignored.
	write(p []byte) error
	// finish reports whether the coded stream ended where the body did.
	finish() error
	// release returns pooled state; the decoder is unusable after.
	release()
}

// newBodyDecoder returns the decoder of a supported coding, or nil.
func newBodyDecoder(kind coding, sink outSink, maxWindow int) bodyDecoder {
	switch kind {
	case gzipCoding, deflateCoding:
		return newContentDecoder(kind, sink)
	case brotliCoding:
		return newBrotliDecoder(sink, maxWindow)
	case zstdCoding:
		return newZstdDecoder(sink, maxWindow)
	}
	return nil
}

// pushSource is the io.Reader a pull decoder reads: the bytes of the
// current write, then errNeedInput, or io.EOF once the body has ended.
type pushSource struct {
	p   []byte
	eof bool
}

func (s *pushSource) Read(b []byte) (int, error) {
	if len(s.p) == 0 {
		if s.eof {
			return 0, io.EOF
		}
		return 0, errNeedInput
	}
	n := copy(b, s.p)
	s.p = s.p[n:]
	return n, nil
}

// outBufs hold the decoded bytes of one pull before they go to the sink.
var outBufs = sync.Pool{New: func() any { return new([16 << 10]byte) }}

var brotliReaders = sync.Pool{New: func() any { return brotli.NewReader(nil) }}

type brotliDecoder struct {
	r         *brotli.Reader
	src       pushSource
	sink      outSink
	maxWindow int
	seen      bool // the window has been checked
	ended     bool // the stream's last meta-block has been decoded
	stopped   bool // the sink is full
	failed    error
}

func newBrotliDecoder(sink outSink, maxWindow int) *brotliDecoder {
	d := &brotliDecoder{sink: sink, maxWindow: maxWindow}
	d.r = brotliReaders.Get().(*brotli.Reader)
	_ = d.r.Reset(&d.src) // always nil
	return d
}

// brotliWindow reads the window size from the first byte of a stream
// (RFC 7932 §9.1); large is the large-window extension's escape.
func brotliWindow(b byte) (size int, large bool) {
	switch {
	case b&1 == 0:
		return 1 << 16, false
	case b>>1&7 != 0:
		return 1 << (17 + b>>1&7), false
	case b>>4&7 == 1:
		return 0, true
	case b>>4&7 != 0:
		return 1 << (8 + b>>4&7), false
	}
	return 1 << 17, false
}

func (d *brotliDecoder) write(p []byte) error {
	if d.failed != nil || len(p) == 0 {
		return d.failed
	}
	if !d.seen {
		d.seen = true
		size, large := brotliWindow(p[0])
		switch {
		case large:
			d.failed = errBrotliLargeWind
		case size > d.maxWindow:
			d.failed = fmt.Errorf("brotli window of %d bytes: %w", size, errWindowTooLarge)
		}
		if d.failed != nil {
			return d.failed
		}
	}
	if d.stopped {
		return nil
	}
	d.src.p = p
	err := d.pull()
	d.src.p = nil
	if err != nil {
		d.failed = err
	}
	return err
}

// pull reads what the input so far decodes to.
func (d *brotliDecoder) pull() error {
	buf := outBufs.Get().(*[16 << 10]byte)
	defer outBufs.Put(buf)
	for !d.stopped {
		n, err := d.read(buf[:])
		if n > 0 && !d.sink.out(buf[:n]) {
			d.stopped = true
		}
		switch {
		case err == errNeedInput:
			return nil
		case err == io.EOF:
			d.ended = true
			return nil
		case err != nil:
			return fmt.Errorf("brotli: %w", err)
		case n == 0:
			// The final meta-block is done; another read tells whether
			// anything follows it.
			d.ended = true
		}
	}
	return nil
}

// read is one Read of the library; a panic in it (captured bytes are
// anyone's) fails this body instead of the agent.
func (d *brotliDecoder) read(p []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("%w: %v", errLibraryPanic, r)
			d.r = nil // its state is unknown: not back to the pool
		}
	}()
	return d.r.Read(p)
}

func (d *brotliDecoder) finish() error {
	if d.failed != nil || !d.seen || d.stopped {
		return d.failed
	}
	d.src.eof = true
	if err := d.pull(); err != nil {
		d.failed = err
		return err
	}
	if !d.ended {
		return errUnfinished
	}
	return nil
}

func (d *brotliDecoder) release() {
	if d.r != nil {
		_ = d.r.Reset(nil)
		brotliReaders.Put(d.r)
		d.r = nil
	}
}

// Zstandard framing (RFC 8878 §3.1), enough to cut the input into the units
// the library reads whole.
const (
	zstdMagic        = 0xFD2FB528
	zstdSkipMagic    = 0x184D2A50 // low 4 bits free
	zstdMaxBlock     = 128 << 10
	zstdMaxSkippable = 64 << 10 // skippable frames are metadata; real ones are tiny
	zstdHeaderMax    = 18
)

type zstdPhase uint8

const (
	zsFrame zstdPhase = iota // at the start of a frame (or of a skippable frame)
	zsBlock                  // at a block header
)

// zstdReaderMaxWindow is the library's own bound; the configured one is
// enforced from the frame header before the library sees the frame.
const zstdReaderMaxWindow = 1 << 30

var zstdReaders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1), // synchronous: no goroutines
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdReaderMaxWindow))
	if err != nil {
		panic(fmt.Sprintf("zstd options: %v", err)) // fixed options; cannot fail
	}
	return d
}}

// needInput is the value the zstd source panics with when starved; want
// is the length of the read that found nothing.
type needInput struct{ want int }

type zstdDecoder struct {
	dec       *zstd.Decoder
	sink      outSink
	maxWindow int

	buf     []byte // input not yet read by the library
	rd      int    // next byte of buf the library reads
	avail   int    // buf[:avail] is whole units
	phase   zstdPhase
	sum     bool // the current frame ends with a checksum
	frames  int  // zstd frames begun
	started bool // the library has been Reset onto this body
	inSink  bool // the library's output is with the sink
	stopped bool
	failed  error
}

func newZstdDecoder(sink outSink, maxWindow int) *zstdDecoder {
	return &zstdDecoder{sink: sink, maxWindow: maxWindow}
}

// Read is the library's source: whole units only, then needInput.
func (d *zstdDecoder) Read(b []byte) (int, error) {
	if d.rd == d.avail {
		panic(needInput{len(b)})
	}
	n := copy(b, d.buf[d.rd:d.avail])
	d.rd += n
	return n, nil
}

// Write takes the library's output.
func (d *zstdDecoder) Write(p []byte) (int, error) {
	d.inSink = true
	ok := d.sink.out(p)
	d.inSink = false
	if !ok {
		d.stopped = true
		return len(p), errStopped
	}
	return len(p), nil
}

func (d *zstdDecoder) write(p []byte) error {
	if d.failed != nil || d.stopped || len(p) == 0 {
		return d.failed
	}
	if d.rd > 0 {
		n := copy(d.buf, d.buf[d.rd:])
		d.buf = d.buf[:n]
		d.avail -= d.rd
		d.rd = 0
	}
	d.buf = append(d.buf, p...)
	if err := d.frame(); err != nil {
		d.failed = err
		return err
	}
	if d.avail > d.rd {
		if err := d.pump(); err != nil {
			d.failed = err
			return err
		}
	}
	if cap(d.buf) > 2*zstdMaxBlock && len(d.buf)-d.rd < zstdMaxBlock/2 {
		// A large block has passed; do not keep its buffer.
		d.buf = append([]byte(nil), d.buf[d.rd:]...)
		d.avail -= d.rd
		d.rd = 0
	}
	return nil
}

// frame advances avail over every unit that has fully arrived.
func (d *zstdDecoder) frame() error {
	for {
		u := d.buf[d.avail:]
		switch d.phase {
		case zsFrame:
			if len(u) < 4 {
				return nil
			}
			magic := binary.LittleEndian.Uint32(u)
			if magic&^0xF == zstdSkipMagic {
				if len(u) < 8 {
					return nil
				}
				n := int64(binary.LittleEndian.Uint32(u[4:]))
				if n > zstdMaxSkippable {
					return fmt.Errorf("zstd skippable frame of %d bytes: %w", n, errZstdSkippable)
				}
				if int64(len(u)) < 8+n {
					return nil
				}
				d.avail += 8 + int(n)
				continue
			}
			if magic != zstdMagic {
				return errZstdMagic
			}
			if len(u) < 5 {
				return nil
			}
			size, window, sum, err := zstdFrameHeader(u[4], u[5:])
			if err != nil {
				return err
			}
			if len(u) < size {
				return nil
			}
			if window(u) > uint64(d.maxWindow) {
				return fmt.Errorf("zstd window of %d bytes: %w", window(u), errWindowTooLarge)
			}
			d.avail += size
			d.sum = sum
			d.frames++
			d.phase = zsBlock
		case zsBlock:
			if len(u) < 3 {
				return nil
			}
			bh := uint32(u[0]) | uint32(u[1])<<8 | uint32(u[2])<<16
			last, typ, size := bh&1 != 0, bh>>1&3, int(bh>>3)
			if size > zstdMaxBlock || typ == 3 {
				return errZstdBlock
			}
			n := 3 + size
			if typ == 1 { // RLE: one byte repeated size times
				n = 4
			}
			if last && d.sum {
				n += 4
			}
			if len(u) < n {
				return nil
			}
			d.avail += n
			if last {
				d.phase = zsFrame
			}
		}
	}
}

// zstdFrameHeader reads a Frame_Header_Descriptor: the header's size from
// the magic on, and a function giving the window size from the whole header.
func zstdFrameHeader(fhd byte, rest []byte) (size int, window func([]byte) uint64, sum bool, err error) {
	if fhd&(1<<3) != 0 {
		return 0, nil, false, errZstdHeader
	}
	if fhd&3 != 0 {
		return 0, nil, false, errZstdDictionary // never negotiated over HTTP
	}
	single := fhd&(1<<5) != 0
	fcs := [4]int{0, 2, 4, 8}[fhd>>6]
	if single && fcs == 0 {
		fcs = 1
	}
	size = 5 + fcs
	if !single {
		size++
	}
	window = func(h []byte) uint64 {
		if !single {
			wd := h[5]
			base := uint64(1) << (10 + wd>>3)
			return base + base/8*uint64(wd&7)
		}
		f := h[5 : 5+fcs]
		switch fcs {
		case 1:
			return uint64(f[0])
		case 2:
			return uint64(binary.LittleEndian.Uint16(f)) + 256
		case 4:
			return uint64(binary.LittleEndian.Uint32(f))
		}
		return binary.LittleEndian.Uint64(f)
	}
	return size, window, fhd&(1<<2) != 0, nil
}

// pump lets the library decode the units that have arrived.
func (d *zstdDecoder) pump() (err error) {
	if d.dec == nil {
		d.dec = zstdReaders.Get().(*zstd.Decoder)
	}
	if !d.started {
		d.started = true
		if err := d.dec.Reset(d); err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
	}
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		ni, ok := r.(needInput)
		switch {
		case !ok && d.inSink:
			panic(r) // not the decoder's: a bug past the sink, not to be hidden
		case !ok:
			// Captured bytes are anyone's; a decoder bug they trigger
			// costs this body, not the agent.
			err = fmt.Errorf("zstd: %w: %v", errLibraryPanic, r)
			d.dec = nil // its state is unknown: not back to the pool
			return
		}
		// The library begins a frame by reading one byte of its magic and
		// a block by reading its 3-byte header; a starved read of any
		// other length means it is inside a unit, where it cannot resume.
		want := 3
		if d.phase == zsFrame {
			want = 1
		}
		if ni.want != want {
			err = errZstdStarved
		}
	}()
	_, err = d.dec.WriteTo(d)
	switch {
	case errors.Is(err, errStopped):
		return nil
	case err != nil:
		return fmt.Errorf("zstd: %w", err)
	}
	// WriteTo ends without an error only at io.EOF, which this source
	// never returns.
	return nil
}

func (d *zstdDecoder) finish() error {
	switch {
	case d.failed != nil:
		return d.failed
	case d.stopped || len(d.buf) == 0 && d.frames == 0:
		return nil
	case d.phase != zsFrame || d.avail != len(d.buf) || d.rd != d.avail:
		return errUnfinished
	}
	return nil
}

func (d *zstdDecoder) release() {
	if d.dec != nil {
		_ = d.dec.Reset(nil)
		zstdReaders.Put(d.dec)
		d.dec = nil
	}
	d.buf = nil
}
