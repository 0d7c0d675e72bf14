package storetest

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

func lastSeen(t *testing.T, s courier.Store, user string) time.Time {
	t.Helper()
	tm, err := s.LastSeen(context.Background(), user)
	if err != nil {
		t.Fatalf("LastSeen(%q): %v", user, err)
	}
	return tm
}

func setLastSeen(t *testing.T, s courier.Store, user string, tm time.Time) {
	t.Helper()
	if err := s.SetLastSeen(context.Background(), user, tm); err != nil {
		t.Fatalf("SetLastSeen(%q, %v): %v", user, tm, err)
	}
}

// checkLastSeen checks that LastSeen(user) is want to the millisecond, in
// UTC (or the zero time).
func checkLastSeen(t *testing.T, s courier.Store, user string, want time.Time) {
	t.Helper()
	got := lastSeen(t, s, user)
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("LastSeen(%q) = %v, want the zero time", user, got)
		}
		return
	}
	want = want.UTC().Truncate(time.Millisecond)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("LastSeen(%q) = %v (%v), want %v in UTC", user, got, got.Location(), want)
	}
}

func testLastSeen(t *testing.T, open Opener) {
	s := newStore(t, open)
	checkLastSeen(t, s, "alice", time.Time{})

	// Another zone and nanoseconds: read back in UTC, to the millisecond.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	t1 := time.Date(2025, 6, 1, 12, 30, 15, 123_456_789, zone)
	setLastSeen(t, s, "alice", t1)
	checkLastSeen(t, s, "alice", t1)
	checkLastSeen(t, s, "bob", time.Time{}) // users are apart

	setLastSeen(t, s, "alice", t1.Add(-time.Hour))           // older: kept as it was
	setLastSeen(t, s, "alice", t1.Add(500*time.Microsecond)) // same millisecond
	setLastSeen(t, s, "alice", time.Time{})                  // zero: nothing
	checkLastSeen(t, s, "alice", t1)

	t2 := t1.Add(2 * time.Millisecond)
	setLastSeen(t, s, "alice", t2) // newer: replaces
	checkLastSeen(t, s, "alice", t2)

	setLastSeen(t, s, "bob", base)
	checkLastSeen(t, s, "bob", base)
	checkLastSeen(t, s, "alice", t2)

	// Messages and last seen do not mix.
	mustAppend(t, s, dm("m1", "carol", "alice"))
	checkLastSeen(t, s, "carol", time.Time{})
	checkInbox(t, s, "bob")

	// Concurrent writers: the latest time wins, whatever the order.
	users := []string{"u0", "u1", "u2"}
	newest := map[string]time.Time{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for range 30 {
				u := users[rng.IntN(len(users))]
				tm := base.Add(time.Duration(rng.IntN(1e6)) * time.Microsecond)
				if err := s.SetLastSeen(context.Background(), u, tm); err != nil {
					t.Errorf("SetLastSeen(%s): %v", u, err)
					return
				}
				mu.Lock()
				if tm.After(newest[u]) {
					newest[u] = tm
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, u := range users {
		checkLastSeen(t, s, u, newest[u])
	}
}

func testLastSeenReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	s, closeFn := openStore(t, open, dir)
	t1 := time.Date(2025, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	setLastSeen(t, s, "alice", t1)
	closeFn()

	for round := 1; round <= 2; round++ {
		s, closeFn = openStore(t, open, dir)
		want := t1.Add(time.Duration(round-1) * time.Minute)
		checkLastSeen(t, s, "alice", want)
		checkLastSeen(t, s, "bob", time.Time{})
		setLastSeen(t, s, "alice", t1.Add(-time.Minute)) // older than what survived
		checkLastSeen(t, s, "alice", want)
		setLastSeen(t, s, "alice", t1.Add(time.Duration(round)*time.Minute))
		closeFn()
	}
	s, _ = openStore(t, open, dir)
	checkLastSeen(t, s, "alice", t1.Add(2*time.Minute))
	if _, err := s.LastSeen(context.Background(), "nobody"); err != nil {
		t.Errorf("LastSeen of an unknown user: %v", err)
	}
}
