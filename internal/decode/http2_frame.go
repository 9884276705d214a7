package decode

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// h2TableSize bounds the HPACK dynamic table of each direction. Peers
	// use 4 KiB, a few 64 KiB; a larger size update fails the block, which
	// is counted, and the table restarts empty.
	h2TableSize = 64 << 10
	// h2HuntMaxFrame is the largest frame accepted while looking for a
	// frame boundary: the initial SETTINGS_MAX_FRAME_SIZE, which most
	// peers keep for what they send.
	h2HuntMaxFrame = 16 << 10
	// h2MaxControl bounds a frame buffered whole that is neither DATA nor
	// part of a header block; real ones are tens of bytes.
	h2MaxControl = 4 << 10
)

type frameState uint8

const (
	fsPreface frameState = iota // the client preface is expected
	fsHeader                    // in a 9-byte frame header
	fsHunt                      // looking for a frame boundary in bytes of unknown place
	fsPadLen                    // DATA: the pad length byte
	fsData                      // DATA: data bytes
	fsPadding                   // DATA: padding after the data
	fsCollect                   // buffering a whole frame for the Framer
	fsSkip                      // skipping a payload that is not decoded
)

// h2conn decodes the frames of one HTTP/2 connection.
type h2conn struct {
	c       *Conn
	client  Direction
	dirs    [2]h2dir
	streams map[uint32]*h2stream
	open    []*h2stream // open streams, oldest request first
	// maxClient is the highest client stream id seen: a lower one not in
	// streams is closed or was dropped, and its frames are not decoded.
	maxClient uint32
	reported  bool        // the first request head went to OnHTTP2Request
	joined    bool        // JoinHTTP2: the capture may have begun after the start
	begun     bool        // a byte was read
	midstream bool        // decoding began without the preface
	goAway    *ResetError // a GOAWAY with an error code: ends what is open at close
}

// h2dir reads the frames of one direction.
type h2dir struct {
	h      *h2conn
	dir    Direction
	state  frameState
	t      time.Time // time of the feed being read
	pre    int       // bytes of the client preface matched
	hdr    [9]byte
	hdrT   [9]time.Time // when each byte of hdr came, for the time a frame began
	hn     int
	fh     http2.FrameHeader
	frameT time.Time // when the first byte of the current frame came
	remain int       // payload bytes left in the current state
	pad    int       // padding bytes after the data of a DATA frame
	buf    []byte    // the frame being buffered for the Framer, header included
	st     *h2stream // stream of the DATA frame being read; nil when dropped
	maxLen uint32    // largest frame taken for one while hunting: the peer's SETTINGS_MAX_FRAME_SIZE
	hp     *hpack.Decoder
	blk    headerBlock
	fr     *http2.Framer
	rd     bytes.Reader
}

// headerBlock is a header block being decoded: a HEADERS or PUSH_PROMISE
// frame and its CONTINUATION frames.
type headerBlock struct {
	active    bool
	sid       uint32
	endStream bool
	push      bool // a PUSH_PROMISE block: decoded only to keep HPACK in step
	failed    bool // HPACK failed: fields hold what was decoded before
	tooLarge  bool // over Limits.MaxHeaderBytes: fields dropped
	size      int
	wire      int64
	start     time.Time
	method    string
	path      string
	authority string
	status    string
	header    http.Header
}

func newH2Conn(c *Conn, client Direction, joined bool) *h2conn {
	h := &h2conn{c: c, client: client, streams: map[uint32]*h2stream{}, joined: joined}
	for i := range h.dirs {
		d := &h.dirs[i]
		d.h, d.dir, d.maxLen = h, Direction(i), 16<<10
		d.fr = http2.NewFramer(nil, &d.rd)
		d.fr.AllowIllegalReads = true // ordering is checked here, across losses
		d.fr.SetMaxReadFrameSize(h2MaxFrameLen(c.lim))
		d.resetHPACK()
		switch {
		case d.dir == client:
			d.state = fsPreface
		case joined:
			d.state = fsHunt
		default:
			d.state = fsHeader
		}
	}
	return h
}

