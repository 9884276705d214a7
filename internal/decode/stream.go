package decode

import (
	"bytes"
	"time"
)

// Streaming body formats. Both parsers are pushed decoded body bytes in any
// split and call an eventSink as each event completes, with the time of the
// write that completed it. A line or event that lies inside one write is
// handed out without copying; only what straddles writes is buffered, and
// never more than the event limit.

// eventSink receives completed stream events; ev.Data is valid only
// during the call.
type eventSink interface {
	event(ev StreamEvent)
}

// appendCapped appends as much of p as fits under max and reports whether
// anything was left out.
func appendCapped(dst, p []byte, max int) ([]byte, bool) {
	room := max - len(dst)
	if room >= len(p) {
		return append(dst, p...), false
	}
	if room > 0 {
		dst = append(dst, p[:room]...)
	}
	return dst, true
}

// keepSmall drops a buffer that grew for one large event so an idle stream
// does not pin it.
func keepSmall(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b[:0]
}

var utf8BOM = [3]byte{0xef, 0xbb, 0xbf}

// sseParser implements the event-stream interpretation of the WHATWG HTML
// standard (§9.2.6): CRLF, LF and CR end lines, ":" starts a comment, an
// empty line dispatches the event, and an event without data lines is not
// dispatched.
type sseParser struct {
	max      int
	line     []byte // start of a line that straddles writes
	lineCut  bool   // line exceeded the buffer; its tail was dropped
	afterCR  bool   // the last byte seen was CR: an LF right after belongs to it
	bomSeen  int    // leading bytes matched against a UTF-8 BOM
	bomDone  bool
	data     []byte // data lines joined with LF
	dataRef  []byte // the only data line so far, still inside the current write
	byRef    bool   // dataRef holds the data, not data
	hasData  bool
	cut      bool   // this event lost bytes to max
	name     string // event type of the event being read
	lastName string // reused when the next event has the same type
	id       string // last event ID; it carries over to later events
	resync   bool   // bytes were lost: drop everything up to the next empty line
	t        time.Time
	sink     eventSink
	cutCount int // events delivered cut
}

func (s *sseParser) init(max int, sink eventSink) {
	*s = sseParser{max: max, sink: sink, line: s.line[:0], data: s.data[:0]}
}

func (s *sseParser) write(p []byte, t time.Time) {
	s.t = t
	if !s.bomDone {
		p = s.stripBOM(p)
	}
	for len(p) > 0 {
		if s.afterCR {
			s.afterCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		end := bytes.IndexByte(p, '\n')
		var cr int
		if end < 0 {
			cr = bytes.IndexByte(p, '\r')
		} else {
			cr = bytes.IndexByte(p[:end], '\r')
		}
		if cr >= 0 {
			end = cr
		}
		if end < 0 {
			s.line, s.lineCut = appendCappedCut(s.line, p, s.max+64, s.lineCut)
			break
		}
		line, inWrite := p[:end], true
		if len(s.line) > 0 || s.lineCut {
			s.line, s.lineCut = appendCappedCut(s.line, line, s.max+64, s.lineCut)
			line, inWrite = s.line, false
		} else if len(line) > s.max+64 {
			// Cut where a buffered line would be, so splits do not matter.
			line, s.lineCut = line[:s.max+64], true
		}
		next := end + 1
		if p[end] == '\r' {
			if next < len(p) {
				if p[next] == '\n' {
					next++
				}
			} else {
				s.afterCR = true
			}
		}
		s.lineDone(line, inWrite)
		s.line, s.lineCut = s.line[:0], false
		p = p[next:]
	}
	// A data line kept by reference must outlive this write.
	s.unref()
}

func (s *sseParser) unref() {
	if s.byRef {
		s.data, s.cut = appendCappedCut(s.data[:0], s.dataRef, s.max, s.cut)
		s.dataRef, s.byRef = nil, false
	}
}

func appendCappedCut(dst, p []byte, max int, cut bool) ([]byte, bool) {
	dst, c := appendCapped(dst, p, max)
	return dst, cut || c
}

func (s *sseParser) stripBOM(p []byte) []byte {
	for len(p) > 0 && s.bomSeen < 3 {
		if p[0] != utf8BOM[s.bomSeen] {
			// Not a BOM after all: the bytes matched so far are text.
			s.bomDone = true
			s.line = append(s.line, utf8BOM[:s.bomSeen]...)
			return p
		}
		s.bomSeen++
		p = p[1:]
	}
	if s.bomSeen == 3 {
		s.bomDone = true
	}
	return p
}

func (s *sseParser) lineDone(line []byte, inWrite bool) {
	if len(line) == 0 {
		s.dispatch()
		return
	}
	if s.resync || line[0] == ':' {
		return
	}
	field, value := line, line[len(line):]
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "data":
		s.addData(value, inWrite && !s.lineCut)
	case "event":
		if string(value) != s.lastName {
			s.lastName = string(value)
		}
		s.name = s.lastName
	case "id":
		if bytes.IndexByte(value, 0) < 0 && string(value) != s.id {
			s.id = string(value)
		}
	}
	// "retry" and unknown fields do not change what is delivered.
}

