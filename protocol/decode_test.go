package protocol_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/courier-im/courier/protocol"
)

func u64(n uint64) *uint64 { return &n }

// TestDecodeContractFrames decodes every client frame of the contract.
func TestDecodeContractFrames(t *testing.T) {
	tests := []struct {
		in   string
		want protocol.Frame // Data is checked separately
	}{
		{`{"type":"send","id":"1","to":"bob","event":"chat","data":{"text":"hi"}}`,
			protocol.Frame{Type: "send", ID: "1", To: "bob", Event: "chat"}},
		{`{"type":"send","id":"1","to":"bob","event":"typing","data":null,"volatile":true}`,
			protocol.Frame{Type: "send", ID: "1", To: "bob", Event: "typing", Volatile: true}},
		{`{"type":"send","id":"1","to":"bob","data":"x","key":"k-1"}`,
			protocol.Frame{Type: "send", ID: "1", To: "bob", Key: "k-1"}},
		{`{"type":"send","id":"2","to":"conn:c123","event":"signal"}`,
			protocol.Frame{Type: "send", ID: "2", To: "conn:c123", Event: "signal"}},
		{`{"type":"join","id":"3","room":"lobby"}`,
			protocol.Frame{Type: "join", ID: "3", Room: "lobby"}},
		{`{"type":"leave","id":"3","room":"lobby"}`,
			protocol.Frame{Type: "leave", ID: "3", Room: "lobby"}},
		{`{"type":"publish","id":"4","room":"lobby","event":"chat","data":[1,2]}`,
			protocol.Frame{Type: "publish", ID: "4", Room: "lobby", Event: "chat"}},
		{`{"type":"resume","id":"5","since":0}`,
			protocol.Frame{Type: "resume", ID: "5", Since: u64(0)}},
		{`{"type":"resume","id":"5","since":18446744073709551615}`,
			protocol.Frame{Type: "resume", ID: "5", Since: u64(1<<64 - 1)}},
		{`{"type":"history","id":"6","with":"bob","limit":50,"before":17}`,
			protocol.Frame{Type: "history", ID: "6", With: "bob", Limit: 50, Before: 17}},
		{`{"type":"history","id":"6","with":"bob"}`,
			protocol.Frame{Type: "history", ID: "6", With: "bob"}},
		{`{"type":"history","id":"6","room":"lobby","limit":50}`,
			protocol.Frame{Type: "history", ID: "6", Room: "lobby", Limit: 50}},
		{`{"type":"search","id":"7","q":"pizza","limit":20}`,
			protocol.Frame{Type: "search", ID: "7", Q: "pizza", Limit: 20}},
		{`{"type":"presence","id":"8","users":["bob"]}`,
			protocol.Frame{Type: "presence", ID: "8", Users: []string{"bob"}}},
		{`{"type":"watch","id":"9","users":["bob","carol"]}`,
			protocol.Frame{Type: "watch", ID: "9", Users: []string{"bob", "carol"}}},
		{`{"type":"unwatch","id":"9","users":["bob"]}`,
			protocol.Frame{Type: "unwatch", ID: "9", Users: []string{"bob"}}},
		{`{"type":"read","id":"10","with":"bob","seq":12}`,
			protocol.Frame{Type: "read", ID: "10", With: "bob", Seq: u64(12)}},
		{`{"type":"read","id":"10","with":"bob","seq":0}`,
			protocol.Frame{Type: "read", ID: "10", With: "bob", Seq: u64(0)}},
		{`{"type":"conversations","id":"11","limit":50}`,
			protocol.Frame{Type: "conversations", ID: "11", Limit: 50}},
		{`{"type":"conversations"}`,
			protocol.Frame{Type: "conversations"}},
		{`{"type":"ping","id":"p"}`,
			protocol.Frame{Type: "ping", ID: "p"}},
		// No id, an id that is not a string, surrounding whitespace,
		// unknown fields and a client-supplied from are all fine.
		{`{"type":"join","room":"lobby"}`, protocol.Frame{Type: "join", Room: "lobby"}},
		{`{"type":"join","id":7,"room":"lobby"}`, protocol.Frame{Type: "join", Room: "lobby"}},
		{`{"type":"join","id":null,"room":"lobby"}`, protocol.Frame{Type: "join", Room: "lobby"}},
		{" \n\t{\"type\":\"join\",\"room\":\"lobby\"}\r\n ", protocol.Frame{Type: "join", Room: "lobby"}},
		{`{"type":"send","to":"bob","from":"mallory","extra":{"a":[1]}}`, protocol.Frame{Type: "send", To: "bob"}},
		{`{"type":"send","id":"\u00e9\"\\","to":"b\u00f6b"}`, protocol.Frame{Type: "send", ID: "é\"\\", To: "böb"}},
		{`{"type":"send","id":"","to":"bob"}`, protocol.Frame{Type: "send", To: "bob"}},
		{`{"type":"send","id":"1","to":"bob","id":2}`, protocol.Frame{Type: "send", To: "bob"}}, // the last id wins
	}
	for _, tt := range tests {
		f, err := protocol.Decode([]byte(tt.in))
		if err != nil {
			t.Errorf("Decode(%s): %v", tt.in, err)
			continue
		}
		got := *f
		got.Data = nil
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(%s)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeData(t *testing.T) {
	tests := []struct{ in, data string }{
		{`{"type":"send","to":"bob"}`, ""}, // absent: nil, the hub makes it null
		{`{"type":"send","to":"bob","data":null}`, "null"},
		{`{"type":"send","to":"bob","data":{"text":"hi","n":[1,2.5,true]}}`, `{"text":"hi","n":[1,2.5,true]}`},
		{`{"type":"send","to":"bob","data":"str"}`, `"str"`},
		{`{"type":"send","to":"bob","data":0}`, `0`},
		{`{"type":"publish","room":"r","data":[]}`, `[]`},
	}
	for _, tt := range tests {
		f, err := protocol.Decode([]byte(tt.in))
		if err != nil {
			t.Errorf("Decode(%s): %v", tt.in, err)
			continue
		}
		if string(f.Data) != tt.data {
			t.Errorf("Decode(%s).Data = %q, want %q", tt.in, f.Data, tt.data)
		}
		if tt.data == "" && f.Data != nil {
			t.Errorf("Decode(%s).Data = %#v, want nil", tt.in, f.Data)
		}
		if f.Data != nil && !json.Valid(f.Data) {
			t.Errorf("Decode(%s).Data = %q is not valid JSON", tt.in, f.Data)
		}
	}
}

// TestDecodeErrors checks that every bad frame gets a bad_request *Error
// that echoes the id exactly when the frame had it as a JSON string.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in, id string
	}{
		// Type missing, empty, unknown or not a string.
		{`{}`, ""},
		{`{"id":"1"}`, "1"},
		{`{"id":"1","to":"bob"}`, "1"},
		{`{"type":"","id":"1"}`, "1"},
		{`{"type":null,"id":"1"}`, "1"},
		{`{"type":"nope","id":"7"}`, "7"},
		{`{"type":"nope","id":7}`, ""},
		{`{"type":"nope","id":7.5}`, ""},
		{`{"type":"nope","id":null}`, ""},
		{`{"type":"nope","id":true}`, ""},
		{`{"type":"nope","id":["7"]}`, ""},
		{`{"type":"nope","id":{"v":"7"}}`, ""},
		{`{"type":"nope","id":""}`, ""},
		{`{"type":"welcome","id":"w"}`, "w"},
		{`{"type":"message","id":"m"}`, "m"},
		{`{"type":"ack","id":"a"}`, "a"},
		{`{"type":"SEND","id":"s","to":"bob"}`, "s"},
		{`{"type":" send","id":"s","to":"bob"}`, "s"},
		{`{"type":5,"id":"t"}`, "t"},
		{`{"type":["send"],"id":"t"}`, "t"},
		{`{"type":{"x":1},"id":"t"}`, "t"},
		{`{"type":"` + strings.Repeat("é", 100) + `","id":"long"}`, "long"},

		// Missing required fields, per type.
		{`{"type":"send","id":"1"}`, "1"},
		{`{"type":"send","id":"1","to":""}`, "1"},
		{`{"type":"send","id":"1","to":null}`, "1"},
		{`{"type":"send","id":"1","room":"lobby"}`, "1"},
		{`{"type":"join","id":"3"}`, "3"},
		{`{"type":"join","id":"3","room":""}`, "3"},
		{`{"type":"leave","id":"3"}`, "3"},
		{`{"type":"publish","id":"4","event":"chat","data":1}`, "4"},
		{`{"type":"publish","id":"4","to":"bob"}`, "4"},
		{`{"type":"resume","id":"5"}`, "5"},
		{`{"type":"resume","id":"5","since":null}`, "5"},
		{`{"type":"history","id":"6"}`, "6"},
		{`{"type":"history","id":"6","limit":50}`, "6"},
		{`{"type":"search","id":"7"}`, "7"},
		{`{"type":"search","id":"7","q":""}`, "7"},
		{`{"type":"presence","id":"8"}`, "8"},
		{`{"type":"presence","id":"8","users":[]}`, "8"},
		{`{"type":"presence","id":"8","users":null}`, "8"},
		{`{"type":"watch","id":"9"}`, "9"},
		{`{"type":"unwatch","id":"9","users":[]}`, "9"},
		{`{"type":"read","id":"10","with":"bob"}`, "10"},
		{`{"type":"read","id":"10","seq":3}`, "10"},
		{`{"type":"read","id":"10"}`, "10"},

		// Fields of the wrong type.
		{`{"type":"send","id":"1","to":5}`, "1"},
		{`{"type":"send","id":"1","to":["bob"]}`, "1"},
		{`{"type":"send","id":"1","to":{"user":"bob"}}`, "1"},
		{`{"type":"send","id":"1","to":true}`, "1"},
		{`{"type":"send","id":"1","to":"bob","event":5}`, "1"},
		{`{"type":"send","id":"1","to":"bob","volatile":"yes"}`, "1"},
		{`{"type":"send","id":"1","to":"bob","volatile":1}`, "1"},
		{`{"type":"send","id":"1","to":"bob","key":7}`, "1"},
		{`{"type":"join","id":"3","room":3}`, "3"},
		{`{"type":"resume","id":"5","since":-1}`, "5"},
		{`{"type":"resume","id":"5","since":1.5}`, "5"},
		{`{"type":"resume","id":"5","since":"0"}`, "5"},
		{`{"type":"resume","id":"5","since":18446744073709551616}`, "5"},
		{`{"type":"resume","id":5,"since":-1}`, ""},
		{`{"type":"history","id":"6","with":"bob","limit":"50"}`, "6"},
		{`{"type":"history","id":"6","with":"bob","limit":1e99}`, "6"},
		{`{"type":"history","id":"6","with":"bob","before":-1}`, "6"},
		{`{"type":"history","id":"6","with":7}`, "6"},
		{`{"type":"search","id":"7","q":["pizza"]}`, "7"},
		{`{"type":"presence","id":"8","users":"bob"}`, "8"},
		{`{"type":"presence","id":"8","users":["bob",5]}`, "8"},
		{`{"type":"presence","id":"8","users":{"bob":true}}`, "8"},
		{`{"type":"read","id":"10","with":"bob","seq":-3}`, "10"},
		{`{"type":"read","id":"10","with":"bob","seq":"3"}`, "10"},

		// Not an object.
		{``, ""},
		{`   `, ""},
		{`[]`, ""},
		{`[{"type":"send","id":"1","to":"bob"}]`, ""},
		{`5`, ""},
		{`"x"`, ""},
		{`null`, ""},
		{`true`, ""},
		{"\xef\xbb\xbf{\"type\":\"join\",\"room\":\"r\"}", ""}, // BOM
		{"\u00a0{\"type\":\"join\",\"room\":\"r\"}", ""},       // not JSON whitespace
		{"{\"type\":\"join\",\"room\":\"r\"}\u0085", ""},       // nor is NEL
		{"\v{\"type\":\"join\",\"room\":\"r\"}", ""},

		// Malformed or truncated JSON: a string id that stands before the
		// break is still echoed, as the contract asks.
		{`{`, ""},
		{`{"type"`, ""},
		{`{"type":"send","id":"1","to":"b`, "1"},
		{`{"type":"send","id":"1","to":"bob"`, "1"},
		{`{"type":"send","id":"1","to":"bob",}`, "1"},
		{`{"type":"send","id":"1","to":"bob"}}`, "1"},
		{`{"type":"send","id":"1","to":"bob"} {"type":"ping"}`, "1"},
		{`{"type":"send","id":"1","to":"bob"} x`, "1"},
		{`{'type':'send'}`, ""},
		{`{type:"send"}`, ""},
		{`{"type":"send","id":"1","to":"bob","data":}`, "1"},
		{`{"type":"send","id":"1","to":"bob","data":undefined}`, "1"},
		{`{"type":"send","id":"1","to":"bob","data":NaN}`, "1"},
		{"{\"type\":\"send\",\"id\":\"1\",\"to\":\"b\x00ob\"}", "1"},
		{"{\"type\":\"send\",\"id\":\"1\",\"to\":\"bob\"}\x00", "1"},
		{`{"type":"send","id":"1","to":"\x"}`, "1"}, // the id stands before the break
		{strings.Repeat("[", 20000), ""},
		{`{"data":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"type":"send","id":"1","to":"bob"}`, ""},
	}
	for _, tt := range tests {
		f, err := protocol.Decode([]byte(tt.in))
		in := tt.in
		if len(in) > 80 {
			in = in[:80] + "..."
		}
		if err == nil {
			t.Errorf("Decode(%q) = %+v, want an error", in, f)
			continue
		}
		if f != nil {
			t.Errorf("Decode(%q) returned a frame with its error: %+v", in, f)
		}
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			t.Errorf("Decode(%q) error %T %v is not a *protocol.Error", in, err, err)
			continue
		}
		if pe.Code != protocol.CodeBadRequest {
			t.Errorf("Decode(%q) code = %q, want bad_request", in, pe.Code)
		}
		if pe.ID != tt.id {
			t.Errorf("Decode(%q) error id = %q, want %q", in, pe.ID, tt.id)
		}
		if pe.Message == "" || !utf8.ValidString(pe.Message) {
			t.Errorf("Decode(%q) error message %q is empty or not UTF-8", in, pe.Message)
		}
		if len(pe.Message) > 200 {
			t.Errorf("Decode(%q) error message is %d bytes long", in, len(pe.Message))
		}
		if pe.Error() != pe.Code+": "+pe.Message {
			t.Errorf("Error() = %q", pe.Error())
		}
		// The error frame the server would send is valid JSON with the id.
		var frame map[string]any
		if err := json.Unmarshal(protocol.AppendError(nil, pe), &frame); err != nil {
			t.Errorf("error frame for %q: %v", in, err)
		} else if id, has := frame["id"]; has != (tt.id != "") || (has && id != tt.id) {
			t.Errorf("error frame for %q has id %v, want %q", in, frame["id"], tt.id)
		}
	}
}

