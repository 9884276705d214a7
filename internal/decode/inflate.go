package decode

import (
	"encoding/binary"
	"errors"
)

// compress/flate pulls its input from an io.Reader and its errors are sticky,
// so it cannot pause when a capture runs dry in the middle of a block and
// resume when the next bytes arrive without a goroutine parked per
// connection. This inflater is pushed bytes instead. Every unit it decodes (a
// block header with its code tables, one literal, one length/distance pair)
// is either decoded whole or rolled back to where it began, and the few bytes
// of an unfinished unit wait for the next write. A unit is at most a dynamic
// block header (under 600 bytes), so what waits stays small.

var (
	errInflateCode     = errors.New("deflate: invalid Huffman code")
	errInflateTable    = errors.New("deflate: invalid code lengths")
	errInflateBlock    = errors.New("deflate: invalid block type")
	errInflateStored   = errors.New("deflate: stored block length mismatch")
	errInflateDistance = errors.New("deflate: distance beyond the output")
	errInflateLeftover = errors.New("deflate: unit longer than any valid one")
)

const (
	winSize = 1 << 15 // the largest distance deflate can refer back
	winMask = winSize - 1

	// tableBits is the width of the first-level lookup; longer codes (rare
	// by construction, Huffman gives them to rare symbols) take the slow path.
	tableBits = 9

	// maxUnit is above the size of the largest unit that must be decoded at
	// once: a dynamic block header is at most 3+14+19*3+320*14 bits.
	maxUnit = 1024
)

// huffman is one canonical code: a first-level table indexed by the next
// tableBits input bits (entry = symbol<<4 | length, 0 = not resolved there),
// and counts and sorted symbols for codes longer than the table.
type huffman struct {
	table  [1 << tableBits]uint16
	count  [16]uint16
	symbol [288]uint16
}

// build makes the code from per-symbol lengths. Incomplete codes are allowed
// (deflate has them for one-distance-code blocks); a symbol that falls in
// the hole fails at decode time.
func (h *huffman) build(lengths []uint8) error {
	h.count = [16]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left := 1
	for l := 1; l < 16; l++ {
		left <<= 1
		left -= int(h.count[l])
		if left < 0 {
			return errInflateTable
		}
	}
	// Canonical codes: per length, the first code and where its symbols
	// start in the sorted symbol list (RFC 1951 §3.2.2).
	var offs, next [16]uint16
	code := uint16(0)
	for l := 1; l < 16; l++ {
		offs[l] = offs[l-1] + h.count[l-1]
		code = (code + h.count[l-1]) << 1
		next[l] = code
	}
	h.table = [1 << tableBits]uint16{}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		h.symbol[offs[l]] = uint16(sym)
		offs[l]++
		c := next[l]
		next[l]++
		if int(l) > tableBits {
			continue
		}
		r := reverseBits(c, uint(l))
		for i := int(r); i < len(h.table); i += 1 << l {
			h.table[i] = uint16(sym)<<4 | uint16(l)
		}
	}
	return nil
}

func reverseBits(c uint16, n uint) uint16 {
	var r uint16
	for i := uint(0); i < n; i++ {
		r = r<<1 | c&1
		c >>= 1
	}
	return r
}

var fixedLit, fixedDist huffman

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	_ = fixedLit.build(l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	_ = fixedDist.build(d[:])
}

