package courier_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/sqlite"
)

// countingStore counts the commits of the real store beneath it.
type countingStore struct {
	courier.Store
	commits, messages, largest atomic.Int64
}

func (c *countingStore) Append(ctx context.Context, batch []*courier.Envelope) error {
	c.commits.Add(1)
	c.messages.Add(int64(len(batch)))
	for n := int64(len(batch)); ; {
		l := c.largest.Load()
		if n <= l || c.largest.CompareAndSwap(l, n) {
			break
		}
	}
	return c.Store.Append(ctx, batch)
}

// hubOn returns a hub on a fresh SQLite store, wrapped by wrap when not
// nil, and that SQLite store; both close when the test ends, the hub first.
func hubOn(t *testing.T, cfg courier.Config, wrap func(*sqlite.Store) courier.Store) (*courier.Hub, *sqlite.Store) {
	t.Helper()
	inner, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	cfg.Store = inner
	if wrap != nil {
		cfg.Store = wrap(inner)
	}
	hub, err := courier.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub, inner
}

// countingHub returns a hub on a fresh SQLite store, counted.
func countingHub(t *testing.T, cfg courier.Config) (*courier.Hub, *countingStore, courier.Store) {
	t.Helper()
	var store *countingStore
	hub, inner := hubOn(t, cfg, func(s *sqlite.Store) courier.Store {
		store = &countingStore{Store: s}
		return store
	})
	return hub, store, inner
}

