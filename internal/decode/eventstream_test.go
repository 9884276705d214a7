package decode

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"
	"testing"
	"time"
)

// esHeader is one event-stream header as written on the wire: its value
// type and the value's bytes (for types 6 and 7 without their length).
type esHeader struct {
	name string
	typ  byte
	val  []byte
}

func esStr(name, v string) esHeader { return esHeader{name, esString, []byte(v)} }

// esMessage encodes one event-stream message, written here from the
// format's description so that the parser is checked against it.
func esMessage(headers []esHeader, payload []byte) []byte {
	var h []byte
	for _, x := range headers {
		h = append(h, byte(len(x.name)))
		h = append(h, x.name...)
		h = append(h, x.typ)
		if x.typ == esString || x.typ == esBytes {
			h = binary.BigEndian.AppendUint16(h, uint16(len(x.val)))
		}
		h = append(h, x.val...)
	}
	total := esMinMessage + len(h) + len(payload)
	m := binary.BigEndian.AppendUint32(nil, uint32(total))
	m = binary.BigEndian.AppendUint32(m, uint32(len(h)))
	m = binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
	m = append(m, h...)
	m = append(m, payload...)
	return binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
}

// esEvent is the usual Bedrock message: an event of a type, JSON payload.
func esEvent(typ, payload string) []byte {
	return esMessage([]esHeader{esStr(":event-type", typ), esStr(":content-type", "application/json"), esStr(":message-type", "event")}, []byte(payload))
}

func esException(typ, payload string) []byte {
	return esMessage([]esHeader{esStr(":exception-type", typ), esStr(":content-type", "application/json"), esStr(":message-type", "exception")}, []byte(payload))
}

// everyHeaderType is a message carrying one header of each value type
// before the ones that name it, so that reading them all is required.
func everyHeaderType() []byte {
	return esMessage([]esHeader{
		{"t", esBoolTrue, nil}, {"f", esBoolFalse, nil}, {"b", esByte, []byte{0xff}},
		{"s", esInt16, []byte{1, 2}}, {"i", esInt32, []byte{1, 2, 3, 4}}, {"l", esInt64, make([]byte, 8)},
		{"bin", esBytes, []byte{0, 1, 2, 7, 7}}, {"ts", esTimestamp, []byte{0, 0, 1, 0x8c, 0, 0, 0, 0}},
		{"id", esUUID, bytes.Repeat([]byte{0xab}, 16)},
		esStr(":message-type", "event"), esStr(":event-type", "metadata"),
	}, []byte(`{"usage":{"inputTokens":3}}`))
}

type esRecord struct {
	typ, name, data string
	cut             bool
	t               time.Time
}

// esList records what the parser hands on.
type esList struct {
	evs  []esRecord
	lost int
}

func (l *esList) event(ev StreamEvent) {
	l.evs = append(l.evs, esRecord{ev.MessageType, ev.Name, string(ev.Data), ev.Truncated, ev.Time})
}
func (l *esList) esLost() { l.lost++ }

// runES feeds data to a parser in the pieces cut says, each stamped with
// its index, and ends the body.
func runES(max int, data []byte, cuts []int) (*esList, Stats) {
	var st Stats
	l := &esList{}
	var p esParser
	p.init(max, &st, l)
	prev := 0
	for i, c := range append(cuts, len(data)) {
		p.write(data[prev:c], base.Add(time.Duration(i)))
		prev = c
	}
	p.end()
	return l, st
}

func TestEventStreamEveryHeaderType(t *testing.T) {
	l, st := runES(1<<20, everyHeaderType(), nil)
	if len(l.evs) != 1 || l.evs[0].typ != "event" || l.evs[0].name != "metadata" || l.evs[0].data != `{"usage":{"inputTokens":3}}` {
		t.Fatalf("got %+v", l.evs)
	}
	if st != (Stats{}) || l.lost != 0 {
		t.Errorf("stats %+v, lost %d", st, l.lost)
	}
}

