package redis_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/brokertest"
	"github.com/courier-im/courier/redis"
)

// redisAddr is where the development machines and CI run Redis.
const redisAddr = "127.0.0.1:6379"

// testLogger shows warnings on stderr, which go test prints for a failing
// package or with -v.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func newBroker(tb testing.TB, addr string, opts redis.Options) *redis.Broker {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger
	}
	b, err := redis.New("redis://"+addr, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

func TestBroker(t *testing.T) {
	addr := brokertest.Service(t, "Redis", redisAddr)
	opts := redis.Options{Prefix: brokertest.Unique("courier-test") + ":"}
	newNode := func(t *testing.T) courier.Broker { return newBroker(t, addr, opts) }
	brokertest.Run(t, newNode)
	brokertest.RunReconnect(t, newNode, func(t *testing.T) (courier.Broker, brokertest.Link) {
		proxy := brokertest.NewProxy(t, addr)
		return newBroker(t, proxy.Addr(), opts), proxy
	})
	// A read waits three health intervals, here 300ms, for a ping's answer.
	silent := opts
	silent.HealthInterval = 100 * time.Millisecond
	brokertest.RunSilent(t, 600*time.Millisecond, newNode, func(t *testing.T) (courier.Broker, *brokertest.Proxy) {
		proxy := brokertest.NewProxy(t, addr)
		return newBroker(t, proxy.Addr(), silent), proxy
	})
	small := opts
	small.ReceiveBuffer = 64 // bytes
	small.Logger = slog.New(slog.DiscardHandler)
	brokertest.RunOverflow(t, newNode, func(t *testing.T) courier.Broker { return newBroker(t, addr, small) },
		func(t *testing.T, b courier.Broker) {
			if s := b.(*redis.Broker).Stats(); s.Dropped == 0 {
				t.Errorf("stats: %+v", s)
			}
		})
	other := redis.Options{Prefix: brokertest.Unique("courier-test") + ":"}
	brokertest.RunIsolated(t, newNode, func(t *testing.T) courier.Broker { return newBroker(t, addr, other) })
}

// TestStats: the counters follow what was published and received.
func TestStats(t *testing.T) {
	addr := brokertest.Service(t, "Redis", redisAddr)
	b := newBroker(t, addr, redis.Options{Prefix: brokertest.Unique("courier-test") + ":"})
	r := brokertest.NewChanReceiver()
	if err := b.Start(r); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe("room"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("room", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Payloads:
	case <-time.After(10 * time.Second):
		t.Fatal("no packet arrived")
	}
	// The publisher counts once Redis answered, which may be after the
	// packet came back.
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().Published == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := b.Stats(); s.Published != 1 || s.Received != 1 || s.Dropped != 0 || s.PublishFailed != 0 {
		t.Errorf("stats: %+v", s)
	}
}

func TestNewErrors(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:1", "http://127.0.0.1:6379", "redis://user:secret@[::1",
		"redis://user:secret@127.0.0.1:1"} {
		_, err := redis.New(u, redis.Options{Timeout: time.Second})
		if err == nil {
			t.Errorf("New(%q) returned no error", u)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%q): the error shows the password: %v", u, err)
		}
	}
}

func BenchmarkThroughput(b *testing.B) {
	addr := brokertest.Service(b, "Redis", redisAddr)
	opts := redis.Options{Prefix: brokertest.Unique("courier-bench") + ":"}
	brokertest.Benchmark(b, func(b *testing.B) courier.Broker { return newBroker(b, addr, opts) })
}
