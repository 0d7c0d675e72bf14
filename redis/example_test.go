package redis_test

import (
	"fmt"
	"log/slog"

	"github.com/courier-im/courier/redis"
)

// printer is a courier.Receiver that prints what it receives.
type printer struct{}

func (printer) Receive(topic string, payload []byte) { fmt.Printf("%s: %s\n", topic, payload) }
func (printer) Reconnected()                         { fmt.Println("reconnected: catch up from the store") }

// A node joins its cluster through Redis. In a server the broker goes in
// courier.Config.Broker, and the hub starts it and subscribes to the topics
// of the connections it holds; here it is driven by hand.
func Example() {
	broker, err := redis.New("redis://127.0.0.1:6379", redis.Options{Prefix: "courier:", Logger: slog.Default()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()
	if err := broker.Start(printer{}); err != nil {
		fmt.Println(err)
		return
	}
	if err := broker.Subscribe("user:bob"); err != nil { // effective when it returns
		fmt.Println(err)
		return
	}
	// Every node subscribed to user:bob, this one included, prints it.
	if err := broker.Publish("user:bob", []byte("hi bob")); err != nil {
		fmt.Println(err)
	}
}
