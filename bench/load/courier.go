package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courier-im/courier/jwt"
)

// Courier drives a courier server, or the nodes of a courier cluster, over
// its WebSocket protocol (docs/protocol.md) in JSON or MessagePack, with
// or without permessage-deflate. Its connections are read by one nbio
// poller set, so an idle connection costs no goroutine; server frames are
// scanned for the few fields a scenario needs (type, id, seq, data)
// without a decoder, and client frames are built with append.
type Courier struct {
	addrs    []string // host:port of each node
	bases    []string // each node's URL as given, for reports
	httpURLs []string // http://host:port of each node
	secret   []byte
	apiKey   string

	// Encoding is the frame encoding: "json" (the default) or "msgpack"
	// (the courier.msgpack subprotocol).
	Encoding string
	// Compress offers permessage-deflate; a server that does not accept it
	// (one started without --compress) fails the dial.
	Compress bool
	// Sources are local addresses to dial from, PerSource connections
	// each in turn (see LoopbackSources); none binds nothing.
	Sources   []net.IP
	PerSource int
	// DialTimeout bounds one connect and handshake (default 30s).
	DialTimeout time.Duration

	poller  *wsPoller
	dials   atomic.Uint64
	nodeRR  atomic.Uint64  // round robin of dials over the nodes
	apiRR   atomic.Uint64  // round robin of API calls over the nodes
	perNode []atomic.Int64 // connections made to each node
	api     *http.Client
}

// Encodings the courier driver speaks.
const (
	EncodingJSON    = "json"
	EncodingMsgpack = "msgpack"
)

// hostPort returns the host:port of a driver's base URL (ws://host:port,
// http://host:port or host:port).
func hostPort(driver, base string) (string, error) {
	if !strings.Contains(base, "://") {
		base = "ws://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws", "http":
	default:
		return "", fmt.Errorf("%s driver: unsupported URL scheme %q (want ws:// or http://)", driver, u.Scheme)
	}
	if u.Port() == "" {
		return "", fmt.Errorf("%s driver: URL %q has no port", driver, base)
	}
	return u.Host, nil
}

// SplitURLs splits a comma-separated list of URLs, dropping blanks.
func SplitURLs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// NewCourier returns a driver for the courier server at base (ws://host:port
// or http://host:port), minting tokens with secret; apiKey is needed only
// for APISend. base may list several nodes of one cluster, separated by
// commas: connections then go to them in turn, so that users (and the
// messages between them) are spread over the nodes. Close stops its
// poller.
func NewCourier(base string, secret []byte, apiKey string) (*Courier, error) {
	bases := SplitURLs(base)
	if len(bases) == 0 {
		return nil, fmt.Errorf("courier driver: no URL in %q", base)
	}
	d := &Courier{bases: bases, secret: secret, apiKey: apiKey, perNode: make([]atomic.Int64, len(bases))}
	for _, b := range bases {
		host, err := hostPort("courier", b)
		if err != nil {
			return nil, err
		}
		d.addrs = append(d.addrs, host)
		d.httpURLs = append(d.httpURLs, "http://"+host)
	}
	p, err := newWSPoller()
	if err != nil {
		return nil, err
	}
	d.poller = p
	d.api = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}, Timeout: 30 * time.Second}
	return d, nil
}

// LoopbackSources returns n loopback addresses 127.0.0.10, 127.0.0.11, …,
// to dial from when one address's ephemeral ports (about 28000) are too
// few.
func LoopbackSources(n int) []net.IP {
	ips := make([]net.IP, n)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, byte((10+i)/256), byte((10+i)%256))
	}
	return ips
}

// Name implements Driver.
func (d *Courier) Name() string { return "courier" }

// MetricsURL is the (first) server's Prometheus endpoint.
func (d *Courier) MetricsURL() string { return d.httpURLs[0] + "/metrics" }

// MetricsURLs are every node's Prometheus endpoints.
func (d *Courier) MetricsURLs() []string {
	out := make([]string, len(d.httpURLs))
	for i, u := range d.httpURLs {
		out[i] = u + "/metrics"
	}
	return out
}

