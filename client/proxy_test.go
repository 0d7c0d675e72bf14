package client_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// A proxy forwards TCP connections to a server and can drop what the server
// sends on its current connections (as a network that loses the replies),
// freeze them (as a dead network: nothing goes through either way, and
// nothing is closed), and cut them.
type proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   []net.Conn
	mutes   []*atomic.Bool // one per pair of conns
	freezes []*atomic.Bool // one per pair of conns
	pairs   atomic.Int32   // connections accepted so far
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

// URL returns the proxy's ws:// URL.
func (p *proxy) URL() string { return "ws://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		mute, frozen := new(atomic.Bool), new(atomic.Bool)
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mutes = append(p.mutes, mute)
		p.freezes = append(p.freezes, frozen)
		p.mu.Unlock()
		p.pairs.Add(1)
		go forward(s, c, frozen, frozen)
		go forward(c, s, mute, frozen)
	}
}

// forward copies from src to dst, dropping what it reads while drop or
// frozen is set, until either fails; then it closes both.
func forward(dst, src net.Conn, drop, frozen *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !drop.Load() && !frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
}

// mute drops from now on what the server sends on the current connections.
// Later connections are not muted.
func (p *proxy) mute() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.mutes {
		m.Store(true)
	}
}

// freeze stops forwarding anything, either way, on the current connections,
// without closing them: what is sent on them is lost. Later connections are
// not frozen.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.freezes {
		f.Store(true)
	}
}

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.mutes, p.freezes = nil, nil, nil
}
