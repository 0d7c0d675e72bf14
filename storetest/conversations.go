package storetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/courier-im/courier"
)

// conv is a Conversation as the suite expects it.
type conv struct {
	with, last string
	seq        uint64
	unread     int
}

func conversations(t *testing.T, s courier.Store, user string, limit int) []courier.Conversation {
	t.Helper()
	cs, err := s.Conversations(context.Background(), user, limit)
	if err != nil {
		t.Fatalf("Conversations(%q, %d): %v", user, limit, err)
	}
	return cs
}

// checkConversations checks user's conversations against want, in order.
func checkConversations(t *testing.T, s courier.Store, user string, limit int, want ...conv) {
	t.Helper()
	var got []conv
	for _, c := range conversations(t, s, user, limit) {
		got = append(got, conv{c.With, c.Last.ID, c.Last.Seq, c.Unread})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Conversations(%q, %d) =\n  %v\nwant\n  %v", user, limit, got, want)
	}
}

// markRead checks what MarkRead returns but its Delivered, which
// testReadDelivers checks, and returns that.
func markRead(t *testing.T, s courier.Store, user, peer string, seq uint64, want courier.ReadMark) []courier.FirstDelivery {
	t.Helper()
	got, err := s.MarkRead(context.Background(), user, peer, seq)
	if err != nil || got.Msg != want.Msg || got.Moved != want.Moved {
		t.Errorf("MarkRead(%q, %q, %d) = %+v, %v; want %+v", user, peer, seq, got, err, want)
	}
	return got.Delivered
}

// testReadDelivers checks that a read mark marks delivered, once and in seq
// order, the messages from the peer that it passes and that had no
// delivered mark; not the reader's own, not a server API label's, not
// those marked before, and nothing when the mark does not move.
func testReadDelivers(t *testing.T, open Opener) {
	s := newStore(t, open)
	mustAppend(t, s,
		dm("r1", "bob", "alice"),             // alice 1
		dm("r2", "bob", "alice"),             // alice 2
		dm("r3", "alice", "bob"),             // alice 3: her own
		dm("r4", "bob", "alice"),             // alice 4
		dm("r5", "billing", "alice", noCopy), // alice 5: a label's
		dm("r6", "bob", "alice"),             // alice 6
		dm("r7", "bob", "alice"),             // alice 7
	)
	if got := markDelivered(t, s, "r2"); len(got) != 1 {
		t.Fatalf("MarkDelivered(r2) = %+v", got)
	}
	check := func(got []courier.FirstDelivery, from, to string, ids ...string) {
		t.Helper()
		var want []courier.FirstDelivery
		for _, id := range ids {
			want = append(want, courier.FirstDelivery{ID: id, From: from, To: to})
		}
		if !slices.Equal(got, want) {
			t.Errorf("delivered by the read = %+v, want %+v", got, want)
		}
	}
	check(markRead(t, s, "alice", "bob", 4, courier.ReadMark{Msg: "r4", Moved: true}), "bob", "alice", "r1", "r4")
	check(markRead(t, s, "alice", "bob", 4, courier.ReadMark{Msg: "r4"}), "bob", "alice")
	check(markRead(t, s, "bob", "alice", 3, courier.ReadMark{Msg: "r3", Moved: true}), "alice", "bob", "r3")
	check(markRead(t, s, "alice", "billing", 5, courier.ReadMark{Msg: "r5", Moved: true}), "billing", "alice")
	if got := markDelivered(t, s, "r6"); len(got) != 1 {
		t.Errorf("MarkDelivered(r6) = %+v", got)
	}
	check(markRead(t, s, "alice", "bob", 100, courier.ReadMark{Msg: "r7", Moved: true}), "bob", "alice", "r7")
	if got := markDelivered(t, s, "r1", "r3", "r4", "r7"); len(got) != 0 {
		t.Errorf("MarkDelivered of what the reads marked = %+v, want none", got)
	}
}