func (s *sseParser) addData(value []byte, inWrite bool) {
	if s.lineCut {
		s.cut = true
	}
	if !s.hasData {
		s.hasData = true
		if inWrite {
			s.dataRef, s.byRef = value, true
			return
		}
		s.data, s.cut = appendCappedCut(s.data[:0], value, s.max, s.cut)
		return
	}
	s.unref()
	s.data, s.cut = appendCappedCut(s.data, []byte{'\n'}, s.max, s.cut)
	s.data, s.cut = appendCappedCut(s.data, value, s.max, s.cut)
}

func (s *sseParser) dispatch() {
	if s.resync {
		s.resync = false
	} else if s.hasData {
		data := s.data
		if s.byRef {
			data = s.dataRef
			if len(data) > s.max {
				data, s.cut = data[:s.max], true
			}
		}
		if s.cut {
			s.cutCount++
		}
		s.sink.event(StreamEvent{Time: s.t, Name: s.name, ID: s.id, Data: data, Truncated: s.cut})
	}
	s.name, s.hasData, s.cut, s.dataRef, s.byRef = "", false, false, nil, false
	s.data = keepSmall(s.data)
}

// gap says bytes of the stream were lost: the event being read is dropped
// and so is everything up to the next empty line, where events resume.
func (s *sseParser) gap() {
	s.line, s.lineCut, s.afterCR = s.line[:0], false, false
	s.name, s.hasData, s.cut, s.dataRef, s.byRef = "", false, false, nil, false
	s.data = s.data[:0]
	s.bomDone = true
	s.resync = true
}

// ndjsonParser delivers each non-empty line of newline-delimited JSON.
type ndjsonParser struct {
	max      int
	line     []byte
	lineT    time.Time // when the last byte of line arrived
	lineCut  bool
	resync   bool // bytes were lost: drop up to the next newline
	sink     eventSink
	cutCount int
}

func (n *ndjsonParser) init(max int, sink eventSink) {
	*n = ndjsonParser{max: max, sink: sink, line: n.line[:0]}
}

func (n *ndjsonParser) write(p []byte, t time.Time) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !n.resync {
				n.line, n.lineCut = appendCappedCut(n.line, p, n.max+1, n.lineCut)
				n.lineT = t
			}
			return
		}
		line := p[:i]
		if len(n.line) > 0 || n.lineCut {
			n.line, n.lineCut = appendCappedCut(n.line, line, n.max+1, n.lineCut)
			line = n.line
		}
		if n.resync {
			n.resync = false
		} else {
			n.emit(line, t)
		}
		n.line, n.lineCut = keepSmall(n.line), false
		p = p[i+1:]
	}
}

func (n *ndjsonParser) emit(line []byte, t time.Time) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) == 0 && !n.lineCut {
		return
	}
	cut := n.lineCut
	if len(line) > n.max {
		line, cut = line[:n.max], true
	}
	if cut {
		n.cutCount++
	}
	n.sink.event(StreamEvent{Time: t, Data: line, Truncated: cut})
}

// end delivers a last line that had no newline when the body ends,
// stamped with the time its last byte came, not the time of the end.
func (n *ndjsonParser) end() {
	if !n.resync && (len(n.line) > 0 || n.lineCut) {
		n.emit(n.line, n.lineT)
	}
	n.line, n.lineCut, n.resync = n.line[:0], false, false
}

func (n *ndjsonParser) gap() {
	n.line, n.lineCut = n.line[:0], false
	n.resync = true
}
