package decode

import (
	"errors"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"sync"
)

var (
	errGzipHeader   = errors.New("gzip: invalid header")
	errGzipChecksum = errors.New("gzip: checksum mismatch")
	errZlibHeader   = errors.New("zlib: invalid header")
	errZlibChecksum = errors.New("zlib: checksum mismatch")
	errTrailing     = errors.New("content coding: bytes after the end of the compressed data")
	errUnfinished   = errors.New("content coding: compressed data ends early")
)

// coding is a supported Content-Encoding.
type coding uint8

const (
	identity coding = iota
	gzipCoding
	deflateCoding // zlib (RFC 1950) as the RFC says, or raw deflate as some servers send
	brotliCoding
	zstdCoding
	unsupportedCoding
)

type decoderPhase uint8

const (
	phGzipHeader decoderPhase = iota // the 10 fixed bytes
	phGzipExtraLen
	phGzipExtra
	phGzipName
	phGzipComment
	phGzipHeaderCRC
	phZlibSniff // deciding between zlib and raw deflate on the first two bytes
	phData
	phGzipTrailer
	phZlibTrailer
	phMemberEnd // after a gzip member: another may follow
	phEnd
)

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// contentDecoder undoes gzip or deflate content coding on bytes pushed in
// pieces, handing the result to an outSink.
type contentDecoder struct {
	kind   coding
	phase  decoderPhase
	hdr    [10]byte
	hn     int // bytes of hdr filled
	flags  byte
	skip   int // FEXTRA bytes left
	inf    *inflater
	sum    hash.Hash32 // crc32 for gzip, adler32 for zlib
	size   uint32      // decoded bytes of this gzip member, mod 2^32
	sink   outSink
	raw    bool // deflate without the zlib wrapper
	seen   bool // any input arrived
	failed error
}

func newContentDecoder(kind coding, sink outSink) *contentDecoder {
	d := &contentDecoder{kind: kind, sink: sink}
	d.inf = inflaters.Get().(*inflater)
	d.inf.reset()
	d.inf.sink = d
	if kind == gzipCoding {
		d.phase = phGzipHeader
		d.sum = crc32.NewIEEE()
	} else {
		d.phase = phZlibSniff
		d.sum = adler32.New()
	}
	return d
}

// release returns the window to the pool; the decoder is unusable after.
func (d *contentDecoder) release() {
	if d.inf != nil {
		d.inf.reset()
		inflaters.Put(d.inf)
		d.inf = nil
	}
}

func (d *contentDecoder) out(p []byte) bool {
	if !d.raw {
		d.sum.Write(p)
	}
	d.size += uint32(len(p))
	return d.sink.out(p)
}

// write decodes p; after an error the decoder ignores all further input.
func (d *contentDecoder) write(p []byte) error {
	if d.failed != nil {
		return d.failed
	}
	d.seen = d.seen || len(p) > 0
	if err := d.step(p); err != nil {
		d.failed = err
		return err
	}
	return nil
}

// finish reports whether the coded stream ended where the body did. An
// empty body is accepted: servers label empty bodies with their usual coding.
func (d *contentDecoder) finish() error {
	if d.failed != nil {
		return d.failed
	}
	if !d.seen {
		return nil
	}
	switch d.phase {
	case phEnd, phMemberEnd:
		return nil
	case phData:
		if d.inf.stopped {
			return nil
		}
	}
	return errUnfinished
}

func (d *contentDecoder) fill(p []byte, n int) ([]byte, bool) {
	k := copy(d.hdr[d.hn:n], p)
	d.hn += k
	return p[k:], d.hn == n
}

