package genai

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/llm-observer/llm-observer/internal/decode"
)

// wire renders the fixture as the bytes of one HTTP/1.1 connection: the
// request with a Content-Length, the response chunked (one chunk per event,
// as servers flush them) or with a Content-Length.
type wirePiece struct {
	dir decode.Direction
	t   time.Time
	b   []byte
}

func writeHead(buf *bytes.Buffer, first string, h http.Header, extra string) {
	buf.WriteString(first + "\r\n")
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range h[k] {
			buf.WriteString(k + ": " + v + "\r\n")
		}
	}
	buf.WriteString(extra + "\r\n")
}

func (fx *fixture) wire() []wirePiece {
	reqDir, respDir := decode.Egress, decode.Ingress
	if !fx.clientSide {
		reqDir, respDir = decode.Ingress, decode.Egress
	}
	var pieces []wirePiece
	var req bytes.Buffer
	writeHead(&req, fx.req.Method+" "+fx.req.Target+" "+fx.req.Proto, fx.req.Header, fmt.Sprintf("Content-Length: %d\r\n", len(fx.req.Body)))
	req.Write(fx.req.Body)
	pieces = append(pieces, wirePiece{reqDir, fx.req.Start, req.Bytes()})
	if !fx.hasResp {
		return pieces
	}
	var head bytes.Buffer
	status := fmt.Sprintf("%s %d %s", fx.resp.Proto, fx.resp.Status, http.StatusText(fx.resp.Status))
	if len(fx.events) == 0 {
		writeHead(&head, status, fx.resp.Header, fmt.Sprintf("Content-Length: %d\r\n", len(fx.body)))
		pieces = append(pieces, wirePiece{respDir, fx.resp.Start, head.Bytes()})
		pieces = append(pieces, wirePiece{respDir, fx.end, append([]byte(nil), fx.body...)})
		return pieces
	}
	writeHead(&head, status, fx.resp.Header, "Transfer-Encoding: chunked\r\n")
	pieces = append(pieces, wirePiece{respDir, fx.resp.Start, head.Bytes()})
	for _, ev := range fx.events {
		chunk := fmt.Appendf(nil, "%x\r\n%s\r\n", len(ev.raw), ev.raw)
		pieces = append(pieces, wirePiece{respDir, ev.t, chunk})
	}
	if fx.err == nil {
		pieces = append(pieces, wirePiece{respDir, fx.end, []byte("0\r\n\r\n")})
	}
	return pieces
}

// TestFixturesThroughDecoder runs each fixture through the real decoder
// (decode.Conn) instead of handing the assembler ready-made events, and
// expects the same call.
func TestFixturesThroughDecoder(t *testing.T) {
	for _, path := range fixtures(t) {
		fx := loadFixture(t, path)
		if fx.req.BodyTruncated || fx.err == decode.ErrGap {
			continue // the decoder decides truncation itself
		}
		t.Run(fx.name, func(t *testing.T) {
			want := fx.run(t, captureAll, feedEvents, 0)
			rec := &recorder{t: t}
			ep := testEndpoint
			ep.ServerAddress, ep.ServerPort = want.Endpoint.ServerAddress, want.Endpoint.ServerPort
			a := NewAssembler(captureAll, ep, rec)
			conn := decode.NewConn(decode.Limits{}, a)
			for _, p := range fx.wire() {
				conn.Feed(p.dir, p.t, p.b)
			}
			conn.Close(fx.end)
			if len(rec.ended) != 1 {
				t.Fatalf("%d calls ended, want 1", len(rec.ended))
			}
			got := *rec.ended[0]
			w := want
			if fx.err != nil || !fx.hasResp {
				// The decoder ends a cut exchange at the last byte it saw,
				// not at the close.
				cp := *want
				cp.End = got.End
				w = &cp
			}
			if g, ww := marshalView(t, &got), marshalView(t, w); !bytes.Equal(g, ww) {
				t.Errorf("through the decoder the call differs:\n%s", lineDiff(string(ww), string(g)))
			}
		})
	}
}
