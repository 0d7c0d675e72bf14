package postgres

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/courier-im/courier"
)

// result is what Append tells of one envelope once the batch has committed.
type result struct {
	toSeq, fromSeq int64
	// for a duplicate: the first message's
	dup bool
	id  string
	ts  time.Time
}

// keyPair is an idempotency key with its sender.
type keyPair struct{ from, key string }

// head is an inbox's or room's row as the transaction read it: its id, the
// last seq given out (advanced by place), and the last seq committed.
type head struct {
	id, seq, last int64
}

// plan is one Append: what it locks, what the locks' round trip read, and
// the rows it writes, as columns for unnest.
type plan struct {
	batch []*courier.Envelope

	// What the batch needs, fixed for all tries: sorted, without repeats.
	lockUsers  []string // inboxes the batch may add to
	peerUsers  []string // names that are only peers (server API labels)
	lockRooms  []string
	lockKeys   []int64  // advisory lock of each (sender, key)
	keySenders []string // the batch's keys, with their senders
	keys       []string

	// What a try read; names found missing.
	users, peers, rooms map[string]*head
	found               map[keyPair]result
	pks                 []int64
	newUsers, newRooms  []string

	// What a try writes.
	out []result
	m   struct {
		pk, toSeq, fromSeq                      []int64
		id, sender, recipient, room, event, key []string
		data, body                              []string
		owner, owner2                           []int64 // uids of the inboxes it is in; 0 for none
		ts                                      []time.Time
	}
	convs map[convKey]*convRow // the conversations the batch adds to
	in    struct{ uid, seq, msg, peer []int64 }
	rm    struct{ rid, seq, msg []int64 }
}

