// Package webhook tells an application's backend about messages stored for
// users who are offline, so that it can reach them another way (a push
// notification, an email).
//
// # What is sent
//
// For each notification a Notifier POSTs, with Content-Type
// application/json, the body
//
//	{"type":"offline_message","user":"bob","message":MESSAGE}
//
// where user is the recipient and MESSAGE is the message frame exactly as
// the recipient's clients receive it over WebSocket (see
// protocol.AppendMessage): {"type":"message","msg":...,"from":...,"to":...,
// "event":...,"data":...,"ts":...,"seq":N}, with seq counted in the
// recipient's inbox and ts in RFC 3339, UTC, with three fractional digits.
//
// # Signature
//
// Every request carries the header
//
//	X-Courier-Signature: sha256=<hex of HMAC-SHA256(secret, body)>
//
// computed over the exact bytes of the body. A receiver recomputes it over the
// body it read and compares in constant time; Verify does both (see its
// example for a receiver's http.Handler). The msg id in the body names the
// message uniquely: a receiver that may see a notification twice (a retry
// after a response that was lost) can drop repeats by it.
//
// # Retries
//
// An attempt succeeds when the endpoint answers with a 2xx status. A network
// error, a timeout (Config.Timeout, default 10 s, for the whole exchange), a
// 408, a 429 or any status other than 2xx and 4xx is retried with exponential
// backoff: the first retry after at most Config.FirstRetry (default 500 ms),
// each next wait doubling, up to Config.MaxBackoff (default 30 s); each wait is
// jittered down by up to a quarter, so that many notifications failing
// together do not all come back together. After Config.MaxAttempts attempts
// (default 8, about a minute of retrying with the defaults) the notification
// is given up. A Retry-After header on a 429 or 503 response (seconds or an
// HTTP date) lengthens the wait to what it asks, within MaxBackoff. Any other
// 4xx status (400, 401, 403, 404, 410, ...) is a permanent failure: the
// endpoint has refused this request, and sending the same bytes again would
// not change its mind, so the notification is given up at once (counted in
// Stats.Rejected). Redirects are not followed (with the default client) and
// are retried like 5xx.
//
// Notifications are independent: there is no ordering between them, and one
// being retried does not hold back the others.
//
// # Queue and concurrency
//
// Notify never blocks: it encodes the body and hands it over. At most
// Config.Queue notifications (default 10,000) are pending at once, counting
// those waiting to be sent, being sent and waiting for a retry; when that many
// are, Notify drops the new one, counts it in Stats.Dropped and returns false.
// A fixed number of sender goroutines (Config.Workers, default 4) make the
// requests, so a slow or hung endpoint costs at most that many goroutines and
// connections; a notification waiting for a retry is held by a single
// scheduling goroutine on a timer, never by a sender, so other notifications
// keep flowing meanwhile.
//
// Close stops taking notifications, lets the pending ones finish (waiting
// retries keep their schedule) until its context ends, then cancels what is
// in flight and stops every goroutine of the Notifier.
package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/protocol"
)

// Defaults of the Config fields left zero.
const (
	DefaultQueue       = 10000
	DefaultWorkers     = 4
	DefaultMaxAttempts = 8
	DefaultFirstRetry  = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultTimeout     = 10 * time.Second
)

// Config configures a Notifier. URL and Secret are required; every other
// field left zero (or negative) takes its default.
type Config struct {
	// URL is the endpoint notifications are POSTed to: an http or https URL.
	URL string
	// Secret is the key of the HMAC-SHA256 signature of every body.
	Secret string
	// Queue bounds the notifications pending at once (waiting, in flight or
	// waiting for a retry); Notify drops new ones beyond it. Default
	// DefaultQueue.
	Queue int
	// Workers is the number of goroutines making requests, and so the
	// most requests in flight at once. Default DefaultWorkers.
	Workers int
	// MaxAttempts bounds the attempts of one notification, the first
	// included; 1 means no retry. Default DefaultMaxAttempts.
	MaxAttempts int
	// FirstRetry is the longest wait before the first retry; each next
	// wait doubles. Default DefaultFirstRetry.
	FirstRetry time.Duration
	// MaxBackoff caps every wait between attempts, including one asked for
	// by Retry-After. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Timeout bounds one attempt: connecting, sending, and reading the
	// response. Default DefaultTimeout.
	Timeout time.Duration
	// Client makes the requests. When nil the Notifier uses a client of
	// its own that does not follow redirects, keeps up to Workers idle
	// connections, honours the proxy environment variables, and is closed
	// by Close.
	Client *http.Client
	// Logger receives the Notifier's logs: a warning when the endpoint
	// starts failing, a line when it recovers, each failed attempt at
	// debug level. slog.Default() when nil.
	Logger *slog.Logger
}

// Stats counts what a Notifier has done since it was made. Every field but
// Pending only grows.
type Stats struct {
	// Pending is the number of notifications accepted and not yet
	// finished: waiting, in flight or waiting for a retry.
	Pending int
	// Delivered counts notifications the endpoint accepted (2xx).
	Delivered uint64
	// Retries counts failed attempts after which another was scheduled.
	Retries uint64
	// Failed counts notifications given up after MaxAttempts attempts, or
	// left unsent when the context of Close ended.
	Failed uint64
	// Rejected counts notifications given up at once because the endpoint
	// answered with a permanent 4xx status.
	Rejected uint64
	// Dropped counts notifications Notify refused: the queue was full, or
	// the Notifier was closed.
	Dropped uint64
}