// h2MaxFrameLen bounds a buffered frame: header blocks are kept up to
// the header limit, and a frame may hold a little more than its fields.
func h2MaxFrameLen(lim Limits) uint32 {
	return uint32(max(lim.MaxHeaderBytes, 16<<10) + 512)
}

// lostStart counts, once, a connection decoded without its preface.
func (h *h2conn) lostStart() {
	if !h.midstream {
		h.midstream = true
		h.c.stats.HTTP2.JoinedMidstream++
	}
}

func (d *h2dir) resetHPACK() {
	d.hp = hpack.NewDecoder(h2TableSize, d.emit)
	// Fields over the header limit are dropped as they come (emit), so
	// the table stays in step; only a field too long to hold ends it.
	d.hp.SetMaxStringLength(int(h2MaxFrameLen(d.h.c.lim)))
}

func (h *h2conn) feed(dir Direction, t time.Time, b []byte) {
	d := &h.dirs[dir]
	d.t = t
	for len(b) > 0 {
		b = b[d.step(b):]
	}
}

// step reads from the start of b and returns how many bytes it used.
func (d *h2dir) step(b []byte) int {
	h := d.h
	st := &h.c.stats
	if h.joined && !h.begun {
		h.begun = true
		if d.dir != h.client {
			// The server spoke first: the capture began after the preface.
			h.lostStart()
		}
	}
	switch d.state {
	case fsPreface:
		k := min(len(b), len(clientPreface)-d.pre)
		n := 0
		for n < k && b[n] == clientPreface[d.pre+n] {
			n++
		}
		d.pre += n
		if n < k {
			// Not the preface: the capture began after it. What matched
			// is looked through for a frame like any other byte.
			h.lostStart()
			pre := d.pre
			d.pre, d.state = 0, fsHunt
			for i := 0; i < pre; i++ {
				d.step([]byte{clientPreface[i]})
			}
			return n
		}
		if d.pre == len(clientPreface) {
			st.HTTP2.OtherBytes += int64(len(clientPreface))
			d.state = fsHeader
		}
		return n
	case fsHeader, fsHunt:
		if d.hn == 0 {
			d.frameT = d.t
		}
		k := min(len(b), 9-d.hn)
		if d.state == fsHunt {
			k = 1 // every byte is a possible frame start
		}
		copy(d.hdr[d.hn:], b[:k])
		for i := d.hn; i < d.hn+k; i++ {
			d.hdrT[i] = d.t
		}
		d.hn += k
		if d.hn == 9 {
			d.header()
		}
		return k
	case fsPadLen:
		d.pad = int(b[0])
		d.remain--
		if d.pad > d.remain {
			st.Malformed++
			d.dropData()
			d.pad, d.state = 0, fsSkip
			d.endFrameIfEmpty()
			return 1
		}
		d.remain -= d.pad
		d.state = fsData
		d.endFrameIfEmpty()
		return 1
	case fsData:
		k := min(len(b), d.remain)
		d.remain -= k
		if d.st != nil {
			d.st.data(d, b[:k])
		}
		d.endFrameIfEmpty()
		return k
	case fsPadding, fsSkip:
		k := min(len(b), d.remain)
		d.remain -= k
		d.endFrameIfEmpty()
		return k
	case fsCollect:
		k := min(len(b), d.remain)
		d.buf = append(d.buf, b[:k]...)
		d.remain -= k
		if d.remain == 0 {
			d.state = fsHeader
			d.frame(d.buf)
			d.buf = keepSmall(d.buf)
		}
		return k
	}
	return len(b)
}

// endFrameIfEmpty moves on when the current part of a frame is read.
func (d *h2dir) endFrameIfEmpty() {
	if d.remain > 0 {
		return
	}
	switch d.state {
	case fsPadLen:
		return // the pad length byte is still to come
	case fsData:
		if d.pad > 0 {
			d.remain, d.pad, d.state = d.pad, 0, fsPadding
			return
		}
	}
	d.state = fsHeader
	if d.fh.Type == http2.FrameData && d.fh.Flags.Has(http2.FlagDataEndStream) && d.st != nil {
		s := d.st
		d.st = nil
		s.ended(d)
	}
	d.st = nil
}

