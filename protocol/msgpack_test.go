package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/courier-im/courier/protocol"
)

func TestMsgpackRoundTrip(t *testing.T) {
	for _, js := range []string{`null`, `true`, `0`, `-7`, `18446744073709551615`, `1.5`, `"hé"`, `[1,"a",null]`, `{"a":{"b":[{}]}}`} {
		mp, err := protocol.JSONToMsgpack([]byte(js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		back, err := protocol.MsgpackToJSON(mp)
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		var a, b any
		_ = json.Unmarshal([]byte(js), &a)
		_ = json.Unmarshal(back, &b)
		if ja, _ := json.Marshal(a); string(ja) != func() string { jb, _ := json.Marshal(b); return string(jb) }() {
			t.Fatalf("%s came back as %s", js, back)
		}
	}
	for name, v := range map[string]any{"int key": map[int]string{1: "x"}, "nan": map[string]any{"x": float64Nan()}} {
		b, _ := msgpack.Marshal(v)
		if _, err := protocol.MsgpackToJSON(b); err == nil {
			t.Errorf("%s: converted without error", name)
		}
	}
	if _, err := protocol.MsgpackToJSON([]byte{0xc1}); err == nil {
		t.Error("a reserved byte converted")
	}
}

func float64Nan() float64 { z := 0.0; return z / z }

func FuzzMsgpackToJSON(f *testing.F) {
	for _, v := range []any{map[string]any{"type": "send", "to": "bob", "data": []any{1, "x", nil}}, "s", 3.5, []byte{1, 2}} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := protocol.MsgpackToJSON(b)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON %q from %x", out, b)
		}
	})
}

// Lengths that claim more than the frame holds are refused before anything
// is allocated for them.
func TestMsgpackHugeClaims(t *testing.T) {
	for _, b := range [][]byte{
		{0xdf, 0xff, 0xff, 0xff, 0xff},       // map32, 4G pairs
		{0xdd, 0xff, 0xff, 0xff, 0xff},       // array32
		{0xdb, 0xff, 0xff, 0xff, 0xff, 'x'},  // str32
		{0xc6, 0x7f, 0xff, 0xff, 0xff},       // bin32
		{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, // ext32
		{0x92, 0x01},                         // array of 2 with 1
		{0x81, 0xa1, 'k'},                    // map missing its value
		{0x01, 0x02},                         // two values
	} {
		if _, err := protocol.MsgpackToJSON(b); err == nil {
			t.Errorf("% x converted", b)
		}
	}
	deep := make([]byte, 0, 200)
	for i := 0; i < 100; i++ {
		deep = append(deep, 0x91)
	}
	deep = append(deep, 0xc0)
	if _, err := protocol.MsgpackToJSON(deep); err == nil {
		t.Error("100 levels of nesting converted")
	}
}
