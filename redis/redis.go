// Package redis is the courier.Broker on Redis Pub/Sub: it joins courier
// nodes that run as separate processes, on one machine or many, through a
// Redis server most deployments already have, so that any node can serve
// any user. Each node subscribes to the channels of the users, rooms and
// connections it holds, and Redis routes a packet only to the nodes
// subscribed to its channel.
//
// New takes a Redis URL: redis://host:6379, redis://user:password@host:6379/0,
// rediss://host:6380 for TLS, or unix:///run/redis.sock. Pub/Sub ignores
// the database number: channels are global to the server, which is why
// every channel is the topic behind Options.Prefix ("courier:" by
// default); clusters that share a server use different prefixes (and not
// prefixes of one another's, as "a:" and "a:b:").
//
// A node holds one Pub/Sub connection for all its topics, read by one
// goroutine while another calls the Receiver, and publishes through
// pipelines: a goroutine drains the queue
// that Publish fills, so that a busy node sends many packets per round
// trip and an idle one sends each at once. Redis closes a subscriber that
// falls too far behind (client-output-buffer-limit pubsub, 32 MiB by
// default); the broker reconnects, as after any loss of the connection,
// and the node catches up from the store when Reconnected is called.
// Packets for a node are lost while it is disconnected, and so are those it
// publishes then.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courier-im/courier"
	goredis "github.com/redis/go-redis/v9"
)

// ErrClosed is returned by a Broker used after Close.
var ErrClosed = errors.New("redis: broker closed")

// ErrDisconnected is wrapped by the error of a Subscribe made while the
// Pub/Sub connection is down.
var ErrDisconnected = errors.New("redis: disconnected")

// Options configures a Broker. The zero value is usable.
type Options struct {
	// Prefix leads every channel name ("courier:" when empty). Nodes of
	// one cluster must use the same prefix, and clusters that share a
	// Redis server different ones.
	Prefix string
	// Logger receives the broker's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Timeout bounds connecting in New, the confirmation of a Subscribe,
	// and the sending of queued packets in Close (5s when 0).
	Timeout time.Duration
	// MaxPending is how many bytes of packets may wait to be published
	// before Publish blocks (64 MiB when 0).
	MaxPending int
	// ReceiveBuffer is how many bytes of received packets may wait for
	// the Receiver (64 MiB when 0). Over it, packets are dropped: they are
	// counted in Stats, logged, and the node is told to catch up through
	// Reconnected.
	ReceiveBuffer int
	// HealthInterval is how often an idle Pub/Sub connection is pinged
	// (15s when 0); a connection silent for three intervals is taken as
	// lost and replaced.
	HealthInterval time.Duration
	// ReconnectWait is the pause after a failed reconnection (100ms when
	// 0); it doubles after each failure up to MaxReconnectWait (5s when
	// 0), with up to a quarter added at random. The broker never stops
	// trying.
	ReconnectWait, MaxReconnectWait time.Duration
	// Configure, when set, adjusts the go-redis options parsed from the
	// URL (TLS, pool and timeouts) before the client is made.
	Configure func(*goredis.Options)
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "courier:"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 64 << 20
	}
	if o.ReceiveBuffer <= 0 {
		o.ReceiveBuffer = 64 << 20
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 15 * time.Second
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 100 * time.Millisecond
	}
	if o.MaxReconnectWait < o.ReconnectWait {
		o.MaxReconnectWait = max(5*time.Second, o.ReconnectWait)
	}
	return o
}