// header handles a complete frame header.
func (d *h2dir) header() {
	h := d.h
	st := &h.c.stats
	hunting := d.state == fsHunt
	fh := http2.FrameHeader{
		Type:     http2.FrameType(d.hdr[3]),
		Flags:    http2.Flags(d.hdr[4]),
		Length:   uint32(d.hdr[0])<<16 | uint32(d.hdr[1])<<8 | uint32(d.hdr[2]),
		StreamID: uint32(d.hdr[5]&0x7f)<<24 | uint32(d.hdr[6])<<16 | uint32(d.hdr[7])<<8 | uint32(d.hdr[8]),
	}
	if hunting && !plausibleFrame(fh, d.hdr[5]&0x80 != 0, d.maxLen) {
		st.BytesDiscarded++
		copy(d.hdr[:], d.hdr[1:])
		copy(d.hdrT[:], d.hdrT[1:])
		d.hn = 8
		d.frameT = d.hdrT[0]
		return
	}
	d.hn = 0
	d.fh = fh
	n := int(fh.Length)
	wire := int64(9 + n)
	if d.blk.active && (fh.Type != http2.FrameContinuation || fh.StreamID != d.blk.sid) {
		// A header block must go on in CONTINUATION frames of its stream.
		st.Malformed++
		d.failBlock()
		d.endBlock()
	}
	switch fh.Type {
	case http2.FrameData:
		d.st = h.dataStream(d, fh.StreamID, wire)
		d.remain = n
		d.state = fsData
		if fh.Flags.Has(http2.FlagDataPadded) {
			if n == 0 {
				st.Malformed++
				d.dropData()
				d.skipPayload(0)
				return
			}
			d.state = fsPadLen
			return
		}
		d.endFrameIfEmpty()
		return
	case http2.FrameHeaders, http2.FramePushPromise, http2.FrameContinuation:
		if fh.Type == http2.FrameContinuation && !d.blk.active {
			// The start of this block was not seen: HPACK state is unknown.
			st.HTTP2.HPACKErrors++
			st.BytesDiscarded += wire
			d.resetHPACK()
			d.skipPayload(n)
			return
		}
		if fh.Length > h2MaxFrameLen(h.c.lim) {
			// Too large to hold: the block is given up and HPACK restarts.
			if fh.Type != http2.FrameContinuation {
				d.blk = headerBlock{active: true, sid: fh.StreamID, push: fh.Type == http2.FramePushPromise,
					endStream: fh.Type == http2.FrameHeaders && fh.Flags.Has(http2.FlagHeadersEndStream), start: d.frameT}
			}
			d.blk.wire += wire
			d.blk.tooLarge = true
			d.failBlock()
			if fh.Flags.Has(http2.FlagHeadersEndHeaders) { // the same bit for all three types
				d.endBlock()
			}
			d.skipPayload(n)
			return
		}
	case http2.FrameSettings, http2.FramePing, http2.FrameGoAway, http2.FrameRSTStream,
		http2.FrameWindowUpdate, http2.FramePriority:
		st.HTTP2.OtherBytes += wire
		if n > h2MaxControl {
			d.skipPayload(n) // a GOAWAY with long debug data; its stream ids are lost
			return
		}
	default:
		// Extension frames (ALTSVC, ORIGIN, PRIORITY_UPDATE, ...) carry
		// nothing decoded here.
		st.HTTP2.OtherBytes += wire
		d.skipPayload(n)
		return
	}
	d.buf = append(d.buf[:0], d.hdr[:]...)
	d.remain = n
	d.state = fsCollect
	if n == 0 {
		d.state = fsHeader
		d.frame(d.buf)
	}
}

func (d *h2dir) skipPayload(n int) {
	d.remain = n
	d.state = fsSkip
	d.endFrameIfEmpty()
}

// dropData stops handing the current DATA frame to its stream.
func (d *h2dir) dropData() {
	if d.st != nil {
		d.st.bodyGap(d)
		d.st = nil
	}
}

