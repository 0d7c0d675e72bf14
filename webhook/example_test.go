package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/courier-im/courier"
	"github.com/courier-im/courier/webhook"
)

// A receiver of the offline webhook: an http.Handler in the application's
// backend that checks the signature over the exact body before trusting it,
// then, say, sends a push notification.
func ExampleVerify() {
	const secret = "webhook-secret" // courier serve --webhook-secret

	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if !webhook.Verify(secret, body, r.Header.Get(webhook.SignatureHeader)) {
			// A 4xx other than 408 and 429 is not retried.
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n struct {
			Type    string `json:"type"` // "offline_message"
			User    string `json:"user"` // the recipient, offline
			Message struct {
				ID    string          `json:"msg"` // unique: drop repeats by it
				From  string          `json:"from"`
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
				TS    string          `json:"ts"`
				Seq   uint64          `json:"seq"` // in the recipient's inbox
			} `json:"message"`
		}
		if err := json.Unmarshal(body, &n); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		// Queue the push notification and answer at once; a 5xx, or no
		// answer within the timeout, has courier try again later.
		fmt.Printf("%s for %s: %s from %s at %s, seq %d: %s\n",
			n.Type, n.User, n.Message.Event, n.Message.From, n.Message.TS, n.Message.Seq, n.Message.Data)
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(receiver)
	defer srv.Close()

	// What courier does when it stores a message for bob while he is offline.
	notifier, err := webhook.New(webhook.Config{URL: srv.URL + "/courier", Secret: secret})
	if err != nil {
		log.Fatal(err)
	}
	notifier.Notify("bob", courier.Message{ID: "06f3a", From: "alice", To: "bob", Event: "chat",
		Data: json.RawMessage(`{"text":"hi bob"}`), Time: time.Date(2026, 11, 23, 14, 2, 11, 123e6, time.UTC), Seq: 4})
	if err := notifier.Close(context.Background()); err != nil { // sends what is queued
		log.Fatal(err)
	}
	// Output: offline_message for bob: chat from alice at 2026-11-23T14:02:11.123Z, seq 4: {"text":"hi bob"}
}
