package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/courier-im/courier"
)

// AppendConcurrently runs workers goroutines per store, all at once, each
// making appends Appends of 1 to 4 envelopes between five users: direct
// messages, server API sends, room messages, a quarter with an idempotency
// key that other goroutines (and stores) repeat. Then it checks the stores
// with CheckAppended and returns what the Appends filled in. The stores
// must share their data: one store, or several nodes on one database.
func AppendConcurrently(t *testing.T, workers, appends int, stores ...courier.Store) []*courier.Envelope {
	t.Helper()
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	var mu sync.Mutex
	var done []*courier.Envelope
	var wg sync.WaitGroup
	for n, s := range stores {
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
				for a := range appends {
					var batch []*courier.Envelope
					for i := range 1 + a%4 {
						id := fmt.Sprintf("s%d-w%d-a%d-%d", n, w, a, i)
						from, to := users[rng.IntN(len(users))], users[rng.IntN(len(users))]
						var opts []opt
						if rng.IntN(4) == 0 { // shared keys: duplicates across goroutines
							opts = append(opts, key(fmt.Sprint("k", rng.IntN(10))))
						}
						switch rng.IntN(6) {
						case 0:
							batch = append(batch, rm(id, from, []string{"hall", "attic"}[rng.IntN(2)], opts...))
						case 1:
							batch = append(batch, dm(id, "api", to, append(opts, noCopy)...))
						default:
							batch = append(batch, dm(id, from, to, opts...))
						}
					}
					if err := s.Append(context.Background(), batch); err != nil {
						t.Errorf("store %d: Append(%s): %v", n, ids(batch), err)
						return
					}
					mu.Lock()
					done = append(done, batch...)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if !t.Failed() {
		CheckAppended(t, done, stores...)
	}
	return done
}

// CheckAppended checks stores against done, every envelope that
// successful Appends (concurrent ones, through any of the stores) filled
// in: no two stored messages share a seq of an inbox or room; each inbox's
// and room's seqs have no gap; no key of a sender was stored twice; each
// duplicate reports the first message of its key (ID, Time and seqs); and
// each store reads every inbox that done names as exactly those messages,
// at those seqs, with LatestSeq agreeing. The stores must share their data
// (one store, or several nodes on one database), and done must hold every
// envelope they stored.
func CheckAppended(t *testing.T, done []*courier.Envelope, stores ...courier.Store) {
	t.Helper()
	// Where each stored message says it is, and the first message of each key.
	slots := map[string]map[uint64]string{} // inbox or "#room" -> seq -> ID
	firstOfKey := map[keyPair]*courier.Envelope{}
	claim := func(box string, seq uint64, id string) {
		if slots[box] == nil {
			slots[box] = map[uint64]string{}
		}
		if other, ok := slots[box][seq]; ok {
			t.Errorf("%s and %s both got seq %d in %s", other, id, seq, box)
		}
		slots[box][seq] = id
	}
	for _, e := range done {
		if e.Duplicate {
			continue
		}
		if e.Key != "" {
			if f, ok := firstOfKey[keyPair{e.From, e.Key}]; ok {
				t.Errorf("%s and %s from %s both stored with key %q", f.ID, e.ID, e.From, e.Key)
			}
			firstOfKey[keyPair{e.From, e.Key}] = e
		}
		switch {
		case e.Room != "":
			claim("#"+e.Room, e.ToSeq, e.ID)
		default:
			claim(e.To, e.ToSeq, e.ID)
			if !e.NoSenderCopy && e.From != e.To {
				claim(e.From, e.FromSeq, e.ID)
			}
		}
	}
	for _, e := range done {
		f := firstOfKey[keyPair{e.From, e.Key}]
		if e.Duplicate && (f == nil || f.ID != e.ID || f.ToSeq != e.ToSeq || f.FromSeq != e.FromSeq || !f.Time.Equal(e.Time)) {
			t.Errorf("duplicate of key %q from %s reports %s (%d, %d, %v); first is %+v", e.Key, e.From, e.ID, e.ToSeq, e.FromSeq, e.Time, f)
		}
	}
	for box, seqs := range slots {
		for n := uint64(1); n <= uint64(len(seqs)); n++ {
			if _, ok := seqs[n]; !ok {
				t.Errorf("%s: %d messages but no seq %d: seqs have a gap", box, len(seqs), n)
			}
		}
		if box[0] == '#' {
			continue // rooms are not read through courier.Store
		}
		for i, s := range stores {
			ms := inbox(t, s, box)
			if len(ms) != len(seqs) {
				t.Errorf("store %d: inbox %s holds %d messages, want %d", i, box, len(ms), len(seqs))
			}
			for j, m := range ms {
				if m.Seq != uint64(j+1) || m.ID != seqs[m.Seq] {
					t.Errorf("store %d: inbox %s: message %d is %s at seq %d, want %s at seq %d", i, box, j, m.ID, m.Seq, seqs[uint64(j+1)], j+1)
				}
			}
			if n := latest(t, s, box); n != uint64(len(seqs)) {
				t.Errorf("store %d: LatestSeq(%s) = %d, want %d", i, box, n, len(seqs))
			}
		}
	}
}

// keyPair is an idempotency key with its sender.
type keyPair struct{ from, key string }