// plausibleFrame checks a frame header found while hunting for a frame
// boundary against what a real peer sends. Where the boundary is known,
// any header is taken: a frame breaking a rule of its type is skipped by
// its length, which keeps the next one in step.
func plausibleFrame(fh http2.FrameHeader, reserved bool, maxLen uint32) bool {
	if reserved || fh.Length > max(maxLen, h2HuntMaxFrame) {
		return false
	}
	sid, f, n := fh.StreamID, fh.Flags, fh.Length
	switch fh.Type {
	case http2.FrameData:
		return sid != 0 && f&^(http2.FlagDataEndStream|http2.FlagDataPadded) == 0
	case http2.FrameHeaders:
		return sid != 0 && f&^(http2.FlagHeadersEndStream|http2.FlagHeadersEndHeaders|http2.FlagHeadersPadded|http2.FlagHeadersPriority) == 0
	case http2.FramePriority:
		return sid != 0 && n == 5 && f == 0
	case http2.FrameRSTStream:
		return sid != 0 && n == 4 && f == 0
	case http2.FrameSettings:
		return sid == 0 && n%6 == 0 && f&^http2.FlagSettingsAck == 0 && (f == 0 || n == 0)
	case http2.FramePushPromise:
		return sid != 0 && f&^(http2.FlagPushPromiseEndHeaders|http2.FlagPushPromisePadded) == 0
	case http2.FramePing:
		return sid == 0 && n == 8 && f&^http2.FlagPingAck == 0
	case http2.FrameGoAway:
		return sid == 0 && n >= 8 && f == 0
	case http2.FrameWindowUpdate:
		return n == 4 && f == 0
	case http2.FrameContinuation:
		return sid != 0 && f&^http2.FlagContinuationEndHeaders == 0
	}
	return false
}

// frame decodes a whole non-DATA frame with the Framer.
func (d *h2dir) frame(raw []byte) {
	h := d.h
	st := &h.c.stats
	d.rd.Reset(raw)
	f, err := d.fr.ReadFrame()
	if err != nil {
		// The frame breaks a rule of its type; its length still holds,
		// so the next frame is in step.
		st.Malformed++
		switch d.fh.Type {
		case http2.FrameHeaders, http2.FramePushPromise:
			st.BytesDiscarded += int64(len(raw))
			d.resetHPACK()
		case http2.FrameContinuation:
			d.blk.wire += int64(len(raw))
			d.failBlock()
			d.endBlock()
		}
		return
	}
	switch f := f.(type) {
	case *http2.HeadersFrame:
		d.blk = headerBlock{active: true, sid: f.StreamID, endStream: f.StreamEnded(), start: d.frameT}
		d.fragment(f.HeaderBlockFragment(), int64(len(raw)), f.HeadersEnded())
	case *http2.PushPromiseFrame:
		d.blk = headerBlock{active: true, sid: f.StreamID, push: true, start: d.frameT}
		d.fragment(f.HeaderBlockFragment(), int64(len(raw)), f.HeadersEnded())
	case *http2.ContinuationFrame:
		d.fragment(f.HeaderBlockFragment(), int64(len(raw)), f.HeadersEnded())
	case *http2.RSTStreamFrame:
		h.reset(d, f.StreamID, uint32(f.ErrCode))
	case *http2.GoAwayFrame:
		h.goAwayFrame(d, f.LastStreamID, uint32(f.ErrCode))
	case *http2.SettingsFrame:
		if v, ok := f.Value(http2.SettingMaxFrameSize); ok && !f.IsAck() {
			// The other direction may now send frames this large.
			h.dirs[other(d.dir)].maxLen = v
		}
	}
}

// fragment decodes a piece of a header block.
func (d *h2dir) fragment(p []byte, wire int64, end bool) {
	b := &d.blk
	b.wire += wire
	if !b.failed {
		d.hp.SetEmitEnabled(!b.push)
		if _, err := d.hp.Write(p); err != nil {
			if errors.Is(err, hpack.ErrStringLength) {
				d.blk.tooLarge = true
			}
			d.failBlock()
		}
	}
	if !end {
		return
	}
	if !b.failed {
		if err := d.hp.Close(); err != nil {
			d.failBlock()
		}
	}
	d.endBlock()
}

