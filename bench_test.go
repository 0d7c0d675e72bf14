package courier_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/inprocess"
	"github.com/courier-im/courier/sqlite"
)

// sink is a Link that only counts.
type sink struct{ n atomic.Int64 }

func (s *sink) Deliver(*courier.Delivery)     { s.n.Add(1) }
func (s *sink) Drained(context.Context) error { return nil }
func (s *sink) Close(int, string)             {}

func benchHub(b *testing.B) (*courier.Hub, []*sink) {
	store, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	hub, err := courier.NewHub(courier.Config{Store: store})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = hub.Close()
		_ = store.Close()
	})
	sinks := make([]*sink, 1000)
	for i := range sinks {
		sinks[i] = &sink{}
		hub.Attach(hub.NewConn(courier.Identity{User: fmt.Sprintf("u%d", i)}, sinks[i]), nil, nil)
	}
	return hub, sinks
}

// BenchmarkVolatileSend is the routing cost of a live-only direct message:
// validation, id, lookup and hand-off to the recipient's connection.
func BenchmarkVolatileSend(b *testing.B) {
	hub, _ := benchHub(b)
	data := []byte(`"0123456789012345678901234567890123456789012345678901234567890123"`)
	done := func(courier.Receipt, error) {}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			hub.Post(courier.Outgoing{From: "u1", To: fmt.Sprintf("u%d", i%1000), Event: "chat", Data: data, Volatile: true}, done)
			i++
		}
	})
}

// BenchmarkDurableSend is a stored direct message through the group
// commit, many senders at once, as the server sees them.
func BenchmarkDurableSend(b *testing.B) {
	hub, _ := benchHub(b)
	data := []byte(`"0123456789012345678901234567890123456789012345678901234567890123"`)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := hub.Send(context.Background(), courier.Outgoing{From: "u1", To: fmt.Sprintf("u%d", i%1000), Event: "chat", Data: data}); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkClusterVolatileSend is a live direct message from one node to a
// recipient on another, through an in-process broker: the cost of the
// cluster path (encode, publish, receive, decode, hand-off), without the
// network of a real broker. ns/op is per delivered message.
func BenchmarkClusterVolatileSend(b *testing.B) {
	store, err := sqlite.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	net := inprocess.NewNetwork()
	var hubs []*courier.Hub
	for range 2 {
		br := net.Broker()
		h, err := courier.NewHub(courier.Config{Store: store, Broker: br, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		hubs = append(hubs, h)
		b.Cleanup(func() { _ = h.Close(); _ = br.Close() })
	}
	b.Cleanup(func() { _ = store.Close() })
	sinks := make([]*sink, 1000)
	for i := range sinks {
		sinks[i] = &sink{}
		hubs[1].Attach(hubs[1].NewConn(courier.Identity{User: fmt.Sprintf("u%d", i)}, sinks[i]), nil, nil)
	}
	data := []byte(`"0123456789012345678901234567890123456789012345678901234567890123"`)
	done := func(courier.Receipt, error) {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		hubs[0].Post(courier.Outgoing{From: "sender", To: fmt.Sprintf("u%d", i%1000), Event: "chat", Data: data, Volatile: true}, done)
	}
	total := func() (n int64) {
		for _, s := range sinks {
			n += s.n.Load()
		}
		return n
	}
	for total() < int64(b.N) {
		runtime.Gosched()
	}
}

// BenchmarkAttach is what the hub keeps for an idle connection: one
// attached connection per op, each of its own user, and the heap they hold
// once attached (heap-B/conn; the transport's share is in the idle scenario
// of courier-bench). "resumed" connections have also replayed their inbox,
// as clients that reconnect do.
func BenchmarkAttach(b *testing.B) {
	for _, resume := range []bool{false, true} {
		b.Run(map[bool]string{false: "fresh", true: "resumed"}[resume], func(b *testing.B) {
			hub, _ := benchHub(b)
			conns := make([]*courier.Conn, 0, b.N)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for i := range b.N {
				c := hub.NewConn(courier.Identity{User: fmt.Sprintf("idle%d", i)}, &sink{})
				hub.Attach(c, nil, nil)
				if resume {
					done := make(chan error, 1)
					c.Resume(0, func(_ uint64, err error) { done <- err })
					if err := <-done; err != nil {
						b.Fatal(err)
					}
				}
				conns = append(conns, c)
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "heap-B/conn")
			runtime.KeepAlive(conns)
		})
	}
}
