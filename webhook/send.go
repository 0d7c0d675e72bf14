package webhook

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sender makes requests until the Notifier stops.
func (n *Notifier) sender() {
	defer n.wg.Done()
	for {
		select {
		case <-n.quit:
			return
		case j := <-n.work:
			if n.ctx.Err() != nil {
				return // stopping: j stays pending, and Close counts it
			}
			n.send(j)
		}
	}
}

// scheduler moves notifications from later to work when their retry is due.
func (n *Notifier) scheduler() {
	defer n.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		n.mu.Lock()
		now := time.Now()
		for len(n.later) > 0 && !n.later[0].due.After(now) {
			n.work <- heap.Pop(&n.later).(*job) // never blocks: see the work field
		}
		next := time.Duration(-1)
		if len(n.later) > 0 {
			next = n.later[0].due.Sub(now)
		}
		n.mu.Unlock()
		if next >= 0 {
			t.Reset(next)
		}
		select {
		case <-n.quit:
			t.Stop()
			return
		case <-n.wake:
		case <-t.C:
		}
		t.Stop() // since Go 1.23 this also discards a value left in t.C
	}
}

// send makes one attempt at j and settles what comes next: done, given up,
// or a retry scheduled.
func (n *Notifier) send(j *job) {
	if j.sig == "" {
		j.sig = Sign(n.secret, j.body)
	}
	j.attempts++
	after, permanent, err := n.post(j)
	if err != nil && n.ctx.Err() != nil {
		return // cancelled by Close: j stays pending, and Close counts it
	}
	if err == nil {
		n.mu.Lock()
		n.stats.Delivered++
		recovered := n.health.ok()
		n.release()
		n.mu.Unlock()
		if recovered > 0 {
			n.log.Info("webhook endpoint recovered", "failed_attempts", recovered)
		}
		return
	}

	// Once j is back in later, another sender may take it: read it no more.
	user, msg, attempt := j.user, j.msg, j.attempts
	var wait time.Duration
	giveUp := permanent || attempt >= n.maxAttempts
	if !giveUp {
		wait = max(n.backoff(attempt), min(after, n.maxBackoff))
		j.due = time.Now().Add(wait)
	}
	n.mu.Lock()
	warn := n.health.failed(time.Now())
	wake := false
	switch {
	case permanent:
		n.stats.Rejected++
		n.release()
	case giveUp:
		n.stats.Failed++
		n.release()
	default:
		n.stats.Retries++
		heap.Push(&n.later, j)
		wake = n.later[0] == j
	}
	n.mu.Unlock()
	if wake {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}

	// Log outside the lock: a slow log handler must not hold up Notify.
	if warn {
		n.log.Warn("webhook endpoint failing (logged once a failing spell, at most once a minute; see the webhook counters)",
			"err", err, "permanent", permanent, "user", user, "msg", msg)
	}
	switch {
	case permanent:
		n.log.Debug("webhook notification rejected", "user", user, "msg", msg, "err", err)
	case giveUp:
		n.log.Debug("webhook notification given up", "user", user, "msg", msg, "attempts", attempt, "err", err)
	default:
		n.log.Debug("webhook attempt failed", "user", user, "msg", msg, "attempt", attempt, "retry_in", wait, "err", err)
	}
}

// release counts a finished notification out of Pending. n.mu is held.
func (n *Notifier) release() {
	n.stats.Pending--
	n.checkIdle()
}

// post makes one attempt at j. It returns a nil error when the endpoint
// accepted the notification; otherwise whether the failure is permanent and
// how long the endpoint asked to be left alone (0 when it did not say).
func (n *Notifier) post(j *job) (after time.Duration, permanent bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(j.body))
	if err != nil {
		return 0, true, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "courier-webhook")
	req.Header.Set(SignatureHeader, j.sig)
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, false, err
	}
	// Read a little of the body so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return 0, false, nil
	}
	err = fmt.Errorf("endpoint answered %s", resp.Status)
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return retryAfter(resp.Header.Get("Retry-After"), time.Now()), false, err
	case code == http.StatusRequestTimeout:
		return 0, false, err
	case code >= 400 && code < 500:
		return 0, true, err
	}
	return 0, false, err
}

// backoff returns the wait after the failed attempt number attempt (from 1):
// FirstRetry doubled attempt-1 times, capped at MaxBackoff, less a random
// part of up to a quarter.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.firstRetry
	for i := 1; i < attempt && d < n.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, n.maxBackoff)
	return d - rand.N(d/4+1)
}

// retryAfter parses a Retry-After header value, delay-seconds or an HTTP
// date, as a wait from now; 0 when v is empty or malformed.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// health follows whether the endpoint is failing, so that the logs say so
// once rather than once per attempt.
type health struct {
	failing  bool
	warned   bool // a warning was logged during this failing spell
	failures int  // failed attempts in this failing spell
	lastWarn time.Time
}

// failed records a failed attempt and reports whether to log a warning: once
// a failing spell, and at most once a minute.
func (h *health) failed(now time.Time) (warn bool) {
	if !h.failing {
		h.failing, h.warned, h.failures = true, false, 0
	}
	h.failures++
	if !h.warned && (h.lastWarn.IsZero() || now.Sub(h.lastWarn) >= time.Minute) {
		h.warned, h.lastWarn = true, now
		return true
	}
	return false
}

// ok records a delivery and returns the failed attempts of the spell it ends
// when that spell was warned of (0 otherwise): the recovery is worth a line.
func (h *health) ok() (recovered int) {
	if h.failing && h.warned {
		recovered = h.failures
	}
	h.failing, h.warned, h.failures = false, false, 0
	return recovered
}

// laterHeap orders notifications waiting for a retry by due time.
type laterHeap []*job

func (h laterHeap) Len() int           { return len(h) }
func (h laterHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h laterHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *laterHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *laterHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}