var (
	lenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	clOrder   = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// outSink takes decoded bytes; the slice is only valid during the call.
// It returns false to stop decoding (the kept body is full).
type outSink interface {
	out(p []byte) bool
}

type inflateState uint8

const (
	infHeader inflateState = iota
	infStored
	infCodes
	infDone
)

// inflater decodes one raw deflate stream (RFC 1951) pushed in pieces.
type inflater struct {
	src    []byte // input of the current write
	pos    int    // next byte of src to load into bits
	bits   uint64 // loaded, unconsumed bits, LSB first
	nbits  uint
	left   []byte // bytes of an unfinished unit, waiting for more input
	state  inflateState
	final  bool // the current block is the last
	stored int  // bytes left in the current stored block
	lit    *huffman
	dist   *huffman
	dyn    [2]huffman // lit/len and distance codes of a dynamic block
	cl     huffman    // code-length code of a dynamic header
	lens   [320]uint8

	win     [winSize]byte
	wpos    int   // next write position in win
	flushed int   // win[flushed:wpos] not yet handed out
	total   int64 // bytes produced, to reject distances before the start
	stopped bool  // the sink asked to stop
	sink    outSink
}

func (f *inflater) reset() {
	f.src, f.pos, f.bits, f.nbits = nil, 0, 0, 0
	f.left = f.left[:0]
	f.state, f.final, f.stored = infHeader, false, 0
	f.lit, f.dist = nil, nil
	f.wpos, f.flushed, f.total, f.stopped = 0, 0, 0, false
	f.sink = nil
}

// write decodes p. It returns how many bytes of p belong to the deflate
// stream (all of them unless the stream ended inside p) and whether the
// final block has ended.
func (f *inflater) write(p []byte) (n int, done bool, err error) {
	if f.state == infDone {
		return 0, true, nil
	}
	if f.stopped {
		return len(p), false, nil
	}
	if len(f.left) > 0 {
		old := len(f.left)
		k := min(len(p), maxUnit)
		f.left = append(f.left, p[:k]...)
		used, err := f.run(f.left)
		if err != nil {
			return 0, false, err
		}
		if f.state == infDone {
			f.left = f.left[:0]
			return max(used-old, 0), true, nil
		}
		if f.stopped {
			return len(p), false, nil
		}
		if used < old {
			if k < len(p) {
				// Even maxUnit more bytes did not finish the unit.
				return 0, false, errInflateLeftover
			}
			// All of p is in left; keep what was not consumed.
			m := copy(f.left, f.left[used:])
			f.left = f.left[:m]
			return len(p), false, nil
		}
		f.left = f.left[:0]
		n = used - old
		p = p[n:]
	}
	used, err := f.run(p)
	if err != nil {
		return 0, false, err
	}
	if f.state == infDone {
		return n + used, true, nil
	}
	if f.stopped {
		return n + len(p), false, nil
	}
	if len(p)-used > maxUnit {
		return 0, false, errInflateLeftover
	}
	f.left = append(f.left, p[used:]...)
	return n + len(p), false, nil
}

// run decodes as much of src as forms whole units and returns how many
// bytes were consumed. Fewer than 8 bits stay in f.bits afterwards, so the
// bytes not consumed are exactly src[used:].
func (f *inflater) run(src []byte) (used int, err error) {
	f.src, f.pos = src, 0
	err = f.loop()
	f.flush()
	// Hand back whole bytes loaded but not consumed.
	k := f.nbits / 8
	f.pos -= int(k)
	f.nbits -= k * 8
	f.bits &= 1<<f.nbits - 1
	used = f.pos
	f.src = nil
	return used, err
}

func (f *inflater) loop() error {
	for !f.stopped {
		switch f.state {
		case infHeader:
			if f.final {
				f.state = infDone
				f.drop(f.nbits % 8) // the stream ends on a byte boundary
				continue
			}
			ok, err := f.header()
			if err != nil || !ok {
				return err
			}
		case infStored:
			if !f.copyStored() {
				return nil
			}
		case infCodes:
			ok, err := f.codes()
			if err != nil || !ok {
				return err
			}
		case infDone:
			return nil
		}
	}
	return nil
}

type bitMark struct {
	pos   int
	bits  uint64
	nbits uint
}

func (f *inflater) mark() bitMark      { return bitMark{f.pos, f.bits, f.nbits} }
func (f *inflater) rewind(m bitMark)   { f.pos, f.bits, f.nbits = m.pos, m.bits, m.nbits }
func (f *inflater) drop(n uint)        { f.bits >>= n; f.nbits -= n }
func (f *inflater) peek(n uint) uint32 { return uint32(f.bits & (1<<n - 1)) }

func (f *inflater) refill() {
	if f.pos+8 <= len(f.src) {
		v := binary.LittleEndian.Uint64(f.src[f.pos:])
		k := (63 - f.nbits) >> 3
		f.bits |= v << f.nbits
		f.nbits += k * 8
		f.pos += int(k)
		f.bits &= 1<<f.nbits - 1
		return
	}
	for f.nbits <= 56 && f.pos < len(f.src) {
		f.bits |= uint64(f.src[f.pos]) << f.nbits
		f.pos++
		f.nbits += 8
	}
}

func (f *inflater) need(n uint) bool {
	if f.nbits < n {
		f.refill()
	}
	return f.nbits >= n
}

// decode reads one symbol. ok is false when the input ends inside the code.
func (f *inflater) decode(h *huffman) (sym int, ok bool, err error) {
	if f.nbits < 15 {
		f.refill()
	}
	if e := h.table[f.bits&(1<<tableBits-1)]; e != 0 {
		l := uint(e & 15)
		if l > f.nbits {
			return 0, false, nil
		}
		f.drop(l)
		return int(e >> 4), true, nil
	}
	code, first, index := 0, 0, 0
	for l := uint(1); l < 16; l++ {
		if l > f.nbits {
			return 0, false, nil
		}
		code |= int(f.bits>>(l-1)) & 1
		count := int(h.count[l])
		if code-count < first {
			f.drop(l)
			return int(h.symbol[index+code-first]), true, nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, false, errInflateCode
}

// header reads a block header whole, or nothing.
func (f *inflater) header() (ok bool, err error) {
	m := f.mark()
	if !f.need(3) {
		return false, nil
	}
	final := f.peek(1) == 1
	typ := f.peek(3) >> 1
	f.drop(3)
	switch typ {
	case 0:
		f.drop(f.nbits % 8)
		if !f.need(32) {
			f.rewind(m)
			return false, nil
		}
		n, nn := f.peek(16), f.peek(32)>>16
		f.drop(32)
		if n != ^nn&0xffff {
			return false, errInflateStored
		}
		// Give whole loaded bytes back so the block copies straight from src.
		k := f.nbits / 8
		f.pos -= int(k)
		f.nbits, f.bits = 0, 0
		f.stored = int(n)
		f.state = infStored
	case 1:
		f.lit, f.dist = &fixedLit, &fixedDist
		f.state = infCodes
	case 2:
		ok, err := f.dynamic()
		if err != nil {
			return false, err
		}
		if !ok {
			f.rewind(m)
			return false, nil
		}
		f.lit, f.dist = &f.dyn[0], &f.dyn[1]
		f.state = infCodes
	default:
		return false, errInflateBlock
	}
	f.final = final
	return true, nil
}

func (f *inflater) dynamic() (ok bool, err error) {
	if !f.need(14) {
		return false, nil
	}
	nlit := int(f.peek(5)) + 257
	f.drop(5)
	ndist := int(f.peek(5)) + 1
	f.drop(5)
	ncl := int(f.peek(4)) + 4
	f.drop(4)
	if nlit > 286 || ndist > 30 {
		return false, errInflateTable
	}
	var cl [19]uint8
	for i := 0; i < ncl; i++ {
		if !f.need(3) {
			return false, nil
		}
		cl[clOrder[i]] = uint8(f.peek(3))
		f.drop(3)
	}
	if err := f.cl.build(cl[:]); err != nil {
		return false, err
	}
	lens := f.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		sym, ok, err := f.decode(&f.cl)
		if err != nil || !ok {
			return false, err
		}
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return false, errInflateTable
			}
			if !f.need(2) {
				return false, nil
			}
			rep, val = 3+int(f.peek(2)), lens[i-1]
			f.drop(2)
		case 17:
			if !f.need(3) {
				return false, nil
			}
			rep = 3 + int(f.peek(3))
			f.drop(3)
		default:
			if !f.need(7) {
				return false, nil
			}
			rep = 11 + int(f.peek(7))
			f.drop(7)
		}
		if i+rep > len(lens) {
			return false, errInflateTable
		}
		for ; rep > 0; rep-- {
			lens[i] = val
			i++
		}
	}
	if lens[256] == 0 {
		return false, errInflateTable
	}
	if err := f.dyn[0].build(lens[:nlit]); err != nil {
		return false, err
	}
	if err := f.dyn[1].build(lens[nlit:]); err != nil {
		return false, err
	}
	return true, nil
}

