// Package nats is the courier.Broker on core NATS (no JetStream): it joins
// courier nodes that run as separate processes, on one machine or many, so
// that any node can serve any user. Each node subscribes to the topics of
// the users, rooms and connections it holds, and NATS routes a packet only
// to the nodes subscribed to its topic.
//
// New takes the URL of a NATS server: nats://host:4222,
// nats://user:password@host:4222, nats://token@host:4222, tls://host:4222,
// or several servers of one NATS cluster separated by commas
// (nats://a:4222,nats://b:4222); the empty URL is nats://127.0.0.1:4222.
// Credentials files, NKeys and TLS settings go in Options.NATSOptions.
//
// A topic travels as the subject <prefix>.t<base64url of the topic>, so
// that spaces, dots and wildcards in topics mean nothing to NATS, and
// several clusters can share one NATS by using different prefixes
// (Options.Prefix, "courier" by default). A payload is limited by the
// server's max_payload (1 MiB by default); a larger one fails Publish.
// With a NATS cluster of several servers, Subscribe confirms the interest
// with the server the node is connected to; the other servers learn of it
// a moment later.
//
// Packets published while a node is disconnected are buffered by the
// client (up to 8 MiB; beyond that Publish fails) and sent once it is
// back; packets for the node are lost meanwhile, which is why the node is
// told, through Reconnected, to catch up from the store. The same happens
// when the node falls so far behind that its receive buffer overflows.
package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courier-im/courier"
	natsgo "github.com/nats-io/nats.go"
)

// ErrClosed is returned by a Broker used after Close.
var ErrClosed = errors.New("nats: broker closed")

// MaxTopic is the longest topic, in bytes, that Subscribe and Publish take:
// longer subjects would break the server's 4 KiB limit on a protocol line,
// over which it closes the connection. courier's topics are at most 512
// bytes.
const MaxTopic = 2048

// Options configures a Broker. The zero value is usable.
type Options struct {
	// Prefix leads every subject ("courier" when empty): one or more
	// subject tokens separated by dots, without wildcards or spaces. Nodes
	// of one cluster must use the same prefix, and clusters that share a
	// NATS server different ones.
	Prefix string
	// Name names the connection in the server's monitoring ("courier"
	// when empty).
	Name string
	// Logger receives the broker's logs; slog.Default() when nil.
	Logger *slog.Logger
	// ReceiveBuffer is how many received packets wait for the receiving
	// goroutine (65536 when 0). When it is full, the client drops packets
	// as a slow consumer: they are counted in Stats, logged, and the node
	// is told to catch up through Reconnected.
	ReceiveBuffer int
	// Timeout bounds the round trip that confirms a Subscribe (5s when 0).
	Timeout time.Duration
	// ReconnectWait is the first pause between reconnection attempts
	// (100ms when 0); it doubles after each failed attempt up to
	// MaxReconnectWait (5s when 0), with up to a quarter added at random.
	// The broker never stops trying.
	ReconnectWait, MaxReconnectWait time.Duration
	// PingInterval is how often the client pings the server (20s when 0);
	// two unanswered pings count as a lost connection.
	PingInterval time.Duration
	// NATSOptions are applied after the broker's own options, for TLS,
	// credentials and the like. Options that set the reconnect,
	// disconnect or error handlers would replace the broker's and must not
	// be used.
	NATSOptions []natsgo.Option
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "courier"
	}
	if o.Name == "" {
		o.Name = "courier"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReceiveBuffer <= 0 {
		o.ReceiveBuffer = 1 << 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 100 * time.Millisecond
	}
	if o.MaxReconnectWait <= 0 {
		o.MaxReconnectWait = 5 * time.Second
	}
	if o.MaxReconnectWait < o.ReconnectWait {
		o.MaxReconnectWait = o.ReconnectWait
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 20 * time.Second
	}
	return o
}

// A Broker is one node's connection to NATS. It implements courier.Broker.
//
// Every subscription delivers into one channel, read by one goroutine that
// calls the Receiver, however many topics the node holds (nats.go's
// callback subscriptions would run a goroutine each).
type Broker struct {
	nc   *natsgo.Conn
	opts Options
	log  *slog.Logger
	base string // subject prefix and topic marker

	msgs    chan *natsgo.Msg // every subscription delivers here
	catchUp chan struct{}    // a reconnect or a drop to report; capacity 1
	done    chan struct{}    // closed by Close
	exited  chan struct{}    // closed when the receiving goroutine ends

	mu      sync.Mutex
	subs    map[string]*natsgo.Subscription // by topic
	dropped uint64                          // by subscriptions since ended
	r       courier.Receiver
	started bool
	closed  bool

	confirm confirmer

	received, slow, reconnects atomic.Uint64
}

