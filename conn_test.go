package courier_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/sqlite"
)

// recorder is a Link that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	seqs   []uint64
	closed int
}

func (r *recorder) Deliver(d *courier.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, d.Seq)
}
func (r *recorder) Drained(context.Context) error { return nil }
func (r *recorder) Close(code int, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = code
}

func (r *recorder) got() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs...)
}

func newHub(t *testing.T) (*courier.Hub, *sqlite.Store) {
	t.Helper()
	return newHubWith(t, courier.Config{})
}

// newHubWith is newHub with cfg (its Store is set here).
func newHubWith(t *testing.T, cfg courier.Config) (*courier.Hub, *sqlite.Store) {
	t.Helper()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	hub, err := courier.NewHub(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hub.Close()
		_ = store.Close()
	})
	return hub, store
}

// appendDirect stores n messages to user behind the hub's back, as another
// node sharing the store would.
func appendDirect(t *testing.T, store courier.Store, user string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		e := &courier.Envelope{Message: courier.Message{ID: fmt.Sprintf("other-%s-%d-%d", user, time.Now().UnixNano(), i), From: "other", To: user, Event: "m", Data: []byte("null"), Time: courier.Now()}}
		if err := store.Append(context.Background(), []*courier.Envelope{e}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitSeqs(t *testing.T, r *recorder, want int) []uint64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.got()) < want {
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %d deliveries", r.got(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.got()
}

func checkRun(t *testing.T, seqs []uint64, from, to uint64) {
	t.Helper()
	if len(seqs) != int(to-from+1) {
		t.Fatalf("got %v, want %d..%d", seqs, from, to)
	}
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("got %v, want %d..%d", seqs, from, to)
		}
	}
}

// A live message whose seq skips ahead (another node committed the ones
// between) makes the connection fill the gap from the store, in order.
func TestGapIsFilledFromTheStore(t *testing.T) {
	hub, store := newHub(t)
	ctx := context.Background()
	rec := &recorder{}
	hub.Attach(hub.NewConn(courier.Identity{User: "bob"}, rec), nil, nil)

	if _, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"}); err != nil {
		t.Fatal(err)
	}
	checkRun(t, waitSeqs(t, rec, 1), 1, 1)
	appendDirect(t, store, "bob", 3) // seqs 2..4, never delivered live
	if _, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"}); err != nil {
		t.Fatal(err)
	}
	checkRun(t, waitSeqs(t, rec, 5), 1, 5)
	time.Sleep(50 * time.Millisecond)
	checkRun(t, rec.got(), 1, 5)
}

// Live messages that arrive while a resume replays are held and come after
// it, with no gap and no duplicate.
func TestLiveDuringReplayIsHeld(t *testing.T) {
	hub, store := newHub(t)
	ctx := context.Background()
	appendDirect(t, store, "bob", 600) // more than one replay page
	rec := &recorder{}
	c := hub.NewConn(courier.Identity{User: "bob"}, rec)
	hub.Attach(c, nil, nil)
	done := make(chan uint64, 1)
	c.Resume(0, func(latest uint64, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- latest
	})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				if _, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	latest := <-done
	if latest < 600 {
		t.Fatalf("resume acked %d", latest)
	}
	checkRun(t, waitSeqs(t, rec, 700), 1, 700)
	time.Sleep(50 * time.Millisecond)
	checkRun(t, rec.got(), 1, 700)
}

// A sender's ack takes its place in its user's seq order: a device that
// sends gets no copy, but its other devices do.
func TestSenderCopies(t *testing.T) {
	hub, _ := newHub(t)
	a1, a2 := &recorder{}, &recorder{}
	c1 := hub.NewConn(courier.Identity{User: "alice"}, a1)
	hub.Attach(c1, nil, nil)
	hub.Attach(hub.NewConn(courier.Identity{User: "alice"}, a2), nil, nil)
	acks := make(chan courier.Receipt, 1)
	hub.Post(courier.Outgoing{From: "alice", To: "bob", Origin: c1}, func(r courier.Receipt, err error) {
		if err != nil {
			t.Error(err)
		}
		acks <- r
	})
	if r := <-acks; r.Seq != 1 || r.ID == "" {
		t.Fatalf("receipt %+v", r)
	}
	checkRun(t, waitSeqs(t, a2, 1), 1, 1)
	if got := a1.got(); len(got) != 0 {
		t.Fatalf("sending device got %v", got)
	}
	// To yourself: one inbox copy, to the other device only.
	hub.Post(courier.Outgoing{From: "alice", To: "alice", Origin: c1}, func(r courier.Receipt, err error) { acks <- r })
	if r := <-acks; r.Seq != 2 {
		t.Fatalf("self receipt %+v", r)
	}
	checkRun(t, waitSeqs(t, a2, 2), 1, 2)
}

