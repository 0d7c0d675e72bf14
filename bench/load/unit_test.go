package load

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
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

func TestScanMsgpackFrame(t *testing.T) {
	str := func(s string) []byte { return appendMPStr(nil, s) }
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	long := strings.Repeat("y", 300)
	for _, tc := range []struct {
		name    string
		in      []byte
		typ, id string
		data    string
		str     bool
		seq     uint64
	}{
		{"message", cat([]byte{0x84}, str("data"), str("1234.xx"), str("seq"), []byte{0xcd, 0x01, 0x00}, str("ts"), str("2026"), str("type"), str("message")),
			"message", "", "1234.xx", true, 256},
		{"ack", cat([]byte{0x83}, str("id"), str("j3"), str("seq"), []byte{0x05}, str("type"), str("ack")), "ack", "j3", "", false, 5},
		{"long data, map16, big seq", cat([]byte{0xde, 0, 3}, str("type"), str("message"), str("data"), str(long), str("seq"), []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}),
			"message", "", long, true, 1 << 32},
		{"nested data", cat([]byte{0x82}, str("type"), str("message"), str("data"), []byte{0x82, 0xa1, 'a', 0x92, 0x01, 0xc0, 0xa1, 'b', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0}),
			"message", "", "\x82\xa1a\x92\x01\xc0\xa1b\xcb\x00\x00\x00\x00\x00\x00\x00\x00", false, 0},
		{"bin and ext skipped", cat([]byte{0x83}, str("x"), []byte{0xc4, 2, 1, 2}, str("z"), []byte{0xd6, 1, 0, 0, 0, 0}, str("type"), str("error")), "error", "", "", false, 0},
	} {
		var f srvFrame
		if err := scanMsgpackFrame(tc.in, &f); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if string(f.typ) != tc.typ || string(f.id) != tc.id || string(f.payload()) != tc.data || f.dataStr != tc.str || f.seq != tc.seq {
			t.Errorf("%s: type %q id %q data %q (string %v) seq %d", tc.name, f.typ, f.id, f.payload(), f.dataStr, f.seq)
		}
	}
	for _, bad := range [][]byte{
		nil, {0x90}, {0x81}, {0x81, 0xa4, 't', 'y', 'p', 'e'}, {0x81, 0x01, 0x01},
		cat([]byte{0x81}, str("seq"), []byte{0xff}),                          // negative seq
		cat([]byte{0x81}, str("seq"), []byte{0xd0, 0x80}),                    // negative int8
		cat([]byte{0x81}, str("type"), []byte{0xdb, 0xff, 0xff, 0xff, 0xff}), // length past the end
		cat([]byte{0x81}, str("type"), str("ack"), []byte{0xc0}),             // trailing bytes
		cat([]byte{0x81}, str("d"), []byte{0xdd, 0xff, 0xff, 0xff, 0xff}),
	} {
		var f srvFrame
		if scanMsgpackFrame(bad, &f) == nil {
			t.Errorf("% x: no error", bad)
		}
	}
}

func TestAppendMPStr(t *testing.T) {
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		b := appendMPStr(nil, strings.Repeat("a", n))
		s, end, ok := mpStr(b, 0)
		if !ok || len(s) != n || end != len(b) {
			t.Errorf("%d: %d bytes, end %d of %d, %v", n, len(s), end, len(b), ok)
		}
	}
}

// TestDeflateRoundTrip: what the client compresses, its inflater restores,
// also when it arrives as a server frame with RSV1, whole or fragmented.
func TestDeflateRoundTrip(t *testing.T) {
	msg := []byte(strings.Repeat(`{"type":"message","data":"hello hello"}`, 40))
	z, ok := appendDeflated([]byte("head"), msg)
	if !ok || string(z[:4]) != "head" || len(z)-4 >= len(msg)/4 {
		t.Fatalf("deflated %d bytes to %d (%v)", len(msg), len(z)-4, ok)
	}
	if _, ok := appendDeflated(nil, []byte("ab")); ok {
		t.Error("2 bytes shrank")
	}
	var got [][]byte
	w := &wsConn{deflate: true, onMsg: func(m []byte) { got = append(got, append([]byte(nil), m...)) }}
	n := len(z) - 4
	whole := append([]byte{0xc1, 126, byte(n >> 8), byte(n)}, z[4:]...)
	half := n / 2
	frag := append([]byte{0x41, byte(half)}, z[4:4+half]...)
	frag = append(append(frag, 0x80, byte(n-half)), z[4+half:]...)
	plain := []byte{0x81, 2, 'o', 'k'}
	stream := append(append(append([]byte(nil), whole...), frag...), plain...)
	// Byte by byte, so that every frame is split across reads.
	for i := range stream {
		w.feedLocked(stream[i : i+1])
	}
	if len(got) != 3 || string(got[0]) != string(msg) || string(got[1]) != string(msg) || string(got[2]) != "ok" {
		t.Fatalf("got %d messages: %.60q", len(got), got)
	}
}

