package sqlite

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/courier-im/courier"
)

// Delivered marks are a write per call, and a hub calls MarkDelivered as
// messages reach their recipients, as often as it appends them: each call
// its own durable commit would double the fsyncs of the durable path. So
// calls queue their ids, and the next Append's transaction marks all the
// ids queued before it in the same commit; a call waits up to markWait for
// one, then commits the marks of every call waiting in a transaction of
// its own. A call returns once a transaction holding its marks has
// committed; while Appends flow it costs them one UPDATE and no fsync of
// its own. Without the wait, a call that came just after an Append found
// the writer free and paid an fsync for its marks alone: at 1,000 durable
// messages a second that was one more fsync per message, and 16% of the
// server's CPU.
const markWait = 10 * time.Millisecond

// markReq is one MarkDelivered call waiting for a transaction.
type markReq struct {
	ids []string
	out []courier.FirstDelivery
	err error
	// done is set, under Store.mu, when a committed transaction (or a
	// failed one of MarkDelivered's own) has answered the call; answered
	// is closed then.
	done     bool
	answered chan struct{}
}

// answer marks r done; the caller holds Store.mu.
func (r *markReq) answer() {
	if !r.done {
		r.done = true
		close(r.answered)
	}
}

// markQueue holds the calls no transaction has taken yet.
type markQueue struct {
	mu      sync.Mutex
	pending []*markReq
	wait    time.Duration // markWait; tests change it
	own     int           // transactions of MarkDelivered's own, under Store.mu
}

func (q *markQueue) add(r *markReq) {
	q.mu.Lock()
	q.pending = append(q.pending, r)
	q.mu.Unlock()
}

// take removes and returns every call queued.
func (q *markQueue) take() []*markReq {
	q.mu.Lock()
	defer q.mu.Unlock()
	rs := q.pending
	q.pending = nil
	return rs
}

// putBack queues again calls whose transaction rolled back, ahead of
// those queued since.
func (q *markQueue) putBack(rs []*markReq) {
	for _, r := range rs {
		r.out = nil
	}
	q.mu.Lock()
	q.pending = append(rs, q.pending...)
	q.mu.Unlock()
}

// MarkDelivered records that the direct messages ids reached a connection
// of their recipient and returns those that had not before and have a
// sender copy (their sender is a user, not a server API label), each once
// over all calls. Unknown ids, room messages and repeated ids are ignored.
// It returns once the marks are committed: by the next Append's
// transaction, or by one of its own when no Append holds the writer, with
// the marks of every call waiting then.
func (s *Store) MarkDelivered(ctx context.Context, ids []string) ([]courier.FirstDelivery, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mark delivered: %w", err)
	}
	req := &markReq{ids: ids, answered: make(chan struct{})}
	s.marks.add(req)
	wait := time.NewTimer(s.marks.wait)
	select {
	case <-req.answered:
	case <-wait.C:
	case <-ctx.Done():
		// Still queued: the next transaction marks them all the same.
	}
	wait.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !req.done {
		if s.closed.Load() {
			return nil, fmt.Errorf("mark delivered: %w", ErrClosed)
		}
		reqs := s.marks.take()
		s.marks.own++
		err := s.writeTx(func(w *writer) error { return s.markRows(w, reqs) })
		for _, r := range reqs {
			if err != nil {
				r.out, r.err = nil, err
			}
			r.answer()
		}
	}
	if req.err != nil {
		return nil, fmt.Errorf("mark delivered %d messages: %w", len(ids), req.err)
	}
	return req.out, nil
}

// markRows marks the ids of reqs in the writer's open transaction, in a
// few statements of up to 128 ids, and gives each call the messages it
// marked first: a message two calls name goes to the earlier one.
func (s *Store) markRows(w *writer, reqs []*markReq) error {
	b := &s.batch
	b.ids = b.ids[:0]
	for _, r := range reqs {
		b.ids = append(b.ids, r.ids...)
	}
	slices.Sort(b.ids)
	b.ids = slices.Compact(b.ids)
	marked := make(map[string]courier.FirstDelivery)
	err := w.queryRows(markDelivered, len(b.ids), b, bindID, func(st *rawStmt) {
		d := courier.FirstDelivery{ID: st.text(0), From: st.text(1), To: st.text(2)}
		marked[d.ID] = d
	})
	clear(b.ids)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		r.out = nil
		for _, id := range r.ids {
			if d, ok := marked[id]; ok {
				r.out = append(r.out, d)
				delete(marked, id)
			}
		}
	}
	return nil
}

func bindID(st *rawStmt, at int, b *batchState, i int) { st.bindText(at, b.ids[i]) }
