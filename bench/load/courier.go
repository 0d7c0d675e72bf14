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

// Courier drives a courier server over its JSON WebSocket protocol
// (docs/protocol.md). Its connections are read by one nbio poller set, so
// an idle connection costs no goroutine; server frames are scanned for the
// few fields a scenario needs (type, id, seq, data) without encoding/json,
// and client frames are built with append.
type Courier struct {
	addr    string // host:port
	httpURL string // http://host:port
	secret  []byte
	apiKey  string

	// Sources are local addresses to dial from, PerSource connections
	// each in turn (see LoopbackSources); none binds nothing.
	Sources   []net.IP
	PerSource int
	// DialTimeout bounds one connect and handshake (default 30s).
	DialTimeout time.Duration

	poller *wsPoller
	dials  atomic.Uint64
	api    *http.Client
}

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

// NewCourier returns a driver for the courier server at base (ws://host:port
// or http://host:port), minting tokens with secret; apiKey is needed only
// for APISend. Close stops its poller.
func NewCourier(base string, secret []byte, apiKey string) (*Courier, error) {
	host, err := hostPort("courier", base)
	if err != nil {
		return nil, err
	}
	p, err := newWSPoller()
	if err != nil {
		return nil, err
	}
	return &Courier{
		addr: host, httpURL: "http://" + host, secret: secret, apiKey: apiKey,
		poller: p,
		api:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}, Timeout: 30 * time.Second},
	}, nil
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

// MetricsURL is the server's Prometheus endpoint.
func (d *Courier) MetricsURL() string { return d.httpURL + "/metrics" }

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
	timeout := d.DialTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &courierClient{h: h, welcome: make(chan struct{}), done: make(chan struct{})}
	ws, err := wsDial(ctx, d.poller, sourceDialer(local, timeout), d.addr, string(path), c.onText, c.onClose)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", user, err)
	}
	c.ws = ws
	select {
	case <-c.welcome:
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.httpURL+"/api/send", bytes.NewReader(body))
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
	welcome chan struct{}
	done    chan struct{} // closed when the connection has ended
	endErr  error         // why, once done is closed

	welcomed, closing atomic.Bool

	jmu    sync.Mutex
	jn     uint64
	joins  map[string]chan error
	njoins atomic.Int32
}

// onText handles one server frame, on the poller.
func (c *courierClient) onText(msg []byte) {
	var f srvFrame
	if err := scanFrame(msg, &f); err != nil {
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
			c.joined(string(f.id), fmt.Errorf("join refused: %s", msg))
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
	return c.ws.writeBuilt(0x1, func(b []byte) []byte {
		b = appendJSONText(append(b, `{"type":"send","to":`...), to)
		b = appendJSONText(append(b, `,"data":`...), payload)
		if !durable {
			b = append(b, `,"volatile":true`...)
		}
		return append(b, '}')
	})
}

// Publish implements Client.
func (c *courierClient) Publish(room string, payload []byte, durable bool) error {
	return c.ws.writeBuilt(0x1, func(b []byte) []byte {
		b = appendJSONText(append(b, `{"type":"publish","room":`...), room)
		b = appendJSONText(append(b, `,"data":`...), payload)
		if !durable {
			b = append(b, `,"volatile":true`...)
		}
		return append(b, '}')
	})
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
	err := c.ws.writeBuilt(0x1, func(b []byte) []byte {
		b = append(append(append(b, `{"type":"join","id":"`...), id...), `","room":`...)
		return append(appendJSONText(b, room), '}')
	})
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
