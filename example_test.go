package courier_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
	"github.com/courier-im/courier/sqlite"
)

// Embed courier in a Go program: mount its handler on your own mux and send
// to a user from your code.
func Example() {
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
	srv, err := server.New(server.Config{Hub: hub, Auth: jwt.New([]byte("jwt-secret")), APIKey: "api-key"})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	mux := http.NewServeMux()
	mux.Handle("/chat/", http.StripPrefix("/chat", srv.Handler())) // /chat/ws, /chat/api/send, ...
	_ = mux                                                        // http.ListenAndServe(":8080", mux)

	// Send to bob from Go: stored in his inbox, delivered to every device he
	// has open, replayed to those that connect later.
	r, err := hub.Send(context.Background(), courier.Outgoing{
		From: "billing", Label: true, To: "bob", Event: "invoice", Data: []byte(`{"amount":42}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("seq", r.Seq, "delivered", r.Delivered)
	// Output: seq 1 delivered 0
}