func (d *contentDecoder) step(p []byte) error {
	for len(p) > 0 {
		var full bool
		switch d.phase {
		case phGzipHeader:
			if p, full = d.fill(p, 10); !full {
				return nil
			}
			if d.hdr[0] != 0x1f || d.hdr[1] != 0x8b || d.hdr[2] != 8 || d.hdr[3]&0xe0 != 0 {
				return errGzipHeader
			}
			d.flags = d.hdr[3]
			d.hn = 0
			d.nextGzipField()
		case phGzipExtraLen:
			if p, full = d.fill(p, 2); !full {
				return nil
			}
			d.skip = int(d.hdr[0]) | int(d.hdr[1])<<8
			d.hn = 0
			d.phase = phGzipExtra
		case phGzipExtra:
			k := min(d.skip, len(p))
			d.skip -= k
			p = p[k:]
			if d.skip == 0 {
				d.flags &^= 1 << 2
				d.nextGzipField()
			}
		case phGzipName, phGzipComment:
			i := indexZero(p)
			if i < 0 {
				return nil
			}
			p = p[i+1:]
			if d.phase == phGzipName {
				d.flags &^= 1 << 3
			} else {
				d.flags &^= 1 << 4
			}
			d.nextGzipField()
		case phGzipHeaderCRC:
			if p, full = d.fill(p, 2); !full {
				return nil
			}
			d.hn = 0
			d.flags &^= 1 << 1
			d.nextGzipField()
		case phZlibSniff:
			if p, full = d.fill(p, 2); !full {
				return nil
			}
			d.hn = 0
			d.phase = phData
			cmf, flg := d.hdr[0], d.hdr[1]
			if cmf&0x0f == 8 && cmf>>4 <= 7 && (uint(cmf)<<8|uint(flg))%31 == 0 {
				if flg&0x20 != 0 {
					return errZlibHeader // a preset dictionary is never used over HTTP
				}
				continue
			}
			// Raw deflate: the two bytes were data.
			d.raw = true
			if err := d.data(d.hdr[:2]); err != nil {
				return err
			}
		case phData:
			n, done, err := d.inf.write(p)
			if err != nil {
				return err
			}
			p = p[n:]
			if done {
				d.endData()
			} else if d.inf.stopped {
				return nil
			}
		case phGzipTrailer:
			if p, full = d.fill(p, 8); !full {
				return nil
			}
			d.hn = 0
			crc := le32(d.hdr[:4])
			size := le32(d.hdr[4:8])
			if crc != d.sum.Sum32() || size != d.size {
				return errGzipChecksum
			}
			d.phase = phMemberEnd
		case phZlibTrailer:
			if p, full = d.fill(p, 4); !full {
				return nil
			}
			d.hn = 0
			sum := uint32(d.hdr[0])<<24 | uint32(d.hdr[1])<<16 | uint32(d.hdr[2])<<8 | uint32(d.hdr[3])
			if sum != d.sum.Sum32() {
				return errZlibChecksum
			}
			d.phase = phEnd
		case phMemberEnd:
			// Concatenated gzip members decode as one body (RFC 1952 §2.2).
			if p[0] != 0x1f {
				return errTrailing
			}
			d.phase = phGzipHeader
			d.sum.Reset()
			d.size = 0
			d.inf.reset()
			d.inf.sink = d
		case phEnd:
			return errTrailing
		}
	}
	return nil
}

func (d *contentDecoder) data(p []byte) error {
	n, done, err := d.inf.write(p)
	if err != nil {
		return err
	}
	if done {
		d.endData()
		if n < len(p) {
			return d.step(p[n:])
		}
	}
	return nil
}

func (d *contentDecoder) endData() {
	switch {
	case d.kind == gzipCoding:
		d.phase = phGzipTrailer
	case d.raw:
		d.phase = phEnd
	default:
		d.phase = phZlibTrailer
	}
}

// nextGzipField moves to the next optional header field still flagged.
func (d *contentDecoder) nextGzipField() {
	switch {
	case d.flags&(1<<2) != 0:
		d.phase = phGzipExtraLen
	case d.flags&(1<<3) != 0:
		d.phase = phGzipName
	case d.flags&(1<<4) != 0:
		d.phase = phGzipComment
	case d.flags&(1<<1) != 0:
		d.phase = phGzipHeaderCRC
	default:
		d.phase = phData
	}
}

func indexZero(p []byte) int {
	for i, b := range p {
		if b == 0 {
			return i
		}
	}
	return -1
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