// sendAtOnce has senders users send each durable messages to "sink", all
// at once, and waits for every receipt.
func sendAtOnce(t *testing.T, hub *courier.Hub, senders, each int) {
	t.Helper()
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := hub.Send(context.Background(), courier.Outgoing{From: fmt.Sprintf("u%d", s), To: "sink"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Concurrent durable senders share commits (group commit) instead of each
// paying a transaction and an fsync.
func TestGroupCommit(t *testing.T) {
	hub, store, inner := countingHub(t, courier.Config{})
	const senders, each = 64, 20
	sendAtOnce(t, hub, senders, each)
	msgs, commits := store.messages.Load(), store.commits.Load()
	if msgs != senders*each {
		t.Fatalf("stored %d messages, want %d", msgs, senders*each)
	}
	if commits*4 > msgs {
		t.Fatalf("%d commits for %d messages: concurrent sends were not grouped", commits, msgs)
	}
	t.Logf("%d messages in %d commits (%.1f per commit)", msgs, commits, float64(msgs)/float64(commits))
	head, err := inner.LatestSeq(context.Background(), "sink")
	if err != nil || head != senders*each {
		t.Fatalf("sink inbox head %d (%v)", head, err)
	}
}

// Config.MaxBatch caps a commit, and every message still gets stored.
func TestMaxBatch(t *testing.T) {
	const limit = 8
	hub, store, _ := countingHub(t, courier.Config{MaxBatch: limit})
	const senders, each = 64, 10
	sendAtOnce(t, hub, senders, each)
	msgs, largest := store.messages.Load(), store.largest.Load()
	if msgs != senders*each || largest > limit {
		t.Fatalf("stored %d messages (want %d), the largest commit %d (cap %d)", msgs, senders*each, largest, limit)
	}
	if largest < 2 {
		t.Fatalf("the largest commit held %d messages: 64 concurrent senders were not grouped", largest)
	}
}

// Config.MaxStoreQueue bounds the bytes of durable messages held for a slow
// store: a Post past it waits for room, and nothing is lost.
func TestMaxStoreQueue(t *testing.T) {
	var store *testnode.GatedStore
	data := json.RawMessage(`"` + strings.Repeat("x", 998) + `"`) // 1,000 bytes: 1,256 with the overhead
	hub, inner := hubOn(t, courier.Config{MaxStoreQueue: 3 * 1256}, func(s *sqlite.Store) courier.Store {
		store = testnode.NewGatedStore(s, "", "Append")
		return store
	})
	t.Cleanup(store.Open) // before hub.Close, which waits for the commit at the gate
	var stored atomic.Int64
	post := func() {
		hub.Post(courier.Outgoing{From: "ann", To: "bo", Data: data}, func(_ courier.Receipt, err error) {
			if err != nil {
				t.Error(err)
			}
			stored.Add(1)
		})
	}
	post() // taken by the committer, which waits at the gate
	<-store.Entered
	post()
	post() // the queue is full now: three messages
	returned := make(chan struct{})
	go func() {
		post()
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("a fourth message was queued past MaxStoreQueue")
	case <-time.After(100 * time.Millisecond):
	}
	store.Open()
	<-returned
	deadline := time.Now().Add(10 * time.Second)
	for stored.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if head, err := inner.LatestSeq(context.Background(), "bo"); err != nil || head != 4 || stored.Load() != 4 {
		t.Fatalf("bo's inbox head %d (%v), %d receipts; want 4 and 4", head, err, stored.Load())
	}
}

// A store that fails gives the sender an error, never a false ack, and
// delivers nothing.
func TestStoreFailureIsNoAck(t *testing.T) {
	hub, inner := hubOn(t, courier.Config{}, nil)
	rec := &recorder{}
	hub.Attach(hub.NewConn(courier.Identity{User: "bob"}, rec), nil, nil)
	_ = inner.Close() // the store goes away under the hub
	if _, err := hub.Send(context.Background(), courier.Outgoing{From: "alice", To: "bob"}); err == nil {
		t.Fatal("send succeeded on a closed store")
	}
	// Volatile still flows.
	if _, err := hub.Send(context.Background(), courier.Outgoing{From: "alice", To: "bob", Volatile: true}); err != nil {
		t.Fatal(err)
	}
	if got := rec.got(); len(got) != 1 || got[0] != 0 {
		t.Fatalf("deliveries %v, want the volatile one only", got)
	}
}

// pickyStore refuses, as a bad request, any batch holding event "bad".
type pickyStore struct {
	courier.Store
	batches atomic.Int64
}

func (p *pickyStore) Append(ctx context.Context, batch []*courier.Envelope) error {
	p.batches.Add(1)
	for _, e := range batch {
		if e.Event == "bad" {
			return fmt.Errorf("%w: refused", courier.ErrBadRequest)
		}
	}
	return p.Store.Append(ctx, batch)
}

// One message the store refuses fails alone, not the group commit it was
// batched with.
func TestBadMessageFailsAlone(t *testing.T) {
	var store *pickyStore
	hub, inner := hubOn(t, courier.Config{}, func(s *sqlite.Store) courier.Store {
		store = &pickyStore{Store: s}
		return store
	})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := "ok"
			if i == 7 {
				ev = "bad"
			}
			_, err := hub.Send(context.Background(), courier.Outgoing{From: "alice", To: "bob", Event: ev})
			if (err != nil) != (ev == "bad") {
				t.Errorf("send of %s: %v", ev, err)
			}
			if err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if head, _ := inner.LatestSeq(context.Background(), "bob"); head != 63 || failed.Load() != 1 {
		t.Fatalf("bob's head %d, %d failed; want 63 stored and 1 refused", head, failed.Load())
	}
}

// Text a store could not keep is refused before it reaches a batch.
func TestSendRefusesNUL(t *testing.T) {
	hub, _ := newHub(t)
	for _, o := range []courier.Outgoing{
		{From: "alice", To: "bob", Event: "a\x00b"},
		{From: "alice", To: "bob", Key: "k\x00"},
		{From: "sys\x00tem", Label: true, To: "bob"},
		{From: "alice", To: "bob", Event: "\xff"},
	} {
		if _, err := hub.Send(context.Background(), o); !errors.Is(err, courier.ErrBadRequest) {
			t.Errorf("%+v: %v, want a bad request", o, err)
		}
	}
}
