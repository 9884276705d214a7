package genai

import (
	"bytes"
	"encoding/binary"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader reads the few fields a Call needs straight out of JSON text,
// in one pass that also checks the whole text is well-formed, without
// reflection and without allocating: it is what every stream event, request
// body and response body goes through, so it is the observer's inner loop.
//
// Each wire struct has a readFrom method that walks its object with
// openObject/nextMember and picks fields by key; everything else is skipped
// (and checked). The rules are encoding/json's, so that the struct tags
// stay the specification and encoding/json the reference the fuzz test
// compares against: keys match exactly, else case-insensitively; a value of
// an unexpected type is skipped, not fatal; null leaves a field as it was
// (a span keeps it); arrays decode into a slice's old elements in place;
// nesting deeper than 10000 is an error. One departure, for memory's sake:
// an array fills at most maxSliceElems elements.
//
// After a syntax error every method returns at once and ok reports false;
// the fields read until then are meaningless and the caller drops them.
type jsonReader struct {
	b   []byte
	i   int
	err bool
	// depth counts the containers open, those being read into fields and
	// those being skipped alike.
	depth int
	// key is the current member's name: a slice of b, or of keyBuf when it
	// held escapes.
	key    []byte
	keyBuf []byte
	// skipStack holds the kinds of the containers being skipped.
	skipStack []byte
	// elems counts the elements of the last array skipped.
	elems int
}

// maxJSONDepth is encoding/json's nesting limit, kept so both accept the same texts.
const maxJSONDepth = 10000

// jsonObject is a wire struct that reads itself from a jsonReader.
type jsonObject interface {
	readFrom(r *jsonReader)
}

// decode reads b, which must be exactly one JSON value, into v, and reports
// whether b was well-formed. A value of another type than an object is
// well-formed but fills nothing.
func (r *jsonReader) decode(b []byte, v jsonObject) bool {
	r.reset(b)
	v.readFrom(r)
	return r.end()
}

// readJSON is decode with a reader of its own, for texts read once per
// call rather than per event.
func readJSON(b []byte, v jsonObject) bool {
	var r jsonReader
	return r.decode(b, v)
}

// scratch holds zeroed wire structs to parse one event or body into, so
// that a call waiting for its next event holds none: the largest are
// several hundred bytes, and a slow stream spends nearly all its life
// between events.
type scratch[T any] struct{ pool sync.Pool }

// get returns a zeroed *T.
func (s *scratch[T]) get() *T {
	if v, ok := s.pool.Get().(*T); ok {
		return v
	}
	return new(T)
}

// put zeroes v, whose spans point into the text it was read from, and
// keeps it for the next get.
func (s *scratch[T]) put(v *T) {
	var zero T
	*v = zero
	s.pool.Put(v)
}

// readPtr reads a value into a pointer field as encoding/json does: null
// makes it nil, anything else allocates it (if nil) and reads into it.
func readPtr[T any](r *jsonReader, dst **T, read func(*T, *jsonReader)) {
	if r.peek() == 'n' {
		r.literal("null")
		if !r.err {
			*dst = nil
		}
		return
	}
	if *dst == nil {
		*dst = new(T)
	}
	read(*dst, r)
}

// readFrom checks and skips any value.
func (skipValue) readFrom(r *jsonReader) { r.skip() }

func (r *jsonReader) reset(b []byte) {
	r.b, r.i, r.err, r.depth, r.key = b, 0, false, 0, nil
	r.skipStack = r.skipStack[:0]
	if cap(r.keyBuf) > maxKeptKey {
		r.keyBuf = nil // a freak key does not stay for the call's life
	}
}

// maxKeptKey is the largest escaped key whose buffer is kept for the next text.
const maxKeptKey = 4 << 10

// maxSliceElems bounds the elements an array is read into; later ones are
// checked and skipped. Wire structs are small, but a 1 MiB event of empty
// objects would otherwise make a third of a million of them, and the
// parsers never use more than a few (output.go bounds choices and tools).
const maxSliceElems = 1024

// end checks that nothing but whitespace follows the value.
func (r *jsonReader) end() bool {
	r.ws()
	if r.i != len(r.b) {
		r.fail()
	}
	ok := !r.err
	r.b, r.key = nil, nil // hold no reference to the input
	return ok
}

// ok reports whether no syntax error was met so far.
func (r *jsonReader) ok() bool { return !r.err }

func (r *jsonReader) fail() {
	r.err = true
	r.i = len(r.b)
}

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (r *jsonReader) peek() byte {
	r.ws()
	if r.i >= len(r.b) {
		return 0
	}
	return r.b[r.i]
}

// push enters a container.
func (r *jsonReader) push() bool {
	r.depth++
	if r.depth > maxJSONDepth {
		r.fail()
		return false
	}
	return true
}

// openObject starts reading an object: true with r.key set to its first
// member's name (the value is next), false when there is nothing to read
// (an empty object, null, a value of another type, which is skipped, or an
// error).
func (r *jsonReader) openObject() bool {
	switch r.peek() {
	case '{':
		if !r.push() {
			return false
		}
		r.i++
		if r.peek() == '}' {
			r.i++
			r.depth--
			return false
		}
		return r.readKey()
	case 'n':
		r.literal("null")
		return false
	}
	r.skip()
	return false
}

// nextMember moves past a member's value to the next member: true with
// r.key set, false at the object's end or on error.
func (r *jsonReader) nextMember() bool {
	switch r.peek() {
	case ',':
		r.i++
		r.ws()
		return r.readKey()
	case '}':
		r.i++
		r.depth--
		return false
	}
	r.fail()
	return false
}

// readKey reads a member's name and its colon.
func (r *jsonReader) readKey() bool {
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		r.fail()
		return false
	}
	start := r.i
	escaped := r.skipString()
	if r.err {
		return false
	}
	if escaped {
		r.keyBuf = appendUnquoted(r.keyBuf[:0], r.b[start:r.i])
		r.key = r.keyBuf
	} else {
		r.key = r.b[start+1 : r.i-1]
	}
	if r.peek() != ':' {
		r.fail()
		return false
	}
	r.i++
	return true
}

