package courier

import (
	"context"
	"log/slog"
	"sync"
)

// maxMarkBatch bounds the message ids one MarkDelivered call takes.
const maxMarkBatch = 512

// deliveredMarks collects the stored messages that reached a connection of
// their recipient and asks the store, in batches, which did so for the first
// time: their senders get a delivered receipt, once per message, whichever
// node delivered it.
type deliveredMarks struct {
	store  Store
	log    *slog.Logger
	notify func(user string, n Notice)

	// flushing is held through each flush, from taking ids to sending
	// their notices: sync waits on it for a flush in progress.
	flushing sync.Mutex
	mu       sync.Mutex
	ids      []string
	seen     map[string]struct{}
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
}

func newDeliveredMarks(s Store, log *slog.Logger, notify func(string, Notice)) *deliveredMarks {
	d := &deliveredMarks{store: s, log: log, notify: notify, seen: make(map[string]struct{}),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d
}

// add records that message id reached one of its recipient's connections.
func (d *deliveredMarks) add(id string) {
	d.mu.Lock()
	if _, dup := d.seen[id]; !dup {
		d.seen[id] = struct{}{}
		d.ids = append(d.ids, id)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run is the marker's goroutine; it ends with close, after a last batch.
func (d *deliveredMarks) run() {
	defer close(d.done)
	for {
		select {
		case <-d.wake:
			d.sync()
		case <-d.stop:
			d.sync()
			return
		}
	}
}

// sync records every mark added so far, and sends their receipts, before
// it returns; flushes run one at a time. The read path calls it first, so
// that a message's delivered receipt leaves before its read receipt (a
// recipient reads only what reached it, and so was added).
func (d *deliveredMarks) sync() {
	d.flushing.Lock()
	defer d.flushing.Unlock()
	d.flush()
}

func (d *deliveredMarks) flush() {
	for {
		d.mu.Lock()
		n := min(len(d.ids), maxMarkBatch)
		batch := append([]string(nil), d.ids[:n]...)
		d.ids = d.ids[n:]
		for _, id := range batch {
			delete(d.seen, id)
		}
		if len(d.ids) == 0 {
			d.ids = nil
		}
		d.mu.Unlock()
		if n == 0 {
			return
		}
		first, err := d.store.MarkDelivered(context.Background(), batch)
		if err != nil {
			d.log.Warn("mark messages delivered", "messages", len(batch), "err", err)
			continue
		}
		for _, f := range first {
			d.notify(f.From, Notice{Kind: NoticeDelivered, By: f.To, Msg: f.ID})
		}
	}
}

func (d *deliveredMarks) close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	<-d.done
}

// reached notes that a delivery reached c: for a stored direct message to
// c's user from someone else, the sender is owed a delivered receipt.
func (c *Conn) reached(d *Delivery) {
	if d.Durable && d.Notice == nil && d.Room == "" && d.To == c.identity.User && d.From != d.To {
		c.hub.marks.add(d.ID)
	}
}