var _ courier.Broker = (*Broker)(nil)

// New connects to the NATS server at url (see the package doc for its
// forms). It fails if the server cannot be reached; once connected, the
// broker reconnects by itself, forever.
func New(url string, opts Options) (*Broker, error) {
	opts = opts.withDefaults()
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	b := &Broker{
		opts:    opts,
		log:     opts.Logger,
		base:    opts.Prefix + topicMarker,
		msgs:    make(chan *natsgo.Msg, opts.ReceiveBuffer),
		catchUp: make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		subs:    make(map[string]*natsgo.Subscription),
	}
	nopts := []natsgo.Option{
		natsgo.Name(opts.Name),
		natsgo.MaxReconnects(-1),
		natsgo.CustomReconnectDelay(b.reconnectDelay),
		natsgo.PingInterval(opts.PingInterval),
		natsgo.ReconnectHandler(b.onReconnect),
		natsgo.DisconnectErrHandler(b.onDisconnect),
		natsgo.ErrorHandler(b.onError),
		natsgo.NoCallbacksAfterClientClose(),
	}
	nc, err := natsgo.Connect(url, append(nopts, opts.NATSOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect to %s: %w", redact(url), err)
	}
	b.nc = nc
	b.confirm = confirmer{nc: nc, timeout: opts.Timeout}
	b.log.Debug("nats: connected", "server", nc.ConnectedUrlRedacted(), "prefix", opts.Prefix)
	return b, nil
}

// redact drops the credentials from a list of server URLs.
func redact(servers string) string {
	parts := strings.Split(servers, ",")
	for i, s := range parts {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// Start begins passing received packets to r, on the broker's receiving
// goroutine, which also calls r.Reconnected.
func (b *Broker) Start(r courier.Receiver) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if b.started {
		return errors.New("nats: broker started twice")
	}
	b.started, b.r = true, r
	go b.run()
	return nil
}

// run is the receiving goroutine; it ends with Close.
func (b *Broker) run() {
	defer close(b.exited)
	for {
		select {
		case m := <-b.msgs:
			topic, err := topicOf(b.base, m.Subject)
			if err != nil {
				b.log.Warn("nats: message on a subject that carries no topic", "err", err)
				continue
			}
			b.received.Add(1)
			b.r.Receive(topic, m.Data)
		case <-b.catchUp:
			b.r.Reconnected()
		case <-b.done:
			return
		}
	}
}

// Subscribe adds interest in topic and confirms it with a round trip to the
// server (concurrent calls share one), so that a packet published after it
// returns, by any node, reaches this one. While the connection is down it
// returns an error at once; the interest stays registered all the same,
// and is restored, like every subscription, before Reconnected is called.
func (b *Broker) Subscribe(topic string) error {
	if len(topic) > MaxTopic {
		return fmt.Errorf("nats: subscribe: topic of %d bytes, more than %d", len(topic), MaxTopic)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if _, ok := b.subs[topic]; !ok {
		sub, err := b.nc.ChanSubscribe(subject(b.base, topic), b.msgs)
		if err != nil {
			b.mu.Unlock()
			return fmt.Errorf("nats: subscribe %q: %w", topic, err)
		}
		b.subs[topic] = sub
	}
	b.mu.Unlock()
	if !b.nc.IsConnected() {
		return fmt.Errorf("nats: subscribe %q: %w; it is restored on reconnection", topic, natsgo.ErrDisconnected)
	}
	if err := b.confirm.wait(); err != nil {
		return fmt.Errorf("nats: subscribe %q: confirming with the server: %w", topic, err)
	}
	return nil
}

// Unsubscribe removes interest in topic; it does not wait for the server.
func (b *Broker) Unsubscribe(topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub := b.subs[topic]
	if sub == nil || b.closed {
		return nil
	}
	delete(b.subs, topic)
	if n, err := sub.Dropped(); err == nil {
		b.dropped += uint64(n)
	}
	if err := sub.Unsubscribe(); err != nil {
		return fmt.Errorf("nats: unsubscribe %q: %w", topic, err)
	}
	return nil
}

// Publish sends payload on topic. The client copies it into its write
// buffer, which it flushes on its own goroutine: Publish does not wait for
// the network. It fails for a payload over the server's max_payload.
func (b *Broker) Publish(topic string, payload []byte) error {
	if len(topic) > MaxTopic {
		return fmt.Errorf("nats: publish: topic of %d bytes, more than %d", len(topic), MaxTopic)
	}
	if err := b.nc.Publish(subject(b.base, topic), payload); err != nil {
		if errors.Is(err, natsgo.ErrConnectionClosed) {
			return ErrClosed
		}
		return fmt.Errorf("nats: publish %q (%d bytes): %w", topic, len(payload), err)
	}
	return nil
}

// Close closes the connection, after writing out what Publish buffered,
// and waits for the receiving goroutine: no Receiver call follows it. It
// does not drain subscriptions. Closing again does nothing.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started := b.started
	b.mu.Unlock()
	b.nc.Close()
	close(b.done)
	if started {
		<-b.exited
	}
	return nil
}

// Stats are a broker's counters since New.
type Stats struct {
	// Subscriptions is how many topics the node is subscribed to.
	Subscriptions int
	// Received counts the packets passed to the Receiver.
	Received uint64
	// SlowConsumer counts the times the client found the receive buffer
	// full, and Dropped the packets it dropped then.
	SlowConsumer, Dropped uint64
	// Reconnects counts the connections restored after a loss.
	Reconnects uint64
}

// Stats returns the broker's counters. It walks every subscription, so it
// is meant for a metrics scrape, not for every packet.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{
		Subscriptions: len(b.subs),
		Received:      b.received.Load(),
		SlowConsumer:  b.slow.Load(),
		Dropped:       b.dropped,
		Reconnects:    b.reconnects.Load(),
	}
	for _, sub := range b.subs {
		if n, err := sub.Dropped(); err == nil {
			s.Dropped += uint64(n)
		}
	}
	return s
}

