package nats_test

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/brokertest"
	"github.com/courier-im/courier/nats"
)

// natsAddr is where the development machines and CI run NATS.
const natsAddr = "127.0.0.1:4222"

// testLogger shows warnings on stderr, which go test prints for a failing
// package or with -v.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func newBroker(tb testing.TB, addr string, opts nats.Options) *nats.Broker {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger
	}
	b, err := nats.New("nats://"+addr, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

func TestBroker(t *testing.T) {
	addr := brokertest.Service(t, "NATS", natsAddr)
	opts := nats.Options{Prefix: brokertest.Unique("courier-test")}
	newNode := func(t *testing.T) courier.Broker { return newBroker(t, addr, opts) }
	brokertest.Run(t, newNode)
	brokertest.RunReconnect(t, newNode, func(t *testing.T) (courier.Broker, brokertest.Link) {
		proxy := brokertest.NewProxy(t, addr)
		return newBroker(t, proxy.Addr(), opts), proxy
	})
	// Two unanswered pings, 100ms apart, make a connection stale.
	silent := opts
	silent.PingInterval = 100 * time.Millisecond
	brokertest.RunSilent(t, 600*time.Millisecond, newNode, func(t *testing.T) (courier.Broker, *brokertest.Proxy) {
		proxy := brokertest.NewProxy(t, addr)
		return newBroker(t, proxy.Addr(), silent), proxy
	})
	// A buffer of 4 packets overflows as a slow consumer.
	small := opts
	small.ReceiveBuffer = 4
	small.Logger = slog.New(slog.DiscardHandler)
	brokertest.RunOverflow(t, newNode, func(t *testing.T) courier.Broker { return newBroker(t, addr, small) },
		func(t *testing.T, b courier.Broker) {
			if s := b.(*nats.Broker).Stats(); s.Dropped == 0 || s.SlowConsumer == 0 || s.Subscriptions != 1 {
				t.Errorf("stats: %+v", s)
			}
		})
	other := nats.Options{Prefix: brokertest.Unique("courier-test") + ".other"}
	brokertest.RunIsolated(t, newNode, func(t *testing.T) courier.Broker { return newBroker(t, addr, other) })
}

func TestPublishTooLarge(t *testing.T) {
	addr := brokertest.Service(t, "NATS", natsAddr)
	b := newBroker(t, addr, nats.Options{Prefix: brokertest.Unique("courier-test")})
	if err := b.Start(brokertest.NewChanReceiver()); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("big", make([]byte, 1<<20+1)); err == nil {
		t.Error("a payload over the server's max_payload was accepted")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := nats.New("nats://127.0.0.1:1", nats.Options{}); err == nil {
		t.Error("New connected to a port where no server listens")
	}
	for _, prefix := range []string{"a b", "a..b", ".a", "a.", "a.*", ">", "a\tb"} {
		if _, err := nats.New("nats://127.0.0.1:1", nats.Options{Prefix: prefix}); err == nil {
			t.Errorf("prefix %q accepted", prefix)
		}
	}
	_, err := nats.New("nats://user:secret@127.0.0.1:1", nats.Options{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("New with a password in the URL: %v", err)
	}
}

// TestStartAfterClose: a broker closed before Start refuses to start.
func TestStartAfterClose(t *testing.T) {
	addr := brokertest.Service(t, "NATS", natsAddr)
	b, err := nats.New("nats://"+addr, nats.Options{Prefix: brokertest.Unique("courier-test")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(brokertest.NewChanReceiver()); !errors.Is(err, nats.ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func BenchmarkThroughput(b *testing.B) {
	addr := brokertest.Service(b, "NATS", natsAddr)
	opts := nats.Options{Prefix: brokertest.Unique("courier-bench")}
	brokertest.Benchmark(b, func(b *testing.B) courier.Broker { return newBroker(b, addr, opts) })
}