// A resume from beyond the inbox head falls back to the head even when live
// messages arrive during the replay, so they are not swallowed.
func TestResumePastHeadWithLiveTraffic(t *testing.T) {
	hub, store := newHub(t)
	appendDirect(t, store, "bob", 300)
	rec := &recorder{}
	c := hub.NewConn(courier.Identity{User: "bob"}, rec)
	since := uint64(1000)
	hub.Attach(c, &since, nil)
	for i := 0; i < 20; i++ {
		if _, err := hub.Send(context.Background(), courier.Outgoing{From: "alice", To: "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	checkRun(t, waitSeqs(t, rec, 20), 301, 320)
}

// Attaching with since replays before any live message can reach the
// connection, even under a stream of live traffic: no duplicate, no gap.
func TestAttachWithSinceUnderLoad(t *testing.T) {
	hub, _ := newHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for ctx.Err() == nil {
			if _, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"}); err != nil {
				return
			}
		}
	}()
	for i := 0; i < 30; i++ {
		rec := &recorder{}
		c := hub.NewConn(courier.Identity{User: "bob"}, rec)
		since := uint64(0)
		hub.Attach(c, &since, nil)
		time.Sleep(3 * time.Millisecond)
		c.Close(1000, "")
		hub.Detach(c)
		got := rec.got()
		for j, s := range got {
			if s != uint64(j+1) {
				t.Fatalf("attach %d: deliveries %v", i, got[:min(len(got), j+3)])
			}
		}
	}
	cancel()
	<-sent
}

// stallingStore holds Append back after the batch is committed, while the
// test looks: the window in which a message is stored but not yet routed.
type stallingStore struct {
	courier.Store
	committed chan struct{}
	release   chan struct{}
}

// newStallingHub is newHub on a stallingStore.
func newStallingHub(t *testing.T) (*courier.Hub, *stallingStore) {
	t.Helper()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stall := &stallingStore{Store: store}
	hub, err := courier.NewHub(courier.Config{Store: stall})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hub.Close()
		_ = store.Close()
	})
	return hub, stall
}

func (s *stallingStore) Append(ctx context.Context, batch []*courier.Envelope) error {
	err := s.Store.Append(ctx, batch)
	if s.committed != nil {
		close(s.committed)
		<-s.release
		s.committed = nil
	}
	return err
}

// A resume beyond the head (as clients send to learn the head) while a
// message is committed but not yet routed must neither swallow that message
// nor ack a seq the connection was not given.
func TestResumePastHeadWhileMessageInFlight(t *testing.T) {
	// warm: the connection was given a message before; cold: nothing yet,
	// so only the head read at attach says where it stands.
	for _, warm := range []bool{true, false} {
		t.Run(fmt.Sprint("warm=", warm), func(t *testing.T) { resumePastHeadInFlight(t, warm) })
	}
}

func resumePastHeadInFlight(t *testing.T, warm bool) {
	hub, stall := newStallingHub(t)
	ctx := context.Background()
	rec := &recorder{}
	c := hub.NewConn(courier.Identity{User: "bob"}, rec)
	hub.Attach(c, nil, nil)
	var n uint64
	if warm {
		if _, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"}); err != nil {
			t.Fatal(err)
		}
		n = 1
		checkRun(t, waitSeqs(t, rec, 1), 1, 1)
	}

	stall.committed, stall.release = make(chan struct{}), make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		_, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"})
		sent <- err
	}()
	<-stall.committed // seq n+1 is stored; its live delivery waits
	n++
	acked := make(chan uint64, 1)
	c.Resume(1<<62, func(latest uint64, err error) {
		if err != nil {
			t.Error(err)
		}
		acked <- latest
	})
	latest := <-acked
	close(stall.release)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	checkRun(t, waitSeqs(t, rec, int(n)), 1, n)
	if latest != n {
		t.Fatalf("head ack %d, want %d (what the connection was given)", latest, n)
	}
	time.Sleep(50 * time.Millisecond)
	checkRun(t, rec.got(), 1, n)
}

// A since beyond the head at connect falls back to the head as it stood at
// attach: a message stored after that, and routed only after the replay
// read the head again, still arrives, once.
func TestSinceBeyondHeadWhileMessageInFlight(t *testing.T) {
	hub, stall := newStallingHub(t)
	ctx := context.Background()
	if _, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"}); err != nil {
		t.Fatal(err) // seq 1: before the connection
	}
	rec := &recorder{}
	c := hub.NewConn(courier.Identity{User: "bob"}, rec)
	sent := make(chan error, 1)
	since := uint64(1000) // a reset store, say
	stall.committed, stall.release = make(chan struct{}), make(chan struct{})
	released := false
	t.Cleanup(func() { // before the hub closes, should the test fail
		if !released {
			close(stall.release)
		}
	})
	hub.Attach(c, &since, func() {
		// Attached, head 1. Seq 2 is stored now, its live copy held up
		// until the replay has read the head (2) and fallen back.
		go func() {
			_, err := hub.Send(ctx, courier.Outgoing{From: "alice", To: "bob"})
			sent <- err
		}()
		<-stall.committed
	})
	checkRun(t, waitSeqs(t, rec, 1), 2, 2) // read from the store by the replay
	close(stall.release)
	released = true
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	checkRun(t, rec.got(), 2, 2) // and its live copy dropped
}