// TestEventStreamSplits feeds a stream at every split in two and byte by
// byte: the same messages, each stamped with the write of its last byte.
func TestEventStreamSplits(t *testing.T) {
	msgs := [][]byte{
		esEvent("messageStart", `{"p":"abcd","role":"assistant"}`),
		everyHeaderType(),
		esMessage(nil, nil), // no headers, no payload: an event by default
		esException("throttlingException", `{"message":"Too many requests"}`),
	}
	stream := bytes.Join(msgs, nil)
	ends := []int{}
	off := 0
	for _, m := range msgs {
		off += len(m)
		ends = append(ends, off)
	}
	want := []esRecord{
		{"event", "messageStart", `{"p":"abcd","role":"assistant"}`, false, time.Time{}},
		{"event", "metadata", `{"usage":{"inputTokens":3}}`, false, time.Time{}},
		{"event", "", "", false, time.Time{}},
		{"exception", "throttlingException", `{"message":"Too many requests"}`, false, time.Time{}},
	}
	check := func(what string, l *esList, st Stats, cuts []int) {
		t.Helper()
		if st != (Stats{}) || l.lost != 0 || len(l.evs) != len(want) {
			t.Fatalf("%s: stats %+v lost %d events %+v", what, st, l.lost, l.evs)
		}
		for i, ev := range l.evs {
			// The piece holding the message's last byte.
			piece := 0
			for piece < len(cuts) && cuts[piece] < ends[i] {
				piece++
			}
			w := want[i]
			w.t = base.Add(time.Duration(piece))
			if ev != w {
				t.Fatalf("%s: message %d = %+v, want %+v", what, i, ev, w)
			}
		}
	}
	l, st := runES(1<<20, stream, nil)
	check("whole", l, st, nil)
	for k := 1; k < len(stream); k++ {
		l, st := runES(1<<20, stream, []int{k})
		check("cut", l, st, []int{k})
	}
	var single []int
	for k := 1; k < len(stream); k++ {
		single = append(single, k)
	}
	l, st = runES(1<<20, stream, single)
	check("single bytes", l, st, single)
}

