package observer

import (
	"encoding/binary"
	"hash/crc32"
)

// esResponse is an HTTP response whose body is one AWS event-stream
// message, spoiled by spoil after its CRCs were computed.
func esResponse(headers []byte, spoil func(m []byte)) string {
	payload := []byte(`{"contentBlockIndex":0,"delta":{"text":"hi"}}`)
	m := binary.BigEndian.AppendUint32(nil, uint32(16+len(headers)+len(payload)))
	m = binary.BigEndian.AppendUint32(m, uint32(len(headers)))
	m = binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
	m = append(m, headers...)
	m = append(m, payload...)
	m = binary.BigEndian.AppendUint32(m, crc32.ChecksumIEEE(m))
	spoil(m)
	return withLength("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n", string(m))
}

// esEventType is an :event-type header (type 7, a string).
var esEventType = append([]byte("\x0b:event-type\x07\x00\x11"), "contentBlockDelta"...)

// The event-stream loss cases: a payload bit flipped (message CRC), a
// length changed (prelude CRC), and a header of a value type the format
// does not have, under good CRCs.
var (
	esBadCRC     = esResponse(esEventType, func(m []byte) { m[len(m)-8] ^= 1 })
	esBadPrelude = esResponse(esEventType, func(m []byte) { m[5] ^= 1 })
	esBadHeader  = esResponse([]byte("\x01x\x0a"), func([]byte) {})
)
