package sqlite

// head is what Append keeps in memory of one inbox or room: its integer id
// (users.uid, rooms.rid) and the last seq given out in it.
type head struct {
	id  int64
	seq int64
}

// heads is the writer's memory of the database, so that an Append reads
// nothing back in the common case: the head of each user and room it has
// seen, and the last messages.pk, users.uid and rooms.rid. It is only
// touched under Store.mu.
//
// It is safe because the store's connection is the only one that writes the
// file: Append checks PRAGMA data_version inside each transaction and drops
// everything when another connection (another process, or a second Store on
// the same file) has committed since. A failed transaction forgets the heads
// it touched and the counters (see forget), which are then read again from
// what was committed.
type heads struct {
	max         int   // users and rooms remembered at most; maxHeads
	valid       bool  // counters loaded and dataVersion current
	dataVersion int64 // PRAGMA data_version after our last commit
	lastPK      int64
	lastUID     int64
	lastRID     int64
	users       map[string]*head
	rooms       map[string]*head
	// touched lists the names whose head this transaction loaded, created
	// or advanced, to forget if it fails.
	touchedUsers []string
	touchedRooms []string
}

// maxHeads bounds the users and rooms remembered (each about 100 bytes, so
// some 25 MiB at most); past it, half are forgotten at the next commit and
// read again, one indexed query each, when next needed.
const maxHeads = 1 << 18

func newHeads() *heads {
	return &heads{max: maxHeads, users: make(map[string]*head), rooms: make(map[string]*head)}
}

// reset forgets everything: the next transaction reloads the counters.
func (h *heads) reset() {
	h.valid = false
	clear(h.users)
	clear(h.rooms)
	h.touchedUsers, h.touchedRooms = h.touchedUsers[:0], h.touchedRooms[:0]
}

// begin starts a transaction's bookkeeping.
func (h *heads) begin() {
	h.touchedUsers, h.touchedRooms = h.touchedUsers[:0], h.touchedRooms[:0]
}

// forget undoes a failed transaction: the heads it touched and the counters
// are read again, from what was committed, when next needed.
func (h *heads) forget() {
	for _, n := range h.touchedUsers {
		delete(h.users, n)
	}
	for _, n := range h.touchedRooms {
		delete(h.rooms, n)
	}
	h.touchedUsers, h.touchedRooms = h.touchedUsers[:0], h.touchedRooms[:0]
	h.valid = false
}

// trim keeps each map at h.max entries at most, by forgetting about half
// of them (Go's map iteration order is unspecified, which is random enough
// here). It is called between transactions: what it forgets is committed.
func (h *heads) trim() {
	for _, m := range []map[string]*head{h.users, h.rooms} {
		if len(m) <= h.max {
			continue
		}
		for n := range m {
			if len(m) <= h.max/2 {
				break
			}
			delete(m, n)
		}
	}
}