// refold replaces a key that matched no field by the field name it equals
// case-insensitively, as encoding/json matches; false when there is none.
func (r *jsonReader) refold() bool {
	if !mayFold(r.key) {
		return false
	}
	var buf [64]byte
	folded := foldKey(buf[:0], r.key)
	name, ok := foldedNames[string(folded)]
	if !ok || string(r.key) == name {
		return false
	}
	r.key = append(r.keyBuf[:0], name...)
	r.keyBuf = r.key
	return true
}

// foldKey folds s for case-insensitive comparison: ASCII letters to upper
// case and every other rune to the smallest rune of its case-folding orbit,
// so that two names fold alike exactly when bytes.EqualFold says they match.
func foldKey(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		i += n
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < r {
				r = f
			}
		}
		dst = utf8.AppendRune(dst, r)
	}
	return dst
}

// foldedNames maps the folded form of every field name the readers know to
// the name; filled from wireStructs at start-up.
var foldedNames = map[string]string{}

// foldFilter has the bit of foldHash set for every name in foldedNames, so
// that most keys no field wants are passed over without a map lookup.
var foldFilter [1024 / 64]uint64

func registerNames(names ...string) {
	for _, n := range names {
		foldedNames[string(foldKey(nil, []byte(n)))] = n
		h := foldHash([]byte(n))
		foldFilter[h/64] |= 1 << (h % 64)
	}
}

// foldHash hashes a name's length and its first two and last bytes, ASCII
// letters folded. A name with other bytes than ASCII may fold to an ASCII
// one (the Kelvin sign to K), so it is not hashed: mayFold lets it through.
func foldHash(s []byte) uint {
	f := func(c byte) uint { return uint(c &^ 0x20) } // upper case for letters; the rest differ alike
	n := uint(len(s))
	if n < 2 {
		return n % 1024
	}
	return (n*131 + f(s[0])*31 + f(s[1])*7 + f(s[n-1])) % 1024
}

// mayFold reports whether s might equal a known name case-insensitively.
func mayFold(s []byte) bool {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	h := foldHash(s)
	return foldFilter[h/64]&(1<<(h%64)) != 0
}

// value returns the next value's text, checked, or nil after an error.
func (r *jsonReader) value() []byte {
	r.ws()
	start := r.i
	r.skip()
	if r.err {
		return nil
	}
	return r.b[start:r.i]
}

