package sqlite

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/courier-im/courier"
)

// result is what Append tells of one envelope once the batch has committed.
type result struct {
	toSeq, fromSeq int64
	// for a duplicate: the first message's
	dup bool
	id  string
	ts  int64
}

// keyPair is an idempotency key with its sender.
type keyPair struct{ from, key string }

// nameRow is a new users or rooms row.
type nameRow struct {
	id   int64
	name string
}

// msgRow is a messages row: the envelope and what plan gave it.
type msgRow struct {
	e       *courier.Envelope
	pk, ts  int64
	toSeq   int64
	fromSeq int64
}

// batchState is the scratch space of one Append, kept between Appends to
// save allocations.
type batchState struct {
	out          []result
	users, rooms []nameRow
	msgs         []msgRow
	inbox        []int64 // uid, peer, seq, msg of each row
	rmsgs        []int64 // rid, seq, msg of each row
	keys         []keyPair
	found        map[keyPair]result // keys stored before this batch
	first        map[keyPair]int    // first envelope of each key in this batch
	convs        []convRow          // conversations the batch adds to
	convAt       map[convKey]int    // index in convs
	ids          []string           // MarkDelivered's ids
	handed       []committed        // for the indexer, once committed
}

// convKey is a conversation: an inbox's uid and its peer's.
type convKey struct{ uid, peer int64 }

// convRow is the newest message a batch adds to a conversation.
type convRow struct {
	convKey
	seq, msg int64
}

func (b *batchState) reset(n int) {
	b.out = slices.Grow(b.out[:0], n)[:n]
	clear(b.out)
	clear(b.users)
	clear(b.rooms)
	clear(b.msgs)
	clear(b.keys)
	b.users, b.rooms, b.msgs, b.keys, b.convs = b.users[:0], b.rooms[:0], b.msgs[:0], b.keys[:0], b.convs[:0]
	b.inbox, b.rmsgs = b.inbox[:0], b.rmsgs[:0]
	clear(b.handed)
	b.handed = b.handed[:0]
	if b.found == nil {
		b.found, b.first, b.convAt = make(map[keyPair]result), make(map[keyPair]int), make(map[convKey]int)
	}
	clear(b.found)
	clear(b.first)
	clear(b.convAt)
}

