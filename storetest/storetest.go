// Package storetest is a conformance suite for courier.Store
// implementations: seqs, round-trips, idempotency, atomicity, concurrency,
// durability across reopen, batches of every size, last seen times,
// conversation and room history, full-text search, conversations with
// unread counts and read marks, delivered receipts, and retention. Call Run
// from a backend's test:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, dir string) courier.Store {
//			s, err := sqlite.Open(dir)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// A backend that several processes share (PostgreSQL) can also run
// AppendConcurrently, ConversationsConcurrently, MarkDeliveredConcurrently
// and ExpireConcurrently over several of its stores at once, as nodes.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// An Opener opens the store whose data lives under dir, failing t if it
// cannot. Each dir starts empty (it comes from t.TempDir); the suite opens
// the same dir again, after closing the first store, to check that data
// survives. A backend that keeps no files (PostgreSQL) uses dir as a name
// for its data, such as a schema derived from it, and registers its own
// cleanup with t. The suite closes every store it opens.
type Opener func(t *testing.T, dir string) courier.Store

// Run runs the suite against the stores open returns, the tests in parallel,
// each on its own data; it returns when they are done.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Seq", testSeq},
		{"RoundTrip", testRoundTrip},
		{"Paging", testPaging},
		{"Idempotency", testIdempotency},
		{"Atomic", testAtomic},
		{"Concurrent", testConcurrent},
		{"Reopen", testReopen},
		{"LargeBatches", testLargeBatches},
		{"LastSeen", testLastSeen},
		{"LastSeenReopen", testLastSeenReopen},
		{"History", testHistory},
		{"RoomHistory", testRoomHistory},
		{"Search", testSearch},
		{"SearchMany", testSearchMany},
		{"Conversations", testConversations},
		{"ManyConversations", testManyConversations},
		{"ReadDelivers", testReadDelivers},
		{"ConversationsConcurrent", testConversationsConcurrent},
		{"Delivered", testDelivered},
		{"DeliveredConcurrent", testDeliveredConcurrent},
		{"Status", testStatus},
		{"Expire", testExpire},
		{"ExpireMany", testExpireMany},
		{"ExpireConcurrent", testExpireConcurrent},
	}
	// A group that is not parallel itself makes Run wait for its tests.
	t.Run("suite", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.fn(t, open)
			})
		}
	})
}

// openStore opens dir and returns the store with a function closing it,
// which cleanup also calls unless the test did.
func openStore(t *testing.T, open Opener, dir string) (courier.Store, func()) {
	t.Helper()
	s := open(t, dir)
	var once sync.Once
	closeFn := func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(closeFn)
	return s, closeFn
}

func newStore(t *testing.T, open Opener) courier.Store {
	t.Helper()
	s, _ := openStore(t, open, t.TempDir())
	return s
}

// base is the Time of test messages; each envelope gets its own millisecond
// so that a Duplicate reporting the wrong Time shows.
var base = time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)