// testConversations checks each user's conversations, most recent first,
// with the last message at the user's seq and unread counts, as messages
// come and read marks move (never back, never past the newest message).
func testConversations(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, closeFn := openStore(t, open, dir)
	mustAppend(t, s,
		dm("c1", "bob", "alice", at(1)),             // alice 1, bob 1
		dm("c2", "bob", "alice", at(2)),             // alice 2, bob 2
		dm("c3", "alice", "bob", at(3)),             // alice 3, bob 3
		dm("c4", "carol", "alice", at(4)),           // alice 4, carol 1
		dm("c5", "billing", "alice", noCopy, at(5)), // alice 5
		dm("c6", "alice", "alice", at(6)),           // alice 6: note to self
		dm("c7", "bob", "alice", at(7)),             // alice 7, bob 4
		rm("c8", "alice", "lobby", at(8)),           // no conversation
		dm("c9", "dave", "erin", at(9)),             // not alice's
	)
	checkConversations(t, s, "alice", 50,
		conv{"bob", "c7", 7, 3}, conv{"alice", "c6", 6, 0}, conv{"billing", "c5", 5, 1}, conv{"carol", "c4", 4, 1})
	checkConversations(t, s, "alice", 2, conv{"bob", "c7", 7, 3}, conv{"alice", "c6", 6, 0})
	checkConversations(t, s, "bob", 50, conv{"alice", "c7", 4, 1})
	checkConversations(t, s, "carol", 50, conv{"alice", "c4", 1, 0})
	checkConversations(t, s, "erin", 50, conv{"dave", "c9", 1, 1})
	checkConversations(t, s, "billing", 50) // a label has no inbox
	checkConversations(t, s, "lobby", 50)
	checkConversations(t, s, "nobody", 50)
	checkConversations(t, s, "alice", 0)
	if c := conversations(t, s, "alice", 1); len(c) == 1 {
		checkMessage(t, c[0].Last, dm("c7", "bob", "alice", at(7)), 7)
	}

	// Read marks: the newest message from the peer at or before the mark.
	markRead(t, s, "alice", "bob", 2, courier.ReadMark{Msg: "c2", Moved: true})
	checkConversations(t, s, "alice", 1, conv{"bob", "c7", 7, 1})
	markRead(t, s, "alice", "bob", 3, courier.ReadMark{Msg: "c2", Moved: true}) // c3 is alice's own
	markRead(t, s, "alice", "bob", 1, courier.ReadMark{Msg: "c1"})              // back: nothing moves
	markRead(t, s, "alice", "bob", 3, courier.ReadMark{Msg: "c2"})              // the same: nothing moves
	checkConversations(t, s, "alice", 1, conv{"bob", "c7", 7, 1})
	markRead(t, s, "alice", "bob", 100, courier.ReadMark{Msg: "c7", Moved: true}) // past the newest: to the newest
	checkConversations(t, s, "alice", 1, conv{"bob", "c7", 7, 0})
	markRead(t, s, "alice", "bob", 200, courier.ReadMark{Msg: "c7"})
	markRead(t, s, "bob", "alice", 3, courier.ReadMark{Msg: "c3", Moved: true})
	markRead(t, s, "alice", "billing", 5, courier.ReadMark{Msg: "c5", Moved: true})
	markRead(t, s, "alice", "alice", 6, courier.ReadMark{Msg: "c6", Moved: true})
	markRead(t, s, "alice", "carol", 3, courier.ReadMark{Moved: true}) // before carol's first message
	markRead(t, s, "alice", "nobody", 3, courier.ReadMark{})
	markRead(t, s, "nobody", "alice", 3, courier.ReadMark{})
	markRead(t, s, "alice", "lobby", 3, courier.ReadMark{})

	// Messages after the mark are unread, including those after a mark
	// that asked for more than there was.
	mustAppend(t, s, dm("c10", "bob", "alice", at(10)), dm("c11", "carol", "alice", at(11)), dm("c12", "bob", "alice", at(12)))
	checkConversations(t, s, "alice", 50,
		conv{"bob", "c12", 10, 2}, conv{"carol", "c11", 9, 2}, conv{"alice", "c6", 6, 0}, conv{"billing", "c5", 5, 0})
	closeFn()

	s, _ = openStore(t, open, dir)
	checkConversations(t, s, "alice", 50,
		conv{"bob", "c12", 10, 2}, conv{"carol", "c11", 9, 2}, conv{"alice", "c6", 6, 0}, conv{"billing", "c5", 5, 0})
	markRead(t, s, "alice", "carol", 9, courier.ReadMark{Msg: "c11", Moved: true})
	checkConversations(t, s, "alice", 2, conv{"bob", "c12", 10, 2}, conv{"carol", "c11", 9, 0})
}

