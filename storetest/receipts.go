package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/courier-im/courier"
)

func markDelivered(t *testing.T, s courier.Store, ids ...string) []courier.FirstDelivery {
	t.Helper()
	ds, err := s.MarkDelivered(context.Background(), ids)
	if err != nil {
		t.Fatalf("MarkDelivered(%v): %v", ids, err)
	}
	slices.SortFunc(ds, func(a, b courier.FirstDelivery) int { return cmpString(a.ID, b.ID) })
	return ds
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// testDelivered checks MarkDelivered: each direct message whose sender is
// a user is returned once, with its sender and recipient; server API
// labels' messages, room messages and unknown ids never are.
func testDelivered(t *testing.T, open Opener) {
	s := newStore(t, open)
	mustAppend(t, s,
		dm("d1", "alice", "bob"),
		dm("d2", "bob", "alice"),
		dm("d3", "billing", "bob", noCopy),
		rm("d4", "alice", "lobby"),
		dm("d5", "alice", "alice"),
		dm("d6", "alice", "carol", key("k")),
		dm("d7", "alice", "carol", key("k")), // a duplicate: d6
	)
	got := markDelivered(t, s, "d1", "d3", "d4", "nope", "d1", "")
	want := []courier.FirstDelivery{{ID: "d1", From: "alice", To: "bob"}}
	if !slices.Equal(got, want) {
		t.Errorf("MarkDelivered = %+v, want %+v", got, want)
	}
	if got := markDelivered(t, s, "d1", "d3"); len(got) != 0 {
		t.Errorf("MarkDelivered again = %+v, want none", got)
	}
	got = markDelivered(t, s, "d2", "d5", "d6", "d7", "d1")
	want = []courier.FirstDelivery{{ID: "d2", From: "bob", To: "alice"}, {ID: "d5", From: "alice", To: "alice"}, {ID: "d6", From: "alice", To: "carol"}}
	if !slices.Equal(got, want) {
		t.Errorf("MarkDelivered = %+v, want %+v", got, want)
	}
	if got := markDelivered(t, s); len(got) != 0 {
		t.Errorf("MarkDelivered() = %+v", got)
	}
	// A few hundred ids in one call.
	var batch []*courier.Envelope
	var ids []string
	for i := range 300 {
		id := fmt.Sprint("big", i)
		batch = append(batch, dm(id, "alice", fmt.Sprint("u", i%7)))
		ids = append(ids, id)
	}
	mustAppend(t, s, batch...)
	if got := markDelivered(t, s, append(ids, ids[:50]...)...); len(got) != 300 {
		t.Errorf("MarkDelivered of 300 new ids returned %d", len(got))
	}
	if got := markDelivered(t, s, ids...); len(got) != 0 {
		t.Errorf("MarkDelivered of 300 delivered ids returned %d", len(got))
	}
}

func testDeliveredConcurrent(t *testing.T, open Opener) {
	MarkDeliveredConcurrently(t, newStore(t, open))
}

// MarkDeliveredConcurrently appends messages, then marks them delivered
// from several goroutines per store at once, each with overlapping,
// shuffled sets of ids, while other messages are appended and the
// recipients' read marks move (which mark delivered what they pass): every
// message must be returned exactly once over all of them. The stores must
// share their data.
func MarkDeliveredConcurrently(t *testing.T, stores ...courier.Store) {
	t.Helper()
	const n = 400
	var batch []*courier.Envelope
	for i := range n {
		batch = append(batch, dm(fmt.Sprint("mdc", i), fmt.Sprint("s", i%5), fmt.Sprint("r", i%3)))
	}
	mustAppend(t, stores[0], batch...)
	var mu sync.Mutex
	seen := map[string]int{}
	byRead := 0
	var wg sync.WaitGroup
	// Appends meanwhile: a store may commit marks with them.
	for k, s := range stores {
		wg.Go(func() {
			for i := range 40 {
				if err := s.Append(context.Background(), []*courier.Envelope{dm(fmt.Sprint("mdc-other", k, "-", i), "s1", "r2")}); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	// Read marks meanwhile, each recipient's conversations with each
	// sender read a little further every round, from every store.
	for k, s := range stores {
		wg.Go(func() {
			for round := range 10 {
				for r := range 3 {
					for snd := range 5 {
						seq := uint64(15*round + 5*k + snd)
						m, err := s.MarkRead(context.Background(), fmt.Sprint("r", r), fmt.Sprint("s", snd), seq)
						if err != nil {
							t.Errorf("MarkRead: %v", err)
							return
						}
						mu.Lock()
						for _, d := range m.Delivered {
							seen[d.ID]++
						}
						byRead += len(m.Delivered)
						mu.Unlock()
					}
				}
			}
		})
	}
	for k, s := range stores {
		for w := range 4 {
			wg.Go(func() {
				for round := range 10 {
					var ids []string
					for i := range n {
						if (i+w+round+k)%3 != 0 {
							ids = append(ids, fmt.Sprint("mdc", (i*7+w*13+round)%n))
						}
					}
					ds, err := s.MarkDelivered(context.Background(), ids[:min(len(ids), 100+round*20)])
					if err != nil {
						t.Errorf("MarkDelivered: %v", err)
						return
					}
					mu.Lock()
					for _, d := range ds {
						seen[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	var ids []string
	for _, e := range batch {
		ids = append(ids, e.ID)
	}
	for _, d := range markDelivered(t, stores[len(stores)-1], ids...) {
		seen[d.ID]++
	}
	for _, e := range batch {
		if seen[e.ID] != 1 {
			t.Errorf("%s returned %d times, want once", e.ID, seen[e.ID])
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s returned %d times, want once at most", id, n)
		}
	}
	t.Logf("%d first deliveries, %d of them reported by read marks", len(seen), byRead)
}

// statuses returns the Status of each message of user's conversation with
// peer, oldest first, as "id:status" ("id:" for none).
func statuses(t *testing.T, s courier.Store, user, peer string) []string {
	t.Helper()
	ms := history(t, s, user, peer, 0, 100)
	out := make([]string, len(ms))
	for i := range ms {
		m := ms[len(ms)-1-i]
		out[i] = m.ID + ":" + m.Status.String()
	}
	return out
}

// testStatus checks the status History gives the sender's messages, and
// Conversations the last one: sent, then delivered as marked, then read
// as the recipient's read mark passes them; none on received messages,
// notes to self and the recipient's side.
func testStatus(t *testing.T, open Opener) {
	s := newStore(t, open)
	mustAppend(t, s,
		dm("s1", "alice", "bob"), // bob 1
		dm("s2", "bob", "alice"), // bob 2
		dm("s3", "alice", "bob"), // bob 3
		dm("s4", "alice", "bob"), // bob 4
		dm("s5", "alice", "alice"),
	)
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	lastStatus := func(user, peer string) courier.Status {
		t.Helper()
		for _, c := range conversations(t, s, user, 10) {
			if c.With == peer {
				return c.Last.Status
			}
		}
		t.Fatalf("%s has no conversation with %s", user, peer)
		return 0
	}
	check("alice with bob", statuses(t, s, "alice", "bob"), "s1:sent", "s2:", "s3:sent", "s4:sent")
	check("bob with alice", statuses(t, s, "bob", "alice"), "s1:", "s2:sent", "s3:", "s4:")
	check("alice with alice", statuses(t, s, "alice", "alice"), "s5:")
	markDelivered(t, s, "s1", "s3", "s2")
	check("alice, delivered", statuses(t, s, "alice", "bob"), "s1:delivered", "s2:", "s3:delivered", "s4:sent")
	if st := lastStatus("alice", "bob"); st != courier.StatusSent {
		t.Errorf("alice's last with bob is %v, want sent", st)
	}
	markRead(t, s, "bob", "alice", 3, courier.ReadMark{Msg: "s3", Moved: true})
	check("alice, read up to bob's 3", statuses(t, s, "alice", "bob"), "s1:read", "s2:", "s3:read", "s4:sent")
	check("bob, after his read", statuses(t, s, "bob", "alice"), "s1:", "s2:delivered", "s3:", "s4:")
	markRead(t, s, "bob", "alice", 4, courier.ReadMark{Msg: "s4", Moved: true})
	if st := lastStatus("alice", "bob"); st != courier.StatusRead {
		t.Errorf("alice's last with bob is %v, want read", st)
	}
	if st := lastStatus("bob", "alice"); st != 0 {
		t.Errorf("bob's last with alice (received) is %v, want none", st)
	}
}
