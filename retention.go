package courier

import (
	"context"
	"time"
)

// expirer deletes messages older than the retention period, on a schedule
// a tenth of that period (between a second and a minute). It is owned by
// the hub and ends with it.
func (h *Hub) expirer() {
	defer h.commitWG.Done()
	every := min(max(h.retention/10, time.Second), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		h.expire()
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
	}
}

func (h *Hub) expire() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := h.store.Expire(ctx, Now().Add(-h.retention))
	switch {
	case err != nil:
		h.log.Warn("expire old messages", "err", err)
	case n > 0:
		h.log.Info("expired old messages", "messages", n, "retention", h.retention)
	}
}

// skipExpired moves a replay starting after seq past what retention deleted,
// and tells the connection which seqs are gone. c.mu is not held.
func (c *Conn) skipExpired(ctx context.Context, after uint64) (uint64, error) {
	if c.hub.retention <= 0 {
		return after, nil
	}
	horizon, err := c.hub.store.Horizon(ctx, c.identity.User)
	if err != nil {
		return 0, err
	}
	if after+1 >= horizon {
		return after, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seq == after {
		c.link.Deliver(&Delivery{Notice: &Notice{Kind: NoticeExpired, First: after + 1, Last: horizon - 1}})
		c.seq = horizon - 1
	}
	return c.seq, nil
}
