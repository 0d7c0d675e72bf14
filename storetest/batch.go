package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// model is what a store should make of a sequence of envelopes: the seqs
// of each inbox and room, the first message of each key, the inboxes.
type model struct {
	seqs   map[string]uint64 // inbox user, or "#"+room
	first  map[[2]string]courier.Envelope
	inbox  map[string][]string // user -> IDs in seq order
	stored int
}

func newModel() *model {
	return &model{seqs: map[string]uint64{}, first: map[[2]string]courier.Envelope{}, inbox: map[string][]string{}}
}

// apply returns e as Append should leave it.
func (m *model) apply(e courier.Envelope) courier.Envelope {
	k := [2]string{e.From, e.Key}
	if f, ok := m.first[k]; ok && e.Key != "" {
		e.ID, e.Time = f.ID, f.Time.Truncate(time.Millisecond)
		e.ToSeq, e.FromSeq, e.Duplicate = f.ToSeq, f.FromSeq, true
		return e
	}
	next := func(box string) uint64 { m.seqs[box]++; return m.seqs[box] }
	e.Duplicate = false
	switch {
	case e.Room != "":
		e.ToSeq, e.FromSeq = next("#"+e.Room), 0
	default:
		e.ToSeq = next(e.To)
		m.inbox[e.To] = append(m.inbox[e.To], e.ID)
		switch {
		case e.NoSenderCopy:
			e.FromSeq = 0
		case e.From == e.To:
			e.FromSeq = e.ToSeq
		default:
			e.FromSeq = next(e.From)
			m.inbox[e.From] = append(m.inbox[e.From], e.ID)
		}
	}
	if e.Key != "" {
		m.first[k] = e
	}
	m.stored++
	return e
}

// testLargeBatches appends batches far larger than the hub makes, mixing
// every kind of envelope, with keys repeated within and across batches,
// and checks each envelope and inbox against the model.
func testLargeBatches(t *testing.T, open Opener) {
	s := newStore(t, open)
	rng := rand.New(rand.NewPCG(7, 11))
	m := newModel()
	users := []string{"ann", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "kai", "lu"}
	n := 0
	gen := func(size int) []*courier.Envelope {
		batch := make([]*courier.Envelope, size)
		for i := range batch {
			id := fmt.Sprintf("big%05d", n)
			from, to := users[rng.IntN(len(users))], users[rng.IntN(len(users))]
			var opts []opt
			if rng.IntN(4) == 0 {
				opts = append(opts, key(fmt.Sprint("k", rng.IntN(40))))
			}
			opts = append(opts, at(n), data(fmt.Sprintf(`{"n":%d,"pad":"%*s"}`, n, rng.IntN(300), "")))
			switch r := rng.IntN(10); {
			case r < 2:
				batch[i] = rm(id, from, fmt.Sprint("room", rng.IntN(3)), opts...)
			case r < 3:
				batch[i] = dm(id, "billing: "+from, to, append(opts, noCopy)...)
			case r < 4:
				batch[i] = dm(id, from, from, opts...)
			default:
				batch[i] = dm(id, from, to, opts...)
			}
			n++
		}
		return batch
	}
	for _, size := range []int{300, 1, 17, 700, 33, 129} {
		batch := gen(size)
		sent := make([]string, len(batch))
		want := make([]courier.Envelope, len(batch))
		for i, e := range batch {
			sent[i], want[i] = e.ID, m.apply(*e)
		}
		mustAppend(t, s, batch...)
		for i, e := range batch {
			w := want[i]
			if e.ID != w.ID || !e.Time.Equal(w.Time) || e.ToSeq != w.ToSeq || e.FromSeq != w.FromSeq || e.Duplicate != w.Duplicate {
				t.Fatalf("batch of %d, envelope %d (%s %s->%s%s key %q): got ID %s, seqs %d/%d, dup %v; want %s, %d/%d, %v",
					size, i, sent[i], e.From, e.To, e.Room, e.Key, e.ID, e.ToSeq, e.FromSeq, e.Duplicate, w.ID, w.ToSeq, w.FromSeq, w.Duplicate)
			}
		}
	}
	if m.stored == n {
		t.Fatal("the test made no duplicates")
	}
	for _, u := range users {
		checkInbox(t, s, u, m.inbox[u]...)
	}
	checkInbox(t, s, "billing: ann")
}
