package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/courier-im/courier"
)

// page is one History or RoomHistory call and the messages it must return.
type page struct {
	before uint64
	limit  int
	want   []string // IDs, newest first
}

// checkPage checks that ms are want (IDs, newest first) with the seqs of
// seqOf.
func checkPage(t *testing.T, what string, ms []courier.Message, want []string, seqOf map[string]uint64) {
	t.Helper()
	var got []string
	for _, m := range ms {
		got = append(got, m.ID)
		if seq, ok := seqOf[m.ID]; ok && m.Seq != seq {
			t.Errorf("%s: %s has Seq %d, want %d", what, m.ID, m.Seq, seq)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func history(t *testing.T, s courier.Store, user, peer string, before uint64, limit int) []courier.Message {
	t.Helper()
	ms, err := s.History(context.Background(), user, peer, before, limit)
	if err != nil {
		t.Fatalf("History(%q, %q, %d, %d): %v", user, peer, before, limit, err)
	}
	return ms
}

// testHistory checks a conversation as it stands in each side's inbox:
// both directions, newest first, each side's own seqs, paged by before;
// notes to self, server API labels, and that nobody reads another pair's
// messages.
func testHistory(t *testing.T, open Opener) {
	s := newStore(t, open)
	batch := []*courier.Envelope{
		dm("h1", "alice", "bob", at(1)),             // alice 1, bob 1
		dm("x1", "carol", "alice", at(2)),           // alice 2, carol 1
		dm("h2", "bob", "alice", at(3)),             // alice 3, bob 2
		dm("x2", "bob", "carol", at(4)),             // bob 3, carol 2
		dm("h3", "alice", "bob", at(5)),             // alice 4, bob 4
		dm("n1", "alice", "alice", at(6)),           // alice 5: a note to self
		dm("b1", "billing", "alice", noCopy, at(7)), // alice 6: from a label
		rm("r1", "alice", "lobby", at(8)),           // in no inbox
		dm("h4", "bob", "alice", at(9)),             // alice 7, bob 5
	}
	mustAppend(t, s, batch...)
	aliceSeq := map[string]uint64{}
	bobSeq := map[string]uint64{}
	for _, e := range batch {
		switch {
		case e.To == "alice":
			aliceSeq[e.ID] = e.ToSeq
		case e.From == "alice" && e.Room == "":
			aliceSeq[e.ID] = e.FromSeq
		}
		switch {
		case e.To == "bob":
			bobSeq[e.ID] = e.ToSeq
		case e.From == "bob":
			bobSeq[e.ID] = e.FromSeq
		}
	}
	for _, p := range []page{
		{0, 50, []string{"h4", "h3", "h2", "h1"}},
		{0, 2, []string{"h4", "h3"}},
		{aliceSeq["h3"], 2, []string{"h2", "h1"}}, // before is exclusive, in alice's seqs
		{aliceSeq["h2"], 50, []string{"h1"}},
		{aliceSeq["h1"], 50, nil},
		{1000, 1, []string{"h4"}},
	} {
		what := fmt.Sprintf("History(alice, bob, before %d, limit %d)", p.before, p.limit)
		checkPage(t, what, history(t, s, "alice", "bob", p.before, p.limit), p.want, aliceSeq)
	}
	checkPage(t, "History(bob, alice)", history(t, s, "bob", "alice", 0, 50), []string{"h4", "h3", "h2", "h1"}, bobSeq)
	checkPage(t, "History(bob, alice, before 4)", history(t, s, "bob", "alice", 4, 50), []string{"h2", "h1"}, bobSeq)
	checkPage(t, "History(alice, alice)", history(t, s, "alice", "alice", 0, 50), []string{"n1"}, aliceSeq)
	checkPage(t, "History(alice, billing)", history(t, s, "alice", "billing", 0, 50), []string{"b1"}, aliceSeq)
	// A third user never sees another pair's messages.
	checkPage(t, "History(carol, bob)", history(t, s, "carol", "bob", 0, 50), []string{"x2"}, nil)
	checkPage(t, "History(carol, alice)", history(t, s, "carol", "alice", 0, 50), []string{"x1"}, nil)
	for _, c := range [][2]string{{"carol", "dave"}, {"dave", "alice"}, {"billing", "alice"}, {"lobby", "alice"}, {"alice", "lobby"}} {
		checkPage(t, fmt.Sprintf("History(%s, %s)", c[0], c[1]), history(t, s, c[0], c[1], 0, 50), nil, nil)
	}
	if ms := history(t, s, "alice", "bob", 0, 0); len(ms) != 0 {
		t.Errorf("History with limit 0 returned %d messages", len(ms))
	}
	// Messages read back whole.
	ms := history(t, s, "alice", "bob", 0, 50)
	checkMessage(t, ms[len(ms)-1], batch[0], aliceSeq["h1"])
}

// testRoomHistory checks a room's history: newest first, room seqs, paged.
func testRoomHistory(t *testing.T, open Opener) {
	s := newStore(t, open)
	var batch []*courier.Envelope
	for i := 1; i <= 7; i++ {
		batch = append(batch, rm(fmt.Sprint("r", i), "alice", "lobby", at(i)))
		if i%3 == 0 {
			batch = append(batch, rm(fmt.Sprint("o", i), "bob", "attic", at(i)), dm(fmt.Sprint("d", i), "alice", "bob", at(i)))
		}
	}
	mustAppend(t, s, batch...)
	seqs := map[string]uint64{}
	for _, e := range batch {
		if e.Room == "lobby" {
			seqs[e.ID] = e.ToSeq
		}
	}
	for _, p := range []page{
		{0, 50, []string{"r7", "r6", "r5", "r4", "r3", "r2", "r1"}},
		{0, 3, []string{"r7", "r6", "r5"}},
		{5, 3, []string{"r4", "r3", "r2"}},
		{2, 3, []string{"r1"}},
		{1, 3, nil},
	} {
		ms, err := s.RoomHistory(context.Background(), "lobby", p.before, p.limit)
		if err != nil {
			t.Fatalf("RoomHistory(lobby, %d, %d): %v", p.before, p.limit, err)
		}
		checkPage(t, fmt.Sprintf("RoomHistory(lobby, before %d, limit %d)", p.before, p.limit), ms, p.want, seqs)
		if p.before == 0 && p.limit == 50 {
			checkMessage(t, ms[6], batch[0], 1)
		}
	}
	for _, room := range []string{"attic", "nowhere", "alice"} {
		ms, err := s.RoomHistory(context.Background(), room, 0, 50)
		if err != nil {
			t.Fatalf("RoomHistory(%s): %v", room, err)
		}
		want := map[string][]string{"attic": {"o6", "o3"}}[room]
		checkPage(t, "RoomHistory("+room+")", ms, want, nil)
	}
}
