package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
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

// Page through a conversation, newest first.
func ExampleClient_History() {
	url, stop := exampleServer("jwt-secret")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := exampleDial(ctx, url, "jwt-secret", "alice", client.Options{})
	defer alice.Close()
	for i := 1; i <= 5; i++ {
		alice.Send(ctx, "bob", "chat", map[string]int{"n": i})
	}

	q := client.HistoryQuery{With: "bob", Limit: 2}
	for {
		page, err := alice.History(ctx, q)
		if err != nil {
			log.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		var line []string
		for _, m := range page {
			line = append(line, fmt.Sprintf("seq %d: %s", m.Seq, m.Data))
		}
		fmt.Println(strings.Join(line, ", "))
		q.Before = page[len(page)-1].Seq // the next page is older
	}
	// Output:
	// seq 5: {"n":5}, seq 4: {"n":4}
	// seq 3: {"n":3}, seq 2: {"n":2}
	// seq 1: {"n":1}
}

// Search one's own messages. New messages may take up to a second to be
// found.
func ExampleClient_Search() {
	url, stop := exampleServer("jwt-secret")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := exampleDial(ctx, url, "jwt-secret", "alice", client.Options{})
	defer alice.Close()
	alice.Send(ctx, "bob", "chat", map[string]string{"text": "pizza on friday?"})
	alice.Send(ctx, "bob", "chat", map[string]string{"text": "or sushi"})

	for {
		found, err := alice.Search(ctx, "pizza", 20)
		if err != nil {
			log.Fatal(err)
		}
		if len(found) > 0 {
			fmt.Printf("%d found: %s\n", len(found), found[0].Data)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err := alice.Search(ctx, `"unbalanced`, 20)
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println("bad query:", e.Code)
	}
	// Output:
	// 1 found: {"text":"pizza on friday?"}
	// bad query: bad_request
}

// Watch a user's presence: the current state first, then each change.
func ExampleClient_Watch() {
	url, stop := exampleServer("jwt-secret")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := exampleDial(ctx, url, "jwt-secret", "alice", client.Options{Events: true})
	defer alice.Close()

	if err := alice.Watch(ctx, "bob"); err != nil {
		log.Fatal(err)
	}
	show := func() {
		p := (<-alice.Events()).(client.PresenceChange)
		fmt.Printf("%s online=%v seen before=%v\n", p.User, p.Online, !p.LastSeen.IsZero())
	}
	show()
	bob := exampleDial(ctx, url, "jwt-secret", "bob", client.Options{})
	show()
	bob.Close()
	show()

	ps, _ := alice.Presence(ctx, "bob")
	fmt.Println("bob online:", ps["bob"].Online)
	// Output:
	// bob online=false seen before=false
	// bob online=true seen before=false
	// bob online=false seen before=true
	// bob online: false
}

// Receipts: the sender hears when its message was delivered, then read.
func ExampleClient_Read() {
	url, stop := exampleServer("jwt-secret")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := exampleDial(ctx, url, "jwt-secret", "alice", client.Options{Events: true})
	defer alice.Close()
	bob := exampleDial(ctx, url, "jwt-secret", "bob", client.Options{})
	defer bob.Close()

	ack, _ := alice.Send(ctx, "bob", "chat", "hi")
	m := <-bob.Messages()
	if err := bob.Read(ctx, "alice", m.Seq); err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		switch e := (<-alice.Events()).(type) {
		case client.Receipt:
			fmt.Println(e.Status, "by", e.By, "same message:", e.Msg == ack.Msg)
		}
	}
	// Output:
	// delivered by bob same message: true
	// read by bob same message: true
}

// List conversations with their unread counts.
func ExampleClient_Conversations() {
	url, stop := exampleServer("jwt-secret")
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := exampleDial(ctx, url, "jwt-secret", "alice", client.Options{})
	defer alice.Close()
	bob := exampleDial(ctx, url, "jwt-secret", "bob", client.Options{})
	defer bob.Close()
	bob.Send(ctx, "alice", "chat", "one")
	bob.Send(ctx, "alice", "chat", "two")
	alice.Send(ctx, "carol", "chat", "hello carol")

	cs, err := alice.Conversations(ctx, 50)
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range cs {
		fmt.Printf("%s: last %s, %d unread\n", c.With, c.Last.Data, c.Unread)
	}
	// Output:
	// carol: last "hello carol", 0 unread
	// bob: last "two", 2 unread
}

// exampleDial connects user with a token signed with secret.
func exampleDial(ctx context.Context, url, secret, user string, opts client.Options) *client.Client {
	opts.Token, _ = jwt.Mint([]byte(secret), user, time.Hour, nil)
	c, err := client.Dial(ctx, url, opts)
	if err != nil {
		log.Fatal(err)
	}
	return c
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
