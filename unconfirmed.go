package courier

import (
	"sync"
	"time"
)

// unconfirmed remembers, per user, the newest inbox seq this node published
// that the broker has not yet been seen to pass on. A heartbeat that comes
// back to its sender proves that everything the node published before it
// got through; what is newer than the last such proof may have been lost with
// a broken broker connection. When the connection comes back, the node tells
// the nodes of those users to check their connections against the store.
type unconfirmed struct {
	mu        sync.Mutex
	seqs      map[string]pubMark
	confirmed int64 // unix ms of the newest heartbeat seen to come back
}

type pubMark struct {
	seq uint64
	at  int64 // unix ms of the publish
}

func (u *unconfirmed) add(user string, seq uint64) {
	now := time.Now().UnixMilli()
	u.mu.Lock()
	if u.seqs == nil {
		u.seqs = make(map[string]pubMark)
	}
	if m := u.seqs[user]; seq > m.seq {
		u.seqs[user] = pubMark{seq: seq, at: now}
	}
	u.mu.Unlock()
}

// confirm records that what was published up to unix ms at got through, and
// forgets it.
func (u *unconfirmed) confirm(at int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if at <= u.confirmed {
		return
	}
	u.confirmed = at
	for user, m := range u.seqs {
		if m.at < at {
			delete(u.seqs, user)
		}
	}
}

// take returns and forgets everything not confirmed.
func (u *unconfirmed) take() map[string]pubMark {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.seqs
	u.seqs = nil
	return s
}
