package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/courier-im/courier"
)

type batches = [][]*courier.Envelope

func testIdempotency(t *testing.T, open Opener) {
	type want struct {
		id       string // ID after Append: the first message's, for a duplicate
		to, from uint64
		dup      bool
		ms       int // Time, in ms after base
	}
	cases := []struct {
		name    string
		batches batches
		want    []want // for each envelope, in order
		inboxes map[string][]string
	}{
		{"later batch",
			batches{{dm("m1", "alice", "bob", key("k"), at(1))}, {dm("m2", "alice", "bob", key("k"), at(2))}},
			[]want{{"m1", 1, 1, false, 1}, {"m1", 1, 1, true, 1}},
			map[string][]string{"alice": {"m1"}, "bob": {"m1"}}},
		{"same batch",
			batches{{dm("m1", "alice", "bob", key("k"), at(1)), dm("m2", "alice", "bob", key("k"), at(2)), dm("m3", "alice", "bob", at(3))}},
			[]want{{"m1", 1, 1, false, 1}, {"m1", 1, 1, true, 1}, {"m3", 2, 2, false, 3}},
			map[string][]string{"alice": {"m1", "m3"}, "bob": {"m1", "m3"}}},
		{"after other messages",
			batches{{dm("m1", "alice", "bob", key("k"), at(1))}, {dm("m2", "bob", "alice", at(2))}, {dm("m3", "alice", "bob", key("k"), at(3))}},
			[]want{{"m1", 1, 1, false, 1}, {"m2", 2, 2, false, 2}, {"m1", 1, 1, true, 1}},
			map[string][]string{"alice": {"m1", "m2"}, "bob": {"m1", "m2"}}},
		{"other sender is independent",
			batches{{dm("m1", "alice", "bob", key("k"), at(1))}, {dm("m2", "carol", "bob", key("k"), at(2))}},
			[]want{{"m1", 1, 1, false, 1}, {"m2", 2, 1, false, 2}},
			map[string][]string{"alice": {"m1"}, "bob": {"m1", "m2"}, "carol": {"m2"}}},
		{"other recipient is still a duplicate",
			batches{{dm("m1", "alice", "bob", key("k"), at(1))}, {dm("m2", "alice", "carol", key("k"), at(2))}},
			[]want{{"m1", 1, 1, false, 1}, {"m1", 1, 1, true, 1}},
			map[string][]string{"alice": {"m1"}, "bob": {"m1"}, "carol": nil}},
		{"no key never duplicates",
			batches{{dm("m1", "alice", "bob", at(1)), dm("m2", "alice", "bob", at(2))}},
			[]want{{"m1", 1, 1, false, 1}, {"m2", 2, 2, false, 2}},
			map[string][]string{"alice": {"m1", "m2"}, "bob": {"m1", "m2"}}},
		{"room",
			batches{{rm("r1", "alice", "lobby", key("k"), at(1))}, {rm("r2", "alice", "lobby", key("k"), at(2)), rm("r3", "alice", "lobby", at(3))}},
			[]want{{"r1", 1, 0, false, 1}, {"r1", 1, 0, true, 1}, {"r3", 2, 0, false, 3}},
			map[string][]string{"alice": nil}},
		{"label sender",
			batches{{dm("m1", "api", "bob", noCopy, key("k"), at(1))}, {dm("m2", "api", "bob", noCopy, key("k"), at(2))}},
			[]want{{"m1", 1, 0, false, 1}, {"m1", 1, 0, true, 1}},
			map[string][]string{"api": nil, "bob": {"m1"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, open)
			var all []*courier.Envelope
			for _, b := range c.batches {
				mustAppend(t, s, b...)
				all = append(all, b...)
			}
			for i, w := range c.want {
				e := all[i]
				checkSeqs(t, e, w.to, w.from, w.dup)
				if e.ID != w.id || !e.Time.Equal(msAfter(w.ms)) {
					t.Errorf("envelope %d: ID %s, Time %v; want %s, %v", i, e.ID, e.Time, w.id, msAfter(w.ms))
				}
			}
			for user, ids := range c.inboxes {
				checkInbox(t, s, user, ids...)
			}
		})
	}
}

func testAtomic(t *testing.T, open Opener) {
	cases := []struct {
		name string
		bad  []*courier.Envelope
	}{
		{"ID already stored", []*courier.Envelope{
			dm("m2", "alice", "bob", key("k2")), rm("r1", "alice", "lobby", key("k3")), dm("m1", "carol", "dave")}},
		{"ID twice in the batch", []*courier.Envelope{
			dm("m2", "alice", "bob", key("k2")), rm("r1", "alice", "lobby", key("k3")), dm("m2", "carol", "dave")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, open)
			mustAppend(t, s, dm("m1", "alice", "bob"))
			before := make([]courier.Envelope, len(c.bad))
			for i, e := range c.bad {
				before[i] = *e
			}
			if err := s.Append(context.Background(), c.bad); err == nil {
				t.Fatalf("Append(%s) succeeded; want an error for the repeated message ID", ids(c.bad))
			}
			for i, e := range c.bad {
				if !reflect.DeepEqual(*e, before[i]) {
					t.Errorf("failed Append changed envelope %d: %+v, was %+v", i, *e, before[i])
				}
			}
			checkInbox(t, s, "alice", "m1")
			checkInbox(t, s, "bob", "m1")
			checkInbox(t, s, "carol")
			checkInbox(t, s, "dave")
			// Nothing of the failed batch holds a seq or a key.
			good := []*courier.Envelope{
				dm("m2", "alice", "bob", key("k2")), rm("r1", "alice", "lobby", key("k3")), dm("m3", "carol", "dave")}
			mustAppend(t, s, good...)
			checkSeqs(t, good[0], 2, 2, false)
			checkSeqs(t, good[1], 1, 0, false)
			checkSeqs(t, good[2], 1, 1, false)
		})
	}
}

func testConcurrent(t *testing.T, open Opener) {
	AppendConcurrently(t, 8, 40, newStore(t, open))
}

func testReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, closeFn := openStore(t, open, dir)
	m1 := dm("m1", "alice", "bob", key("k"), data(`{"x": [1, 2]}`), at(7))
	mustAppend(t, s, m1)
	mustAppend(t, s, rm("r1", "alice", "lobby"))
	closeFn()

	for round := 1; round <= 2; round++ {
		s, closeFn = openStore(t, open, dir)
		for _, user := range []string{"alice", "bob"} {
			ms := inbox(t, s, user)
			if len(ms) != round {
				t.Fatalf("reopen %d: inbox %s holds %d messages, want %d", round, user, len(ms), round)
			}
			checkMessage(t, ms[0], m1, 1)
		}
		dup := dm(fmt.Sprint("dup", round), "alice", "bob", key("k"))
		next := dm(fmt.Sprint("n", round), "bob", "alice")
		room := rm(fmt.Sprint("r", round+1), "bob", "lobby")
		mustAppend(t, s, dup, next, room)
		checkSeqs(t, dup, 1, 1, true)
		checkSeqs(t, next, uint64(round+1), uint64(round+1), false)
		checkSeqs(t, room, uint64(round+1), 0, false)
		closeFn()
	}
}
