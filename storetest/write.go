package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
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
	s := newStore(t, open)
	const workers, appends = 8, 40
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	var mu sync.Mutex
	var done []*courier.Envelope
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for a := range appends {
				var batch []*courier.Envelope
				for i := range 1 + a%4 {
					id := fmt.Sprintf("w%d-a%d-%d", w, a, i)
					from, to := users[rng.IntN(len(users))], users[rng.IntN(len(users))]
					var opts []opt
					if rng.IntN(4) == 0 { // shared keys: duplicates across goroutines
						opts = append(opts, key(fmt.Sprint("k", rng.IntN(10))))
					}
					switch rng.IntN(6) {
					case 0:
						batch = append(batch, rm(id, from, "hall", opts...))
					case 1:
						batch = append(batch, dm(id, "api", to, append(opts, noCopy)...))
					default:
						batch = append(batch, dm(id, from, to, opts...))
					}
				}
				if err := s.Append(context.Background(), batch); err != nil {
					t.Errorf("Append(%s): %v", ids(batch), err)
					return
				}
				mu.Lock()
				done = append(done, batch...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Where each stored message says it is, and the first message of each key.
	slots := map[string]map[uint64]string{} // inbox or "#room" -> seq -> ID
	firstOfKey := map[string]*courier.Envelope{}
	claim := func(box string, seq uint64, id string) {
		if slots[box] == nil {
			slots[box] = map[uint64]string{}
		}
		if other, ok := slots[box][seq]; ok {
			t.Errorf("%s and %s both got seq %d in %s", other, id, seq, box)
		}
		slots[box][seq] = id
	}
	for _, e := range done {
		if e.Duplicate {
			continue
		}
		if e.Key != "" {
			if f, ok := firstOfKey[e.From+"\x00"+e.Key]; ok {
				t.Errorf("%s and %s from %s both stored with key %q", f.ID, e.ID, e.From, e.Key)
			}
			firstOfKey[e.From+"\x00"+e.Key] = e
		}
		switch {
		case e.Room != "":
			claim("#"+e.Room, e.ToSeq, e.ID)
		default:
			claim(e.To, e.ToSeq, e.ID)
			if !e.NoSenderCopy && e.From != e.To {
				claim(e.From, e.FromSeq, e.ID)
			}
		}
	}
	for _, e := range done {
		if f := firstOfKey[e.From+"\x00"+e.Key]; e.Duplicate && (f == nil || f.ID != e.ID || f.ToSeq != e.ToSeq || f.FromSeq != e.FromSeq) {
			t.Errorf("duplicate of key %q from %s reports %s (%d, %d); first is %+v", e.Key, e.From, e.ID, e.ToSeq, e.FromSeq, f)
		}
	}
	for box, seqs := range slots {
		for n := uint64(1); n <= uint64(len(seqs)); n++ {
			if _, ok := seqs[n]; !ok {
				t.Errorf("%s: %d messages but no seq %d: seqs have a gap", box, len(seqs), n)
			}
		}
		if box[0] == '#' {
			continue
		}
		ms := inbox(t, s, box)
		if len(ms) != len(seqs) {
			t.Errorf("inbox %s holds %d messages, want %d", box, len(ms), len(seqs))
		}
		for i, m := range ms {
			if m.Seq != uint64(i+1) || m.ID != seqs[m.Seq] {
				t.Errorf("inbox %s: message %d is %s at seq %d, want %s at seq %d", box, i, m.ID, m.Seq, seqs[uint64(i+1)], i+1)
			}
		}
		if n := latest(t, s, box); n != uint64(len(seqs)) {
			t.Errorf("LatestSeq(%s) = %d, want %d", box, n, len(seqs))
		}
	}
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
