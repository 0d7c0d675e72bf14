package redis

import (
	"fmt"
	"sync"
)

// maxPipeline caps the PUBLISH commands of one pipeline, so that one round
// trip's replies stay small and a failure drops a bounded number.
const maxPipeline = 1024

// An outPacket is a packet waiting to be published.
type outPacket struct {
	channel string
	payload []byte // a copy: Publish's caller may reuse its buffer
}

// A publishQueue holds the packets Publish accepted until the publishing
// goroutine sends them.
type publishQueue struct {
	mu       sync.Mutex
	notEmpty sync.Cond
	notFull  sync.Cond
	packets  []outPacket
	bytes    int // of the packets queued
	limit    int // bytes over which Publish waits
	closed   bool
}

func (q *publishQueue) init(limit int) {
	q.limit = limit
	q.notEmpty.L = &q.mu
	q.notFull.L = &q.mu
}

// put queues p, waiting while the queue is over its limit; it returns false
// once the queue is closed.
func (q *publishQueue) put(p outPacket) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.bytes >= q.limit && !q.closed {
		q.notFull.Wait()
	}
	if q.closed {
		return false
	}
	q.packets = append(q.packets, p)
	q.bytes += len(p.channel) + len(p.payload)
	if len(q.packets) == 1 {
		q.notEmpty.Signal()
	}
	return true
}

// take waits for packets and returns all of them, in the order queued,
// swapping in spare (emptied) to fill next; it returns nil once the queue
// is closed and empty.
func (q *publishQueue) take(spare []outPacket) []outPacket {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.packets) == 0 && !q.closed {
		q.notEmpty.Wait()
	}
	if len(q.packets) == 0 {
		return nil
	}
	packets := q.packets
	q.packets, q.bytes = spare[:0], 0
	q.notFull.Broadcast()
	return packets
}

// close refuses new packets and lets take return what is left.
func (q *publishQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.notEmpty.Broadcast()
	q.notFull.Broadcast()
}

// Publish queues a copy of payload for topic and returns; the publishing
// goroutine sends it in the next pipeline. Publish waits only while more
// than Options.MaxPending bytes are queued.
func (b *Broker) Publish(topic string, payload []byte) error {
	p := outPacket{channel: b.prefix + topic, payload: append(make([]byte, 0, len(payload)), payload...)}
	if !b.pub.put(p) {
		return ErrClosed
	}
	return nil
}

// publisher is the goroutine that sends the queued packets, as many as
// have gathered in a pipeline at a time, until Close.
func (b *Broker) publisher() {
	var spare []outPacket
	failing := false
	for {
		packets := b.pub.take(spare)
		if packets == nil {
			return
		}
		for start := 0; start < len(packets); start += maxPipeline {
			end := min(start+maxPipeline, len(packets))
			if b.pubCtx.Err() != nil { // Close gave up waiting
				b.publishFailed.Add(uint64(len(packets) - start))
				break
			}
			err := b.send(packets[start:end])
			switch {
			case err != nil && !failing:
				failing = true
				b.log.Warn("redis: publishing failed; packets are dropped until it works again", "err", err)
			case err == nil && failing:
				failing = false
				b.log.Info("redis: publishing works again", "failed", b.publishFailed.Load())
			}
		}
		clear(packets)
		spare = packets
	}
}

// send publishes packets in one pipeline. If it fails, the packets are
// counted as failed and dropped: retrying could deliver some twice and
// out of order, and a node that missed packets catches up from the store.
func (b *Broker) send(packets []outPacket) error {
	pipe := b.client.Pipeline()
	for _, p := range packets {
		pipe.Publish(b.pubCtx, p.channel, p.payload)
	}
	if _, err := pipe.Exec(b.pubCtx); err != nil {
		b.publishFailed.Add(uint64(len(packets)))
		return fmt.Errorf("redis: publishing %d packets: %w", len(packets), err)
	}
	b.published.Add(uint64(len(packets)))
	return nil
}
