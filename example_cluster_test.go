package courier_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/inprocess"
	"github.com/courier-im/courier/sqlite"
)

// chanLink is a Link that passes what it is given to a channel.
type chanLink chan *courier.Delivery

func (l chanLink) Deliver(d *courier.Delivery) { l <- d }
func (chanLink) Drained(context.Context) error { return nil }
func (chanLink) Close(int, string)             {}

// Two hubs joined by a broker serve a user wherever its connections are.
// Between processes the broker is nats.New or redis.New, and the store is
// shared (postgres.Open); here both hubs live in one process.
func ExampleConfig_broker() {
	dir, _ := os.MkdirTemp("", "courier-example")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	network := inprocess.NewNetwork()
	quiet := slog.New(slog.DiscardHandler)
	var hubs []*courier.Hub
	for range 2 {
		broker := network.Broker()
		defer broker.Close()
		hub, err := courier.NewHub(courier.Config{Store: store, Broker: broker, Logger: quiet})
		if err != nil {
			log.Fatal(err)
		}
		defer hub.Close()
		hubs = append(hubs, hub)
	}
	for hubs[0].ClusterStats().Nodes < 2 {
		time.Sleep(time.Millisecond) // the hubs find each other
	}

	// bob's device is on the second hub; alice's API call reaches the first.
	bob := make(chanLink, 1)
	hubs[1].Attach(hubs[1].NewConn(courier.Identity{User: "bob"}, bob), nil, nil)
	r, err := hubs[0].Send(context.Background(), courier.Outgoing{From: "alice", To: "bob", Data: []byte(`"hi"`)})
	if err != nil {
		log.Fatal(err)
	}
	d := <-bob
	fmt.Printf("bob got %s from %s at seq %d; delivered %d\n", d.Data, d.From, d.Seq, r.Delivered)
	// Output: bob got "hi" from alice at seq 1; delivered 1
}

// A conversation read back from one side's inbox, newest first.
func ExampleHub_History() {
	dir, _ := os.MkdirTemp("", "courier-example")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	hub, err := courier.NewHub(courier.Config{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	ctx := context.Background()
	for _, o := range []courier.Outgoing{
		{From: "alice", To: "bob", Data: []byte(`{"text":"pizza tonight?"}`)},
		{From: "bob", To: "alice", Data: []byte(`{"text":"yes!"}`)},
	} {
		if _, err := hub.Send(ctx, o); err != nil {
			log.Fatal(err)
		}
	}
	msgs, err := hub.History(ctx, "alice", "bob", 0, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Printf("%d %s: %s\n", m.Seq, m.From, m.Data)
	}
	// Output:
	// 2 bob: {"text":"yes!"}
	// 1 alice: {"text":"pizza tonight?"}
}
