package redis

import "sync"

// An inbound is a packet read from the Pub/Sub connection, or, when
// catchUp is set, a request to call Reconnected.
type inbound struct {
	topic   string
	payload string
	catchUp bool
}

// An inbox takes packets from the reading goroutine to the dispatching
// goroutine, which calls the Receiver. The reader never waits on it, so it
// always reads on, and sees the PONG that a Subscribe made by the Receiver
// itself waits for. Over its limit the inbox drops packets; it then
// queues a catch-up after the last one dropped, so the node reads from the
// store what it missed.
type inbox struct {
	mu      sync.Mutex
	items   []inbound
	bytes   int  // of the payloads queued
	limit   int  // bytes over which packets are dropped
	lost    bool // packets were dropped since the last catch-up queued
	dropped uint64

	wake chan struct{} // signalled when items are queued; capacity 1
}

func newInbox(limit int) *inbox {
	return &inbox{limit: limit, wake: make(chan struct{}, 1)}
}

// put queues in, unless it is a packet and the inbox is full; it reports
// whether this packet was the first dropped since the last catch-up.
func (q *inbox) put(in inbound) (firstDrop bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !in.catchUp && q.bytes+len(in.payload) > q.limit && len(q.items) > 0 {
		firstDrop = !q.lost
		q.lost = true
		q.dropped++
		return firstDrop
	}
	if q.lost && !in.catchUp {
		q.appendCatchUp()
	}
	if in.catchUp {
		q.appendCatchUp()
	} else {
		q.items = append(q.items, in)
		q.bytes += len(in.payload)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return false
}

// appendCatchUp queues a catch-up unless one is last already.
func (q *inbox) appendCatchUp() {
	q.lost = false
	if n := len(q.items); n > 0 && q.items[n-1].catchUp {
		return
	}
	q.items = append(q.items, inbound{catchUp: true})
}

// take returns what is queued, swapping in spare (emptied), and the
// catch-up owed for packets dropped since; nil when there is nothing.
func (q *inbox) take(spare []inbound) []inbound {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 && q.lost {
		q.appendCatchUp()
	}
	if len(q.items) == 0 {
		return nil
	}
	items := q.items
	q.items, q.bytes = spare[:0], 0
	return items
}

// droppedCount returns how many packets the inbox dropped.
func (q *inbox) droppedCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}
