package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// proxy forwards the TCP connections it accepts on addr to target, until
// stop, which also cuts the connections in progress: PostgreSQL going
// away, as a node sees it.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
	// cutCommit, while set, makes the proxy cut a connection instead of
	// passing on the server's answer to a COMMIT, and clears it: the
	// transaction has committed, and the client cannot know.
	cutCommit atomic.Bool
}

func startProxy(t *testing.T, addr, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.serve)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(up, c); up.Close() })
		p.wg.Go(func() { p.down(c, up); c.Close() })
	}
}

// down copies the server's messages to the client, looking out for the
// CommandComplete message of a COMMIT, whose bytes no other message can
// hold (PostgreSQL's text has no NUL).
func (p *proxy) down(c, up net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 && bytes.Contains(buf[:n], []byte("COMMIT\x00")) && p.cutCommit.CompareAndSwap(true, false) {
			up.Close()
			return
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serverAddr returns the host:port of the server of rawURL.
func serverAddr(t *testing.T, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("COURIER_TEST_POSTGRES must be a URL with a host: %q, %v", rawURL, err)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432")
	}
	return u.Host
}

// withHost returns rawURL with host in place of its own, and a connect
// timeout.
func withHost(t *testing.T, rawURL, host string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("COURIER_TEST_POSTGRES must be a URL: %v", err)
	}
	u.Host = host
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return u.String()
}

