package protocol_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// stringCases are edge cases for AppendString.
var stringCases = []string{
	"",
	"plain ascii",
	`"`,
	`\`,
	`\"`,
	`"\\"`,
	`\u0041`,
	"/",
	"\n\r\t",
	"\b\f",
	"\x00",
	"a\x00b",
	"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
	" ~",
	"\x7f",
	"<script>&amp;</script>",
	"\u0080\u0085\u009f\u00a0",
	"\u2028\u2029",
	"é",
	"日本語",
	"😀👍🏽",
	"\U0010ffff",
	"\ufeff",
	"\ufffd",
	"\ufffd\xff",
	"\xff",
	"\xfe\xff",
	"a\xffb",
	"\xc3",     // truncated 2-byte sequence
	"\xc3(",    // bad continuation
	"\xe2\x82", // truncated 3-byte sequence
	"\xe2\x82\x28",
	"\xf0\x9f\x98", // truncated 4-byte sequence
	"\xf0\x9f\x98\x80\xf0\x9f",
	"\xc0\x80",         // overlong NUL
	"\xc1\xbf",         // overlong
	"\xe0\x80\xaf",     // overlong '/'
	"\xed\xa0\x80",     // UTF-16 surrogate half
	"\xed\xbf\xbf",     // surrogate half
	"\xf4\x90\x80\x80", // above U+10FFFF
	"\xf5\x80\x80\x80",
	"\x80",
	"\x80\x80\x80",
	"\xbf",
	"é\xffé",
	"\"\xff\\\x00\n",
	strings.Repeat("x", 1000) + "\xff" + strings.Repeat("\"", 100),
	strings.Repeat("日\x01", 300),
}

// reference returns json.Marshal(s) and what s becomes after a trip
// through encoding/json.
func reference(t testing.TB, s string) ([]byte, string) {
	t.Helper()
	m, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("json.Marshal(%q): %v", s, err)
	}
	var want string
	if err := json.Unmarshal(m, &want); err != nil {
		t.Fatalf("json.Unmarshal(%s): %v", m, err)
	}
	return m, want
}

// checkString checks AppendString(prefix, s) against encoding/json.
func checkString(t testing.TB, s string) {
	t.Helper()
	prefix := []byte("pre")
	out := protocol.AppendString(prefix, s)
	if !bytes.HasPrefix(out, []byte("pre")) {
		t.Fatalf("AppendString(%q) lost the prefix: %q", s, out)
	}
	enc := out[len("pre"):]
	if !json.Valid(enc) {
		t.Fatalf("AppendString(%q) = %q is not valid JSON", s, enc)
	}
	// encoding/json would replace invalid UTF-8 on the way in as well, so
	// check that no invalid byte and no raw control character got out.
	if !utf8.Valid(enc) {
		t.Fatalf("AppendString(%q) = %q is not valid UTF-8", s, enc)
	}
	for _, c := range enc {
		if c < 0x20 {
			t.Fatalf("AppendString(%q) = %q holds a raw control byte", s, enc)
		}
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("AppendString(%q) = %q: %v", s, enc, err)
	}
	m, want := reference(t, s)
	if got != want {
		t.Fatalf("AppendString(%q) decodes to %q, json.Marshal round trip gives %q", s, got, want)
	}
	// Byte for byte, it is json.Marshal without the optional escapes
	// (HTML characters, U+2028/U+2029, the short \b and \f).
	if !strings.ContainsAny(s, "<>&\u2028\u2029\b\f") {
		if !bytes.Equal(enc, m) {
			t.Fatalf("AppendString(%q) = %s, json.Marshal = %s", s, enc, m)
		}
	}
}

func TestAppendStringEdgeCases(t *testing.T) {
	for _, s := range stringCases {
		checkString(t, s)
	}
	// Every single byte, alone and between letters.
	for c := 0; c < 256; c++ {
		checkString(t, string([]byte{byte(c)}))
		checkString(t, "a"+string([]byte{byte(c)})+"b")
	}
}

