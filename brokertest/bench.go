package brokertest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// BenchTopics and BenchPayload are the shape of Benchmark's traffic.
const (
	BenchTopics  = 1000
	BenchPayload = 64
	// benchWindow caps the packets in flight, so that the benchmark
	// measures what the receiver sustains rather than how fast a
	// publisher fills buffers (and an engine drops what overflows them).
	benchWindow = 10000
)

// Benchmark measures packets per second from one node to another:
// newNode(b) is called twice, the second node subscribes to BenchTopics
// topics, and the first publishes b.N packets of BenchPayload bytes over
// them in turn, with at most 10,000 in flight. It reports packets/s, the
// time and allocations per op (one packet, both nodes counted) and fails
// if a packet is lost.
func Benchmark(b *testing.B, newNode func(b *testing.B) courier.Broker) {
	pub, sub := newNode(b), newNode(b)
	counter := &countingReceiver{}
	if err := pub.Start(counter); err != nil { // the publisher receives nothing
		b.Fatal(err)
	}
	if err := sub.Start(counter); err != nil {
		b.Fatal(err)
	}
	topics := make([]string, BenchTopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench:user:%d", i)
		if err := sub.Subscribe(topics[i]); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, BenchPayload)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i%256 == 0 {
			for int64(i)-counter.n.Load() > benchWindow {
				time.Sleep(50 * time.Microsecond)
			}
		}
		if err := pub.Publish(topics[i%BenchTopics], payload); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for counter.n.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d packets after a minute", counter.n.Load(), b.N)
		}
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "packets/s")
	if got := counter.n.Load(); got != int64(b.N) {
		b.Fatalf("received %d packets, published %d", got, b.N)
	}
}

// countingReceiver counts packets.
type countingReceiver struct{ n atomic.Int64 }

func (c *countingReceiver) Receive(string, []byte) { c.n.Add(1) }
func (c *countingReceiver) Reconnected()           {}
