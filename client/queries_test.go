package client_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/courier-im/courier/client"
	"github.com/courier-im/courier/internal/testnode"
	"github.com/courier-im/courier/jwt"
)

// seqs returns the seqs of msgs.
func seqs(msgs []client.Message) []uint64 {
	s := make([]uint64, len(msgs))
	for i, m := range msgs {
		s[i] = m.Seq
	}
	return s
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got error %v, want code %s", err, code)
	}
}

func TestHistoryPaging(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob, carol := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob"), dial(t, n.WS(), "carol")
	for i := 1; i <= 7; i++ {
		from, to := alice, "bob"
		if i%3 == 0 {
			from, to = bob, "alice"
		}
		if _, err := from.Send(ctx(t), to, "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := carol.Send(ctx(t), "alice", "chat", map[string]string{"text": "not with bob"}); err != nil {
		t.Fatal(err)
	}

	// alice's inbox: seqs 1..7 with bob, 8 from carol. Page by 3.
	var got []client.Message
	var before uint64
	for page := 0; ; page++ {
		msgs, err := alice.History(ctx(t), client.HistoryQuery{With: "bob", Limit: 3, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		if page > 3 || len(msgs) > 3 {
			t.Fatalf("page %d: %d messages", page, len(msgs))
		}
		got = append(got, msgs...)
		before = msgs[len(msgs)-1].Seq
	}
	if fmt.Sprint(seqs(got)) != "[7 6 5 4 3 2 1]" {
		t.Fatalf("seqs %v", seqs(got))
	}
	for i, m := range got {
		want := fmt.Sprint(7 - i)
		if text(t, m) != want || len(m.Frame) == 0 || m.TS.IsZero() {
			t.Fatalf("message %d: %s", i, m.Frame)
		}
		if wantFrom := "alice"; (7-i)%3 == 0 && m.From != "bob" || (7-i)%3 != 0 && m.From != wantFrom {
			t.Fatalf("message %d from %s", i, m.From)
		}
	}

	// carol's conversation with bob is hers, not alice's: empty.
	if msgs, err := carol.History(ctx(t), client.HistoryQuery{With: "bob"}); err != nil || len(msgs) != 0 {
		t.Fatalf("carol with bob: %v %v", seqs(msgs), err)
	}
	// bob sees the same conversation with his own seqs.
	msgs, err := bob.History(ctx(t), client.HistoryQuery{With: "alice", Limit: 2})
	if err != nil || fmt.Sprint(seqs(msgs)) != "[7 6]" || text(t, msgs[0]) != "7" {
		t.Fatalf("bob: %v %v", seqs(msgs), err)
	}
}

func TestRoomHistoryAndForbidden(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob")
	tok, err := jwt.Mint([]byte(secret), "carol", time.Hour, []string{"team-*"})
	if err != nil {
		t.Fatal(err)
	}
	carol := dial(t, n.WS(), "carol", func(o *client.Options) { o.Token = tok })

	if err := alice.Join(ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := alice.Publish(ctx(t), "lobby", "chat", map[string]string{"text": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A volatile publish is not in the history.
	if ack, err := alice.Publish(ctx(t), "lobby", "typing", true, client.Volatile()); err != nil || ack.Seq != 0 || ack.Msg == "" {
		t.Fatalf("volatile publish: %+v %v", ack, err)
	}
	// bob reads without joining; newest first, paged by room seq.
	msgs, err := bob.History(ctx(t), client.HistoryQuery{Room: "lobby", Limit: 2})
	if err != nil || fmt.Sprint(seqs(msgs)) != "[5 4]" {
		t.Fatalf("room page 1: %v %v", seqs(msgs), err)
	}
	if msgs[0].Room != "lobby" || msgs[0].From != "alice" || text(t, msgs[0]) != "5" {
		t.Fatalf("got %s", msgs[0].Frame)
	}
	msgs, err = bob.History(ctx(t), client.HistoryQuery{Room: "lobby", Before: 4})
	if err != nil || fmt.Sprint(seqs(msgs)) != "[3 2 1]" {
		t.Fatalf("room page 2: %v %v", seqs(msgs), err)
	}

	// carol's token allows team-* only.
	_, err = carol.History(ctx(t), client.HistoryQuery{Room: "lobby"})
	wantCode(t, err, "forbidden")
	wantCode(t, carol.Join(ctx(t), "lobby"), "forbidden")
	if msgs, err := carol.History(ctx(t), client.HistoryQuery{Room: "team-a"}); err != nil || len(msgs) != 0 {
		t.Fatalf("team-a: %v %v", seqs(msgs), err)
	}
	// Neither With nor Room.
	_, err = bob.History(ctx(t), client.HistoryQuery{})
	wantCode(t, err, "bad_request")
	// The client still works after error frames.
	if _, err := bob.History(ctx(t), client.HistoryQuery{Room: "lobby", Limit: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestVolatilePublishLive(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob")
	for _, c := range []*client.Client{alice, bob} {
		if err := c.Join(ctx(t), "lobby"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Publish(ctx(t), "lobby", "typing", true, client.Volatile()); err != nil {
		t.Fatal(err)
	}
	if m := next(t, bob); m.Room != "lobby" || m.Event != "typing" || m.Seq != 0 {
		t.Fatalf("got %s", m.Frame)
	}
	// A keyed publish is idempotent.
	a1, err := alice.Publish(ctx(t), "lobby", "chat", "once", client.Key("p1"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := alice.Publish(ctx(t), "lobby", "chat", "once", client.Key("p1"))
	if err != nil || a1 != a2 || a1.Seq != 1 {
		t.Fatalf("acks %+v %+v %v", a1, a2, err)
	}
	if m := next(t, bob); m.ID != a1.Msg {
		t.Fatalf("got %s", m.Frame)
	}
	quiet(t, bob, 100*time.Millisecond)
}

func TestSearch(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob")
	for _, s := range []string{"pizza on friday", "salad on monday", "Pizzeria tonight?"} {
		if _, err := alice.Send(ctx(t), "bob", "chat", map[string]any{"text": s, "n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Results may lag a write by a second: poll.
	var msgs []client.Message
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		msgs, err = bob.Search(ctx(t), "piz*", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(msgs) != 2 || text(t, msgs[0]) != "Pizzeria tonight?" || text(t, msgs[1]) != "pizza on friday" {
		t.Fatalf("piz*: %d messages %v", len(msgs), seqs(msgs))
	}
	if msgs[0].Seq != 3 || msgs[0].From != "alice" {
		t.Fatalf("got %s", msgs[0].Frame)
	}
	// The sender finds its own messages too; a phrase.
	msgs, err := alice.Search(ctx(t), `"on monday"`, 0)
	if err != nil || len(msgs) != 1 || text(t, msgs[0]) != "salad on monday" {
		t.Fatalf("phrase: %v %v", seqs(msgs), err)
	}
	// Keys do not count.
	if msgs, err := alice.Search(ctx(t), "text", 0); err != nil || len(msgs) != 0 {
		t.Fatalf("key matched: %v %v", seqs(msgs), err)
	}
	for _, q := range []string{"", `"unbalanced`, "*x"} {
		_, err := alice.Search(ctx(t), q, 0)
		wantCode(t, err, "bad_request")
	}
}

func TestConversations(t *testing.T) {
	n := testnode.Start(t, "", secret, apiKey)
	alice, bob, carol := dial(t, n.WS(), "alice"), dial(t, n.WS(), "bob"), dial(t, n.WS(), "carol")
	send := func(from *client.Client, to, txt string) client.Ack {
		t.Helper()
		ack, err := from.Send(ctx(t), to, "chat", map[string]string{"text": txt})
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	send(alice, "bob", "a1")
	send(bob, "alice", "b1")
	send(bob, "alice", "b2")
	send(bob, "alice", "b3")
	send(carol, "alice", "c1")

	cs, err := alice.Conversations(ctx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].With != "carol" || cs[0].Unread != 1 || cs[1].With != "bob" || cs[1].Unread != 3 {
		t.Fatalf("conversations %+v", cs)
	}
	if text(t, cs[1].Last) != "b3" || cs[1].Last.Seq != 4 || cs[1].Last.From != "bob" || len(cs[1].Last.Frame) == 0 {
		t.Fatalf("last %s", cs[1].Last.Frame)
	}
	if cs, err := alice.Conversations(ctx(t), 1); err != nil || len(cs) != 1 || cs[0].With != "carol" {
		t.Fatalf("limit 1: %+v %v", cs, err)
	}

	// Reading up to b2 (alice's seq 3) leaves one unread.
	if err := alice.Read(ctx(t), "bob", 3); err != nil {
		t.Fatal(err)
	}
	cs, err = alice.Conversations(ctx(t), 0)
	if err != nil || cs[1].With != "bob" || cs[1].Unread != 1 || cs[0].Unread != 1 {
		t.Fatalf("after read: %+v %v", cs, err)
	}
	// The mark only moves forward.
	if err := alice.Read(ctx(t), "bob", 1); err != nil {
		t.Fatal(err)
	}
	if err := alice.Read(ctx(t), "bob", 4); err != nil {
		t.Fatal(err)
	}
	cs, err = alice.Conversations(ctx(t), 0)
	if err != nil || cs[1].Unread != 0 {
		t.Fatalf("after read all: %+v %v", cs, err)
	}
	// bob's side: alice's one message, read by nobody.
	cs, err = bob.Conversations(ctx(t), 0)
	if err != nil || len(cs) != 1 || cs[0].With != "alice" || cs[0].Unread != 1 {
		t.Fatalf("bob: %+v %v", cs, err)
	}
}

// A query whose connection breaks is sent again on the next one.
func TestQueryAcrossRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startFixed(t, dir, addr)
	url := "ws://" + addr
	alice := dial(t, url, "alice")
	if _, err := alice.Send(ctx(t), "bob", "chat", map[string]string{"text": "kept"}); err != nil {
		t.Fatal(err)
	}
	n.stop()
	type result struct {
		msgs []client.Message
		cs   []client.Conversation
		err  error
	}
	done := make(chan result, 1)
	go func() {
		qctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		msgs, err := alice.History(qctx, client.HistoryQuery{With: "bob"})
		if err != nil {
			done <- result{err: err}
			return
		}
		cs, err := alice.Conversations(qctx, 0)
		done <- result{msgs, cs, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("query answered while the server was down: %v", r.err)
	case <-time.After(200 * time.Millisecond):
	}
	startFixed(t, dir, addr)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.msgs) != 1 || text(t, r.msgs[0]) != "kept" || len(r.cs) != 1 || r.cs[0].With != "bob" {
		t.Fatalf("history %v conversations %+v", seqs(r.msgs), r.cs)
	}

	// A query with a deadline gives up with the context's error.
	qctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	<-qctx.Done()
	if _, err := alice.Search(qctx, "kept", 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired ctx: %v", err)
	}
}

// Publishes and joins made while the client is reconnecting go out on the
// next connection, after the client has joined its rooms again, each once.
func TestPublishAcrossRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	n := startFixed(t, dir, addr)
	url := "ws://" + addr
	alice := dial(t, url, "alice")
	if err := alice.Join(ctx(t), "lobby"); err != nil {
		t.Fatal(err)
	}
	n.stop()
	done := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ack, err := alice.Publish(pctx, "lobby", "chat", map[string]string{"text": "back"}, client.Key("pub-1"))
		if err == nil && ack.Seq != 1 {
			err = fmt.Errorf("ack %+v", ack)
		}
		if err == nil {
			err = alice.Join(pctx, "hall")
		}
		if err == nil {
			ack, err = alice.Publish(pctx, "hall", "chat", map[string]string{"text": "hall"})
			if err == nil && ack.Seq != 1 {
				err = fmt.Errorf("ack %+v", ack)
			}
		}
		done <- err
	}()
	startFixed(t, dir, addr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for room, want := range map[string]string{"lobby": "back", "hall": "hall"} {
		msgs, err := alice.History(ctx(t), client.HistoryQuery{Room: room})
		if err != nil || len(msgs) != 1 || text(t, msgs[0]) != want {
			t.Fatalf("%s history %v %v", room, seqs(msgs), err)
		}
	}
}
