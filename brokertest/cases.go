package brokertest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// testRouting: a packet reaches every subscribed node, its publisher
// included when subscribed, once, and no node that is not subscribed.
func testRouting(t *testing.T, newNode NewNode) {
	a, b, c := start(t, newNode, "a"), start(t, newNode, "b"), start(t, newNode, "c")
	idle := start(t, newNode, "idle") // subscribed to nothing
	a.subscribe("room")
	b.subscribe("room")
	c.subscribe("other")

	a.publish("room", []byte("from a"))
	b.publish("room", []byte("from b"))
	c.publish("room", []byte("from c")) // a publisher that is not subscribed
	idle.publish("room", []byte("from idle"))
	c.publish("other", []byte("to c"))
	for _, n := range []*node{a, b} {
		for _, from := range []string{"a", "b", "c", "idle"} {
			n.waitFor("room", "from "+from)
		}
	}
	c.waitFor("other", "to c")
	time.Sleep(quiet)

	for _, n := range []*node{a, b} {
		if got := n.count("room"); got != 4 {
			t.Errorf("%s received %d packets on room, want 4 (one per publisher): %q", n.name, got, n.payloads("room"))
		}
		if got := n.count("other"); got != 0 {
			t.Errorf("%s received %d packets on other, a topic it did not subscribe to", n.name, got)
		}
	}
	if got := c.count("room"); got != 0 {
		t.Errorf("c received %d packets on room, a topic it did not subscribe to", got)
	}
	if got := c.count("other"); got != 1 {
		t.Errorf("c received %d packets on other, want 1", got)
	}
	if got := idle.total(); got != 0 {
		t.Errorf("a node subscribed to nothing received %d packets", got)
	}
}

