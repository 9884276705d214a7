package genai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// referenceDecode is what the readers must agree with: encoding/json into
// the same struct, a field of the wrong type skipped rather than fatal.
func referenceDecode(b []byte, v any) bool {
	err := json.Unmarshal(b, v)
	var te *json.UnmarshalTypeError
	return err == nil || errors.As(err, &te)
}

// newWireValues returns a fresh pointer to each wire struct, as a
// jsonObject for the reader and as any for encoding/json.
func newWireValues() []jsonObject {
	var out []jsonObject
	for _, v := range wireStructs {
		out = append(out, reflect.New(reflect.TypeOf(v)).Interface().(jsonObject))
	}
	return out
}

// compareReaders decodes b into every wire struct both ways and reports
// the first disagreement.
func compareReaders(b []byte) error {
	var r jsonReader
	for _, mine := range newWireValues() {
		ref := reflect.New(reflect.TypeOf(mine).Elem()).Interface()
		okRef := referenceDecode(b, ref)
		okMine := r.decode(b, mine)
		if okRef != okMine {
			return fmt.Errorf("%T: well-formed %v, encoding/json says %v", mine, okMine, okRef)
		}
		if okRef && !reflect.DeepEqual(ref, mine) {
			return fmt.Errorf("%T differs:\n got %+v\nwant %+v", mine, mine, ref)
		}
	}
	return nil
}

func TestJSONReaderMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, `[]`, `null`, `1`, `"x"`, `true`, ` {"model":"m"} `,
		// Escapes, in keys and values.
		`{"model":"a\nb\u00e9\ud83d\ude00\"\\\/\b\f\r\t"}`,
		`{"mod\u0065l":"m","id":"x"}`,
		`{"id":"\ud800","model":"\udc00x","object":"\ud800\u0041"}`,
		"{\"id\":\"caf\xc3\xa9 \xff\xfe\",\"model\":\"\xe2\x82\"}",
		// Keys matched case-insensitively, exact ones first.
		`{"MODEL":"a","Model":"b"}`, `{"Model":"b","model":"a"}`, `{"Model":"b"}`,
		"{\"top_\xe2\x84\xaa\":3}", `{"Choices":[{"INDEX":2,"Delta":{"Content":"x"}}]}`,
		`{"finishreason":"x","candidates":[{"FINISHREASON":"STOP"}]}`,
		// Types that do not fit are skipped; null keeps spans, empties slices.
		`{"model":5,"stream":"yes","temperature":"hot","max_tokens":1.5e3,"n":-2}`,
		`{"choices":null}`, `{"choices":[]}`, `{"choices":{}}`, `{"choices":[null,1,"x",{"index":1}]}`,
		`{"usage":null,"error":null,"metrics":{"time_to_first_token_ms":null}}`,
		`{"stop":"x"}`, `{"stop":["a",1,"b\n",null,""]}`, `{"stop":[]}`, `{"stop":""}`, `{"stop":{}}`,
		// Lists keep their text and count their elements.
		`{"messages":[]}`, `{"messages":[[],[[1,2]],{"a":[3,4]},"x,y",5]}`, `{"messages":{"a":[1,2]}}`, `{"messages":null}`,
		`{"contents":[1],"contents":"x"}`, `{"input":"hi"}`, `{"input":[{"type":"message"}],"input":[1,2,3]}`,
		// Pointer fields: null clears, anything else allocates, objects merge.
		`{"function":null}`, `{"function":"x"}`, `{"function":[1]}`, `{"function":{"name":"f"}}`,
		`{"function":{"name":"a"},"function":{"description":"d"}}`, `{"function":{"name":"a"},"function":null}`,
		`{"googleSearch":null,"codeExecution":{},"urlContext":1}`, `{"googleSearch":{"x":[1,{}]},"googleSearch":null}`,
		// Repeated keys: the last wins, objects and arrays merge in place.
		`{"model":"a","model":"b"}`,
		`{"choices":[{"index":1,"text":"a"}],"choices":[{"finish_reason":"stop"}]}`,
		`{"choices":[{"index":1}],"choices":[],"choices":[{"text":"x"}]}`,
		`{"usage":{"prompt_tokens":1},"usage":{"completion_tokens":2}}`,
		// Numbers.
		`{"prompt_tokens":12.0,"completion_tokens":-0,"total_tokens":1e2}`,
		`{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":99999999999999999999}}`,
		`{"temperature":-0.0,"top_p":1E-2,"seed":123456789012345678}`,
		// Malformed.
		``, ` `, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `{"a":01}`, `{"a":1.}`, `{"a":.1}`, `{"a":-}`,
		`{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":"}`,
		`{} {}`, `{}x`, `{"a":[}`, `{"a":{]}`, `{"a" 1}`, `{1:2}`, `{"a":1 "b":2}`, `"\`, `{"a":[1 2]}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"x":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
		`{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	}
	for _, in := range inputs {
		if err := compareReaders([]byte(in)); err != nil {
			t.Errorf("%.80q: %v", in, err)
		}
		if got, want := validJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("%.80q: valid %v, want %v", in, got, want)
		}
	}
}

// TestReadersCoverTags fills every tagged field of every wire struct and
// checks the readers read each one as encoding/json does, so that a field
// added to a struct without a case in its reader fails here.
func TestReadersCoverTags(t *testing.T) {
	for _, v := range wireStructs {
		typ := reflect.TypeOf(v)
		doc := sampleJSON(typ, 0)
		if err := compareReaders([]byte(doc)); err != nil {
			t.Errorf("%s: %v\n%s", typ, err, doc)
		}
		var r jsonReader
		mine := reflect.New(typ).Interface().(jsonObject)
		if !r.decode([]byte(doc), mine) {
			t.Fatalf("%s: sample not read: %s", typ, doc)
		}
		if zero := zeroField(reflect.ValueOf(mine).Elem(), typ.Name()); zero != "" {
			t.Errorf("%s: field %s not read from %s", typ, zero, doc)
		}
	}
}

// sampleJSON is an object giving every tagged field of t a value of its type.
func sampleJSON(t reflect.Type, depth int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", name, sampleValue(f.Type, name, depth))
	}
	b.WriteByte('}')
	return b.String()
}

func sampleValue(t reflect.Type, name string, depth int) string {
	switch t {
	case reflect.TypeOf(span(nil)):
		return fmt.Sprintf("%q", "v-"+name)
	case reflect.TypeOf(optInt{}):
		return "7"
	case reflect.TypeOf(optFloat{}):
		return "0.5"
	case reflect.TypeOf(optBool{}):
		return "true"
	case reflect.TypeOf(stopList(nil)):
		return `["s1","s2"]`
	case reflect.TypeOf(skipValue{}):
		return `{"any":[1]}`
	case reflect.TypeOf(listSpan{}):
		return `[{"role":"user","content":[1,[2]]},"x",[]]`
	}
	switch t.Kind() {
	case reflect.Pointer:
		return sampleValue(t.Elem(), name, depth)
	case reflect.String:
		return fmt.Sprintf("%q", "s-"+name)
	case reflect.Slice:
		return "[" + sampleValue(t.Elem(), name, depth) + "]"
	case reflect.Struct:
		return sampleJSON(t, depth+1)
	}
	panic("no sample for " + t.String())
}

// zeroField names the first field left zero, or "".
func zeroField(v reflect.Value, path string) string {
	for i := range v.NumField() {
		f, ft := v.Field(i), v.Type().Field(i)
		p := path + "." + ft.Name
		if f.IsZero() {
			return p
		}
		switch {
		case f.Kind() == reflect.Struct && ft.Type != reflect.TypeOf(optInt{}) && ft.Type != reflect.TypeOf(optFloat{}) && ft.Type != reflect.TypeOf(optBool{}):
			if z := zeroField(f, p); z != "" {
				return z
			}
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			if z := zeroField(f.Index(0), p+"[0]"); z != "" {
				return z
			}
		}
	}
	return ""
}

// TestFoldedNamesDistinct: two field names that differ only in case would
// make the case-insensitive match ambiguous.
func TestFoldedNamesDistinct(t *testing.T) {
	seen := map[string]string{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct {
			return
		}
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if name == "" {
				continue
			}
			k := string(foldKey(nil, []byte(name)))
			if prev, ok := seen[k]; ok && prev != name {
				t.Errorf("%q and %q fold alike", prev, name)
			}
			seen[k] = name
			walk(typ.Field(i).Type)
		}
	}
	for _, v := range wireStructs {
		walk(reflect.TypeOf(v))
	}
}

func TestUnquote(t *testing.T) {
	for _, lit := range []string{
		`""`, `"plain"`, `"line\nnext"`, `"tab\there \"q\" back\\slash \/"`, `"\b\f\r"`,
		`"\u00e9\u4e2d"`, `"\ud83d\ude00 smile"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`,
		`"\ud83d\ud83d\ude00"`, "\"\xff\xfe raw\"", "\"caf\xc3\xa9\"", "\"\xe2\x82\"", `"\u0000"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("%q: %v", lit, err)
		}
		if got := unquote([]byte(lit)); got != want {
			t.Errorf("unquote(%q) = %q, want %q", lit, got, want)
		}
		if got := string(appendUnquoted([]byte("x"), []byte(lit))); got != "x"+want {
			t.Errorf("appendUnquoted(%q) = %q, want %q", lit, got, "x"+want)
		}
	}
}