// skip checks and passes over one value.
func (r *jsonReader) skip() {
	if r.err {
		return
	}
	switch c := r.peek(); c {
	case '"':
		r.skipString()
	case '{', '[':
		r.skipContainer()
	case 't':
		r.literal("true")
	case 'f':
		r.literal("false")
	case 'n':
		r.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			r.skipNumber()
		} else {
			r.fail()
		}
	}
}

func (r *jsonReader) literal(lit string) {
	if len(r.b)-r.i < len(lit) || string(r.b[r.i:r.i+len(lit)]) != lit {
		r.fail()
		return
	}
	r.i += len(lit)
}

// skipNumber passes over -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func (r *jsonReader) skipNumber() {
	b, i := r.b, r.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		r.fail()
		return
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			r.fail()
			return
		}
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			r.fail()
			return
		}
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	r.i = i
}

// plainByte marks the string bytes that need no attention: not a quote, a
// backslash or a control character.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipString passes over a string starting at r.i, and reports whether it
// held escapes.
func (r *jsonReader) skipString() (escaped bool) {
	b, i := r.b, r.i+1
	for {
		// Most strings are short: byte by byte first, then eight bytes at a
		// time while none needs attention, then byte by byte to the stop.
		for n := i + 16; i < len(b) && i < n && plainByte[b[i]]; i++ {
		}
		if i+8 <= len(b) && plainByte[b[i]] {
			for i+8 <= len(b) && !specialIn(binary.LittleEndian.Uint64(b[i:])) {
				i += 8
			}
		}
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			r.fail()
			return false
		}
		switch b[i] {
		case '"':
			r.i = i + 1
			return escaped
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				r.fail()
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if hex4(b[i+2:]) < 0 {
					r.fail()
					return false
				}
				i += 6
			default:
				r.fail()
				return false
			}
		default: // a control character
			r.fail()
			return false
		}
	}
}

// specialIn reports whether any of the eight bytes of w is a quote, a
// backslash or a control character (below 0x20).
func specialIn(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zeroIn := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	below20 := (w - 0x20*ones) & ^w & highs
	return below20|zeroIn(w^('"'*ones))|zeroIn(w^('\\'*ones)) != 0
}

// hex4 decodes the four hex digits at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var v rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | rune(c)
	}
	return v
}

// skipContainer passes over an object or array without recursion, keeping
// the kinds of the open containers on skipStack.
func (r *jsonReader) skipContainer() {
	base := len(r.skipStack)
	elems := 0
	for {
		// At the start of a value.
		if len(r.skipStack) == base+1 && r.skipStack[base] == '[' {
			elems++
		}
		switch c := r.peek(); c {
		case '{', '[':
			if !r.push() {
				return
			}
			r.i++
			r.skipStack = append(r.skipStack, c)
			close := byte('}')
			if c == '[' {
				close = ']'
			}
			if r.peek() == close {
				r.i++
				r.depth--
				r.skipStack = r.skipStack[:len(r.skipStack)-1]
				break
			}
			if c == '{' && !r.skipKey() {
				return
			}
			continue
		default:
			r.skip()
		}
		// After a value: close containers or move to the next member.
		for {
			if r.err || len(r.skipStack) == base {
				r.elems = elems
				return
			}
			top := r.skipStack[len(r.skipStack)-1]
			c := r.peek()
			if c == ',' {
				r.i++
				if top == '{' && !r.skipKey() {
					return
				}
				break
			}
			if (top == '{' && c == '}') || (top == '[' && c == ']') {
				r.i++
				r.depth--
				r.skipStack = r.skipStack[:len(r.skipStack)-1]
				continue
			}
			r.fail()
			return
		}
	}
}

// skipKey passes over a member name and its colon.
func (r *jsonReader) skipKey() bool {
	if r.peek() != '"' {
		r.fail()
		return false
	}
	r.skipString()
	if r.err || r.peek() != ':' {
		r.fail()
		return false
	}
	r.i++
	return true
}

// Field readers: each consumes one value. A value of another type is
// skipped and leaves the field unchanged, as encoding/json does.

// span keeps the value's text (null included).
func (r *jsonReader) span(dst *span) {
	if v := r.value(); v != nil {
		*dst = v
	}
}

func (r *jsonReader) optInt(dst *optInt) {
	if v := r.value(); v != nil {
		dst.set(v)
	}
}

func (r *jsonReader) optFloat(dst *optFloat) {
	if v := r.value(); v != nil {
		dst.set(v)
	}
}