func TestAppendStringExact(t *testing.T) {
	for in, want := range map[string]string{
		``:             `""`,
		`a"b`:          `"a\"b"`,
		`a\b`:          `"a\\b"`,
		"\n\r\t":       `"\n\r\t"`,
		"\x00\x1f":     `"\u0000\u001f"`,
		"\x7f":         "\"\x7f\"",
		"a\xffb":       `"a\ufffdb"`,
		"\xff\xfe":     `"\ufffd\ufffd"`,
		"\xed\xa0\x80": `"\ufffd\ufffd\ufffd"`,
		"\ufffd":       "\"\ufffd\"",
		"é日😀":          "\"é日😀\"",
	} {
		if got := string(protocol.AppendString(nil, in)); got != want {
			t.Errorf("AppendString(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestAppendStringRandom compares with encoding/json on many random strings,
// biased towards the bytes that need care.
func TestAppendStringRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", " ", `"`, `\`, "\n", "\x00", "\x1f", "\x7f", "\x80", "\xbf", "\xc3", "\xe2", "\xed", "\xf0", "\xf4", "\xff", "é", "€", "😀", "\u2028", "<"}
	for range 20000 {
		var b strings.Builder
		n := r.IntN(12)
		for range n {
			if r.IntN(4) == 0 {
				b.WriteByte(byte(r.IntN(256)))
			} else {
				b.WriteString(alphabet[r.IntN(len(alphabet))])
			}
		}
		checkString(t, b.String())
	}
}

var tsRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// TestAppendTimeFormat holds the digit-by-digit formatter to time's own,
// over random instants and the edges of its range.
func TestAppendTimeFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1, 2, 3, 4, 5, 6, 7, time.FixedZone("Y", 3600)),
	}
	for range 100000 {
		times = append(times, time.Unix(rng.Int64N(400_000_000_000)-62_000_000_000, rng.Int64N(1e9)))
	}
	for _, tt := range times {
		want := `"` + tt.UTC().Format(protocol.TimeFormat) + `"`
		if got := string(protocol.AppendTime(nil, tt)); got != want {
			t.Fatalf("AppendTime(%v) = %s, want %s", tt, got, want)
		}
	}
}

func TestAppendTime(t *testing.T) {
	loc := time.FixedZone("X", -7*3600-30*60)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), "2024-05-06T07:08:09.000Z"},
		{time.Date(2024, 5, 6, 7, 8, 9, 120_000_000, time.UTC), "2024-05-06T07:08:09.120Z"},
		{time.Date(2024, 5, 6, 7, 8, 9, 999_999_999, time.UTC), "2024-05-06T07:08:09.999Z"},
		{time.Date(2024, 5, 6, 7, 8, 9, 1_000, time.UTC), "2024-05-06T07:08:09.000Z"},
		{time.Date(2024, 12, 31, 20, 0, 0, 5_000_000, loc), "2025-01-01T03:30:00.005Z"},
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.Local), time.Date(2024, 5, 6, 7, 8, 9, 0, time.Local).UTC().Format("2006-01-02T15:04:05.000Z")},
	}
	for _, tt := range tests {
		got := string(protocol.AppendTime([]byte("x"), tt.t))
		if got != `x"`+tt.want+`"` {
			t.Errorf("AppendTime(%v) = %s, want %q", tt.t, got, tt.want)
		}
		if !tsRE.MatchString(tt.want) {
			t.Errorf("%s does not match %s", tt.want, tsRE)
		}
	}
}

func TestAppendMessage(t *testing.T) {
	ts := time.Date(2024, 5, 6, 7, 8, 9, 123_456_789, time.FixedZone("CEST", 2*3600))
	tests := []struct {
		m    courier.Message
		want map[string]any
	}{
		{
			courier.Message{ID: "m1", From: "alice", To: "bob", Event: "chat", Data: json.RawMessage(`{"text":"hi","n":[1,2]}`), Time: ts, Seq: 7},
			map[string]any{"type": "message", "msg": "m1", "from": "alice", "to": "bob", "event": "chat",
				"data": map[string]any{"text": "hi", "n": []any{1.0, 2.0}}, "ts": "2024-05-06T05:08:09.123Z", "seq": 7.0},
		},
		{ // room message
			courier.Message{ID: "m2", From: "alice", Room: "lobby", Event: "message", Data: json.RawMessage(`"x"`), Time: ts, Seq: 1},
			map[string]any{"type": "message", "msg": "m2", "from": "alice", "room": "lobby", "event": "message",
				"data": "x", "ts": "2024-05-06T05:08:09.123Z", "seq": 1.0},
		},
		{ // volatile, no data: null data, no seq
			courier.Message{ID: "m3", From: "system", To: "conn:c1", Event: "typing", Time: ts},
			map[string]any{"type": "message", "msg": "m3", "from": "system", "to": "conn:c1", "event": "typing",
				"data": nil, "ts": "2024-05-06T05:08:09.123Z"},
		},
		{ // strings that need escaping, data null
			courier.Message{ID: "m\"4", From: "a\\l\nice\xff", To: "b\x00b", Event: "<e>", Data: json.RawMessage(`null`), Time: time.Time{}, Seq: 1<<53 - 1},
			map[string]any{"type": "message", "msg": "m\"4", "from": "a\\l\nice\ufffd", "to": "b\x00b", "event": "<e>",
				"data": nil, "ts": "0001-01-01T00:00:00.000Z", "seq": float64(1<<53 - 1)},
		},
	}
	for _, tt := range tests {
		b := protocol.AppendMessage([]byte("[1,"), &tt.m)
		if !bytes.HasPrefix(b, []byte("[1,")) {
			t.Fatalf("prefix lost: %s", b)
		}
		b = b[3:]
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("AppendMessage(%+v) = %s: %v", tt.m, b, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("AppendMessage = %s\n got %v\nwant %v", b, got, tt.want)
		}
		if !tsRE.MatchString(got["ts"].(string)) {
			t.Errorf("ts %q is not RFC 3339 UTC with 3 fractional digits", got["ts"])
		}
		if !bytes.HasPrefix(b, []byte(`{"type":"message"`)) {
			t.Errorf("frame does not start with its type: %s", b)
		}
	}
}

// TestAppendMessageBigSeq: seq is written as an exact integer.
func TestAppendMessageBigSeq(t *testing.T) {
	b := protocol.AppendMessage(nil, &courier.Message{ID: "m", Seq: 1<<64 - 1})
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var got map[string]any
	if err := d.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got["seq"] != json.Number("18446744073709551615") {
		t.Errorf("seq = %v", got["seq"])
	}
}

func TestAppendAck(t *testing.T) {
	tests := []struct {
		a    protocol.Ack
		want string
	}{
		{protocol.Ack{}, `{"type":"ack"}`},
		{protocol.Ack{ID: "1"}, `{"type":"ack","id":"1"}`},
		{protocol.Ack{ID: "1", Msg: "m1", Seq: 3}, `{"type":"ack","id":"1","msg":"m1","seq":3}`},
		{protocol.Ack{ID: "5", HasSeq: true}, `{"type":"ack","id":"5","seq":0}`},
		{protocol.Ack{ID: "5", Seq: 9, HasSeq: true}, `{"type":"ack","id":"5","seq":9}`},
		{protocol.Ack{Msg: "m"}, `{"type":"ack","msg":"m"}`},
		{protocol.Ack{ID: "q\"\\\n\xff", Msg: "m"}, `{"type":"ack","id":"q\"\\\n\ufffd","msg":"m"}`},
		{protocol.Ack{ID: "x", Seq: 1<<64 - 1}, `{"type":"ack","id":"x","seq":18446744073709551615}`},
	}
	for _, tt := range tests {
		got := protocol.AppendAck([]byte("p"), tt.a)
		if string(got) != "p"+tt.want {
			t.Errorf("AppendAck(%+v) = %s, want %s", tt.a, got[1:], tt.want)
		}
		if !json.Valid(got[1:]) {
			t.Errorf("AppendAck(%+v) = %s is not valid JSON", tt.a, got[1:])
		}
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct {
		e    protocol.Error
		want map[string]any
	}{
		{protocol.Error{Code: "bad_request", Message: "malformed JSON"},
			map[string]any{"type": "error", "code": "bad_request", "message": "malformed JSON"}},
		{protocol.Error{ID: "7", Code: "forbidden", Message: `room "x"`},
			map[string]any{"type": "error", "id": "7", "code": "forbidden", "message": `room "x"`}},
		{protocol.Error{ID: "\x00\xff", Code: "internal", Message: "a\nb\\c\u2028"},
			map[string]any{"type": "error", "id": "\x00\ufffd", "code": "internal", "message": "a\nb\\c\u2028"}},
		{protocol.Error{ID: "1", Code: "too_large"},
			map[string]any{"type": "error", "id": "1", "code": "too_large", "message": ""}},
	}
	for _, tt := range tests {
		b := protocol.AppendError(nil, &tt.e)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("AppendError(%+v) = %s: %v", tt.e, b, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("AppendError = %s\n got %v\nwant %v", b, got, tt.want)
		}
	}
}

func TestAppendWelcome(t *testing.T) {
	for _, tt := range []struct{ user, conn string }{
		{"alice", "c1"},
		{"日本 \"q\"", "c\\2"},
		{"", ""},
	} {
		b := protocol.AppendWelcome(nil, tt.user, tt.conn, 0, false)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("AppendWelcome = %s: %v", b, err)
		}
		want := map[string]any{"type": "welcome", "user": tt.user, "conn": tt.conn}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("AppendWelcome = %s, want %v", b, want)
		}
	}
	for _, tt := range []struct {
		seq    uint64
		hasSeq bool
		want   string
	}{
		{0, false, `{"type":"welcome","user":"alice","conn":"c1"}`},
		{0, true, `{"type":"welcome","user":"alice","conn":"c1","seq":0}`},
		{1<<64 - 1, true, `{"type":"welcome","user":"alice","conn":"c1","seq":18446744073709551615}`},
	} {
		if got := string(protocol.AppendWelcome(nil, "alice", "c1", tt.seq, tt.hasSeq)); got != tt.want {
			t.Errorf("AppendWelcome(seq %d, %v) = %s, want %s", tt.seq, tt.hasSeq, got, tt.want)
		}
	}
}

// TestEncodersAllocate: appending into a buffer with room does not allocate.
func TestEncodersAllocate(t *testing.T) {
	m := &courier.Message{ID: "m1", From: "alice", To: "bob", Event: "chat", Data: json.RawMessage(`{"t":"hi"}`), Time: time.Now(), Seq: 7}
	buf := make([]byte, 0, 1024)
	n := testing.AllocsPerRun(100, func() {
		b := protocol.AppendMessage(buf[:0], m)
		b = protocol.AppendAck(b, protocol.Ack{ID: "1", Msg: "m", Seq: 3})
		_ = protocol.AppendString(b, "a\"b\xff")
	})
	if n != 0 {
		t.Errorf("encoders allocate %v times per frame", n)
	}
}