func TestEventStreamLosses(t *testing.T) {
	good1 := esEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`)
	good2 := esEvent("messageStop", `{"stopReason":"end_turn"}`)
	badCRC := esEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":" there"}}`)
	badCRC[len(badCRC)-10] ^= 0x20 // a payload byte changed in flight
	badPrelude := esEvent("metadata", `{"usage":{}}`)
	badPrelude[9] ^= 1
	hugeLen := esEvent("metadata", `{}`)
	binary.BigEndian.PutUint32(hugeLen[4:], 1<<30) // headers longer than the message,
	binary.BigEndian.PutUint32(hugeLen[8:], crc32.ChecksumIEEE(hugeLen[:8]))
	unknownType := esMessage([]esHeader{{"x", 10, nil}, esStr(":event-type", "messageStop")}, []byte(`{}`))
	shortString := esMessage([]esHeader{esStr(":event-type", "messageStop")}, []byte(`{}`))
	binary.BigEndian.PutUint16(shortString[12+1+len(":event-type")+1:], 200) // runs past the headers
	binary.BigEndian.PutUint32(shortString[len(shortString)-4:], crc32.ChecksumIEEE(shortString[:len(shortString)-4]))

	tests := []struct {
		name    string
		stream  []byte
		names   []string
		lost    int
		st      EventStreamStats
		discard int64
	}{
		{"message CRC", cat(good1, badCRC, good2), []string{"contentBlockDelta", "messageStop"}, 1, EventStreamStats{CRCErrors: 1}, 0},
		{"prelude CRC drops the rest", cat(good1, badPrelude, good2), []string{"contentBlockDelta"}, 1, EventStreamStats{PreludeErrors: 1}, int64(len(badPrelude) + len(good2))},
		{"impossible lengths", cat(good1, hugeLen, good2), []string{"contentBlockDelta"}, 1, EventStreamStats{PreludeErrors: 1}, int64(len(hugeLen) + len(good2))},
		{"unknown header type", cat(unknownType, good2), []string{"messageStop"}, 1, EventStreamStats{Malformed: 1}, 0},
		{"string past the headers", cat(shortString, good2), []string{"messageStop"}, 1, EventStreamStats{Malformed: 1}, 0},
		{"body ends inside a message", cat(good1, good2[:20]), []string{"contentBlockDelta"}, 1, EventStreamStats{Malformed: 1}, 20},
	}
	for _, tc := range tests {
		for _, cuts := range [][]int{nil, {5}, {len(tc.stream) - 3}, {1, 2, 3, 40, 41}} {
			if len(cuts) > 0 && cuts[len(cuts)-1] >= len(tc.stream) {
				continue
			}
			l, st := runES(1<<20, tc.stream, cuts)
			var names []string
			for _, ev := range l.evs {
				names = append(names, ev.name)
			}
			if strings.Join(names, ",") != strings.Join(tc.names, ",") || l.lost != tc.lost || st.EventStream != tc.st || st.BytesDiscarded != tc.discard {
				t.Errorf("%s, cuts %v: events %v lost %d stats %+v discarded %d; want %v %d %+v %d",
					tc.name, cuts, names, l.lost, st.EventStream, st.BytesDiscarded, tc.names, tc.lost, tc.st, tc.discard)
			}
		}
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// A payload over the limit is delivered cut, CRC still checked over all
// of it, and memory stays within the limit.
func TestEventStreamCutPayload(t *testing.T) {
	big := esEvent("chunk", `{"bytes":"`+strings.Repeat("A", 500)+`"}`)
	next := esEvent("chunk", `{"bytes":"QQ=="}`)
	for _, cuts := range [][]int{nil, {100}, {13, 14, 300}} {
		var st Stats
		l := &esList{}
		var p esParser
		p.init(64, &st, l)
		prev := 0
		stream := cat(big, next)
		for _, c := range append(cuts, len(stream)) {
			p.write(stream[prev:c], base)
			prev = c
			if cap(p.buf) > 4096 {
				t.Fatalf("buffer grew to %d", cap(p.buf))
			}
		}
		if len(l.evs) != 2 || !l.evs[0].cut || len(l.evs[0].data) != 64 || !strings.HasPrefix(`{"bytes":"AAAA`, l.evs[0].data[:14]) || l.evs[1].cut || l.evs[1].data != `{"bytes":"QQ=="}` {
			t.Errorf("cuts %v: %+v", cuts, l.evs)
		}
	}
	// A corrupt byte past the kept prefix is still caught.
	bad := bytes.Clone(big)
	bad[len(bad)-8] ^= 1
	l, st := runES(64, bad, []int{50})
	if len(l.evs) != 0 || st.EventStream.CRCErrors != 1 {
		t.Errorf("corruption past the limit: %+v %+v", l.evs, st)
	}
}

// A gap in the body loses the framing: nothing after it is trusted.
func TestEventStreamGap(t *testing.T) {
	var st Stats
	l := &esList{}
	var p esParser
	p.init(1<<20, &st, l)
	a, b := esEvent("messageStart", `{}`), esEvent("messageStop", `{}`)
	p.write(a[:20], base)
	p.gap()
	p.write(a[30:], base)
	p.write(b, base)
	p.end()
	if len(l.evs) != 0 || st.BytesDiscarded != int64(len(a)-30+len(b)) {
		t.Errorf("after a gap: %+v, stats %+v", l.evs, st)
	}
}

func TestEventStreamMessagesWhole(t *testing.T) {
	bad := esEvent("contentBlockDelta", `{"delta":{"text":"x"}}`)
	bad[len(bad)-1] ^= 0xff
	var names []string
	dropped := EventStreamMessages(cat(esEvent("messageStart", `{}`), bad, esEvent("messageStop", `{}`)), func(ev StreamEvent) {
		names = append(names, ev.Name)
	})
	if strings.Join(names, ",") != "messageStart,messageStop" || dropped != 1 {
		t.Errorf("got %v, %d dropped", names, dropped)
	}
}

// refES decodes a whole event stream straight from the format's
// description, to check the incremental parser against.
func refES(b []byte, max int) (evs []esRecord, lost int) {
	for len(b) >= esPreludeLen {
		total := int(binary.BigEndian.Uint32(b))
		hlen := int(binary.BigEndian.Uint32(b[4:]))
		if crc32.ChecksumIEEE(b[:8]) != binary.BigEndian.Uint32(b[8:]) || total < 16 || hlen > total-16 || hlen > esMaxHeaders {
			return evs, lost + 1
		}
		if len(b) < total {
			return evs, lost + 1
		}
		m := b[:total]
		b = b[total:]
		if crc32.ChecksumIEEE(m[:total-4]) != binary.BigEndian.Uint32(m[total-4:]) {
			lost++
			continue
		}
		var p esParser
		typ, name, ok := p.headers(m[12 : 12+hlen])
		if !ok {
			lost++
			continue
		}
		if typ == "" {
			typ = "event"
		}
		payload := m[12+hlen : total-4]
		cut := len(payload) > max
		if cut {
			payload = payload[:max]
		}
		evs = append(evs, esRecord{typ, name, string(payload), cut, time.Time{}})
	}
	if len(b) > 0 {
		lost++
	}
	return evs, lost
}

// FuzzEventStream feeds any bytes, split anywhere, to the parser: the
// same messages as the whole-input reference, within the limit, and every
// drop reported.
func FuzzEventStream(f *testing.F) {
	f.Add(cat(esEvent("messageStart", `{"role":"assistant"}`), everyHeaderType()), []byte{3, 17})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		const max = 48
		want, wantLost := refES(data, max)
		var st Stats
		l := &esList{}
		var p esParser
		p.init(max, &st, l)
		feedPieces(data, cuts, func(b []byte) {
			p.write(b, base)
			if len(p.buf) > esMaxHeaders+max {
				t.Fatalf("buffer %d over the limit", len(p.buf))
			}
		})
		p.end()
		if len(l.evs) != len(want) || l.lost != wantLost {
			t.Fatalf("%d messages, %d lost; reference %d, %d", len(l.evs), l.lost, len(want), wantLost)
		}
		for i := range want {
			l.evs[i].t = time.Time{}
			if l.evs[i] != want[i] {
				t.Fatalf("message %d = %+v, reference %+v", i, l.evs[i], want[i])
			}
		}
		es := st.EventStream
		if int(es.CRCErrors+es.PreludeErrors+es.Malformed) != l.lost {
			t.Fatalf("%d lost but counted %+v", l.lost, es)
		}
	})
}