func TestCheckDeflateResponse(t *testing.T) {
	for _, tc := range []struct {
		values  []string
		offered bool
		ok      bool
	}{
		{nil, false, true},
		{[]string{"permessage-deflate"}, false, false},
		{nil, true, false},
		{[]string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, true, true},
		{[]string{"permessage-deflate;server_no_context_takeover;client_max_window_bits=10"}, true, true},
		{[]string{"permessage-deflate; client_no_context_takeover"}, true, false}, // server keeps context
		{[]string{"permessage-deflate; server_no_context_takeover; x=1"}, true, false},
		{[]string{"x-webkit-deflate-frame"}, true, false},
		{[]string{"permessage-deflate; server_no_context_takeover", "other"}, true, false},
	} {
		if err := checkDeflateResponse(tc.values, tc.offered); (err == nil) != tc.ok {
			t.Errorf("%q offered %v: %v", tc.values, tc.offered, err)
		}
	}
}

func TestStampFill(t *testing.T) {
	for _, fill := range []string{FillX, FillText, FillRandom, ""} {
		for _, size := range []int{5, 20, 64, 1000} {
			b := StampFill(size, fill)
			if len(b) != max(size, 20) {
				t.Errorf("%s %d: %d bytes", fill, size, len(b))
			}
			if ts, ok := Stamped(b); !ok || time.Since(ts) > time.Minute {
				t.Errorf("%s %d: stamp %v %v", fill, size, ts, ok)
			}
			if q := appendJSONText(nil, b); len(q) != len(b)+2 {
				t.Errorf("%s %d: needs JSON escapes: %q", fill, size, b)
			}
		}
	}
	// text compresses less than x and more than random.
	sizes := map[string]int{}
	for _, fill := range []string{FillX, FillText, FillRandom} {
		z, _ := appendDeflated(nil, StampFill(1000, fill))
		sizes[fill] = len(z)
	}
	if !(sizes[FillX] < sizes[FillText] && sizes[FillText] < sizes[FillRandom]) {
		t.Errorf("deflated sizes of 1000 bytes: %v", sizes)
	}
	t.Logf("1000 bytes deflated: %v", sizes)
}

// slowDriver is an in-memory target whose sends take a fixed time, for
// the rate loop; a send is acked and delivered at once.
type slowDriver struct {
	cost time.Duration
	mu   sync.Mutex
	h    map[string]Handler
}

func (d *slowDriver) Name() string { return "slow" }

func (d *slowDriver) Dial(_ context.Context, user string, _ uint64, h Handler) (Client, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		d.h = map[string]Handler{}
	}
	d.h[user] = h
	return &slowClient{d: d, me: user}, nil
}

type slowClient struct {
	d  *slowDriver
	me string
}

func (c *slowClient) Send(to string, p []byte, _ bool) error {
	for t := time.Now(); time.Since(t) < c.d.cost; {
	}
	c.d.mu.Lock()
	me, them := c.d.h[c.me], c.d.h[to]
	c.d.mu.Unlock()
	them.Message(p, 0)
	me.Ack(true, 0)
	return nil
}
func (c *slowClient) Join(context.Context, string) error { return nil }
func (c *slowClient) Publish(string, []byte, bool) error { return nil }
func (c *slowClient) Close() error                       { return nil }

// TestRateBehind: a generator that cannot send as fast as --rate asks
// drops what is more than 100 ms late, counts it, and still stops on time.
func TestRateBehind(t *testing.T) {
	d := &slowDriver{cost: 200 * time.Microsecond} // at most 5,000 sends/s
	start := time.Now()
	res, err := Run(context.Background(), Config{Driver: d, Scenario: "dm", Users: 4, Rate: 20000, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := res.FlowResult
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a 500 ms run took %s", took)
	}
	if r.Late == 0 || r.Sent > 4000 || r.Sent+r.Late < 7000 || r.Lost != 0 {
		t.Errorf("sent %d, late %d, lost %d, skipped %d, elapsed %g", r.Sent, r.Late, r.Lost, r.Skipped, r.ElapsedS)
	}
	// At a rate it can keep, (almost) nothing is late. A send counts as late
	// only after 100 ms, so one stall of a loaded CI machine under -race may
	// still make a handful late; a generator that cannot keep up makes most of
	// them late, as the first run shows.
	res, err = Run(context.Background(), Config{Driver: d, Scenario: "dm", Users: 4, Rate: 500, Duration: 400 * time.Millisecond})
	if r := res.FlowResult; err != nil || r.Sent < 100 || r.Late*20 > r.Sent {
		t.Errorf("rate 500: sent %d, late %d, %v", r.Sent, r.Late, err)
	}
}