// Append stores batch in one transaction, in order, filling in ToSeq,
// FromSeq and Duplicate (see courier.Store). It returns once the transaction
// has committed with the configured Synchronous. On error nothing is stored,
// no seq is used up, and the envelopes are as they were passed in: they are
// written only after the commit. ctx is checked before the transaction
// begins; once begun, it runs to its end (waits for locks are bounded by
// WithBusyTimeout).
func (s *Store) Append(ctx context.Context, batch []*courier.Envelope) error {
	for i, e := range batch {
		if err := e.Check(); err != nil {
			return fmt.Errorf("append batch: envelope %d: %w", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("append batch: %w", ErrClosed)
	}
	if len(batch) == 0 {
		return nil
	}
	b := &s.batch
	b.reset(len(batch))
	if err := s.appendTx(ctx, batch, b); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	for i, e := range batch {
		r := &b.out[i]
		if r.dup {
			e.ID, e.Time = r.id, time.UnixMilli(r.ts).UTC()
		}
		e.ToSeq, e.FromSeq, e.Duplicate = uint64(r.toSeq), uint64(r.fromSeq), r.dup
	}
	s.heads.trim()
	s.idx.hand(b.handed)
	s.idx.wake()
	return nil
}

// appendTx stores batch in one transaction, leaving what Append reports in
// b.out. On error it rolls back and makes heads forget what it touched.
func (s *Store) appendTx(ctx context.Context, batch []*courier.Envelope, b *batchState) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	w, h := s.w, s.heads
	if err := w.begin.exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	h.begin()
	defer func() {
		if err != nil {
			// After an OR ROLLBACK conflict there is no transaction left
			// to roll back; the error of trying says nothing new.
			_ = w.rollback.exec()
			h.forget()
		}
		w.conn.arena.reset()
	}()
	if err := s.syncHeads(); err != nil {
		return err
	}
	if err := s.findKeys(batch, b); err != nil {
		return err
	}
	for i := range batch {
		if err := s.plan(batch, i, b); err != nil {
			return fmt.Errorf("message %d (%s): %w", i, batch[i].ID, err)
		}
	}
	// Before the inbox rows go in: their max(seq) finds the conversation
	// entries to move. Then the new ones go in with the inbox rows.
	if err := w.execRows(unlinkConvs, len(b.convs), b, bindConvKey); err != nil {
		return err
	}
	for _, c := range b.convs {
		b.inbox = append(b.inbox, c.uid, convPeer, c.seq, c.msg)
	}
	for _, ins := range []struct {
		m    *multiRow
		rows int
		bind rowBinder
	}{
		{insertUsers, len(b.users), bindUser},
		{insertRooms, len(b.rooms), bindRoom},
		{insertMsgs, len(b.msgs), bindMsg},
		{insertInbox, len(b.inbox) / 4, bindInts(4)},
		{insertRoom, len(b.rmsgs) / 3, bindInts(3)},
	} {
		if err := w.execRows(ins.m, ins.rows, b, ins.bind); err != nil {
			return err
		}
	}
	// Delivered marks queued meanwhile commit with the batch
	// (delivered.go); if the batch fails, they wait for the next.
	marks := s.marks.take()
	if len(marks) > 0 {
		defer func() {
			if err != nil {
				s.marks.putBack(marks)
				return
			}
			for _, r := range marks {
				r.answer()
			}
		}()
		if err := s.markRows(w, marks); err != nil {
			return fmt.Errorf("delivered marks: %w", err)
		}
	}
	if err := w.commit.exec(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func bindUser(st *rawStmt, at int, b *batchState, i int) {
	st.bindInt(at, b.users[i].id)
	st.bindText(at+1, b.users[i].name)
}

func bindRoom(st *rawStmt, at int, b *batchState, i int) {
	st.bindInt(at, b.rooms[i].id)
	st.bindText(at+1, b.rooms[i].name)
}

func bindMsg(st *rawStmt, at int, b *batchState, i int) {
	r := &b.msgs[i]
	e := r.e
	data := "null"
	if len(e.Data) > 0 {
		data = unsafe.String(&e.Data[0], len(e.Data)) // copied by bindText
	}
	st.bindInt(at, r.pk)
	st.bindText(at+1, e.ID)
	st.bindText(at+2, e.From)
	st.bindText(at+3, e.To)
	st.bindText(at+4, e.Room)
	st.bindText(at+5, e.Event)
	st.bindText(at+6, data)
	st.bindInt(at+7, r.ts)
	if e.Key != "" {
		st.bindText(at+8, e.Key)
	} else {
		st.bindNull(at + 8)
	}
	st.bindInt(at+9, r.toSeq)
	st.bindInt(at+10, r.fromSeq)
}

func bindConvKey(st *rawStmt, at int, b *batchState, i int) {
	st.bindInt(at, b.convs[i].uid)
	st.bindInt(at+1, b.convs[i].peer)
}

// conv records that the message pk is at seq in the conversation of uid
// with peer.
func (b *batchState) conv(uid, peer, seq, pk int64) {
	k := convKey{uid, peer}
	i, ok := b.convAt[k]
	if !ok {
		i = len(b.convs)
		b.convAt[k] = i
		b.convs = append(b.convs, convRow{convKey: k})
	}
	b.convs[i].seq, b.convs[i].msg = seq, pk
}

var intBinders = [...]rowBinder{3: bindInts3, 4: bindInts4}

// bindInts returns the binder of rows of n integers (n is 3 or 4): b.rmsgs
// for 3, b.inbox for 4.
func bindInts(n int) rowBinder { return intBinders[n] }

func bindInts3(st *rawStmt, at int, b *batchState, i int) {
	for j, v := range b.rmsgs[3*i : 3*i+3] {
		st.bindInt(at+j, v)
	}
}

func bindInts4(st *rawStmt, at int, b *batchState, i int) {
	for j, v := range b.inbox[4*i : 4*i+4] {
		st.bindInt(at+j, v)
	}
}

// syncHeads makes heads current at the start of a transaction: it drops
// them if another connection has committed since our last transaction, and
// reads the counters if they are not loaded.
func (s *Store) syncHeads() error {
	h := s.heads
	var dv int64
	if _, err := s.w.conn.queryInt(s.w.dataVersion, &dv); err != nil {
		return fmt.Errorf("data version: %w", err)
	}
	if dv != h.dataVersion {
		h.reset()
		h.dataVersion = dv
	}
	if h.valid {
		return nil
	}
	if _, err := s.w.conn.queryInt(s.w.counters, &h.lastPK, &h.lastUID, &h.lastRID); err != nil {
		return fmt.Errorf("read counters: %w", err)
	}
	h.valid = true
	return nil
}

// findKeys fills b.found with the messages stored before this batch under
// the batch's idempotency keys, in one query.
func (s *Store) findKeys(batch []*courier.Envelope, b *batchState) error {
	for _, e := range batch {
		if e.Key == "" {
			continue
		}
		k := keyPair{e.From, e.Key}
		if _, ok := b.first[k]; ok {
			continue
		}
		b.first[k] = -1 // asked for; plan sets the first envelope
		b.keys = append(b.keys, k)
	}
	if len(b.keys) == 0 {
		return nil
	}
	clear(b.first)
	return s.w.queryRows(findKeys, len(b.keys), b, bindKey, func(st *rawStmt) {
		k := keyPair{st.text(0), st.text(1)}
		b.found[k] = result{dup: true, id: st.text(2), ts: st.int(3), toSeq: st.int(4), fromSeq: st.int(5)}
	})
}

func bindKey(st *rawStmt, at int, b *batchState, i int) {
	st.bindText(at, b.keys[i].from)
	st.bindText(at+1, b.keys[i].key)
}

// plan gives envelope i its place: its pk and seqs, or the first message of
// its key; and adds its rows to b.
func (s *Store) plan(batch []*courier.Envelope, i int, b *batchState) error {
	h, e, r := s.heads, batch[i], &b.out[i]
	if e.Key != "" {
		k := keyPair{e.From, e.Key}
		if f, ok := b.found[k]; ok {
			*r = f
			return nil
		}
		if j, ok := b.first[k]; ok {
			f := &b.out[j]
			*r = result{toSeq: f.toSeq, fromSeq: f.fromSeq, dup: true, id: batch[j].ID, ts: f.ts}
			return nil
		}
		b.first[k] = i
	}
	h.lastPK++
	pk := h.lastPK
	r.ts = e.Time.UnixMilli()
	c := committed{pk: pk, data: e.Data} // the indexer's, as sqlToIndex reads it
	if e.Room != "" {
		room, err := s.roomHead(e.Room, b)
		if err != nil {
			return err
		}
		room.seq++
		r.toSeq = room.seq
		b.rmsgs = append(b.rmsgs, room.id, r.toSeq, pk)
	} else {
		to, err := s.userHead(e.To, b)
		if err != nil {
			return err
		}
		from, err := s.userHead(e.From, b) // the peer of to's copy
		if err != nil {
			return err
		}
		to.seq++
		r.toSeq = to.seq
		c.to = to.id
		b.inbox = append(b.inbox, to.id, 0, r.toSeq, pk, to.id, from.id, r.toSeq, pk)
		b.conv(to.id, from.id, r.toSeq, pk)
		switch {
		case e.NoSenderCopy:
		case from == to:
			r.fromSeq = r.toSeq // a note to self is in that inbox once
		default:
			from.seq++
			r.fromSeq = from.seq
			c.from = from.id
			b.inbox = append(b.inbox, from.id, 0, r.fromSeq, pk, from.id, to.id, r.fromSeq, pk)
			b.conv(from.id, to.id, r.fromSeq, pk)
		}
	}
	b.msgs = append(b.msgs, msgRow{e: e, pk: pk, ts: r.ts, toSeq: r.toSeq, fromSeq: r.fromSeq})
	b.handed = append(b.handed, c)
	return nil
}

// userHead returns the head of user's inbox, reading it or creating the
// user on a miss.
func (s *Store) userHead(user string, b *batchState) (*head, error) {
	h := s.heads
	h.touchedUsers = append(h.touchedUsers, user)
	if hd := h.users[user]; hd != nil {
		return hd, nil
	}
	hd, err := s.loadHead(s.w.loadUser, user)
	if err != nil {
		return nil, fmt.Errorf("inbox %s: %w", user, err)
	}
	if hd.id == 0 {
		h.lastUID++
		hd.id = h.lastUID
		b.users = append(b.users, nameRow{hd.id, user})
	}
	h.users[user] = hd
	return hd, nil
}

// roomHead returns the head of room, reading it or creating the room on a
// miss.
func (s *Store) roomHead(room string, b *batchState) (*head, error) {
	h := s.heads
	h.touchedRooms = append(h.touchedRooms, room)
	if hd := h.rooms[room]; hd != nil {
		return hd, nil
	}
	hd, err := s.loadHead(s.w.loadRoom, room)
	if err != nil {
		return nil, fmt.Errorf("room %s: %w", room, err)
	}
	if hd.id == 0 {
		h.lastRID++
		hd.id = h.lastRID
		b.rooms = append(b.rooms, nameRow{hd.id, room})
	}
	h.rooms[room] = hd
	return hd, nil
}

// loadHead reads the head of name with st (loadUser or loadRoom); its id
// is 0 when name has none yet.
func (s *Store) loadHead(st *rawStmt, name string) (*head, error) {
	hd := &head{}
	st.bindText(1, name)
	_, err := s.w.conn.queryInt(st, &hd.id, &hd.seq)
	return hd, err
}

// convPeer is the peer of a user's conversation entries in inbox: one per
// conversation, at the seq of its newest message (see schema/0004).
const convPeer = -1
