package courier

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Presence is a user's online state across the cluster.
type Presence struct {
	Connections int       // live connections, on every node
	LastSeen    time.Time // when the user's last connection closed; zero if never
}

// Presence returns user's presence: its connections on every live node, and
// when its last connection closed.
func (h *Hub) Presence(ctx context.Context, user string) (Presence, error) {
	m, err := h.PresenceOf(ctx, []string{user})
	if err != nil {
		return Presence{}, err
	}
	return m[user], nil
}

// seenWriter records in the store when users went offline, off the path of
// the closing connection; until written, the times are answered from memory.
type seenWriter struct {
	store Store
	log   *slog.Logger

	mu    sync.Mutex
	queue map[string]time.Time
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

func newSeenWriter(s Store, log *slog.Logger) *seenWriter {
	w := &seenWriter{store: s, log: log, queue: make(map[string]time.Time),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// mark records that user's last local connection closed now, and returns
// that time.
func (w *seenWriter) mark(user string) time.Time {
	now := Now()
	w.mu.Lock()
	w.queue[user] = now
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return now
}

func (w *seenWriter) pending(user string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.queue[user]
	return t, ok
}

// run is the writer's goroutine; it ends with close, after a last write.
func (w *seenWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
			w.flush()
		case <-w.stop:
			w.flush()
			return
		}
	}
}

func (w *seenWriter) flush() {
	w.mu.Lock()
	batch := make(map[string]time.Time, len(w.queue))
	for u, t := range w.queue {
		batch[u] = t
	}
	w.mu.Unlock()
	for u, t := range batch {
		if err := w.store.SetLastSeen(context.Background(), u, t); err != nil {
			w.log.Warn("record last seen", "user", u, "err", err)
		}
		w.mu.Lock()
		if w.queue[u].Equal(t) {
			delete(w.queue, u) // not marked again meanwhile
		}
		w.mu.Unlock()
	}
}

func (w *seenWriter) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}