// testSubscribeEffective: a packet published by another node right after
// Subscribe returns arrives, for one subscriber after another, for many
// concurrent subscribers, and for the publisher itself.
func testSubscribeEffective(t *testing.T, newNode NewNode) {
	pub, sub := start(t, newNode, "publisher"), start(t, newNode, "subscriber")
	const serial, concurrent = 50, 200
	for i := range serial {
		topic := fmt.Sprintf("serial %d", i)
		sub.subscribe(topic)
		pub.publish(topic, []byte("x"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, concurrent)
	for i := range concurrent {
		wg.Go(func() {
			topic := fmt.Sprintf("concurrent %d", i)
			if err := sub.b.Subscribe(topic); err != nil {
				errs <- fmt.Errorf("Subscribe(%q): %w", topic, err)
				return
			}
			if err := pub.b.Publish(topic, []byte("x")); err != nil {
				errs <- fmt.Errorf("Publish(%q): %w", topic, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range serial {
		sub.waitCount(fmt.Sprintf("serial %d", i), 1)
	}
	for i := range concurrent {
		sub.waitCount(fmt.Sprintf("concurrent %d", i), 1)
	}

	// The publisher subscribed to its own topic.
	pub.subscribe("own")
	pub.publish("own", []byte("self"))
	pub.waitFor("own", "self")
}

// seqPayload is a packet of the order test: publisher, topic and sequence.
func seqPayload(from, topic byte, seq uint32) []byte {
	p := []byte{from, topic, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(p[2:], seq)
	return p
}

// testOrder: two publishers send a burst each, interleaved over two topics;
// every subscriber gets every packet once, in order per publisher and topic.
func testOrder(t *testing.T, newNode NewNode) {
	const perTopic = 5000 // 10,000 packets from each publisher
	a, b, c := start(t, newNode, "a"), start(t, newNode, "b"), start(t, newNode, "c")
	topics := []string{"burst.one", "burst.two"}
	for _, n := range []*node{a, b, c} {
		n.subscribe(topics...)
	}
	var wg sync.WaitGroup
	for from, n := range []*node{a, b} {
		wg.Go(func() {
			for seq := range uint32(perTopic) {
				for ti, topic := range topics {
					if err := n.b.Publish(topic, seqPayload(byte(from), byte(ti), seq)); err != nil {
						t.Errorf("%s: Publish: %v", n.name, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, n := range []*node{a, b, c} {
		for _, topic := range topics {
			n.waitCount(topic, 2*perTopic)
		}
	}
	time.Sleep(quiet)
	for _, n := range []*node{a, b, c} {
		for ti, topic := range topics {
			next := [2]uint32{}
			for _, p := range n.payloads(topic) {
				if len(p) != 6 || p[1] != byte(ti) || p[0] > 1 {
					t.Fatalf("%s: packet %x on %q is not one that was published there", n.name, p, topic)
				}
				from, seq := p[0], binary.BigEndian.Uint32([]byte(p[2:]))
				if seq != next[from] {
					t.Fatalf("%s: on %q from publisher %d: got seq %d, want %d (lost, repeated or out of order)",
						n.name, topic, from, seq, next[from])
				}
				next[from]++
			}
			if next != [2]uint32{perTopic, perTopic} {
				t.Errorf("%s: on %q received %v packets per publisher, want %d each", n.name, topic, next, perTopic)
			}
		}
	}
}

// testUnsubscribe: after Unsubscribe no packet arrives; subscribing again
// works; unsubscribing from a topic never subscribed is no error.
func testUnsubscribe(t *testing.T, newNode NewNode) {
	pub, sub := start(t, newNode, "publisher"), start(t, newNode, "subscriber")
	sub.subscribe("leaving", "marker")
	pub.publish("leaving", []byte("before"))
	sub.waitFor("leaving", "before")

	sub.unsubscribe("leaving")
	time.Sleep(quiet) // packets already on their way may still arrive
	before := sub.count("leaving")
	for range 5 {
		pub.publish("leaving", []byte("after"))
	}
	pub.publish("marker", []byte("sent after the packets on leaving"))
	sub.waitFor("marker", "sent after the packets on leaving")
	time.Sleep(quiet)
	if got := sub.count("leaving"); got != before {
		t.Errorf("received %d packets on a topic after Unsubscribe", got-before)
	}

	sub.subscribe("leaving")
	pub.publish("leaving", []byte("again"))
	sub.waitFor("leaving", "again")

	sub.unsubscribe("never subscribed")
}

// testSubscribeTwice: subscribing twice, or concurrently, is subscribing
// once: one delivery per packet, and one Unsubscribe ends it.
func testSubscribeTwice(t *testing.T, newNode NewNode) {
	pub, sub := start(t, newNode, "publisher"), start(t, newNode, "subscriber")
	sub.subscribe("twice", "twice", "marker")
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := sub.b.Subscribe("concurrent"); err != nil {
				t.Errorf("Subscribe: %v", err)
			}
		})
	}
	wg.Wait()
	for _, topic := range []string{"twice", "concurrent"} {
		for i := range 10 {
			pub.publish(topic, fmt.Appendf(nil, "%d", i))
		}
		pub.publish(topic, []byte("end"))
		sub.waitFor(topic, "end")
	}
	time.Sleep(quiet)
	for _, topic := range []string{"twice", "concurrent"} {
		if got := sub.count(topic); got != 11 {
			t.Errorf("%q: received %d packets, want 11 (once each): %q", topic, got, sub.payloads(topic))
		}
	}

	sub.unsubscribe("twice")
	time.Sleep(quiet)
	before := sub.count("twice")
	pub.publish("twice", []byte("after"))
	pub.publish("marker", []byte("end"))
	sub.waitFor("marker", "end")
	time.Sleep(quiet)
	if got := sub.count("twice"); got != before {
		t.Errorf("one Unsubscribe after two Subscribes left the topic subscribed: %d more packets", got-before)
	}
}

// topics are distinct topics that an engine's naming rules make easy to
// confuse: separators, wildcards, white space, bytes that are not UTF-8.
var topics = []string{
	"", " ", "  ", "\t", "\n", "\r\n", "\x00", "a\x00b", "\xff\xfe", "\x7f",
	"a", "b", "ab", "a b", "a.b", "a..b", ".a", "a.", ".", "..", "a.b.c",
	"*", ">", "#", "+", "?", "%", "a.*", "a.>", "a.#", "a.+", "*.b", ">.b",
	"a:b", "a/b", "a\\b", "a,b", "a;b", "a|b", "a\"b", "a'b", "[a]", "{a}",
	"$SYS", "$SYS.x", "_INBOX.x", "courier", "courier.x", "courier:x",
	"YQ", "YS5i", "YWI", "61", "612e62", // encodings of "a", "a.b", "ab"
	"日本語", "room:général", "emoji 🎉", "\u200b",
	strings.Repeat("x", 511), strings.Repeat("x", 512), strings.Repeat("é", 256),
	strings.Repeat(".", 512), strings.Repeat(" ", 512), strings.Repeat(">", 512),
}

// testTopics: every topic of the list reaches its subscriber under its own
// name, and a node subscribed to a few of them (wildcards among them)
// receives those and nothing else.
func testTopics(t *testing.T, newNode NewNode) {
	seen := make(map[string]bool)
	for _, topic := range topics {
		if seen[topic] {
			t.Fatalf("topic %q is twice in the list", topic)
		}
		seen[topic] = true
	}
	pub, all, few := start(t, newNode, "publisher"), start(t, newNode, "all"), start(t, newNode, "few")
	subset := []string{"a.b", "*", ">", "#", "a.*", "", " ", strings.Repeat("x", 512)}
	all.subscribe(topics...)
	few.subscribe(subset...)
	for i, topic := range topics {
		pub.publish(topic, fmt.Appendf(nil, "%d", i))
	}
	for i, topic := range topics {
		all.waitFor(topic, fmt.Sprint(i))
	}
	for _, topic := range subset {
		few.waitCount(topic, 1)
	}
	time.Sleep(quiet)
	for i, topic := range topics {
		if got := all.payloads(topic); len(got) != 1 || got[0] != fmt.Sprint(i) {
			t.Errorf("topic %q: received %q, want [%q] (topics collide)", short(topic), got, fmt.Sprint(i))
		}
	}
	if got, want := all.total(), len(topics); got != want {
		t.Errorf("received %d packets in all, want %d", got, want)
	}
	if got, want := few.total(), len(subset); got != want {
		few.rec.mu.Lock()
		for _, p := range few.rec.packets {
			t.Logf("few received %q on %q", p.payload, short(p.topic))
		}
		few.rec.mu.Unlock()
		t.Errorf("a node subscribed to %d topics received %d packets: wildcards or separators leak", want, got)
	}
}

// testPayloads: payloads from empty to 1 MiB, of every byte value, arrive
// intact at a subscriber and at the publisher.
func testPayloads(t *testing.T, newNode NewNode) {
	pub, sub := start(t, newNode, "publisher"), start(t, newNode, "subscriber")
	pub.subscribe("payload")
	sub.subscribe("payload")
	sizes := []int{0, 1, 2, 64, 255, 256, 4095, 65536, 1<<20 - 1, 1 << 20}
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([][]byte, len(sizes))
	for i, size := range sizes {
		want[i] = make([]byte, size)
		for j := range want[i] {
			want[i][j] = byte(rng.Uint32())
		}
		if size == 256 {
			for j := range want[i] {
				want[i][j] = byte(j)
			}
		}
		pub.publish("payload", want[i])
	}
	for _, n := range []*node{pub, sub} {
		n.waitCount("payload", len(sizes))
		got := n.payloads("payload")
		if len(got) != len(want) {
			t.Fatalf("%s: received %d payloads, want %d", n.name, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal([]byte(got[i]), want[i]) {
				t.Errorf("%s: payload %d of %d bytes arrived as %d different bytes", n.name, i, len(want[i]), len(got[i]))
			}
		}
	}
}

// testPayloadReuse: the publisher overwrites its buffer after every Publish;
// every receiver still gets each payload as it was published.
func testPayloadReuse(t *testing.T, newNode NewNode) {
	pub, sub := start(t, newNode, "publisher"), start(t, newNode, "subscriber")
	pub.subscribe("reuse")
	sub.subscribe("reuse")
	const count, size = 1000, 256
	buf := make([]byte, size)
	for i := range count {
		for j := range buf {
			buf[j] = byte(i)
		}
		binary.BigEndian.PutUint32(buf, uint32(i))
		pub.publish("reuse", buf)
	}
	for j := range buf {
		buf[j] = 0xee
	}
	for _, n := range []*node{pub, sub} {
		n.waitCount("reuse", count)
		for i, p := range n.payloads("reuse") {
			want := bytes.Repeat([]byte{byte(i)}, size)
			binary.BigEndian.PutUint32(want, uint32(i))
			if p != string(want) {
				t.Fatalf("%s: packet %d was changed after Publish returned: % x…", n.name, i, p[:8])
			}
		}
	}
}

// testReentrant: a Receiver may call its broker: Subscribe (which waits
// for the engine) and Publish from within Receive.
func testReentrant(t *testing.T, newNode NewNode) {
	pub := start(t, newNode, "publisher")
	b := newNode(t)
	rec := newRecorder()
	rec.react = func(topic string, _ []byte) {
		if topic != "ask" {
			return
		}
		if err := b.Subscribe("answer"); err != nil {
			t.Errorf("Subscribe from Receive: %v", err)
		}
		if err := b.Publish("reply", []byte("subscribed")); err != nil {
			t.Errorf("Publish from Receive: %v", err)
		}
	}
	n := startWith(t, b, "reentrant", rec)
	n.subscribe("ask")
	pub.subscribe("reply")
	pub.publish("ask", []byte("?"))
	pub.waitFor("reply", "subscribed")
	pub.publish("answer", []byte("!"))
	n.waitFor("answer", "!")
}

// testClose: Close during a burst returns, no Receive call follows it,
// Close again is no error, and the closed broker refuses Subscribe and
// Publish. An unstarted broker closes too.
func testClose(t *testing.T, newNode NewNode) {
	pub, sub := start(t, newNode, "publisher"), start(t, newNode, "subscriber")
	sub.subscribe("closing")
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := pub.b.Publish("closing", fmt.Appendf(nil, "%d", i)); err != nil {
				t.Errorf("Publish: %v", err)
				return
			}
			if i%100 == 99 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	select {
	case <-sub.rec.first:
	case <-time.After(waitTimeout):
		t.Fatal("no packet arrived")
	}
	closed := make(chan error, 1)
	go func() { closed <- sub.b.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	sub.rec.closed.Store(true)
	time.Sleep(quiet)
	close(stop)
	<-published
	if late := sub.rec.late.Load(); late > 0 {
		t.Errorf("%d Receive calls after Close returned", late)
	}
	if err := sub.b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := sub.b.Subscribe("closing"); err == nil {
		t.Error("Subscribe after Close returned no error")
	}
	if err := sub.b.Publish("closing", []byte("x")); err == nil {
		t.Error("Publish after Close returned no error")
	}

	if err := newNode(t).Close(); err != nil {
		t.Errorf("Close of a broker never started: %v", err)
	}
}
