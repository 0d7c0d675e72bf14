package courier

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// ids hands out unique, roughly time-ordered ids: 6 bytes of milliseconds,
// 6 random bytes chosen once per process (so nodes never collide), and a
// 4-byte counter. That is cheaper than 10 fresh random bytes per message and
// still unique across nodes and restarts.
type ids struct {
	node [6]byte
	n    atomic.Uint32
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func newIDs() *ids {
	g := &ids{}
	_, _ = rand.Read(g.node[:])
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	g.n.Store(binary.BigEndian.Uint32(seed[:]))
	return g
}

// next returns a 26-character id that sorts by at (milliseconds), then by
// process, then by a per-process counter.
func (g *ids) next(at time.Time) string {
	var b [16]byte
	ms := uint64(at.UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(b[6:12], g.node[:])
	binary.BigEndian.PutUint32(b[12:], g.n.Add(1))
	return idEncoding.EncodeToString(b[:])
}

// randomID returns a 26-character id from 16 random bytes: connection ids
// name a target anyone may send to, so they must not be guessable.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// nodeIDLen is the length of a node id.
const nodeIDLen = 8

// newNodeID returns a random node id: 8 characters from 5 random bytes,
// chosen at each start, so a restarted node is a new node.
func newNodeID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