// Wire implements WireReporter.
func (d *Courier) Wire() Wire {
	w := Wire{Encoding: EncodingJSON, Compress: d.Compress}
	if d.Encoding == EncodingMsgpack {
		w.Encoding = EncodingMsgpack
	}
	w.InBytes, w.OutBytes = d.poller.wireBytes()
	if len(d.bases) > 1 {
		w.ConnsPerURL = map[string]int64{}
		for i, b := range d.bases {
			w.ConnsPerURL[b] += d.perNode[i].Load()
		}
	}
	return w
}

// Close stops the driver's poller, closing every connection it still has.
func (d *Courier) Close() error {
	d.poller.stop()
	d.api.CloseIdleConnections()
	return nil
}

// Dial implements Driver: it returns once the welcome frame has arrived.
func (d *Courier) Dial(ctx context.Context, user string, since uint64, h Handler) (Client, error) {
	// Minted per dial (a few µs) rather than cached, so that idle
	// connections cost the generator only their connection state.
	tok, err := jwt.Mint(d.secret, user, 24*time.Hour, nil)
	if err != nil {
		return nil, err
	}
	path := make([]byte, 0, 32+len(tok))
	path = append(append(path, "/ws?token="...), tok...)
	if since > 0 {
		path = strconv.AppendUint(append(path, "&since="...), since, 10)
	}
	var local net.IP
	if len(d.Sources) > 0 {
		per := uint64(max(d.PerSource, 1))
		local = d.Sources[(d.dials.Add(1)-1)/per%uint64(len(d.Sources))]
	}
	node := 0
	if len(d.addrs) > 1 {
		node = int((d.nodeRR.Add(1) - 1) % uint64(len(d.addrs)))
	}
	timeout := d.DialTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &courierClient{h: h, mp: d.Encoding == EncodingMsgpack, welcome: make(chan struct{}), done: make(chan struct{})}
	opt := wsOptions{Deflate: d.Compress}
	if c.mp {
		opt.Subprotocol = "courier.msgpack"
	}
	ws, err := wsDial(ctx, d.poller, sourceDialer(local, timeout), d.addrs[node], string(path), opt, c.onMsg, c.onClose)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", user, err)
	}
	c.ws = ws
	select {
	case <-c.welcome:
		d.perNode[node].Add(1)
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("dial %s: closed before the welcome: %v", user, c.endErr)
	case <-ctx.Done():
		_ = ws.close()
		return nil, fmt.Errorf("dial %s: no welcome: %w", user, ctx.Err())
	}
}

// APISend sends payload (as a JSON string) to user through the server API
// (POST /api/send) and returns its inbox seq.
func (d *Courier) APISend(ctx context.Context, user string, payload []byte) (uint64, error) {
	body := make([]byte, 0, 32+len(user)+len(payload))
	body = appendJSONText(append(body, `{"to":`...), user)
	body = append(appendJSONText(append(body, `,"data":`...), payload), '}')
	node := (d.apiRR.Add(1) - 1) % uint64(len(d.httpURLs))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.httpURLs[node]+"/api/send", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+d.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.api.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /api/send: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var out struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("POST /api/send: %w", err)
	}
	return out.Seq, nil
}

// courierClient is one courier connection.
type courierClient struct {
	ws      *wsConn
	h       Handler
	mp      bool // courier.msgpack: binary MessagePack frames
	welcome chan struct{}
	done    chan struct{} // closed when the connection has ended
	endErr  error         // why, once done is closed

	welcomed, closing atomic.Bool

	jmu    sync.Mutex
	jn     uint64
	joins  map[string]chan error
	njoins atomic.Int32
}