func TestCountArray(t *testing.T) {
	for in, want := range map[string]int{
		`[]`: 0, `[1]`: 1, `[ {"a":[1,2]} , "x,y" , null ]`: 3, `{}`: 0, `[1,`: 0, `[1,]`: 0, `"[1]"`: 0, ``: 0,
	} {
		if got := countArray(span(in)); got != want {
			t.Errorf("countArray(%q) = %d, want %d", in, got, want)
		}
	}
}

// FuzzJSONScan checks the reader against encoding/json on any input: the
// same texts are well-formed, every wire struct reads the same values, and
// nothing panics or grows without bound.
func FuzzJSONScan(f *testing.F) {
	for _, s := range []string{
		`{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hi \u00e9\ud83d\ude00\n"},"finish_reason":null}],"usage":{"prompt_tokens":3}}`,
		`{"model":"llama3.2","message":{"role":"assistant","content":"x","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":true,"eval_count":5}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`,
		`{"candidates":[{"content":{"parts":[{"text":"x","thought":true},{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1}}`,
		`{"type":"response.completed","response":{"status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"x"}]}],"usage":{"input_tokens":1}}}`,
		`{"model":"m","messages":[],"stop":["a"],"temperature":0.2,"max_tokens":9,"response_format":{"type":"json_object"}}`,
		`{"MODEL":"a","model":"b","Choices":[{"INDEX":2}],"choices":[]}`,
		`{"role":"assistant","content":[{"type":"text","text":"x"},{"type":"tool_use","id":"t","name":"f","input":{}}],"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}`,
		`{"type":"function","function":{"name":"f","parameters":{}},"functionDeclarations":[{"name":"g"}],"googleSearch":{}}`,
		`{"model":"m","max_tokens":10`, `{"model":"m","messages":[{"role":"user"},{"ro`, `{"a":[1,2`, `{"a" [1,`, `{"a":1 "b":2`,
		`[{"a":1},2,"x",null,true]`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":1e5,"b":-0.5E-3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("valid %v, encoding/json says %v", got, want)
		}
		if err := compareReaders(b); err != nil {
			t.Fatal(err)
		}
		if json.Valid(b) && len(b) > 0 && b[0] == '[' {
			var items []json.RawMessage
			if json.Unmarshal(b, &items) == nil && countArray(span(b)) != len(items) {
				t.Fatalf("countArray %d, want %d", countArray(span(b)), len(items))
			}
		}
		if got, want := salvageObject(b), referenceSalvageObject(b); !sameJSON(got, want) {
			t.Fatalf("salvageObject = %q, want %q", got, want)
		}
		if lit := bytes.TrimSpace(b); len(lit) >= 2 && lit[0] == '"' && json.Valid(lit) {
			var want string
			if json.Unmarshal(lit, &want) == nil && unquote(lit) != want {
				t.Fatalf("unquote(%q) = %q, want %q", lit, unquote(lit), want)
			}
		}
	})
}

