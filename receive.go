package courier

import (
	"strings"
	"time"
)

// Receive implements Receiver: it hands what other nodes publish to the
// local connections it is for.
func (cl *cluster) Receive(topic string, payload []byte) {
	var p packet
	if err := p.decode(payload); err != nil {
		cl.h.log.Warn("broker packet dropped", "topic", topic, "err", err, "bytes", len(payload))
		return
	}
	if p.origin == cl.node {
		// Our own, echoed: delivered locally already. A heartbeat that
		// comes back proves everything published before it got through.
		if p.kind == pktHeartbeat {
			cl.confirm(int64(p.req))
		}
		return
	}
	select {
	case <-cl.stop:
		return
	default:
	}
	switch p.kind {
	case pktHeartbeat, pktHello:
		cl.mu.Lock()
		_, known := cl.members[p.origin]
		cl.members[p.origin] = time.Now()
		cl.mu.Unlock()
		if !known {
			cl.h.log.Info("node joined", "node", p.origin)
		}
		if p.kind == pktHello {
			// Answer at once, so that the new node knows the cluster
			// without waiting for the next round of heartbeats.
			cl.publish(nodeTopic(p.origin), &packet{kind: pktHeartbeat})
		}
	case pktBye:
		cl.mu.Lock()
		delete(cl.members, p.origin)
		cl.mu.Unlock()
		cl.h.log.Info("node left", "node", p.origin)
		cl.h.nodeGone(p.origin)
	case pktNotice:
		if strings.HasPrefix(topic, "u:") {
			d := &Delivery{Notice: &p.notice}
			cl.h.mu.RLock()
			conns := cl.h.users[topic[2:]]
			cl.h.mu.RUnlock()
			for _, c := range conns {
				c.live(d)
			}
		}
	case pktPresence:
		if len(p.counts) == 1 {
			cl.h.remotePresence(p.origin, p.user, p.counts[0], p.notice.LastSeen)
		}
	case pktCount:
		cl.answered(p.req, &p)
	case pktSync:
		cl.h.mu.RLock()
		conns := cl.h.users[p.user]
		cl.h.mu.RUnlock()
		for _, c := range conns {
			c.behind(p.msg.Seq)
		}
	case pktQuery:
		var counts []int
		if p.room != "" {
			counts = []int{cl.h.members(p.room)}
		} else {
			counts = make([]int, len(p.users))
			for i, u := range p.users {
				counts[i] = cl.h.Connections(u)
			}
		}
		cl.answer(p.origin, p.req, counts, false)
	case pktDisconnect:
		n := cl.h.disconnectLocal(p.user, p.code, p.reason)
		cl.answer(p.origin, p.req, []int{n}, n > 0)
	case pktInbox, pktRoom, pktVolatile:
		cl.received.Add(1)
		n, found := cl.deliver(topic, &p)
		cl.delivered.Add(uint64(n))
		if n == 0 {
			cl.unrouted.Add(1)
		}
		cl.h.metrics.BrokerReceived(n)
		cl.answer(p.origin, p.req, []int{n}, found)
	}
}

// deliver hands a message from another node to the local connections named
// by topic. found reports, for a connection target, whether it is here.
func (cl *cluster) deliver(topic string, p *packet) (n int, found bool) {
	h := cl.h
	d := &Delivery{Message: p.msg, Durable: p.kind != pktVolatile}
	switch {
	case strings.HasPrefix(topic, "u:"):
		h.mu.RLock()
		conns := h.users[topic[2:]]
		h.mu.RUnlock()
		for _, c := range conns {
			if d.Durable {
				c.offer(d, nil)
			} else {
				c.live(d)
			}
		}
		n = len(conns)
	case strings.HasPrefix(topic, "r:"):
		h.mu.RLock()
		conns := h.rooms[topic[2:]]
		h.mu.RUnlock()
		for _, c := range conns {
			c.link.Deliver(d)
		}
		n = len(conns)
	case topic == nodeTopic(cl.node):
		id, ok := ConnTarget(p.msg.To)
		if !ok {
			return 0, false
		}
		if c := h.Conn(id); c != nil {
			c.live(d)
			n, found = 1, true
		}
	}
	h.metrics.MessagesOut(n)
	return n, found || n > 0
}

// Reconnected implements Receiver: after a broker outage the node announces
// itself again and has its connections read what they missed from the store.
func (cl *cluster) Reconnected() {
	cl.reconnects.Add(1)
	cl.h.log.Info("broker connection restored; catching up from the store")
	cl.publish(allTopic, &packet{kind: pktHello})
	cl.resync()
	select {
	case cl.catchUp <- struct{}{}:
	default:
	}
}

// nodeOf returns the node id a connection id starts with.
func nodeOf(connID string) string {
	if len(connID) < nodeIDLen {
		return ""
	}
	return connID[:nodeIDLen]
}