// TestDecodeErrorNamesField: a wrong-typed field is named in the message.
func TestDecodeErrorNamesField(t *testing.T) {
	for in, field := range map[string]string{
		`{"type":"send","id":"1","to":5}`:          "to",
		`{"type":"resume","id":"1","since":-1}`:    "since",
		`{"type":"presence","id":"1","users":"x"}`: "users",
	} {
		_, err := protocol.Decode([]byte(in))
		if err == nil || !strings.Contains(err.Error(), `"`+field+`"`) {
			t.Errorf("Decode(%s) = %v, want an error naming %q", in, err, field)
		}
	}
}

func TestErrorf(t *testing.T) {
	e := protocol.Errorf("9", protocol.CodeForbidden, "room %q is %d", "x", 3)
	if e.ID != "9" || e.Code != "forbidden" || e.Message != `room "x" is 3` {
		t.Errorf("Errorf = %+v", e)
	}
	var err error = e
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe != e {
		t.Error("errors.As does not find the *Error")
	}
}

// TestDecodeDoesNotAlias: the frame does not keep the input buffer, which
// the WebSocket library reuses after the handler returns.
func TestDecodeDoesNotAlias(t *testing.T) {
	in := []byte(`{"type":"send","id":"1","to":"bob","data":{"a":"b"}}`)
	f, err := protocol.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if f.ID != "1" || f.To != "bob" || string(f.Data) != `{"a":"b"}` {
		t.Errorf("frame changed with its input: %+v data %s", f, f.Data)
	}
}

func TestMalformedFrameKeepsLeadingID(t *testing.T) {
	for in, want := range map[string]string{
		`{"id":"42","type":"send",`:        "42",
		`{"type":"send","id":"x1","to":}`:  "x1",
		`{"type":"send","to":"b","data":}`: "",
		`{"id":7,"type":`:                  "",
		`{"data":{"id":"inner"},"x":`:      "",
	} {
		_, err := protocol.Decode([]byte(in))
		pe, ok := err.(*protocol.Error)
		if !ok || pe.Code != protocol.CodeBadRequest || pe.ID != want {
			t.Errorf("Decode(%q) = %v, want bad_request with id %q", in, err, want)
		}
	}
}