// failBlock gives up decoding the block: HPACK state is now unknown, so
// the table restarts empty. A later reference to an entry it lacks fails
// instead of resolving to a wrong one.
func (d *h2dir) failBlock() {
	if d.blk.failed {
		return
	}
	d.blk.failed = true
	if !d.blk.tooLarge {
		d.h.c.stats.HTTP2.HPACKErrors++
	}
	d.resetHPACK()
}

// endBlock hands a finished header block on.
func (d *h2dir) endBlock() {
	b := d.blk
	d.blk = headerBlock{}
	if !b.active {
		return
	}
	h := d.h
	if b.push {
		h.c.stats.HTTP2.OtherBytes += b.wire
		return
	}
	if b.tooLarge {
		h.c.stats.HeadersTooLarge++
	}
	if d.dir == h.client {
		h.requestBlock(d, &b)
	} else {
		h.responseBlock(d, &b)
	}
}

// emit takes one decoded header field of the block being read.
func (d *h2dir) emit(f hpack.HeaderField) {
	b := &d.blk
	if b.tooLarge || !b.active {
		return
	}
	b.size += len(f.Name) + len(f.Value)
	if b.size > d.h.c.lim.MaxHeaderBytes {
		b.tooLarge = true
		b.header = nil
		return
	}
	if strings.HasPrefix(f.Name, ":") {
		switch f.Name {
		case ":method":
			b.method = f.Value
		case ":path":
			b.path = f.Value
		case ":authority":
			b.authority = f.Value
		case ":status":
			b.status = f.Value
		}
		return
	}
	if b.header == nil {
		b.header = make(http.Header, 8)
	}
	k := http.CanonicalHeaderKey(f.Name)
	b.header[k] = append(b.header[k], f.Value)
}

// lostFraming handles a loss of frame boundaries in this direction:
// frames of any stream may be gone, header blocks among them.
func (d *h2dir) lostFraming() {
	h := d.h
	h.c.stats.Gaps++
	if d.blk.active {
		d.failBlock()
		d.endBlock()
	} else {
		d.resetHPACK()
	}
	d.st = nil
	d.buf = keepSmall(d.buf)
	d.hn, d.remain, d.pad = 0, 0, 0
	for _, s := range h.open {
		s.bodyGap(d)
	}
}

// skip handles n bytes of dir lost in capture.
func (h *h2conn) skip(dir Direction, t time.Time, n int) {
	d := &h.dirs[dir]
	d.t = t
	switch d.state {
	case fsData, fsPadding, fsSkip:
		if n <= d.remain {
			if d.state == fsData && d.st != nil {
				// The frame stays in step, so its END_STREAM flag still counts.
				d.st.bodyGap(d)
			}
			d.remain -= n
			d.endFrameIfEmpty()
			return
		}
	case fsCollect:
		if n <= d.remain {
			switch d.fh.Type {
			case http2.FrameHeaders, http2.FramePushPromise:
				h.c.stats.HTTP2.HPACKErrors++
				h.c.stats.BytesDiscarded += int64(9 + d.fh.Length)
				d.resetHPACK()
			case http2.FrameContinuation:
				d.blk.wire += int64(9 + d.fh.Length)
				d.failBlock()
				d.endBlock()
			}
			d.remain -= n
			d.state = fsSkip
			d.endFrameIfEmpty()
			return
		}
	case fsPreface:
		if h.c.stats.HTTP2.JoinedMidstream == 0 {
			h.c.stats.HTTP2.JoinedMidstream++
		}
	}
	d.lostFraming()
	d.state = fsHunt
}

// close ends the connection at t.
func (h *h2conn) close(t time.Time) {
	for i := range h.dirs {
		d := &h.dirs[i]
		d.t = t
		if d.blk.active {
			d.blk = headerBlock{}
		}
	}
	var err error = ErrConnClosed
	if h.goAway != nil {
		err = h.goAway
	}
	for len(h.open) > 0 {
		h.finish(h.open[0], err)
	}
}