func (r *jsonReader) optBool(dst *optBool) {
	if v := r.value(); v != nil {
		dst.set(v)
	}
}

// str reads a string into a Go string, which outlives the input.
func (r *jsonReader) str(dst *string) {
	v := r.value()
	if len(v) > 0 && v[0] == '"' {
		*dst = unquote(v)
	}
}

// list keeps the value's text and, for an array, its length, counted on
// the way over it rather than in a second pass.
func (r *jsonReader) list(dst *listSpan) {
	r.ws()
	start := r.i
	r.skip()
	if r.err {
		return
	}
	dst.raw, dst.n = r.b[start:r.i], 0
	if dst.raw[0] == '[' {
		dst.n = r.elems
	}
}

func (r *jsonReader) stopList(dst *stopList) {
	if v := r.value(); v != nil {
		dst.set(v)
	}
}

// readSlice reads an array into *dst element by element with elem,
// reusing the slice's old elements in place as encoding/json does; null
// empties it to nil and an empty array to a non-nil empty slice.
func readSlice[T any](r *jsonReader, dst *[]T, elem func(*T, *jsonReader)) {
	switch r.peek() {
	case 'n':
		r.literal("null")
		if !r.err {
			*dst = nil
		}
		return
	case '[':
	default:
		r.skip()
		return
	}
	if !r.push() {
		return
	}
	r.i++
	s := (*dst)[:0]
	n := 0
	if r.peek() != ']' {
		for {
			if n >= maxSliceElems {
				r.skip()
			} else {
				if n < cap(s) {
					s = s[:n+1]
				} else {
					var zero T
					s = append(s, zero)
				}
				elem(&s[n], r)
			}
			n++
			if r.err {
				return
			}
			c := r.peek()
			if c == ',' {
				r.i++
				continue
			}
			if c != ']' {
				r.fail()
				return
			}
			break
		}
	}
	r.i++
	r.depth--
	if n == 0 {
		s = []T{}
	}
	*dst = s
}

// readFrom reads any value as a span, for arrays of them.
func (s *span) readFrom(r *jsonReader) { r.span(s) }

// spanList is an array of any values, each kept as it appeared.
type spanList []span

func (l *spanList) readFrom(r *jsonReader) { readSlice(r, (*[]span)(l), (*span).readFrom) }

// countArray returns how many elements a JSON array holds (0 for anything
// else, or when it is not well-formed).
func countArray(b span) int {
	n := 0
	if !eachElement(b, func([]byte) { n++ }) {
		return 0
	}
	return n
}

// eachElement calls fn with the text of each element of the JSON array b
// and reports whether b was a well-formed array.
func eachElement(b []byte, fn func(v []byte)) bool {
	if len(b) == 0 || b[0] != '[' {
		return false
	}
	var r jsonReader
	r.reset(b)
	r.i++
	r.depth++
	if r.peek() == ']' {
		r.i++
		return r.end()
	}
	for {
		v := r.value()
		if r.err {
			return false
		}
		fn(v)
		switch r.peek() {
		case ',':
			r.i++
			continue
		case ']':
			r.i++
			return r.end()
		}
		r.fail()
		return false
	}
}

// validJSON reports whether b is exactly one well-formed JSON value.
func validJSON(b []byte) bool {
	var r jsonReader
	r.reset(b)
	r.skip()
	return r.end()
}

// unquote decodes a well-formed JSON string literal (quotes included) as
// encoding/json does: escapes resolved, an unpaired surrogate escape and
// every byte of invalid UTF-8 replaced by U+FFFD.
func unquote(s []byte) string {
	inner := s[1 : len(s)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return knownOrString(inner)
	}
	var buf [128]byte
	return string(appendUnquoted(buf[:0], s))
}

// appendUnquoted appends the decoded value of the well-formed string
// literal s to dst.
func appendUnquoted(dst, s []byte) []byte {
	s = s[1 : len(s)-1]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			e := s[i+1]
			i += 2
			switch e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s[i:])
				i += 4
				if utf16.IsSurrogate(r) {
					if len(s)-i >= 6 && s[i] == '\\' && s[i+1] == 'u' {
						if pair := utf16.DecodeRune(r, hex4(s[i+2:])); pair != unicode.ReplacementChar {
							i += 6
							dst = utf8.AppendRune(dst, pair)
							break
						}
					}
					r = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, r)
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			i += n
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}
