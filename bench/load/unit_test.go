package load

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestScanFrame(t *testing.T) {
	for _, tc := range []struct {
		in      string
		typ, id string
		data    string
		str     bool
		seq     uint64
	}{
		{in: `{"type":"message","msg":"06h","from":"a","to":"b","event":"message","data":"1234.xx","ts":"2026-11-23T14:01:50.909Z","seq":17}`,
			typ: "message", data: "1234.xx", str: true, seq: 17},
		{in: `{"type":"ack","id":"j3","msg":"x"}`, typ: "ack", id: "j3"},
		{in: ` { "seq" : 5 , "type" : "ack" } `, typ: "ack", seq: 5},
		{in: `{"type":"message","data":{"a":[1,"}",{"b":"]"}],"c":"\"{"},"seq":2}`, typ: "message", data: `{"a":[1,"}",{"b":"]"}],"c":"\"{"}`, seq: 2},
		{in: `{"type":"message","data":null}`, typ: "message", data: "null"},
		{in: `{"type":"error","id":"4","code":"forbidden","message":"join \"lobby\" first"}`, typ: "error", id: "4"},
		{in: `{"type":"message","data":"a\"b\\c\n\u00e9"}`, typ: "message", data: "a\"b\\c\né", str: true},
	} {
		var f srvFrame
		if err := scanFrame([]byte(tc.in), &f); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if string(f.typ) != tc.typ || string(f.id) != tc.id || string(f.payload()) != tc.data || f.dataStr != tc.str || f.seq != tc.seq {
			t.Errorf("%s: type %q id %q data %q (string %v) seq %d", tc.in, f.typ, f.id, f.payload(), f.dataStr, f.seq)
		}
	}
	for _, bad := range []string{``, `[]`, `{"type"`, `{"type":"a"`, `{"type":"a","data":"x}`, `{"seq":-1}`, `{"data":{]`, `{type:1}`} {
		var f srvFrame
		if scanFrame([]byte(bad), &f) == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestAppendJSONText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":     `"plain"`,
		`q"b\`:      `"q\"b\\"`,
		"nl\n":      `"nl\n"`,
		"é":         `"é"`,
		"<script>&": `"<script>&"`,
		"\x01":      `"\u0001"`,
	} {
		if got := string(appendJSONText([]byte("x"), in)); got != "x"+want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

func TestHist(t *testing.T) {
	var h Hist
	if h.Quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	// 1..100000 µs, shuffled.
	vals := rand.Perm(100000)
	for _, v := range vals {
		h.Record(time.Duration(v+1) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 1} {
		want := time.Duration(q*100000) * time.Microsecond
		got := h.Quantile(q)
		if d := float64(got-want) / float64(want); d < -0.01 || d > 0.01 {
			t.Errorf("q%g = %v, want %v ± 1%%", q, got, want)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
	for v := range uint64(5000) {
		if i := histIndex(v); histValue(i) > v*1009/1000+1 || histValue(i)+histValue(i)/100+1 < v {
			t.Fatalf("value %d → bucket %d → %d", v, i, histValue(i))
		}
	}
	if histIndex(^uint64(0)) >= histBuckets {
		t.Fatal("max uint64 out of range")
	}
}

func TestStamp(t *testing.T) {
	b := Stamp(64)
	before := time.Now()
	putStamp(b)
	got, ok := Stamped(b)
	if !ok || got.Before(before.Add(-time.Microsecond)) || time.Since(got) > time.Second || len(b) != 64 || b[63] != 'x' {
		t.Fatalf("%s → %v %v", b, got, ok)
	}
}

func TestWSMask(t *testing.T) {
	for n := range 40 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 7)
		}
		q := append([]byte(nil), p...)
		k := uint32(0xa1b2c3d4)
		wsMask(q, k)
		for i := range q {
			if q[i] != p[i]^byte(k>>(8*(i%4))) {
				t.Fatalf("n=%d: byte %d", n, i)
			}
		}
	}
}