// A Notifier sends offline-message notifications to one endpoint in the
// background. Its methods are safe for concurrent use. Make one with New;
// Close it to stop its goroutines.
type Notifier struct {
	url         string
	secret      string
	client      *http.Client
	ownClient   bool
	log         *slog.Logger
	workers     int
	maxAttempts int
	firstRetry  time.Duration
	maxBackoff  time.Duration
	timeout     time.Duration

	// work holds notifications ready to be sent. Its capacity is the queue
	// bound, and every notification in it, in later or in a sender's hands
	// counts in stats.Pending, which never exceeds that bound: so a send
	// on work, made with mu held, never blocks.
	work chan *job
	wake chan struct{} // cap 1: later has a new earliest due time

	mu     sync.Mutex
	later  laterHeap // notifications waiting for a retry, earliest due first
	stats  Stats
	closed bool          // Close was called: Notify refuses
	idle   chan struct{} // closed once closed and nothing is pending
	health health        // whether the endpoint is failing, for the logs

	ctx      context.Context // cancelled to stop: aborts requests in flight
	cancel   context.CancelFunc
	quit     chan struct{} // closed to stop the goroutines
	stopOnce sync.Once
	wg       sync.WaitGroup // the senders and the scheduler
}

// New checks cfg and starts a Notifier: its sender goroutines and its retry
// scheduler.
func New(cfg Config) (*Notifier, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("webhook: bad URL: " + err.Error())
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: URL must be http:// or https:// with a host, not " + strconv.Quote(cfg.URL))
	}
	if cfg.Secret == "" {
		return nil, errors.New("webhook: empty secret")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Queue, DefaultQueue)
	def(&cfg.Workers, DefaultWorkers)
	def(&cfg.MaxAttempts, DefaultMaxAttempts)
	defDur(&cfg.FirstRetry, DefaultFirstRetry)
	defDur(&cfg.MaxBackoff, DefaultMaxBackoff)
	defDur(&cfg.Timeout, DefaultTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Notifier{
		url:         u.String(),
		secret:      cfg.Secret,
		client:      cfg.Client,
		log:         cfg.Logger.With("webhook", u.Scheme+"://"+u.Host+u.Path), // no credentials or query
		workers:     cfg.Workers,
		maxAttempts: cfg.MaxAttempts,
		firstRetry:  cfg.FirstRetry,
		maxBackoff:  cfg.MaxBackoff,
		timeout:     cfg.Timeout,
		work:        make(chan *job, cfg.Queue),
		wake:        make(chan struct{}, 1),
		idle:        make(chan struct{}),
		quit:        make(chan struct{}),
	}
	if n.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Workers
		n.client = &http.Client{
			Transport:     t,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		n.ownClient = true
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(cfg.Workers + 1)
	for range cfg.Workers {
		go n.sender()
	}
	go n.scheduler()
	return n, nil
}

// A job is one notification.
type job struct {
	body     []byte
	sig      string // made by the first attempt
	user     string // for the logs
	msg      string
	attempts int       // made so far
	due      time.Time // of the next attempt, while in later
}

// Notify queues a notification that m, as it stands in user's inbox (m.Seq is
// user's seq), was stored while user had no live connection. It never blocks:
// it returns false, and counts the notification as dropped, when the queue is
// full or the Notifier is closed. m is encoded before Notify returns, so the
// caller may reuse it.
func (n *Notifier) Notify(user string, m courier.Message) bool {
	n.mu.Lock()
	if n.closed || n.stats.Pending >= cap(n.work) {
		n.stats.Dropped++
		n.mu.Unlock()
		return false
	}
	n.stats.Pending++ // reserve a place before encoding outside the lock
	n.mu.Unlock()

	b := make([]byte, 0, 160+len(m.Data)+len(m.ID)+len(m.From)+len(m.To)+len(m.Event)+2*len(user))
	b = append(b, `{"type":"offline_message","user":`...)
	b = protocol.AppendString(b, user)
	b = append(b, `,"message":`...)
	b = protocol.AppendMessage(b, &m)
	b = append(b, '}')
	j := &job{body: b, user: user, msg: m.ID}

	n.mu.Lock()
	n.work <- j // never blocks: see the work field
	n.mu.Unlock()
	return true
}

// Stats returns the Notifier's counts. It is cheap enough to be read on every
// scrape of a metrics endpoint.
func (n *Notifier) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close stops taking notifications (Notify returns false from then on) and
// waits for the pending ones to be delivered or given up. When ctx ends
// first, it cancels the requests in flight and abandons what is left,
// counting it in Stats.Failed, and returns ctx.Err(). Either way every
// goroutine of the Notifier has exited when Close returns, and the idle
// connections of its own client are closed. Close may be called more than
// once.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		n.checkIdle()
	}
	n.mu.Unlock()

	var err error
	select {
	case <-n.idle:
	case <-ctx.Done():
		select {
		case <-n.idle: // both were ready: drained is what counts
		default:
			err = ctx.Err()
		}
	}
	n.stopOnce.Do(func() {
		n.cancel()
		close(n.quit)
		n.wg.Wait()
		// Nothing runs now but callers of Notify and Stats, and Notify
		// refuses: count what is left as failed.
		n.mu.Lock()
		n.stats.Failed += uint64(n.stats.Pending)
		n.stats.Pending = 0
		n.later = nil
		for len(n.work) > 0 {
			<-n.work
		}
		n.checkIdle()
		n.mu.Unlock()
		if n.ownClient {
			n.client.CloseIdleConnections()
		}
	})
	return err
}

// checkIdle closes idle when the Notifier is closed and nothing is pending.
// n.mu is held.
func (n *Notifier) checkIdle() {
	if n.closed && n.stats.Pending == 0 {
		select {
		case <-n.idle:
		default:
			close(n.idle)
		}
	}
}