func newPlan(batch []*courier.Envelope) *plan {
	p := &plan{batch: batch}
	var keys []keyPair
	for _, e := range batch {
		switch {
		case e.Room != "":
			p.lockRooms = append(p.lockRooms, e.Room)
		default:
			p.lockUsers = append(p.lockUsers, e.To)
			if !e.NoSenderCopy {
				p.lockUsers = append(p.lockUsers, e.From)
			} else {
				p.peerUsers = append(p.peerUsers, e.From)
			}
		}
		if e.Key != "" {
			keys = append(keys, keyPair{e.From, e.Key})
		}
	}
	p.lockUsers, p.lockRooms = sortedSet(p.lockUsers), sortedSet(p.lockRooms)
	// A label that is also an inbox in this batch is locked already.
	p.peerUsers = slices.DeleteFunc(sortedSet(p.peerUsers), func(n string) bool {
		_, ok := slices.BinarySearch(p.lockUsers, n)
		return ok
	})
	slices.SortFunc(keys, func(a, b keyPair) int {
		if c := cmp.Compare(a.from, b.from); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	keys = slices.Compact(keys)
	for _, k := range keys {
		p.keySenders, p.keys = append(p.keySenders, k.from), append(p.keys, k.key)
		p.lockKeys = append(p.lockKeys, keyLock(k))
	}
	slices.Sort(p.lockKeys)
	p.lockKeys = slices.Compact(p.lockKeys)
	return p
}

func sortedSet(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// keyLock is the advisory lock of an idempotency key: a hash of sender and
// key, the same in every process. Two keys that share it only wait for
// each other.
func keyLock(k keyPair) int64 {
	h := fnv.New64a()
	h.Write([]byte("courier key\x00"))
	h.Write([]byte(k.from))
	h.Write([]byte{0})
	h.Write([]byte(k.key))
	return int64(h.Sum64())
}

// reset forgets what an earlier try read and planned.
func (p *plan) reset() {
	n := len(p.batch)
	p.users = make(map[string]*head, len(p.lockUsers))
	p.peers = make(map[string]*head, len(p.peerUsers))
	p.rooms = make(map[string]*head, len(p.lockRooms))
	p.found = make(map[keyPair]result, len(p.keys))
	p.pks, p.newUsers, p.newRooms = p.pks[:0], p.newUsers[:0], p.newRooms[:0]
	p.out = make([]result, n)
	m := &p.m
	m.pk, m.toSeq, m.fromSeq = m.pk[:0], m.toSeq[:0], m.fromSeq[:0]
	m.id, m.sender, m.recipient, m.room, m.event, m.key = m.id[:0], m.sender[:0], m.recipient[:0], m.room[:0], m.event[:0], m.key[:0]
	m.data, m.ts, m.body, m.owner, m.owner2 = m.data[:0], m.ts[:0], m.body[:0], m.owner[:0], m.owner2[:0]
	p.convs = make(map[convKey]*convRow)
	p.in.uid, p.in.seq, p.in.msg, p.in.peer = p.in.uid[:0], p.in.seq[:0], p.in.msg[:0], p.in.peer[:0]
	p.rm.rid, p.rm.seq, p.rm.msg = p.rm.rid[:0], p.rm.seq[:0], p.rm.msg[:0]
}

// place gives each envelope its place: its pk and seqs, or the first
// message of its key; and adds its rows.
func (p *plan) place() error {
	first := make(map[keyPair]int)
	for i, e := range p.batch {
		r := &p.out[i]
		if e.Key != "" {
			k := keyPair{e.From, e.Key}
			if f, ok := p.found[k]; ok {
				*r = f
				continue
			}
			if j, ok := first[k]; ok {
				f := &p.out[j]
				*r = result{toSeq: f.toSeq, fromSeq: f.fromSeq, dup: true, id: p.batch[j].ID, ts: f.ts}
				continue
			}
			first[k] = i
		}
		pk := p.pks[i]
		r.ts = time.UnixMilli(e.Time.UnixMilli()).UTC()
		if e.Room != "" {
			room := p.rooms[e.Room]
			room.seq++
			r.toSeq = room.seq
			p.rm.rid, p.rm.seq, p.rm.msg = append(p.rm.rid, room.id), append(p.rm.seq, r.toSeq), append(p.rm.msg, pk)
		} else {
			to, from := p.users[e.To], p.users[e.From]
			if e.NoSenderCopy && from == nil {
				from = p.peers[e.From]
			}
			if to == nil || from == nil {
				return fmt.Errorf("message %s: no head for %q or %q", e.ID, e.To, e.From)
			}
			to.seq++
			r.toSeq = to.seq
			p.inboxRow(to.id, r.toSeq, pk, from.id)
			p.conv(to.id, from.id, r.toSeq, pk, from != to)
			owner2 := int64(0)
			switch {
			case e.NoSenderCopy:
			case from == to:
				r.fromSeq = r.toSeq // a note to self is in that inbox once
			default:
				from.seq++
				r.fromSeq = from.seq
				p.inboxRow(from.id, r.fromSeq, pk, to.id)
				p.conv(from.id, to.id, r.fromSeq, pk, false)
				owner2 = from.id
			}
			p.m.owner, p.m.owner2 = append(p.m.owner, to.id), append(p.m.owner2, owner2)
			p.m.body = append(p.m.body, courier.IndexText(e.Data))
		}
		if e.Room != "" {
			p.m.owner, p.m.owner2, p.m.body = append(p.m.owner, 0), append(p.m.owner2, 0), append(p.m.body, "")
		}
		p.message(e, pk, r)
	}
	return nil
}

func (p *plan) inboxRow(uid, seq, msg, peer int64) {
	in := &p.in
	in.uid, in.seq, in.msg, in.peer = append(in.uid, uid), append(in.seq, seq), append(in.msg, msg), append(in.peer, peer)
}

// message adds the messages row of e.
func (p *plan) message(e *courier.Envelope, pk int64, r *result) {
	m := &p.m
	data := "null"
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	m.pk, m.toSeq, m.fromSeq = append(m.pk, pk), append(m.toSeq, r.toSeq), append(m.fromSeq, r.fromSeq)
	m.id, m.sender, m.recipient = append(m.id, e.ID), append(m.sender, e.From), append(m.recipient, e.To)
	m.room, m.event, m.key = append(m.room, e.Room), append(m.event, e.Event), append(m.key, e.Key)
	m.data, m.ts = append(m.data, data), append(m.ts, r.ts)
}

// convKey is a conversation: an inbox's uid and its peer's.
type convKey struct{ uid, peer int64 }

// convRow is what a batch adds to a conversation: its newest message and
// how many of its messages were received.
type convRow struct {
	convKey
	seq, msg, unread int64
}

// conv records that the message pk is at seq in the conversation of uid
// with peer; received when its sender is the peer, not uid.
func (p *plan) conv(uid, peer, seq, pk int64, received bool) {
	k := convKey{uid, peer}
	c := p.convs[k]
	if c == nil {
		c = &convRow{convKey: k}
		p.convs[k] = c
	}
	c.seq, c.msg = seq, pk
	if received {
		c.unread++
	}
}

// convCols are conversation rows as columns for unnest.
type convCols struct{ uid, peer, seq, msg, unread []int64 }

// convRows returns the batch's conversation rows sorted by (uid, peer), the
// order in which every transaction locks them.
func (p *plan) convRows() convCols {
	rows := make([]*convRow, 0, len(p.convs))
	for _, c := range p.convs {
		rows = append(rows, c)
	}
	slices.SortFunc(rows, func(a, b *convRow) int {
		if c := cmp.Compare(a.uid, b.uid); c != 0 {
			return c
		}
		return cmp.Compare(a.peer, b.peer)
	})
	var c convCols
	for _, r := range rows {
		c.uid, c.peer, c.seq = append(c.uid, r.uid), append(c.peer, r.peer), append(c.seq, r.seq)
		c.msg, c.unread = append(c.msg, r.msg), append(c.unread, r.unread)
	}
	return c
}
