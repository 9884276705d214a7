package decode

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A FuzzHTTP2 input is FuzzHTTP's (two streams and a script of feeds and
// losses) and a mode: bit 0 set says the capture joined the connection
// (JoinHTTP2), else the client preface is fed first (in place of one at
// the start of the client's stream) so that detection switches to
// HTTP/2; bit 1 set makes ingress the client.
func runH2Script(t *testing.T, egress, ingress, script, mode []byte, bytewise bool) result {
	var m byte
	if len(mode) > 0 {
		m = mode[0]
	}
	client := Egress
	if m&2 != 0 {
		client = Ingress
	}
	streams := [2][]byte{egress, ingress}
	rec := newRecorder(t, base)
	lim := fuzzLimits
	lim.MaxStreams = 4 // small, so that the bound is reached
	c := NewConn(lim, rec)
	if m&1 != 0 {
		c.JoinHTTP2(client)
	}
	feed := func(dir Direction, tm time.Time, b []byte) {
		if !bytewise {
			c.Feed(dir, tm, b)
			return
		}
		for i := range b {
			c.Feed(dir, tm, b[i:i+1])
			checkH2Bounded(t, c)
		}
	}
	if m&1 == 0 {
		// The preface first, so that detection switches to HTTP/2.
		streams[client] = bytes.TrimPrefix(streams[client], []byte(clientPreface))
		feed(client, base, []byte(clientPreface))
	}
	now := int64(0)
	for _, s := range script {
		dir, skip, n := scriptStep(s)
		st := &streams[dir]
		n = min(n, len(*st))
		now++
		if skip {
			c.Skip(dir, base.Add(time.Duration(now)), n)
		} else {
			feed(dir, base.Add(time.Duration(now)), (*st)[:n])
		}
		*st = (*st)[n:]
		checkBounded(t, c)
		checkH2Bounded(t, c)
	}
	for d, st := range streams {
		now++
		feed(Direction(d), base.Add(time.Duration(now)), st)
	}
	c.Close(base.Add(time.Duration(now + 1)))
	rec.allDone()
	checkH2Bounded(t, c)
	if !c.HTTP2() {
		t.Fatal("not decoded as HTTP/2")
	}
	if rec.maxBody > fuzzLimits.MaxBodyBytes || rec.maxData > fuzzLimits.MaxEventBytes {
		t.Fatalf("body of %d or event of %d bytes over the limits", rec.maxBody, rec.maxData)
	}
	return result{Records: rec.recs, Stats: c.Stats()}
}

// FuzzHTTP2 feeds random HTTP/2 conversations with random losses, in the
// script's pieces and again one byte per Feed (each byte with the time of
// its piece): both must tell the Sink the same, in the same order, count
// the same, stay within the limits and end every exchange once. HPACK
// state lives across frames, so a difference shows state lost or kept
// wrongly at some split.
func FuzzHTTP2(f *testing.F) {
	f.Add([]byte(clientPreface), []byte{0, 0, 0, 4, 0, 0, 0, 0, 0}, []byte{0, 1}, []byte{0})
	f.Fuzz(func(t *testing.T, egress, ingress, script, mode []byte) {
		if len(egress)+len(ingress) > 1<<16 {
			return // byte-wise feeding is quadratic in nothing, but slow
		}
		whole := runH2Script(t, egress, ingress, script, mode, false)
		single := runH2Script(t, egress, ingress, script, mode, true)
		if !reflect.DeepEqual(whole, single) {
			w, _ := json.MarshalIndent(whole, "", "  ")
			s, _ := json.MarshalIndent(single, "", "  ")
			t.Fatalf("byte by byte differs:\n%s", lineDiff(string(w), string(s)))
		}
	})
}

// TestHTTP2FuzzSeedsCurrent keeps the FuzzHTTP2 seed corpus made from the
// HTTP/2 fixtures, detected and joined, in step with them.
func TestHTTP2FuzzSeedsCurrent(t *testing.T) {
	for _, path := range h2FixturePaths(t) {
		f := loadFixture(t, path)
		eg, in, sc := encodeScript(f)
		writeSeed(t, "FuzzHTTP2", f.name, eg, in, sc, []byte{0})
		writeSeed(t, "FuzzHTTP2", f.name+"_server", in, eg, flipDirs(sc), []byte{2})
		if strings.Contains(f.name, "upgrade") {
			continue
		}
		// Joined after the opening (preface and SETTINGS both ways).
		joined := &fixture{lim: f.lim, ops: f.ops[3:]}
		eg2, in2, sc2 := encodeScript(joined)
		writeSeed(t, "FuzzHTTP2", f.name+"_joined", eg2, in2, sc2, []byte{1})
	}
}
