package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/courier-im/courier/protocol"
)

var knownTypes = map[string]bool{
	protocol.TypeSend: true, protocol.TypeJoin: true, protocol.TypeLeave: true,
	protocol.TypePublish: true, protocol.TypeResume: true, protocol.TypeHistory: true,
	protocol.TypeSearch: true, protocol.TypePresence: true, protocol.TypeWatch: true,
	protocol.TypeUnwatch: true, protocol.TypeRead: true, protocol.TypeConversations: true,
	protocol.TypePing: true,
}

// decodeSeeds are the contract's example frames and bad ones.
var decodeSeeds = []string{
	`{"type":"send","id":"1","to":"bob","event":"chat","data":{"text":"hi"}}`,
	`{"type":"send","id":"1","to":"bob","event":"typing","data":null,"volatile":true}`,
	`{"type":"send","id":"1","to":"bob","event":"chat","data":1,"key":"k1"}`,
	`{"type":"send","id":"2","to":"conn:c1","event":"signal","data":"x"}`,
	`{"type":"join","id":"3","room":"lobby"}`,
	`{"type":"leave","id":"3","room":"lobby"}`,
	`{"type":"publish","id":"4","room":"lobby","event":"chat","data":[1,{"a":null}]}`,
	`{"type":"resume","id":"5","since":0}`,
	`{"type":"history","id":"6","with":"bob","limit":50,"before":10}`,
	`{"type":"history","id":"6","room":"lobby","limit":50}`,
	`{"type":"search","id":"7","q":"pizza","limit":20}`,
	`{"type":"presence","id":"8","users":["bob"]}`,
	`{"type":"watch","id":"9","users":["bob"]}`,
	`{"type":"unwatch","id":"9","users":["bob"]}`,
	`{"type":"read","id":"10","with":"bob","seq":3}`,
	`{"type":"conversations","id":"11","limit":50}`,
	`{"type":"ping"}`,
	`{"type":"nope","id":"7"}`,
	`{"type":"nope","id":7}`,
	`{"id":"1"}`,
	`{"type":"send","id":"1"}`,
	`{"type":"send","id":"1","to":5}`,
	`{"type":"resume","id":"5","since":-1}`,
	`{"type":"presence","id":"8","users":[]}`,
	`{"type":"` + "\xff\xfe" + `","id":"` + "\xc3" + `"}`,
	`{"type":"send","to":"b","data":{"deep":[[[[[[[[[[]]]]]]]]]]}}`,
	`[]`, `5`, `"x"`, `null`, ``, ` `, `{`, `{"type":"send","id":"1","to":"b`,
	`{"type":"send","id":"1","to":"bob"} x`,
	"{\"type\":\"send\",\"id\":\"\\ud800\",\"to\":\"\\u0000\"}",
}

// FuzzDecode: Decode never panics and returns either a frame of a known
// type with the fields that type needs, or a *protocol.Error with a code
// whose error frame is valid JSON.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		fr, err := protocol.Decode(in)
		if !bytes.Equal(in, orig) {
			t.Fatalf("Decode changed its input")
		}
		if err != nil {
			if fr != nil {
				t.Fatalf("Decode returned both a frame and %v", err)
			}
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *protocol.Error", err, err)
			}
			if pe.Code == "" {
				t.Fatalf("error without a code: %+v", pe)
			}
			if b := protocol.AppendError(nil, pe); !json.Valid(b) || !utf8.Valid(b) {
				t.Fatalf("error frame %q is not valid JSON", b)
			}
			return
		}
		if fr == nil || !knownTypes[fr.Type] {
			t.Fatalf("Decode(%q) = %+v without error", in, fr)
		}
		if !json.Valid(in) {
			t.Fatalf("Decode accepted invalid JSON %q", in)
		}
		if fr.Data != nil && !json.Valid(fr.Data) {
			t.Fatalf("Data %q is not valid JSON", fr.Data)
		}
		var missing bool
		switch fr.Type {
		case protocol.TypeSend:
			missing = fr.To == ""
		case protocol.TypeJoin, protocol.TypeLeave, protocol.TypePublish:
			missing = fr.Room == ""
		case protocol.TypeResume:
			missing = fr.Since == nil
		case protocol.TypeHistory:
			missing = fr.With == "" && fr.Room == ""
		case protocol.TypeSearch:
			missing = fr.Q == ""
		case protocol.TypePresence, protocol.TypeWatch, protocol.TypeUnwatch:
			missing = len(fr.Users) == 0
		case protocol.TypeRead:
			missing = fr.With == "" || fr.Seq == nil
		}
		if missing {
			t.Fatalf("Decode(%q) accepted a %s frame without a required field: %+v", in, fr.Type, fr)
		}
	})
}

// FuzzAppendString: AppendString's output always parses with encoding/json
// and equals the json.Marshal round trip of the input.
func FuzzAppendString(f *testing.F) {
	for _, s := range stringCases {
		// Long seeds make the fuzzer spend its time minimizing them.
		if len(s) <= 64 {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkString(t, s)
	})
}
