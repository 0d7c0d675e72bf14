package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

func expire(t *testing.T, s courier.Store, before time.Time, want int) {
	t.Helper()
	n, err := s.Expire(context.Background(), before)
	if err != nil || n != want {
		t.Errorf("Expire(%v) = %d, %v; want %d", before, n, err, want)
	}
}

func checkHorizon(t *testing.T, s courier.Store, user string, want uint64) {
	t.Helper()
	if got, err := s.Horizon(context.Background(), user); err != nil || got != want {
		t.Errorf("Horizon(%q) = %d, %v; want %d", user, got, err, want)
	}
}

// checkInboxFrom checks that user's inbox holds exactly ids, at seqs
// first, first+1, ..., and that LatestSeq is latest.
func checkInboxFrom(t *testing.T, s courier.Store, user string, first, latestSeq uint64, ids ...string) {
	t.Helper()
	ms := inbox(t, s, user)
	var got []string
	for i, m := range ms {
		got = append(got, m.ID)
		if m.Seq != first+uint64(i) {
			t.Errorf("inbox %q: %s at seq %d, want %d", user, m.ID, m.Seq, first+uint64(i))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("inbox %q holds %v, want %v", user, got, ids)
	}
	if n := latest(t, s, user); n != latestSeq {
		t.Errorf("LatestSeq(%q) = %d, want %d", user, n, latestSeq)
	}
}

// testExpire checks retention: Expire deletes the messages older than its
// time from inboxes, rooms, history, conversations, search and receipts,
// returns how many; seqs are never given again, even once an inbox or a
// room is empty and the store reopened; Horizon follows.
func testExpire(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, closeFn := openStore(t, open, dir)
	mustAppend(t, s,
		dm("e1", "alice", "bob", at(1), key("k1"), data(`{"t":"old apples"}`)), // alice 1, bob 1
		dm("e2", "bob", "alice", at(2), data(`{"t":"old pears"}`)),             // alice 2, bob 2
		rm("e3", "alice", "lobby", at(3)),                                      // lobby 1
		dm("e4", "billing", "alice", noCopy, at(4)),                            // alice 3
		dm("e5", "carol", "alice", at(5)),                                      // alice 4, carol 1
		dm("e6", "bob", "alice", at(20), data(`{"t":"new apples"}`)),           // alice 5, bob 3
		rm("e7", "alice", "lobby", at(21)),                                     // lobby 2
		dm("e8", "alice", "carol", at(3)),                                      // alice 6, carol 2: old time, newer seq
	)
	searchEventually(t, s, "alice", "apples", "e6", "e1")
	markRead(t, s, "alice", "carol", 4, courier.ReadMark{Msg: "e5", Moved: true})
	checkHorizon(t, s, "alice", 1)

	expire(t, s, msAfter(10), 6)              // e1..e5, e8
	checkInboxFrom(t, s, "alice", 5, 6, "e6") // e8, seq 6, is gone too
	checkInboxFrom(t, s, "bob", 3, 3, "e6")
	checkInboxFrom(t, s, "carol", 0, 2)
	checkHorizon(t, s, "alice", 5)
	checkHorizon(t, s, "bob", 3)
	checkHorizon(t, s, "carol", 3) // all gone: LatestSeq+1
	checkHorizon(t, s, "nobody", 1)
	checkPage(t, "History(alice, bob)", history(t, s, "alice", "bob", 0, 50), []string{"e6"}, nil)
	checkPage(t, "History(alice, carol)", history(t, s, "alice", "carol", 0, 50), nil, nil)
	ms, err := s.RoomHistory(context.Background(), "lobby", 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, "RoomHistory(lobby)", ms, []string{"e7"}, map[string]uint64{"e7": 2})
	checkConversations(t, s, "alice", 50, conv{"bob", "e6", 5, 1})
	checkConversations(t, s, "carol", 50)
	if got := search(t, s, "alice", "apples", nil); fmt.Sprint(got) != "[e6]" {
		t.Errorf("Search(alice, apples) after Expire = %v, want [e6]", got)
	}
	if got := markDelivered(t, s, "e1", "e2", "e6"); len(got) != 1 || got[0].ID != "e6" {
		t.Errorf("MarkDelivered after Expire = %+v, want e6 only", got)
	}
	expire(t, s, msAfter(10), 0)

	// Seqs go on from where they were; a key goes with its message.
	again := dm("e9", "alice", "bob", at(30), key("k1"))
	room := rm("e10", "bob", "lobby", at(30))
	toCarol := dm("e11", "carol", "alice", at(30))
	mustAppend(t, s, again, room, toCarol)
	checkSeqs(t, again, 4, 7, false)
	checkSeqs(t, room, 3, 0, false)
	checkSeqs(t, toCarol, 8, 3, false)
	checkConversations(t, s, "alice", 50, conv{"carol", "e11", 8, 1}, conv{"bob", "e9", 7, 1})
	closeFn()

	// Everything expired, then reopened: still no seq given twice.
	s, _ = openStore(t, open, dir)
	expire(t, s, msAfter(1000), 5)
	for user, last := range map[string]uint64{"alice": 8, "bob": 4, "carol": 3} {
		checkInboxFrom(t, s, user, 0, last)
		checkHorizon(t, s, user, last+1)
		checkConversations(t, s, user, 50)
	}
	mustAppend(t, s) // nothing
	next, nextRoom := dm("e12", "bob", "alice", at(40)), rm("e13", "bob", "lobby", at(40))
	mustAppend(t, s, next, nextRoom)
	checkSeqs(t, next, 9, 5, false)
	checkSeqs(t, nextRoom, 4, 0, false)
	checkInboxFrom(t, s, "alice", 9, 9, "e12")
	checkHorizon(t, s, "alice", 9)
	checkConversations(t, s, "alice", 50, conv{"bob", "e12", 9, 1})
}

// testExpireMany checks Expire over more messages than one of its
// transactions deletes, in many inboxes.
func testExpireMany(t *testing.T, open Opener) {
	s := newStore(t, open)
	const n = 4500
	for b := 0; b < n; b += 500 {
		var batch []*courier.Envelope
		for i := b; i < b+500; i++ {
			batch = append(batch, dm(fmt.Sprint("m", i), fmt.Sprint("u", i%10), fmt.Sprint("u", (i+1)%10), at(i)))
		}
		mustAppend(t, s, batch...)
	}
	expire(t, s, msAfter(n-10), n-10)
	total := 0
	for u := range 10 {
		total += len(inbox(t, s, fmt.Sprint("u", u)))
	}
	if total != 20 {
		t.Errorf("inboxes hold %d copies after Expire, want 20", total)
	}
	cs := conversations(t, s, "u0", 10)
	if len(cs) != 2 || cs[0].Last.ID != "m4499" || cs[1].Last.ID != "m4490" || cs[0].Unread != 1 {
		t.Errorf("Conversations(u0) after Expire = %+v; want m4499 (unread 1), m4490", cs)
	}
}

func testExpireConcurrent(t *testing.T, open Opener) {
	ExpireConcurrently(t, newStore(t, open))
}

// ExpireConcurrently appends messages between four users, each newer than
// the last, from several goroutines per store, while Expire runs through
// every store with a cutoff that follows them. Then every user's
// conversations must agree with their history: the last message is the
// newest of the conversation, the unread count is the messages received
// from the peer (there are no read marks), and no conversation is missing
// or left empty. The stores must share their data.
func ExpireConcurrently(t *testing.T, stores ...courier.Store) {
	t.Helper()
	ctx := context.Background()
	users := []string{"x0", "x1", "x2", "x3"}
	var clock atomic.Int64 // ms after base of the next message
	var wg sync.WaitGroup
	for n, s := range stores {
		for w := range 3 {
			wg.Go(func() {
				for i := range 30 {
					from, to := users[(n+w+i)%4], users[(n+2*w+i/2)%4]
					e := dm(fmt.Sprintf("x%d-%d-%d", n, w, i), from, to, at(int(clock.Add(1))))
					if err := s.Append(ctx, []*courier.Envelope{e}); err != nil {
						t.Errorf("Append: %v", err)
						return
					}
				}
			})
		}
	}
	stop := make(chan struct{})
	var expirers sync.WaitGroup
	for _, s := range stores {
		expirers.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				if _, err := s.Expire(ctx, msAfter(int(clock.Load())-40)); err != nil {
					t.Errorf("Expire: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	expirers.Wait()
	for i, s := range stores {
		for _, u := range users {
			checkConversationsAgree(t, s, u, users, i)
		}
	}
}

// checkConversationsAgree checks user's conversations against History.
func checkConversationsAgree(t *testing.T, s courier.Store, user string, users []string, store int) {
	t.Helper()
	got := map[string]courier.Conversation{}
	for _, c := range conversations(t, s, user, 100) {
		got[c.With] = c
	}
	for _, peer := range users {
		h := history(t, s, user, peer, 0, 1000)
		c, ok := got[peer]
		if len(h) == 0 {
			if ok {
				t.Errorf("store %d: %s has a conversation with %s (%+v), whose history is empty", store, user, peer, c)
			}
			continue
		}
		unread := 0
		for _, m := range h {
			if m.From == peer && peer != user {
				unread++
			}
		}
		if !ok || c.Last.ID != h[0].ID || c.Last.Seq != h[0].Seq || c.Unread != unread {
			t.Errorf("store %d: %s's conversation with %s = %+v (found %v); want last %s at %d, unread %d",
				store, user, peer, c, ok, h[0].ID, h[0].Seq, unread)
		}
	}
}
