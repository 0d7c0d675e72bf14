package testnode

import (
	"context"
	"sync"

	"github.com/courier-im/courier"
)

// GatedStore is a real store whose chosen calls wait until Open, so that a
// test can hold the store in the middle of something and look at what
// everything else does meanwhile.
type GatedStore struct {
	courier.Store
	// Entered is told, without blocking (it holds 16), each time a call
	// starts to wait.
	Entered chan struct{}

	calls map[string]bool
	user  string
	gate  chan struct{}
	once  sync.Once
}

// NewGatedStore wraps s so that its calls named in calls ("Append",
// "Search", "LatestSeq") wait until Open; Search and LatestSeq only for user
// when user is not empty. The test should Open it when it ends (t.Cleanup),
// or a call left waiting holds up the node's shutdown.
func NewGatedStore(s courier.Store, user string, calls ...string) *GatedStore {
	g := &GatedStore{Store: s, Entered: make(chan struct{}, 16), calls: map[string]bool{}, user: user, gate: make(chan struct{})}
	for _, c := range calls {
		g.calls[c] = true
	}
	return g
}

// Open lets every waiting and later call through; calling it again does
// nothing.
func (g *GatedStore) Open() { g.once.Do(func() { close(g.gate) }) }

func (g *GatedStore) wait(call, user string) {
	if !g.calls[call] || g.user != "" && user != "" && user != g.user {
		return
	}
	select {
	case g.Entered <- struct{}{}:
	default:
	}
	<-g.gate
}

// Append waits when gated, then appends.
func (g *GatedStore) Append(ctx context.Context, batch []*courier.Envelope) error {
	g.wait("Append", "")
	return g.Store.Append(ctx, batch)
}

// Search waits when gated, then searches.
func (g *GatedStore) Search(ctx context.Context, user string, q courier.Query, limit int) ([]courier.Message, error) {
	g.wait("Search", user)
	return g.Store.Search(ctx, user, q, limit)
}

// LatestSeq waits when gated, then reads the head.
func (g *GatedStore) LatestSeq(ctx context.Context, user string) (uint64, error) {
	g.wait("LatestSeq", user)
	return g.Store.LatestSeq(ctx, user)
}