// copyStored moves stored bytes to the window; false when input ran out.
func (f *inflater) copyStored() bool {
	for f.stored > 0 {
		n := min(f.stored, len(f.src)-f.pos, winSize-f.wpos)
		if n == 0 {
			return false
		}
		copy(f.win[f.wpos:], f.src[f.pos:f.pos+n])
		f.pos += n
		f.stored -= n
		f.advance(n)
		if f.stopped {
			return false
		}
	}
	f.state = infHeader
	return true
}

// codes decodes symbols until the end of the block (true) or until the
// input ends inside a symbol (false, with the symbol rolled back).
func (f *inflater) codes() (ok bool, err error) {
	for !f.stopped {
		m := f.mark()
		sym, ok, err := f.decode(f.lit)
		if err != nil {
			return false, err
		}
		if !ok {
			f.rewind(m)
			return false, nil
		}
		if sym < 256 {
			f.win[f.wpos] = byte(sym)
			f.advance(1)
			continue
		}
		if sym == 256 {
			f.state = infHeader
			return true, nil
		}
		sym -= 257
		if sym >= len(lenBase) {
			return false, errInflateCode
		}
		length := int(lenBase[sym])
		if e := uint(lenExtra[sym]); e > 0 {
			if !f.need(e) {
				f.rewind(m)
				return false, nil
			}
			length += int(f.peek(e))
			f.drop(e)
		}
		ds, ok, err := f.decode(f.dist)
		if err != nil {
			return false, err
		}
		if !ok {
			f.rewind(m)
			return false, nil
		}
		if ds >= len(distBase) {
			return false, errInflateCode
		}
		dist := int(distBase[ds])
		if e := uint(distExtra[ds]); e > 0 {
			if !f.need(e) {
				f.rewind(m)
				return false, nil
			}
			dist += int(f.peek(e))
			f.drop(e)
		}
		if int64(dist) > f.total {
			return false, errInflateDistance
		}
		f.copyBack(dist, length)
	}
	return false, nil
}

// copyBack repeats length bytes from dist back. If the sink stops midway
// the rest is dropped: nothing more will be decoded.
func (f *inflater) copyBack(dist, length int) {
	for length > 0 && !f.stopped {
		n := min(length, winSize-f.wpos)
		from := f.wpos - dist
		if from >= 0 {
			// Overlapping copies repeat the pattern; copying what is
			// already written doubles the run each round.
			end := f.wpos + n
			for w := f.wpos; w < end; {
				w += copy(f.win[w:end], f.win[from:w])
			}
		} else {
			from &= winMask
			for i := 0; i < n; i++ {
				f.win[f.wpos+i] = f.win[(from+i)&winMask]
			}
		}
		length -= n
		f.advance(n)
	}
}

func (f *inflater) advance(n int) {
	f.wpos += n
	f.total += int64(n)
	if f.wpos == winSize {
		f.flush()
		f.wpos, f.flushed = 0, 0
	}
}

func (f *inflater) flush() {
	if f.wpos > f.flushed && !f.stopped {
		if !f.sink.out(f.win[f.flushed:f.wpos]) {
			f.stopped = true
		}
	}
	f.flushed = f.wpos
}
