package client_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/client"
	"github.com/courier-im/courier/jwt"
	"github.com/courier-im/courier/server"
	"github.com/courier-im/courier/sqlite"
)

// Connect two users, send a message from one to the other and receive it.
func ExampleDial() {
	// A courier server on a loopback port (in real life: courier serve).
	url, stop := exampleServer("jwt-secret")
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	aliceToken, _ := jwt.Mint([]byte("jwt-secret"), "alice", time.Hour, nil)
	bobToken, _ := jwt.Mint([]byte("jwt-secret"), "bob", time.Hour, nil)

	bob, err := client.Dial(ctx, url, client.Options{
		// TokenFunc is asked again when the token expires.
		TokenFunc: func(context.Context) (string, error) { return bobToken, nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()
	alice, err := client.Dial(ctx, url, client.Options{Token: aliceToken})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()

	ack, err := alice.Send(ctx, "bob", "chat", map[string]string{"text": "hi bob"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice's ack: seq", ack.Seq)

	m := <-bob.Messages()
	fmt.Printf("bob got %s from %s: %s (seq %d)\n", m.Event, m.From, m.Data, m.Seq)
	// Output:
	// alice's ack: seq 1
	// bob got chat from alice: {"text":"hi bob"} (seq 1)
}

// exampleServer runs a courier node with an SQLite store in a temporary
// directory and returns its ws:// URL and a function that stops it.
func exampleServer(secret string) (string, func()) {
	dir, err := os.MkdirTemp("", "courier-client-example")
	if err != nil {
		log.Fatal(err)
	}
	store, err := sqlite.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	hub, err := courier.NewHub(courier.Config{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.New(server.Config{Hub: hub, Auth: jwt.New([]byte(secret)), APIKey: "api-key"})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	return "ws://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
		srv.Shutdown(ctx)
		hub.Close()
		srv.Close()
		store.Close()
		os.RemoveAll(dir)
	}
}
