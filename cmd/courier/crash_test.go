package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Kill -9 a node on its embedded SQLite store while durable sends are in
// flight, then start it again on the same data: every message that was
// acknowledged is in its recipient's inbox, and every inbox is gap-free
// from seq 1. This is the store's promise (an ack means committed) end to
// end: with --sqlite-sync full through the WAL buffering and fdatasync of
// the sqlite package, whose buffered tail is lost with the process; with
// normal, which docs/api.md says is as safe against a crash of the process.
func TestKillEmbeddedStore(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"full", "normal"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			killEmbeddedStore(t, "--sqlite-sync", mode)
		})
	}
}

func killEmbeddedStore(t *testing.T, flags ...string) {
	dir := t.TempDir()
	args := append([]string{"--addr", "127.0.0.1:0", "--data", "data", "--jwt-secret", "S", "--api-key", "K"}, flags...)
	s := startServe(t, dir, environ(), args...)

	const recipients, senders, window = 5, 4, 32
	var mu sync.Mutex
	acked := make(map[string]string) // msg id -> recipient
	var sending sync.WaitGroup
	for i := range senders {
		ws := s.dial("token=" + url.QueryEscape(mint(t, "S", fmt.Sprint("sender", i))))
		welcome(t, ws, fmt.Sprint("sender", i))
		sending.Add(1)
		go func() {
			defer sending.Done()
			sendUntilDead(ws, recipients, window, func(msg, to string) {
				mu.Lock()
				acked[msg] = to
				mu.Unlock()
			})
		}()
	}
	// Kill once a good number of sends were acknowledged, so that the kill
	// falls among commits in progress.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d sends acknowledged in 20 s", n)
		}
	}
	if err := s.cmd.Process.Kill(); err != nil { // SIGKILL: no flush, no goodbye
		t.Fatal(err)
	}
	<-s.done
	sending.Wait()

	s2 := startServe(t, dir, environ(), args...)
	want := make(map[string]map[string]bool)
	for id, to := range acked {
		if want[to] == nil {
			want[to] = make(map[string]bool)
		}
		want[to][id] = true
	}
	for r := range recipients {
		user := fmt.Sprint("rcpt", r)
		ws := s2.dial("token=" + url.QueryEscape(mint(t, "S", user)))
		welcome(t, ws, user)
		if err := ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"resume","id":"r","since":0}`)); err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		stored := make(map[string]bool)
		for {
			f := read(t, ws)
			if f["type"] == "ack" && f["id"] == "r" {
				break
			}
			if f["type"] != "message" {
				t.Fatalf("%s: frame %v during the replay", user, f)
			}
			seqs = append(seqs, uint64(f["seq"].(float64)))
			stored[f["msg"].(string)] = true
		}
		for i, seq := range seqs {
			if seq != uint64(i+1) {
				t.Fatalf("%s: seqs %v after the restart, want 1..%d", user, seqs, len(seqs))
			}
		}
		missing := 0
		for id := range want[user] {
			if !stored[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Fatalf("%s: %d of %d acknowledged messages lost in the kill", user, missing, len(want[user]))
		}
		t.Logf("%s: %d acknowledged, %d stored", user, len(want[user]), len(seqs))
	}
}

// sendUntilDead sends durable messages to random recipients on ws, keeping
// up to window unacknowledged, and reports each ack until the connection
// ends.
func sendUntilDead(ws *websocket.Conn, recipients, window int, ack func(msg, to string)) {
	var mu sync.Mutex
	to := make(map[string]string) // frame id -> recipient, while in flight
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var f struct{ Type, ID, Msg string }
			if json.Unmarshal(b, &f) != nil || f.Type != "ack" {
				continue
			}
			mu.Lock()
			r, ok := to[f.ID]
			delete(to, f.ID)
			mu.Unlock()
			if ok && f.Msg != "" {
				ack(f.Msg, r)
				credit <- struct{}{}
			}
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-credit:
		case <-done:
			return
		}
		id, r := strconv.Itoa(i), fmt.Sprint("rcpt", rand.IntN(recipients))
		mu.Lock()
		to[id] = r
		mu.Unlock()
		frame := fmt.Sprintf(`{"type":"send","id":%q,"to":%q,"data":%d}`, id, r, i)
		if err := ws.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
			<-done
			return
		}
	}
}
