package courier

import (
	"encoding/binary"
	"errors"
	"time"
)

// What a packet between nodes carries.
const (
	pktInbox      byte = 1 + iota // a stored message at its seq in the topic user's inbox
	pktRoom                       // a stored room message at its room seq
	pktVolatile                   // a live-only message for a user, a room or one connection
	pktQuery                      // how many connections of a user (or members of a room) a node holds
	pktCount                      // the answer to a query, or to a message that asked for one
	pktHeartbeat                  // a node is alive
	pktHello                      // a node started: everyone announce yourselves
	pktBye                        // a node is leaving
	pktDisconnect                 // close every connection of a user
	pktSync                       // a user's inbox reached seq: connections behind it read the store
	pktPresence                   // a user's connections on the origin node went to or from none
	pktNotice                     // a receipt for a user's connections
)

// packetVersion is the first byte of every packet, so that a node meeting a
// packet from a newer release ignores it instead of misreading it.
const packetVersion = 1

// A packet is what nodes send one another through the broker. The format is
// a version byte, the kind, the origin node and a request id, then the
// fields of the kind; strings and bytes are length-prefixed (uvarint).
type packet struct {
	kind   byte
	origin string // node id of the sender
	req    uint64 // request id the answer names; 0 when none is wanted
	msg    Message
	counts []int    // pktCount: one per user asked about, or one
	found  bool     // pktCount: the connection asked for exists
	users  []string // pktQuery
	user   string   // pktDisconnect, pktSync, pktPresence
	room   string   // pktQuery
	notice Notice   // pktNotice; pktPresence uses Online and LastSeen
	code   int      // pktDisconnect close code
	reason string   // pktDisconnect
}

var errPacket = errors.New("malformed packet")

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (p *packet) append(b []byte) []byte {
	b = append(b, packetVersion, p.kind)
	b = appendStr(b, p.origin)
	b = appendUvarint(b, p.req)
	switch p.kind {
	case pktInbox, pktRoom, pktVolatile:
		m := &p.msg
		b = appendStr(b, m.ID)
		b = appendStr(b, m.From)
		b = appendStr(b, m.To)
		b = appendStr(b, m.Room)
		b = appendStr(b, m.Event)
		b = binary.AppendUvarint(b, uint64(len(m.Data)))
		b = append(b, m.Data...)
		b = binary.AppendVarint(b, m.Time.UnixMilli())
		b = appendUvarint(b, m.Seq)
	case pktQuery:
		b = appendUvarint(b, uint64(len(p.users)))
		for _, u := range p.users {
			b = appendStr(b, u)
		}
		b = appendStr(b, p.room)
	case pktCount:
		b = appendUvarint(b, uint64(len(p.counts)))
		for _, n := range p.counts {
			b = appendUvarint(b, uint64(n))
		}
		if p.found {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case pktDisconnect:
		b = appendStr(b, p.user)
		b = appendUvarint(b, uint64(p.code))
		b = appendStr(b, p.reason)
	case pktSync:
		b = appendStr(b, p.user)
		b = appendUvarint(b, p.msg.Seq)
	case pktPresence:
		b = appendStr(b, p.user)
		b = appendUvarint(b, uint64(len(p.counts)))
		for _, n := range p.counts {
			b = appendUvarint(b, uint64(n))
		}
		b = binary.AppendVarint(b, unixMilli(p.notice.LastSeen))
	case pktNotice:
		n := &p.notice
		b = append(b, byte(n.Kind))
		b = appendStr(b, n.By)
		b = appendStr(b, n.Msg)
	}
	return b
}

// reader decodes a packet; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errPacket
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errPacket
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errPacket
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.bytes()) }

// maxListLen bounds the lists a packet may carry, so a corrupt length cannot
// make the reader allocate without end.
const maxListLen = 1 << 16

func (r *reader) strs() []string {
	n := r.uvarint()
	if n > maxListLen {
		r.err = errPacket
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, r.str())
	}
	return out
}

func (r *reader) ints() []int {
	n := r.uvarint()
	if n > maxListLen {
		r.err = errPacket
		return nil
	}
	out := make([]int, 0, n)
	for range n {
		out = append(out, int(r.uvarint()))
	}
	return out
}

// unixMilli is t in Unix milliseconds, 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (r *reader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errPacket
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

// decode reads a packet from b; strings and data are copied, so b may be
// reused once it returns.
func (p *packet) decode(b []byte) error {
	r := reader{b: b}
	if r.byte1() != packetVersion {
		return errPacket
	}
	p.kind = r.byte1()
	p.origin = r.str()
	p.req = r.uvarint()
	switch p.kind {
	case pktInbox, pktRoom, pktVolatile:
		m := &p.msg
		m.ID = r.str()
		m.From = r.str()
		m.To = r.str()
		m.Room = r.str()
		m.Event = r.str()
		m.Data = append([]byte(nil), r.bytes()...)
		m.Time = time.UnixMilli(r.varint()).UTC()
		m.Seq = r.uvarint()
	case pktQuery:
		p.users = r.strs()
		p.room = r.str()
	case pktCount:
		p.counts = r.ints()
		p.found = r.byte1() == 1
	case pktDisconnect:
		p.user = r.str()
		p.code = int(r.uvarint())
		p.reason = r.str()
	case pktSync:
		p.user = r.str()
		p.msg.Seq = r.uvarint()
	case pktPresence:
		p.user = r.str()
		p.counts = r.ints()
		if ms := r.varint(); ms != 0 {
			p.notice.LastSeen = time.UnixMilli(ms).UTC()
		}
	case pktNotice:
		p.notice.Kind = NoticeKind(r.byte1())
		p.notice.By = r.str()
		p.notice.Msg = r.str()
	case pktHeartbeat, pktHello, pktBye:
	default:
		return errPacket
	}
	return r.err
}
