package capture

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkParseRecord is the reader's per-record work: a raw ring record,
// laid out by the generated header type as the kernel writes it, turned
// into an Event. Data records carry payloads from one SSE event up to the
// kernel's largest chunk; the payload is not copied, so their cost should
// not grow with it. The comm string is the only allocation.
func BenchmarkParseRecord(b *testing.B) {
	cases := []struct {
		name string
		raw  []byte
	}{
		{"data-100B", dataRecord(100)},
		{"data-4KiB", dataRecord(4 << 10)},
		{"data-16KiB", dataRecord(chunkMax)},
		{"open-ipv4", openRecord(unix.AF_INET)},
		{"open-ipv6", openRecord(unix.AF_INET6)},
		{"close", record(observerEventKindKIND_CLOSE, nil)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p := &Probe{clock: newClock()}
			var ev Event
			b.ReportAllocs()
			for b.Loop() {
				if !p.parse(c.raw, &ev) {
					b.Fatal("record refused")
				}
			}
			if ev.Comm != "python3" || ev.Conn.PID != 4242 {
				b.Fatalf("parsed %+v", ev)
			}
			switch ev.Kind {
			case Data:
				if len(ev.Data) != len(c.raw)-headerSize {
					b.Fatalf("parsed %d payload bytes of %d", len(ev.Data), len(c.raw)-headerSize)
				}
			case Open:
				if ev.Remote.Port() != 11434 || !ev.Remote.Addr().IsPrivate() {
					b.Fatalf("parsed remote %v", ev.Remote)
				}
			}
		})
	}
}

// chunkMax is the most payload the kernel puts in one record.
const chunkMax = len(observerRecord{}.Data)

// benchHeader is a header as the kernel fills it for a Python client.
func benchHeader() observerEvent {
	h := observerEvent{
		TsNs:   uint64(time.Duration(3600) * time.Second),
		ConnId: 17,
		Offset: 1 << 20,
		Pid:    4242,
		Tid:    4243,
		Fd:     7,
		Dir:    uint8(observerDirectionDIR_INGRESS),
		Role:   uint8(observerRoleROLE_CLIENT),
	}
	for i, c := range "python3" {
		h.Comm[i] = int8(c)
	}
	return h
}

// record lays out a record of kind with body after its header. Allocations
// of this size are 8-byte aligned, as ring records are.
func record(kind observerEventKind, body []byte) []byte {
	h := benchHeader()
	h.Kind, h.Len = uint8(kind), uint32(len(body))
	raw := make([]byte, headerSize+len(body))
	*(*observerEvent)(unsafe.Pointer(&raw[0])) = h
	copy(raw[headerSize:], body)
	return raw
}

func dataRecord(n int) []byte {
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = "data: {}\n\n"[i%10]
	}
	return record(observerEventKindKIND_DATA, payload)
}

func openRecord(family uint16) []byte {
	ci := observerConnInfo{Family: family, LocalPort: 51234, RemotePort: 11434}
	switch family {
	case unix.AF_INET:
		copy(ci.LocalAddr[:], []byte{10, 0, 0, 5})
		copy(ci.RemoteAddr[:], []byte{10, 0, 0, 9})
	case unix.AF_INET6:
		copy(ci.LocalAddr[:], []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5})
		copy(ci.RemoteAddr[:], []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9})
	default:
		panic(fmt.Sprint("family ", family))
	}
	body := unsafe.Slice((*byte)(unsafe.Pointer(&ci)), connInfoSize)
	return record(observerEventKindKIND_OPEN, body)
}
