package courier_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/courier-im/courier"
)

func TestParseQuery(t *testing.T) {
	for in, want := range map[string][]courier.Term{
		"pizza":               {{Words: []string{"pizza"}}},
		"Pizza  FRIDAY":       {{Words: []string{"pizza"}}, {Words: []string{"friday"}}},
		`"pizza friday" wine`: {{Words: []string{"pizza", "friday"}}, {Words: []string{"wine"}}},
		"piz*":                {{Words: []string{"piz"}, Prefix: true}},
		"e-mail":              {{Words: []string{"e", "mail"}}},
		`x" OR 1=1 --"`:       {{Words: []string{"x"}}, {Words: []string{"or", "1", "1"}}},
		"café NEAR/2":         {{Words: []string{"café"}}, {Words: []string{"near", "2"}}},
	} {
		q, err := courier.ParseQuery(in)
		if err != nil || !reflect.DeepEqual(q.Terms, want) {
			t.Errorf("ParseQuery(%q) = %+v, %v; want %+v", in, q.Terms, err, want)
		}
	}
	for _, in := range []string{"", "   ", `"unbalanced`, "a*b", "*", `"" ""`, "!!!", string(make([]byte, 300)), "\xff"} {
		if _, err := courier.ParseQuery(in); !errors.Is(err, courier.ErrBadRequest) {
			t.Errorf("ParseQuery(%q): %v, want a bad request", in, err)
		}
	}
}

func TestSearchText(t *testing.T) {
	for in, want := range map[string]string{
		`{"text":"hi bob","n":1,"tags":["a","b"],"nested":{"k":"deep"}}`: "hi bob\na\nb\ndeep",
		`"just a string"`:                 "just a string",
		`[{"x":"1"},"2",{"y":{"z":"3"}}]`: "1\n2\n3",
		`{"key only":{}}`:                 "",
		`null`:                            "",
		`{"a":"nul\u0000inside"}`:         "nul inside",
		`{"a":"ok","b":`:                  "ok",
		`["", "a", {"k" : "v"}]`:          "a\nv",
		`{"a":"x\"y\\z","b":"caf\u00e9"}`: "x\"y\\z\ncafé",
	} {
		if got := courier.SearchText([]byte(in)); got != want {
			t.Errorf("SearchText(%s) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSearchTextFast holds SearchText's scanner for valid JSON to the
// json.Decoder reading it replaced.
func FuzzSearchTextFast(f *testing.F) {
	for _, s := range []string{
		`{"text":"hi bob","n":1,"tags":["a","b"],"nested":{"k":"deep"}}`,
		`["", "a", {"k" : "v"}, "x\u0000y", "caf\u00e9", "\ud83d\ude00"]`,
		"{\"a\" :\t\"b\\\"c\", \"d\":[\"\xff\xfe\"]}",
		`{"a":{"b":{"c":["d",1,true,null,"e"]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		if got, want := courier.SearchText(b), courier.SearchTextTokens(b); got != want {
			t.Fatalf("SearchText(%q) = %q, the decoder reads %q", b, got, want)
		}
	})
}

func FuzzSearchText(f *testing.F) {
	f.Add([]byte(`{"a":["b",{"c":"d"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = courier.SearchText(b)
		if q, err := courier.ParseQuery(string(b)); err == nil && len(q.Terms) == 0 {
			t.Fatal("a parsed query without terms")
		}
	})
}

// BenchmarkSearchText: the scanner against the json.Decoder reading, on a
// message like the load generator's and the store benchmarks'.
func BenchmarkSearchText(b *testing.B) {
	data := []byte(`{"text":"hello there, this is a message of some ordinary length","n":42}`)
	b.Run("scanner", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			courier.SearchText(data)
		}
	})
	b.Run("decoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			courier.SearchTextTokens(data)
		}
	})
}