// testManyConversations checks the order and limit over hundreds of
// conversations written in batches of every size.
func testManyConversations(t *testing.T, open Opener) {
	s := newStore(t, open)
	rng := rand.New(rand.NewPCG(3, 5))
	type state struct {
		last   string
		seq    uint64
		unread int
	}
	convs := map[string]*state{}
	n := 0
	for _, size := range []int{1, 300, 7, 128, 2, 500} {
		var batch []*courier.Envelope
		for range size {
			peer := fmt.Sprint("p", rng.IntN(400))
			from, to := peer, "hub"
			if rng.IntN(3) == 0 {
				from, to = to, from
			}
			batch = append(batch, dm(fmt.Sprint("m", n), from, to, at(n)))
			n++
		}
		mustAppend(t, s, batch...)
		for _, e := range batch {
			peer, seq := e.From, e.ToSeq
			if e.From == "hub" {
				peer, seq = e.To, e.FromSeq
			}
			c := convs[peer]
			if c == nil {
				c = &state{}
				convs[peer] = c
			}
			c.last, c.seq = e.ID, seq
			if e.To == "hub" {
				c.unread++
			}
		}
	}
	var want []conv
	for peer, c := range convs {
		want = append(want, conv{peer, c.last, c.seq, c.unread})
	}
	sortConvs(want)
	checkConversations(t, s, "hub", 1000, want...)
	checkConversations(t, s, "hub", 10, want[:10]...)
}

// sortConvs sorts cs most recent first.
func sortConvs(cs []conv) {
	slices.SortFunc(cs, func(a, b conv) int { return cmp.Compare(b.seq, a.seq) })
}

// testConversationsConcurrent appends to one conversation from several
// goroutines while another moves the read mark to messages it has read:
// the unread count ends as the messages after the highest mark.
func testConversationsConcurrent(t *testing.T, open Opener) {
	ConversationsConcurrently(t, newStore(t, open))
}

// ConversationsConcurrently runs Appends to alice from bob and MarkReads
// of alice's conversation with bob through the stores at once (nodes of
// one database, or one store), then checks that the unread count is the
// number of bob's messages after the highest mark.
func ConversationsConcurrently(t *testing.T, stores ...courier.Store) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var mark uint64
	stop := make(chan struct{})
	for n, s := range stores {
		for w := range 3 {
			wg.Go(func() {
				for i := range 25 {
					batch := []*courier.Envelope{dm(fmt.Sprintf("b%d-%d-%d", n, w, i), "bob", "alice")}
					if i%5 == 0 {
						batch = append(batch, dm(fmt.Sprintf("a%d-%d-%d", n, w, i), "alice", "bob"))
					}
					if err := s.Append(ctx, batch); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			})
		}
	}
	var readers sync.WaitGroup
	for _, s := range stores {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				seq, err := s.LatestSeq(ctx, "alice")
				if err == nil && seq > 0 {
					_, err = s.MarkRead(ctx, "alice", "bob", seq)
				}
				if err != nil {
					t.Errorf("mark read: %v", err)
					return
				}
				mu.Lock()
				mark = max(mark, seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	unread := 0
	for _, m := range inbox(t, stores[0], "alice") {
		if m.From == "bob" && m.Seq > mark {
			unread++
		}
	}
	for i, s := range stores {
		cs := conversations(t, s, "alice", 10)
		if len(cs) != 1 || cs[0].With != "bob" || cs[0].Unread != unread || cs[0].Last.Seq != latest(t, s, "alice") {
			t.Errorf("store %d: Conversations(alice) = %+v; want bob, unread %d (after mark %d), last at the latest seq", i, cs, unread, mark)
		}
	}
}