func msAfter(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

type opt func(*courier.Envelope)

func key(k string) opt           { return func(e *courier.Envelope) { e.Key = k } }
func noCopy(e *courier.Envelope) { e.NoSenderCopy = true }
func at(ms int) opt              { return timeAt(msAfter(ms)) }
func data(d string) opt          { return func(e *courier.Envelope) { e.Data = json.RawMessage(d) } }
func event(ev string) opt        { return func(e *courier.Envelope) { e.Event = ev } }
func timeAt(tm time.Time) opt    { return func(e *courier.Envelope) { e.Time = tm } }

// dm returns a direct message from -> to.
func dm(id, from, to string, opts ...opt) *courier.Envelope {
	e := &courier.Envelope{Message: courier.Message{
		ID: id, From: from, To: to, Event: "message",
		Data: json.RawMessage(`{"id":"` + id + `"}`), Time: base,
	}}
	for _, o := range opts {
		o(e)
	}
	return e
}

// rm returns a message from from to room.
func rm(id, from, room string, opts ...opt) *courier.Envelope {
	e := dm(id, from, "", opts...)
	e.Room = room
	return e
}

func mustAppend(t *testing.T, s courier.Store, batch ...*courier.Envelope) {
	t.Helper()
	if err := s.Append(context.Background(), batch); err != nil {
		t.Fatalf("Append(%s): %v", ids(batch), err)
	}
}

func ids(batch []*courier.Envelope) string {
	s := make([]string, len(batch))
	for i, e := range batch {
		s[i] = e.ID
	}
	return strings.Join(s, ",")
}

// inbox returns all of user's inbox.
func inbox(t *testing.T, s courier.Store, user string) []courier.Message {
	t.Helper()
	ms, err := s.Inbox(context.Background(), user, 0, 1<<20)
	if err != nil {
		t.Fatalf("Inbox(%q, 0): %v", user, err)
	}
	return ms
}

func latest(t *testing.T, s courier.Store, user string) uint64 {
	t.Helper()
	n, err := s.LatestSeq(context.Background(), user)
	if err != nil {
		t.Fatalf("LatestSeq(%q): %v", user, err)
	}
	return n
}

// checkInbox checks that user's inbox holds exactly wantIDs, at seqs 1, 2, ...
// and that LatestSeq agrees.
func checkInbox(t *testing.T, s courier.Store, user string, wantIDs ...string) {
	t.Helper()
	ms := inbox(t, s, user)
	var got []string
	for i, m := range ms {
		got = append(got, m.ID)
		if m.Seq != uint64(i+1) {
			t.Errorf("inbox %q: message %d (%s) has Seq %d, want %d", user, i, m.ID, m.Seq, i+1)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantIDs) {
		t.Errorf("inbox %q holds %v, want %v", user, got, wantIDs)
	}
	if n := latest(t, s, user); n != uint64(len(wantIDs)) {
		t.Errorf("LatestSeq(%q) = %d, want %d", user, n, len(wantIDs))
	}
}

// checkSeqs checks the store-assigned fields of e.
func checkSeqs(t *testing.T, e *courier.Envelope, toSeq, fromSeq uint64, dup bool) {
	t.Helper()
	if e.ToSeq != toSeq || e.FromSeq != fromSeq || e.Duplicate != dup {
		t.Errorf("%s (%s->%s%s): ToSeq, FromSeq, Duplicate = %d, %d, %v; want %d, %d, %v",
			e.ID, e.From, e.To, e.Room, e.ToSeq, e.FromSeq, e.Duplicate, toSeq, fromSeq, dup)
	}
}

// checkMessage checks that got, read from an inbox, is want with Seq seq.
func checkMessage(t *testing.T, got courier.Message, want *courier.Envelope, seq uint64) {
	t.Helper()
	w := want.Message
	if got.ID != w.ID || got.From != w.From || got.To != w.To || got.Room != w.Room || got.Event != w.Event {
		t.Errorf("read ID/From/To/Room/Event %q/%q/%q/%q/%q, want %q/%q/%q/%q/%q",
			got.ID, got.From, got.To, got.Room, got.Event, w.ID, w.From, w.To, w.Room, w.Event)
	}
	if !bytes.Equal(got.Data, w.Data) {
		t.Errorf("%s: read Data %q, want the bytes %q", w.ID, got.Data, w.Data)
	}
	if wt := w.Time.Truncate(time.Millisecond); !got.Time.Equal(wt) || got.Time.Location() != time.UTC {
		t.Errorf("%s: read Time %v (%v), want %v in UTC", w.ID, got.Time, got.Time.Location(), wt)
	}
	if got.Seq != seq {
		t.Errorf("%s: read Seq %d, want %d", w.ID, got.Seq, seq)
	}
}

func testSeq(t *testing.T, open Opener) {
	steps := []struct {
		e             *courier.Envelope
		toSeq, frmSeq uint64
	}{
		{dm("m1", "alice", "bob"), 1, 1},
		{dm("m2", "alice", "bob"), 2, 2},
		{dm("m3", "bob", "alice"), 3, 3},
		{dm("m4", "api", "bob", noCopy), 4, 0},     // label sender: no sender copy
		{dm("m5", "alice", "alice"), 4, 4},         // note to self: one copy
		{rm("r1", "alice", "lobby"), 1, 0},         // room seq, in no inbox
		{rm("r2", "bob", "lobby"), 2, 0},           //
		{rm("r3", "alice", "attic"), 1, 0},         // rooms count apart
		{dm("m6", "alice", "carol"), 1, 5},         //
		{dm("m7", "carol", "carol", noCopy), 2, 0}, // to self, no sender copy
		{dm("m9", "bob", "dave", key("k1")), 1, 5}, // a key changes nothing
	}
	inboxes := map[string][]string{
		"alice": {"m1", "m2", "m3", "m5", "m6"},
		"bob":   {"m1", "m2", "m3", "m4", "m9"},
		"carol": {"m6", "m7"},
		"dave":  {"m9"},
		"api":   nil, // NoSenderCopy
		"lobby": nil, // room messages are in no user's inbox
		"attic": nil,
		"erin":  nil,
	}
	for _, mode := range []string{"one batch", "one per Append"} {
		t.Run(mode, func(t *testing.T) {
			s := newStore(t, open)
			var batch []*courier.Envelope
			for _, st := range steps {
				e := *st.e
				batch = append(batch, &e)
			}
			if mode == "one batch" {
				mustAppend(t, s, batch...)
			} else {
				for _, e := range batch {
					mustAppend(t, s, e)
				}
			}
			for i, st := range steps {
				checkSeqs(t, batch[i], st.toSeq, st.frmSeq, false)
			}
			for user, want := range inboxes {
				checkInbox(t, s, user, want...)
			}
			if err := s.Append(context.Background(), nil); err != nil {
				t.Errorf("Append of an empty batch: %v", err)
			}
		})
	}
}

func testRoundTrip(t *testing.T, open Opener) {
	s := newStore(t, open)
	big := `"` + string(bytes.Repeat([]byte("0123456789abcdef"), 8192)) + `"`
	batch := []*courier.Envelope{
		dm("a", "alice", "bob", data(`{"b": 1,  "a" : [true,null, 1.50e3 ]}`)),
		dm("b", "alice", "bob", data(`"caf\u00e9 café 😀 \"q\" \\ \n"`), event("typing.start")),
		dm("c", "alice", "bob", data(`null`), event("ünï côdé"), at(999)),
		dm("d", "alice", "bob", data(big), timeAt(time.Now().UTC().Truncate(time.Millisecond))),
		dm("e", "alice", "bob", data(` 7 `), timeAt(time.UnixMilli(0).UTC())),
		dm("f", "billing: invoices", "bob", noCopy, data(`{"amount":12.30}`), event("invoice")),
		// Valid JSON that PostgreSQL's jsonb (and its text) cannot hold.
		dm("g", "alice", "bob", data(`{"nul":"a\u0000b","s":"\ud83d\ude00"}`)),
	}
	mustAppend(t, s, batch...)
	bob, alice := inbox(t, s, "bob"), inbox(t, s, "alice")
	if len(bob) != len(batch) || len(alice) != len(batch)-1 {
		t.Fatalf("bob's inbox holds %d messages, alice's %d; want %d, %d", len(bob), len(alice), len(batch), len(batch)-1)
	}
	a := 0 // alice's copies: all but the label's
	for i, e := range batch {
		checkMessage(t, bob[i], e, uint64(i+1))
		if !e.NoSenderCopy {
			checkMessage(t, alice[a], e, uint64(a+1))
			a++
		}
	}
}

func testPaging(t *testing.T, open Opener) {
	s := newStore(t, open)
	for i := 1; i <= 10; i++ {
		mustAppend(t, s, dm(fmt.Sprint("m", i), "alice", "bob"))
	}
	cases := []struct {
		after    uint64
		limit    int
		from, to uint64 // want seqs from..to, none when from > to
	}{
		{0, 3, 1, 3}, {3, 4, 4, 7}, {8, 100, 9, 10}, {0, 10, 1, 10},
		{0, 1, 1, 1}, {9, 1, 10, 10}, {10, 5, 1, 0}, {20, 5, 1, 0},
	}
	for _, c := range cases {
		ms, err := s.Inbox(context.Background(), "bob", c.after, c.limit)
		if err != nil {
			t.Fatalf("Inbox(bob, after %d, limit %d): %v", c.after, c.limit, err)
		}
		var got, want []uint64
		for _, m := range ms {
			got = append(got, m.Seq)
			if m.ID != fmt.Sprint("m", m.Seq) {
				t.Errorf("Inbox(bob, after %d): seq %d is %s, want m%d", c.after, m.Seq, m.ID, m.Seq)
			}
		}
		for n := c.from; n <= c.to; n++ {
			want = append(want, n)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Inbox(bob, after %d, limit %d) seqs %v, want %v", c.after, c.limit, got, want)
		}
	}
	checkInbox(t, s, "nobody")
}

// CheckClosed checks that every method of s but Close fails with an error
// that is errClosed, once s is closed.
func CheckClosed(t *testing.T, s courier.Store, errClosed error) {
	t.Helper()
	ctx := context.Background()
	q, _ := courier.ParseQuery("x")
	calls := map[string]func() error{
		"Append":      func() error { return s.Append(ctx, []*courier.Envelope{dm("x", "a", "b")}) },
		"Inbox":       func() error { _, err := s.Inbox(ctx, "b", 0, 10); return err },
		"LatestSeq":   func() error { _, err := s.LatestSeq(ctx, "b"); return err },
		"SetLastSeen": func() error { return s.SetLastSeen(ctx, "b", time.Now()) },
		"LastSeen":    func() error { _, err := s.LastSeen(ctx, "b"); return err },
		"History":     func() error { _, err := s.History(ctx, "a", "b", 0, 10); return err },
		"RoomHistory": func() error { _, err := s.RoomHistory(ctx, "r", 0, 10); return err },
		"Search":      func() error { _, err := s.Search(ctx, "a", q, 10); return err },
		"Conversations": func() error {
			_, err := s.Conversations(ctx, "a", 10)
			return err
		},
		"MarkRead":      func() error { _, err := s.MarkRead(ctx, "a", "b", 1); return err },
		"MarkDelivered": func() error { _, err := s.MarkDelivered(ctx, []string{"x"}); return err },
		"Expire":        func() error { _, err := s.Expire(ctx, time.Now()); return err },
		"Horizon":       func() error { _, err := s.Horizon(ctx, "a"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, errClosed) {
			t.Errorf("%s after Close: %v, want %v", name, err, errClosed)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