// onMsg handles one server frame, on the poller.
func (c *courierClient) onMsg(msg []byte) {
	var f srvFrame
	scan := scanFrame
	if c.mp {
		scan = scanMsgpackFrame
	}
	if err := scan(msg, &f); err != nil {
		return
	}
	switch string(f.typ) {
	case "message":
		if c.h.Message != nil {
			c.h.Message(f.payload(), f.seq)
		}
	case "ack":
		if len(f.id) > 0 && f.id[0] == 'j' && c.njoins.Load() > 0 {
			c.joined(string(f.id), nil)
			return
		}
		if c.h.Ack != nil {
			c.h.Ack(true, f.seq)
		}
	case "error":
		if len(f.id) > 0 && f.id[0] == 'j' && c.njoins.Load() > 0 {
			c.joined(string(f.id), fmt.Errorf("join refused: %q", msg))
			return
		}
		if c.h.Ack != nil {
			c.h.Ack(false, 0)
		}
	case "welcome":
		if c.welcomed.CompareAndSwap(false, true) {
			close(c.welcome)
		}
	}
}

func (c *courierClient) onClose(err error) {
	c.jmu.Lock()
	for id, ch := range c.joins {
		ch <- errors.New("connection closed")
		delete(c.joins, id)
	}
	c.njoins.Store(0)
	c.jmu.Unlock()
	if c.closing.Load() {
		err = nil
	}
	c.endErr = err
	close(c.done)
	if c.h.Closed != nil {
		c.h.Closed(err)
	}
}

func (c *courierClient) joined(id string, err error) {
	c.jmu.Lock()
	ch, ok := c.joins[id]
	delete(c.joins, id)
	c.njoins.Store(int32(len(c.joins)))
	c.jmu.Unlock()
	if ok {
		ch <- err
	}
}

// Send implements Client.
func (c *courierClient) Send(to string, payload []byte, durable bool) error {
	return c.writeMessage("send", "to", to, payload, durable)
}

// Publish implements Client.
func (c *courierClient) Publish(room string, payload []byte, durable bool) error {
	return c.writeMessage("publish", "room", room, payload, durable)
}

// writeMessage writes {"type":typ,key:target,"data":payload} (a string),
// with "volatile":true unless durable, in the connection's encoding.
func (c *courierClient) writeMessage(typ, key, target string, payload []byte, durable bool) error {
	if c.mp {
		return c.ws.writeBuilt(0x2, func(b []byte) []byte {
			b = appendMPMap(b, 4-btoi(durable))
			b = appendMPStr(appendMPStr(b, "type"), typ)
			b = appendMPStr(appendMPStr(b, key), target)
			b = appendMPStr(appendMPStr(b, "data"), payload)
			if !durable {
				b = appendMPBool(appendMPStr(b, "volatile"), true)
			}
			return b
		})
	}
	return c.ws.writeBuilt(0x1, func(b []byte) []byte {
		b = append(append(append(b, `{"type":"`...), typ...), `","`...)
		b = appendJSONText(append(append(b, key...), `":`...), target)
		b = appendJSONText(append(b, `,"data":`...), payload)
		if !durable {
			b = append(b, `,"volatile":true`...)
		}
		return append(b, '}')
	})
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

// Join implements Client.
func (c *courierClient) Join(ctx context.Context, room string) error {
	ch := make(chan error, 1)
	c.jmu.Lock()
	if c.joins == nil {
		c.joins = map[string]chan error{}
	}
	c.jn++
	id := "j" + strconv.FormatUint(c.jn, 10)
	c.joins[id] = ch
	c.njoins.Store(int32(len(c.joins)))
	c.jmu.Unlock()
	var err error
	if c.mp {
		err = c.ws.writeBuilt(0x2, func(b []byte) []byte {
			b = appendMPMap(b, 3)
			b = appendMPStr(appendMPStr(b, "type"), "join")
			b = appendMPStr(appendMPStr(b, "id"), id)
			return appendMPStr(appendMPStr(b, "room"), room)
		})
	} else {
		err = c.ws.writeBuilt(0x1, func(b []byte) []byte {
			b = append(append(append(b, `{"type":"join","id":"`...), id...), `","room":`...)
			return append(appendJSONText(b, room), '}')
		})
	}
	if err != nil {
		c.joined(id, nil)
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		c.joined(id, nil)
		return ctx.Err()
	}
}

// Close implements Client: it drops the TCP connection (no closing
// handshake), as a client that loses its network would.
func (c *courierClient) Close() error {
	c.closing.Store(true)
	if err := c.ws.close(); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "closed") {
		return err
	}
	return nil
}
