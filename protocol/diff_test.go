package protocol_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/courier-im/courier/protocol"
)

// referenceDecode is Decode as encoding/json would do it: the behaviour the
// hand-written scanner must match.
func referenceDecode(b []byte) (*protocol.Frame, error) {
	var r struct {
		protocol.Frame
		RawID json.RawMessage `json:"id"`
	}
	err := json.Unmarshal(b, &r)
	f := r.Frame
	if len(r.RawID) > 0 && r.RawID[0] == '"' {
		_ = json.Unmarshal(r.RawID, &f.ID)
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, &protocol.Error{ID: f.ID, Code: protocol.CodeBadRequest, Message: "type:" + strings.SplitN(te.Field, ".", 2)[0]}
		}
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: "syntax"}
	}
	if len(f.Data) == 0 {
		f.Data = nil
	}
	return &f, nil
}

var frameFields = []string{"type", "id", "to", "event", "data", "volatile", "key", "room", "since", "with", "q", "limit", "before", "users", "seq"}

// exactKeys reports whether every top-level key that encoding/json would
// match to a Frame field (case-insensitively) is spelled exactly.
func exactKeys(b []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return true // syntax or shape errors do not depend on keys
	}
	for k := range m {
		for _, f := range frameFields {
			if strings.EqualFold(k, f) && k != f {
				return false
			}
		}
		if strings.ContainsAny(k, "\u017f\u212a") { // ſ and K fold to s and k
			return false
		}
	}
	return true
}

// checkSame compares Decode with referenceDecode on b.
func checkSame(t *testing.T, b []byte) {
	if !exactKeys(b) || len(b) == 0 || b[0] != '{' {
		return
	}
	got, gerr := protocol.Decode(b)
	want, werr := referenceDecode(b)
	if werr != nil {
		var ge *protocol.Error
		if gerr == nil || !errors.As(gerr, &ge) {
			t.Fatalf("%q: Decode accepted what encoding/json rejects (%v): %+v", b, werr, got)
		}
		we := werr.(*protocol.Error)
		if strings.HasPrefix(we.Message, "type:") {
			if !strings.Contains(ge.Message, "wrong type") || ge.ID != we.ID {
				t.Fatalf("%q: Decode error %+v, encoding/json says %+v", b, ge, we)
			}
		} else if ge.Message != "malformed JSON" {
			t.Fatalf("%q: Decode error %+v, encoding/json says syntax error", b, ge)
		}
		return
	}
	// encoding/json accepted: Decode must agree unless check() refused.
	if gerr != nil {
		var ge *protocol.Error
		if errors.As(gerr, &ge) && (strings.Contains(ge.Message, "needs") || strings.Contains(ge.Message, "type")) && ge.Message != "malformed JSON" && !strings.Contains(ge.Message, "wrong type") {
			return
		}
		t.Fatalf("%q: Decode error %v, encoding/json accepted %+v", b, gerr, want)
	}
	if want.Users != nil && len(want.Users) == 0 && got.Users != nil && len(got.Users) == 0 {
		got.Users = want.Users
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nDecode       %+v\nencoding/json %+v", b, got, want)
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, s := range append(decodeSeeds,
		`{"type":"send","to":"bob","data":{"a":[1,2.5e3,-0.1,true,false,null,"x\"y"]}}`,
		`{"type":"send","to":"b\u00e9\n","event":"\ud83d\ude00","key":"k"}`,
		`{"type":"resume","since":18446744073709551615}`,
		`{"type":"resume","since":18446744073709551616}`,
		`{"type":"resume","since":1e3}`,
		`{"type":"resume","since":null}`,
		`{"type":"history","with":"b","limit":-3,"before":2}`,
		`{"type":"history","with":"b","limit":1.5}`,
		`{"type":"presence","users":["a",null,"c"]}`,
		`{"type":"presence","users":["a",5]}`,
		`{"type":"send","to":"b","volatile":null}`,
		`{"type":"send","to":"b","volatile":1}`,
		`{"type":"send","to":5,"data":}`,
		`{"type":"send","type":"join","room":"r"}`,
		`{"type":"send","to":"bob","unknown":{"x":[{}]}}`,
		" \t\n{\"type\":\"ping\"} \n",
		`{"type":"send","to":"b","data":01}`,
		`{"type":"send","to":"b","data":"\x"}`,
		`{"type":"send","to":"b","data":"`+"\x01"+`"}`,
	) {
		checkSame(t, []byte(s))
	}
}

func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSame(t, b) })
}
