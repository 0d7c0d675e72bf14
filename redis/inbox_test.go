package redis

import (
	"slices"
	"testing"
)

// kinds renders what take returned: payloads, and "^" for a catch-up.
func kinds(items []inbound) []string {
	var out []string
	for _, in := range items {
		if in.catchUp {
			out = append(out, "^")
		} else {
			out = append(out, in.payload)
		}
	}
	return out
}

func TestInboxDropsThenCatchesUp(t *testing.T) {
	q := newInbox(10)
	steps := []struct {
		payload   string
		firstDrop bool
	}{{"aaaa", false}, {"bbbb", false}, {"cccc", true}, {"dddd", false}}
	for _, s := range steps {
		if got := q.put(inbound{payload: s.payload}); got != s.firstDrop {
			t.Errorf("put(%q) reported first drop %v, want %v", s.payload, got, s.firstDrop)
		}
	}
	if got := kinds(q.take(nil)); !slices.Equal(got, []string{"aaaa", "bbbb"}) {
		t.Errorf("first take: %q", got)
	}
	// The catch-up comes after the last packet dropped: here, at once.
	if got := kinds(q.take(nil)); !slices.Equal(got, []string{"^"}) {
		t.Errorf("second take: %q, want a catch-up", got)
	}
	if got := q.take(nil); got != nil {
		t.Errorf("third take: %q, want nothing", kinds(got))
	}
	if q.droppedCount() != 2 {
		t.Errorf("dropped %d, want 2", q.droppedCount())
	}
}

func TestInboxCatchUpBeforeNextPacket(t *testing.T) {
	q := newInbox(4)
	q.put(inbound{payload: "aaaa"})
	q.put(inbound{payload: "bbbb"}) // dropped
	got := kinds(q.take(nil))
	q.put(inbound{payload: "cccc"}) // room again: the catch-up goes first
	got = append(got, kinds(q.take(nil))...)
	if want := []string{"aaaa", "^", "cccc"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestInboxOversizedPacketPassesAlone(t *testing.T) {
	q := newInbox(2)
	if q.put(inbound{payload: "larger than the limit"}) {
		t.Error("a packet into an empty inbox was dropped")
	}
	q.put(inbound{catchUp: true})
	q.put(inbound{catchUp: true}) // two in a row are one
	if got := kinds(q.take(nil)); !slices.Equal(got, []string{"larger than the limit", "^"}) {
		t.Errorf("got %q", got)
	}
}
