package brokertest

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// A Proxy is a loopback TCP proxy to an engine (a NATS or Redis server) that
// a test can sever: the broker under test connects to Addr instead of the
// engine, and Cut or Down break its connection as a network failure would.
// It implements Link.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	thawed *sync.Cond // broadcast by Unfreeze and by the proxy's end
	down   bool
	frozen bool
	ended  bool
	conns  map[net.Conn]struct{} // both ends of every proxied connection
}

// NewProxy listens on a free loopback port and forwards each connection
// made to it to target (host:port). t's cleanup closes it.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("brokertest: proxy: listen: %v", err)
	}
	p := &Proxy{t: t, target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.thawed = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// Addr returns the host:port the broker under test connects to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut severs every connection open through the proxy; new connections are
// accepted as before, so the broker can reconnect at once.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeConnsLocked()
}

// Down severs every connection open through the proxy and, until Up,
// closes each new connection as soon as it is accepted, as an engine that
// is down would.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.closeConnsLocked()
}

// Up lets connections through again.
func (p *Proxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// Freeze holds every byte in either direction, on the connections open and
// on new ones, without closing anything, as a network that silently stops
// delivering would; Unfreeze lets them through again.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Unfreeze ends Freeze.
func (p *Proxy) Unfreeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = false
	p.thawed.Broadcast()
}

func (p *Proxy) closeConnsLocked() {
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.ended = true
	p.thawed.Broadcast()
	p.closeConnsLocked()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			p.t.Logf("brokertest: proxy: accept: %v", err)
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = client.Close()
			continue
		}
		p.wg.Go(func() { p.forward(client) })
	}
}

// forward joins client to a new connection to the target until either side
// closes or the proxy severs them.
func (p *Proxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.conns[client] = struct{}{}
	p.conns[server] = struct{}{}
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		p.copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done // one direction ended: end both
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
	_ = client.Close()
	_ = server.Close()
	<-done
}

// copy forwards what src sends to dst, holding it while the proxy is
// frozen, until either side fails.
func (p *Proxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.frozen && !p.ended {
				p.thawed.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