// reconnectDelay is the pause before the attempt-th round of reconnection.
func (b *Broker) reconnectDelay(attempt int) time.Duration {
	d := b.opts.ReconnectWait
	for i := 1; i < attempt && d < b.opts.MaxReconnectWait; i++ {
		d *= 2
	}
	d = min(d, b.opts.MaxReconnectWait)
	return d + rand.N(d/4+1)
}

// signalCatchUp asks the receiving goroutine to call Reconnected.
func (b *Broker) signalCatchUp() {
	select {
	case b.catchUp <- struct{}{}:
	default: // one is pending already
	}
}

// onReconnect runs on the client's callback goroutine once the client has
// resent every subscription. A round trip makes sure the server has them
// before the node is told to catch up.
func (b *Broker) onReconnect(nc *natsgo.Conn) {
	b.reconnects.Add(1)
	if err := nc.FlushTimeout(b.opts.Timeout); err != nil {
		if !nc.IsConnected() {
			b.log.Warn("nats: reconnected, then lost the connection again", "err", err)
			return // the next reconnection reports
		}
		b.log.Warn("nats: reconnected, but the server did not confirm the subscriptions in time", "err", err)
	}
	b.log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted())
	b.signalCatchUp()
}

func (b *Broker) onDisconnect(nc *natsgo.Conn, err error) {
	b.log.Warn("nats: disconnected; reconnecting", "err", err)
}

// onError hears the client's asynchronous errors; a slow consumer means
// packets were dropped, so the node must catch up as after a reconnection.
func (b *Broker) onError(nc *natsgo.Conn, sub *natsgo.Subscription, err error) {
	if errors.Is(err, natsgo.ErrSlowConsumer) {
		b.slow.Add(1)
		topic := ""
		if sub != nil {
			topic, _ = topicOf(b.base, sub.Subject)
		}
		b.log.Warn("nats: receive buffer full, packets dropped; the node will catch up",
			"topic", topic, "buffer", b.opts.ReceiveBuffer)
		b.signalCatchUp()
		return
	}
	b.log.Error("nats: asynchronous error", "err", err)
}

// A confirmer runs one server round trip (a flush: PING and its PONG) for
// every group of Subscribe calls waiting at the same time: each caller
// has written its SUB before it waits, so a PING written after that
// confirms all of them.
type confirmer struct {
	nc      *natsgo.Conn
	timeout time.Duration

	mu      sync.Mutex
	running bool         // a round-trip goroutine is running
	waiting []chan error // callers for the next round trip
}

// wait returns once a round trip that started after the call has ended.
func (c *confirmer) wait() error {
	ch := make(chan error, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, ch)
	if !c.running {
		c.running = true
		go c.run()
	}
	c.mu.Unlock()
	return <-ch
}

func (c *confirmer) run() {
	c.mu.Lock()
	for len(c.waiting) > 0 {
		group := c.waiting
		c.waiting = nil
		c.mu.Unlock()
		err := c.nc.FlushTimeout(c.timeout)
		for _, ch := range group {
			ch <- err
		}
		c.mu.Lock()
	}
	c.running = false
	c.mu.Unlock()
}
