package brokertest_test

import (
	"testing"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/brokertest"
	"github.com/courier-im/courier/inprocess"
)

// downLink cuts an inprocess node off its network with SetDown, as a Proxy
// cuts a networked broker's connection.
type downLink struct{ b *inprocess.Broker }

func (l downLink) Down() { l.b.SetDown(true) }
func (l downLink) Up()   { l.b.SetDown(false) }

func TestInprocess(t *testing.T) {
	network := inprocess.NewNetwork()
	newBroker := func(t *testing.T) *inprocess.Broker {
		b := network.Broker()
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	newNode := func(t *testing.T) courier.Broker { return newBroker(t) }
	brokertest.Run(t, newNode)
	brokertest.RunReconnect(t, newNode, func(t *testing.T) (courier.Broker, brokertest.Link) {
		b := newBroker(t)
		return b, downLink{b}
	})
	other := inprocess.NewNetwork()
	brokertest.RunIsolated(t, newNode, func(t *testing.T) courier.Broker {
		b := other.Broker()
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

func BenchmarkInprocess(b *testing.B) {
	network := inprocess.NewNetwork()
	brokertest.Benchmark(b, func(b *testing.B) courier.Broker {
		node := network.Broker()
		b.Cleanup(func() { _ = node.Close() })
		return node
	})
}