func TestOpenUnreachable(t *testing.T) {
	u := withHost(t, "postgres://postgres@127.0.0.1/postgres?sslmode=disable", closedPort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := Open(ctx, u, Options{}); err == nil {
		s.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if ctx.Err() != nil {
		t.Error("Open of a closed port took until the deadline")
	}
}

// TestConnectionLost cuts the store's connections to PostgreSQL and keeps
// them cut: every call fails, none succeeds falsely, a failed Append leaves
// its envelopes alone, and once the server is back the store works again
// with nothing of the failed batch stored.
func TestConnectionLost(t *testing.T) {
	base := requirePostgres(t)
	target := serverAddr(t, base)
	p := startProxy(t, "127.0.0.1:0", target)
	addr := p.ln.Addr().String()
	schema := testSchema(t, base, t.Name()+t.TempDir())
	s := openTest(t, withHost(t, base, addr), schema, Options{Retries: 2})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Append(ctx, []*courier.Envelope{dm("m1", "ann", "bo")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastSeen(ctx, "ann", time.UnixMilli(1000)); err != nil {
		t.Fatal(err)
	}

	p.stop()
	batch := []*courier.Envelope{dm("m2", "ann", "bo"), dm("m3", "bo", "cy")}
	before := []courier.Envelope{*batch[0], *batch[1]}
	if err := s.Append(ctx, batch); err == nil {
		t.Error("Append succeeded with the server gone")
	}
	for i, e := range batch {
		if !reflect.DeepEqual(*e, before[i]) {
			t.Errorf("failed Append changed envelope %d: %+v, was %+v", i, *e, before[i])
		}
	}
	if ms, err := s.Inbox(ctx, "bo", 0, 10); err == nil {
		t.Errorf("Inbox succeeded with the server gone: %v", ms)
	}
	if _, err := s.LatestSeq(ctx, "bo"); err == nil {
		t.Error("LatestSeq succeeded with the server gone")
	}
	if err := s.SetLastSeen(ctx, "ann", time.UnixMilli(2000)); err == nil {
		t.Error("SetLastSeen succeeded with the server gone")
	}
	if _, err := s.LastSeen(ctx, "ann"); err == nil {
		t.Error("LastSeen succeeded with the server gone")
	}
	if ctx.Err() != nil {
		t.Fatal("the calls took until the test's deadline")
	}

	startProxy(t, addr, target)
	m4 := dm("m4", "ann", "bo")
	if err := s.Append(ctx, []*courier.Envelope{m4}); err != nil || m4.ToSeq != 2 {
		t.Fatalf("Append once the server is back: %v, seq %d; want seq 2", err, m4.ToSeq)
	}
	ms, err := s.Inbox(ctx, "bo", 0, 10)
	if err != nil || len(ms) != 2 || ms[0].ID != "m1" || ms[1].ID != "m4" {
		t.Errorf("inbox once the server is back: %v, %v; want m1, m4", ms, err)
	}

	// A pool closed under the store: errors, no panic, no success.
	s.pool.Close()
	if err := s.Append(ctx, []*courier.Envelope{dm("m5", "ann", "bo")}); err == nil {
		t.Error("Append succeeded on a closed pool")
	}
	if _, err := s.Inbox(ctx, "bo", 0, 10); err == nil {
		t.Error("Inbox succeeded on a closed pool")
	}
	if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("Close: %v", err)
	}
}

// TestResolve checks how Append finds out whether a transaction whose
// connection failed during its commit has committed: yes, no, and not yet
// (then it waits for the transaction to end).
func TestResolve(t *testing.T) {
	s, _, _ := newTestStore(t)
	ctx := context.Background()
	lost := errors.New("connection lost")
	committed := newPlan([]*courier.Envelope{dm("m1", "ann", "bo")})
	if err := s.appendRetrying(ctx, committed); err != nil {
		t.Fatal(err)
	}
	if err := s.resolve(ctx, committed, lost); err != nil {
		t.Errorf("resolve of a committed transaction: %v, want nil", err)
	}

	// started opens the transaction of a plan for m and places it, holding
	// its locks; finish commits or rolls it back.
	started := func(id string) (*plan, func(commit bool)) {
		p := newPlan([]*courier.Envelope{dm(id, "ann", "bo")})
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p.reset()
		if err := s.lock(ctx, conn, p); err != nil {
			t.Fatal(err)
		}
		if err := p.place(); err != nil {
			t.Fatal(err)
		}
		return p, func(commit bool) {
			defer conn.Release()
			if !commit {
				rollback(ctx, conn)
			} else if err := p.write(ctx, conn); err != nil {
				t.Error(err)
			}
		}
	}
	p, finish := started("m2")
	finish(false)
	if err := s.resolve(ctx, p, lost); err != lost {
		t.Errorf("resolve of a rolled back transaction: %v, want %v", err, lost)
	}

	for _, commit := range []bool{true, false} {
		p, finish := started(fmt.Sprint("m3-", commit))
		done := make(chan error, 1)
		go func() { done <- s.resolve(ctx, p, lost) }()
		select {
		case err := <-done:
			t.Fatalf("resolve returned %v while the transaction was open", err)
		case <-time.After(200 * time.Millisecond):
		}
		finish(commit)
		if err := <-done; (err == nil) != commit {
			t.Errorf("resolve of a transaction that ended with commit=%v after it started: %v", commit, err)
		}
	}
	if n, err := s.LatestSeq(ctx, "bo"); err != nil || n != 2 {
		t.Errorf("LatestSeq(bo) = %d, %v; want 2 (m1, m3-true)", n, err)
	}
}

// TestCommitAnswerLost cuts the connection of an Append after its COMMIT
// has run but before its answer reaches the store: Append must find out
// that the batch is stored and report it as such, with its seqs.
func TestCommitAnswerLost(t *testing.T) {
	base := requirePostgres(t)
	p := startProxy(t, "127.0.0.1:0", serverAddr(t, base))
	schema := testSchema(t, base, t.Name()+t.TempDir())
	s := openTest(t, withHost(t, base, p.ln.Addr().String()), schema)
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, []*courier.Envelope{dm("m1", "ann", "bo")}); err != nil {
		t.Fatal(err)
	}
	p.cutCommit.Store(true)
	e := dm("m2", "bo", "ann")
	if err := s.Append(ctx, []*courier.Envelope{e}); err != nil || e.ToSeq != 2 || e.FromSeq != 2 {
		t.Errorf("Append whose COMMIT answer was lost: %v, seqs %d/%d; want nil, 2/2", err, e.ToSeq, e.FromSeq)
	}
	if p.cutCommit.Load() {
		t.Fatal("the proxy saw no COMMIT")
	}
	ms, err := s.Inbox(ctx, "ann", 0, 10)
	if err != nil || len(ms) != 2 || ms[1].ID != "m2" {
		t.Errorf("ann's inbox: %v, %v; want m1, m2", ms, err)
	}
	e3 := dm("m3", "ann", "bo")
	if err := s.Append(ctx, []*courier.Envelope{e3}); err != nil || e3.ToSeq != 3 {
		t.Errorf("next Append: %v, seq %d; want 3", err, e3.ToSeq)
	}
}
