package protocol

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/courier-im/courier"
)

// The direct converters are held to the general ones: whatever they
// accept, they convert to the same value (MessagePack) or the same bytes
// (JSON).

var jsonSeeds = []string{
	`{"type":"message","msg":"06h0hdmbe8fjmr7b207m0nenj0","from":"alice","to":"bob","event":"chat","data":"1732370000000000000.xxxx","ts":"2026-11-23T14:01:50.909Z","seq":17}`,
	`{"type":"ack","id":"1","msg":"06h0hdmc7mfjmr7b207m0nenjc","seq":1}`,
	`{"type":"welcome","user":"alice","conn":"06h0hdmbe8fjmr7b207m0nenj0"}`,
	`{"type":"error","id":"4","code":"forbidden","message":"forbidden: join room \"lobby\" before publishing to it"}`,
	`{"data":{"text":"hé <b>","n":[1,-1,-33,128,256,65536,4294967296,-129,-32769,-2147483649,1.5,-0.0,1e3,1E-2,0],"t":true,"f":false,"z":null}}`,
	` [ 1 , { "a" : [ ] , "b" : { } } ] `, `0`, `-0`, `9223372036854775807`, `-9223372036854775808`,
	`18446744073709551615`, `1e400`, `01`, `1.`, `-`, `.5`, `"\u00e9"`, `"a\nb"`, `{"a":1,"a":2}`, `{"a":1}x`, `[1,]`, `{"a" 1}`,
	`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"ka":10,"kb":11,"kc":12,"kd":13,"ke":14,"kf":15,"kg":16}`,
	`[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]`, "\"\xff\"", `tru`, `nul`, `{"x":falsey}`,
}

// bigJSON need 16- and 32-bit lengths; too big to fuzz with.
var bigJSON = []string{
	`"` + strings.Repeat("s", 300) + `"`, `"` + strings.Repeat("s", 70000) + `"`,
	`[` + strings.Repeat(`1,`, 300) + `1]`, `[` + strings.Repeat(`1,`, 70000) + `1]`,
	`{"a":[` + strings.Repeat(`{},`, 20) + `{}]}`,
}

func FuzzJSONToMsgpackFast(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkJSONToMsgpackFast)
}

func checkJSONToMsgpackFast(t *testing.T, b []byte) {
	fast, ok := appendJSONAsMsgpack([]byte("pre"), b)
	if !ok {
		return
	}
	if !bytes.HasPrefix(fast, []byte("pre")) {
		t.Fatalf("%q: prefix lost", b)
	}
	slow, err := jsonToMsgpackGeneral(b)
	if err != nil {
		t.Fatalf("%q: direct converter took it, the general one: %v", b, err)
	}
	var vf, vs any
	if err := msgpack.Unmarshal(fast[3:], &vf); err != nil {
		t.Fatalf("%q: direct output % x does not decode: %v", b, fast[3:], err)
	}
	_ = msgpack.Unmarshal(slow, &vs)
	if !reflect.DeepEqual(vf, vs) {
		t.Fatalf("%q:\ndirect  %#v (% x)\ngeneral %#v (% x)", b, vf, fast[3:], vs, slow)
	}
	// Without objects of two or more keys, whose order the general
	// encoder leaves to map iteration, the bytes are the same too.
	if !bytes.Contains(b, []byte(",")) || !bytes.Contains(b, []byte("{")) {
		if !bytes.Equal(fast[3:], slow) {
			t.Fatalf("%q: direct % x, general % x", b, fast[3:], slow)
		}
	}
}

func TestFastBig(t *testing.T) {
	for _, s := range bigJSON {
		if _, ok := appendJSONAsMsgpack(nil, []byte(s)); !ok {
			t.Errorf("%.40s…: not taken", s)
		}
		checkJSONToMsgpackFast(t, []byte(s))
		mp, err := jsonToMsgpackGeneral([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := appendMsgpackAsJSON(nil, mp); !ok {
			t.Errorf("%.40s…: MessagePack not taken", s)
		}
		checkMsgpackToJSONFast(t, mp)
	}
}

func TestJSONToMsgpackFastTakes(t *testing.T) {
	// The frames a server sends, and common data, take the direct path.
	for _, s := range jsonSeeds[:5] {
		if _, ok := appendJSONAsMsgpack(nil, []byte(s)); !ok != strings.Contains(s, `\"`) {
			t.Errorf("direct converter: %v for %s", ok, s)
		}
	}
}

func FuzzMsgpackToJSONFast(f *testing.F) {
	for _, s := range jsonSeeds {
		if mp, err := jsonToMsgpackGeneral([]byte(s)); err == nil {
			f.Add(mp)
		}
	}
	for _, v := range []any{
		map[string]any{"type": "send", "to": "bob", "data": "1732370000000000000.xxxx", "volatile": true},
		map[string]any{"type": "send", "data": map[string]any{"b": []any{int8(-5), uint16(300), nil, "<&>"}, "a": "\u2028"}},
		map[string]any{"b": 1, "a": 2, "c": map[string]any{"z": 1, "y": []byte{1}}},
		[]any{float32(1.5), 2.5}, "\xff", map[int]any{1: 2},
	} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02}) // a repeated key
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(checkMsgpackToJSONFast)
}

func checkMsgpackToJSONFast(t *testing.T, b []byte) {
	fast, ok := appendMsgpackAsJSON([]byte("pre"), b)
	if !ok {
		return
	}
	slow, err := msgpackToJSONGeneral(b)
	if err != nil {
		t.Fatalf("% x: direct converter took it as %s, the general one: %v", b, fast[3:], err)
	}
	if !bytes.Equal(fast[3:], slow) {
		t.Fatalf("% x:\ndirect  %s\ngeneral %s", b, fast[3:], slow)
	}
}

func TestMsgpackToJSONFastTakes(t *testing.T) {
	for _, v := range []map[string]any{
		{"type": "send", "id": "7", "to": "bob", "data": "1732370000000000000.xxxx", "volatile": true},
		{"type": "publish", "room": "lobby", "data": map[string]any{"text": "hé", "n": []any{1, -300, nil, false}}},
		{"type": "join", "id": "j1", "room": "lobby"},
	} {
		b, _ := msgpack.Marshal(v)
		if _, ok := appendMsgpackAsJSON(nil, b); !ok {
			t.Errorf("%v: not taken by the direct converter", v)
		}
	}
}

var benchMessage = &courier.Message{ID: "06h0hdmbe8fjmr7b207m0nenj0", From: "user-1", To: "user-417", Event: "chat",
	Data: []byte(`"1732370000000000000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"`), Time: time.Now(), Seq: 12345}

// BenchmarkJSONToMsgpack: a message frame, as a MessagePack connection
// gets it (once per message, shared by its MessagePack receivers).
func BenchmarkJSONToMsgpack(b *testing.B) {
	js := AppendMessage(nil, benchMessage)
	for _, c := range []struct {
		name string
		f    func([]byte) ([]byte, error)
	}{{"direct", JSONToMsgpack}, {"general", jsonToMsgpackGeneral}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.f(js); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMsgpackToJSON: a client's send frame, as the server reads it.
func BenchmarkMsgpackToJSON(b *testing.B) {
	mp, _ := msgpack.Marshal(map[string]any{"type": "send", "id": "12345", "to": "user-417", "event": "chat",
		"data": "1732370000000000000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "volatile": true})
	for _, c := range []struct {
		name string
		f    func([]byte) ([]byte, error)
	}{{"direct", MsgpackToJSON}, {"general", msgpackToJSONGeneral}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.f(mp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