// A Bedrock ConverseStream of 1000 content deltas in chunked coding, one
// message per read as the service flushes them.
func BenchmarkFeedEventStream(b *testing.B) {
	var resp bytes.Buffer
	resp.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n")
	head := resp.Len()
	ends := []int{}
	for i := 0; i < 1000; i++ {
		m := esEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"tok`+strings.Repeat("x", i%7)+`"},"p":"abcdefgh"}`)
		resp.WriteString(strconv.FormatInt(int64(len(m)), 16) + "\r\n")
		resp.Write(m)
		resp.WriteString("\r\n")
		ends = append(ends, resp.Len())
	}
	resp.WriteString("0\r\n\r\n")
	ends = append(ends, resp.Len())
	all := resp.Bytes()
	req := []byte("POST /model/amazon.nova-lite-v1%3A0/converse-stream HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
	b.SetBytes(int64(len(all)))
	b.ReportAllocs()
	sink := &nopSink{}
	t := time.Now()
	for b.Loop() {
		c := NewConn(Limits{}, sink)
		c.Feed(Egress, t, req)
		c.Feed(Ingress, t, all[:head])
		prev := head
		for _, e := range ends {
			c.Feed(Ingress, t, all[prev:e])
			prev = e
		}
		c.Close(t)
	}
	if sink.events < 1000 {
		b.Fatalf("%d events", sink.events)
	}
}
