package server

import "sync"

// A flusher is a goroutine that writes the queues of the links handed to
// it. Writing from one place, a little after the frames were queued, lets
// frames that arrive together — a burst of acks, a group commit's messages
// to one user — leave in one system call instead of one each.
//
// Before each round it yields its core (yieldCore): where the poller shares
// the core, the poller then finishes handling what it read before the
// flusher writes, and more frames leave per write. Without it, a woken
// flusher preempts the poller after each frame: 2.9 frames per write
// instead of 3.4, and 11% fewer deliveries per CPU-second under load
// (docs/benchmarks.md, "One event loop"). Where the poller has a core of
// its own, the yield returns at once.
type flusher struct {
	mu    sync.Mutex
	ready []*link
	wake  chan struct{}
}

func newFlusher() *flusher { return &flusher{wake: make(chan struct{}, 1)} }

// add queues l for writing; l holds its flushing flag.
func (f *flusher) add(l *link) {
	f.mu.Lock()
	f.ready = append(f.ready, l)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run writes links as they come until stop is closed.
func (f *flusher) run(stop <-chan struct{}) {
	var batch []*link
	for {
		f.mu.Lock()
		if len(f.ready) == 0 {
			f.mu.Unlock()
			select {
			case <-f.wake:
				continue
			case <-stop:
				return
			}
		}
		f.mu.Unlock()
		yieldCore()
		f.mu.Lock()
		batch, f.ready = f.ready, batch[:0]
		f.mu.Unlock()
		for i, l := range batch {
			l.flush()
			batch[i] = nil
		}
	}
}