// bigChatRequest is a chat request of a dozen turns, about 12 KiB.
var bigChatRequest = func() []byte {
	var b strings.Builder
	b.WriteString(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"temperature":0.7,"max_tokens":512,"messages":[`)
	b.WriteString(`{"role":"system","content":"You are a helpful assistant. Answer in plain prose, and quote your sources.\nBe brief."}`)
	for i := range 12 {
		fmt.Fprintf(&b, `,{"role":"user","content":"%s"},{"role":"assistant","content":"%s"}`,
			strings.Repeat("Explain why the sky is blue, with the physics. ", 8+i%3), strings.Repeat(`Rayleigh scattering: shorter wavelengths scatter more (\u03bb\u207b\u2074). `, 6))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}()

// BenchmarkJSONRead sets the reader against encoding/json decoding the same
// wire struct: a stream event, a request body and a whole response.
func BenchmarkJSONRead(b *testing.B) {
	cases := []struct {
		name string
		data []byte
		v    func() jsonObject
	}{
		{"openai_delta", openAIDelta, func() jsonObject { return &chatChunk{} }},
		{"openai_usage", openAIUsage, func() jsonObject { return &chatChunk{} }},
		{"ollama_final", ollamaFinal, func() jsonObject { return &ollamaLine{} }},
		{"responses_completed", responsesFinish, func() jsonObject { return &responsesEvent{} }},
		{"chat_request_12KiB", bigChatRequest, func() jsonObject { return &chatRequest{} }},
	}
	for _, tc := range cases {
		b.Run(tc.name+"/reader", func(b *testing.B) {
			var r jsonReader
			v := tc.v()
			b.SetBytes(int64(len(tc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if !r.decode(tc.data, v) {
					b.Fatal("not read")
				}
			}
		})
		b.Run(tc.name+"/encoding_json", func(b *testing.B) {
			v := tc.v()
			b.SetBytes(int64(len(tc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if !referenceDecode(tc.data, v) {
					b.Fatal("not read")
				}
			}
		})
	}
}

// TestLongStrings puts a quote, a backslash escape, a control character or
// a byte above 0x7f at every position of strings long enough to be scanned
// eight bytes at a time.
func TestLongStrings(t *testing.T) {
	for n := range 48 {
		for pos := range n {
			for _, special := range []string{`\"`, `\\`, "\x01", "\x1f", "\x7f", "\x80", "\xff", `"`, `\`, "\xe2\x82\xac"} {
				s := strings.Repeat("a", pos) + special + strings.Repeat("b", n-pos)
				doc := []byte(`{"model":"` + s + `","id":"` + s + `"}`)
				if got, want := validJSON(doc), json.Valid(doc); got != want {
					t.Fatalf("%q: valid %v, want %v", doc, got, want)
				}
				if err := compareReaders(doc); err != nil {
					t.Fatalf("%q: %v", doc, err)
				}
			}
		}
	}
}

// sameJSON reports whether two salvaged objects hold the same members
// (keys may be escaped differently), or are both nil.
func sameJSON(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if bytes.Equal(a, b) {
		return true
	}
	decode := func(b []byte) (v any, err error) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber() // numbers as written, even past float64's range
		err = d.Decode(&v)
		return v, err
	}
	va, errA := decode(a)
	vb, errB := decode(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

// referenceSalvageObject is salvageObject as first written, on encoding/json's
// Decoder, kept as the reference the fuzz test compares against. It rebuilds a well-formed JSON object from the start of a
// truncated one: every complete top-level member is kept, and if the member
// that was cut is an array, its complete elements are kept too (so a cut
// prompt still yields its model, parameters and leading messages). It
// returns nil when not even the opening brace is there.
func referenceSalvageObject(b []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	out := []byte{'{'}
	members := 0
	add := func(key string, val []byte) {
		if members > 0 {
			out = append(out, ',')
		}
		k, _ := json.Marshal(key)
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, val...)
		members++
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			break
		}
		key, ok := kt.(string)
		if !ok {
			break
		}
		valStart := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == nil && !referenceCutNumber(raw, dec, b) {
			add(key, raw)
			continue
		}
		rest := bytes.TrimLeft(b[valStart:], " \t\r\n:")
		if arr := referenceSalvageArray(rest); arr != nil {
			add(key, arr)
		}
		break
	}
	return append(out, '}')
}

// referenceCutNumber reports whether a number ends exactly where the input does, so
// that digits may be missing ("100" cut to "10").
func referenceCutNumber(raw json.RawMessage, dec *json.Decoder, b []byte) bool {
	if len(raw) == 0 {
		return false
	}
	c := raw[0]
	return (c == '-' || (c >= '0' && c <= '9')) && dec.InputOffset() >= int64(len(b))
}

// referenceSalvageArray keeps the complete leading elements of a truncated array.
func referenceSalvageArray(b []byte) []byte {
	if len(b) == 0 || b[0] != '[' {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	out := []byte{'['}
	n := 0
	for dec.More() {
		var raw json.RawMessage
		if dec.Decode(&raw) != nil || referenceCutNumber(raw, dec, b) {
			break
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, raw...)
		n++
	}
	return append(out, ']')
}

// TestArrayBound: a huge array is checked to its end but read only up to
// maxSliceElems elements, so one event cannot make a call hold a big slice.
func TestArrayBound(t *testing.T) {
	doc := []byte(`{"choices":[` + strings.Repeat(`{"index":1},`, 5000) + `{"index":2}],"id":"x"}`)
	var r jsonReader
	var ch chatChunk
	if !r.decode(doc, &ch) {
		t.Fatal("not read")
	}
	if len(ch.Choices) != maxSliceElems || string(ch.ID) != `"x"` {
		t.Errorf("%d choices, id %s; want %d and the fields after the array", len(ch.Choices), ch.ID, maxSliceElems)
	}
	if r.decode(doc[:len(doc)-10], &ch) {
		t.Error("a cut array read as well-formed")
	}
}