// A Broker is one node's link to Redis. It implements courier.Broker.
type Broker struct {
	client *goredis.Client
	ps     *goredis.PubSub
	opts   Options
	log    *slog.Logger
	prefix string

	done   chan struct{}  // closed by Close
	wg     sync.WaitGroup // the reading, dispatching and subscribing goroutines
	pubWG  sync.WaitGroup // the publishing goroutine
	kick   chan struct{}  // wakes the subscribing goroutine; capacity 1
	pubCtx context.Context
	cancel context.CancelFunc // ends pubCtx

	mu        sync.Mutex
	r         courier.Receiver
	started   bool
	closed    bool
	connected bool                       // the Pub/Sub connection is up
	ops       []subOp                    // for the subscribing goroutine
	pongs     map[string][]chan struct{} // confirmations by ping token
	retry     []chan struct{}            // to confirm after a reconnection
	token     uint64                     // last ping token

	pub publishQueue
	in  *inbox

	received, published, publishFailed, reconnects atomic.Uint64
}

var _ courier.Broker = (*Broker)(nil)

// New connects to the Redis server at rawURL (see the package doc for its
// forms) and opens the Pub/Sub connection. It fails if the server cannot
// be reached; once connected, the broker reconnects by itself, forever.
func New(rawURL string, opts Options) (*Broker, error) {
	opts = opts.withDefaults()
	ropts, err := goredis.ParseURL(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("redis: parse URL: %w", err)
	}
	// A retried pipeline could send packets twice and out of order; a
	// failed one is dropped instead (see send).
	ropts.MaxRetries = -1
	if ropts.ClientName == "" {
		ropts.ClientName = "courier"
	}
	if opts.Configure != nil {
		opts.Configure(ropts)
	}
	client := goredis.NewClient(ropts)
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	fail := func(what string, err error) (*Broker, error) {
		_ = client.Close()
		return nil, fmt.Errorf("redis: %s %s: %w", what, ropts.Addr, err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		return fail("connect to", err)
	}
	ps := client.Subscribe(ctx)
	if err := ps.Ping(ctx, pingHello); err != nil {
		_ = ps.Close()
		return fail("open the Pub/Sub connection to", err)
	}
	b := &Broker{
		client:    client,
		ps:        ps,
		opts:      opts,
		log:       opts.Logger,
		prefix:    opts.Prefix,
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		connected: true,
		pongs:     make(map[string][]chan struct{}),
	}
	b.pubCtx, b.cancel = context.WithCancel(context.Background())
	b.pub.init(opts.MaxPending)
	b.in = newInbox(opts.ReceiveBuffer)
	return b, nil
}

// Start begins passing received packets to r, on the broker's dispatching
// goroutine, which also calls r.Reconnected. Another goroutine reads the
// connection, so r may call Subscribe.
func (b *Broker) Start(r courier.Receiver) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return errors.New("redis: broker started twice")
	}
	b.started, b.r = true, r
	b.wg.Add(3)
	go b.receive()
	go b.dispatch()
	go b.subscriber()
	b.pubWG.Go(b.publisher)
	return nil
}

// Close sends what Publish queued (for up to Options.Timeout), closes the
// connections and waits for the broker's goroutines: no Receiver call
// follows it. Closing again does nothing.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.started
	b.mu.Unlock()

	b.pub.close()
	if started {
		flushed := make(chan struct{})
		go func() { b.pubWG.Wait(); close(flushed) }()
		select {
		case <-flushed:
		case <-time.After(b.opts.Timeout):
			b.log.Warn("redis: closing before every queued packet was sent")
		}
	}
	b.cancel()
	b.pubWG.Wait()

	close(b.done)
	err := b.ps.Close()
	b.wg.Wait()
	if cerr := b.client.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// isClosed reports whether Close was called.
func (b *Broker) isClosed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// Stats are a broker's counters since New.
type Stats struct {
	// Received counts the packets passed to the Receiver, and Dropped
	// those dropped because the receive buffer was full.
	Received, Dropped uint64
	// Published counts the packets Redis accepted, and PublishFailed those
	// lost because their pipeline failed (the connection was down).
	Published, PublishFailed uint64
	// Reconnects counts the Pub/Sub connections restored after a loss.
	Reconnects uint64
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Received:      b.received.Load(),
		Dropped:       b.in.droppedCount(),
		Published:     b.published.Load(),
		PublishFailed: b.publishFailed.Load(),
		Reconnects:    b.reconnects.Load(),
	}
}
