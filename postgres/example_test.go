package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/postgres"
)

// Every node of a cluster opens the same database (and schema); the first
// to start creates the tables. The store is then given to the node's hub as
// its courier.Config.Store.
func ExampleOpen() {
	ctx := context.Background()
	url := os.Getenv("COURIER_STORE") // e.g. postgres://courier:secret@db:5432/courier?sslmode=verify-full
	store, err := postgres.Open(ctx, url, postgres.Options{Schema: "courier"})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	e := &courier.Envelope{
		Message: courier.Message{ID: "m1", From: "alice", To: "bob", Event: "chat",
			Data: []byte(`{"text":"hi bob"}`), Time: courier.Now()},
		Key: "alice-1", // a retry with this key, through any node, is a Duplicate
	}
	if err := store.Append(ctx, []*courier.Envelope{e}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob's seq", e.ToSeq, "alice's seq", e.FromSeq)

	msgs, err := store.Inbox(ctx, "bob", 0, 50) // bob reconnecting with since=0
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Println(m.Seq, m.From, string(m.Data))
	}
}
