package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// searchLag is how long the suite waits for a message to become
// searchable: the contract allows 1 s, and a loaded test machine some more.
const searchLag = 5 * time.Second

// search runs s.Search of the parsed query q and returns the IDs found,
// newest first, checking each message's Seq against seqOf when it names
// the ID.
func search(t *testing.T, s courier.Store, user, q string, seqOf map[string]uint64) []string {
	t.Helper()
	pq, err := courier.ParseQuery(q)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", q, err)
	}
	ms, err := s.Search(context.Background(), user, pq, 100)
	if err != nil {
		t.Fatalf("Search(%q, %q): %v", user, q, err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
		if seq, ok := seqOf[m.ID]; ok && m.Seq != seq {
			t.Errorf("Search(%q, %q): %s has Seq %d, want %d", user, q, m.ID, m.Seq, seq)
		}
	}
	return ids
}

// searchEventually waits, up to searchLag, for Search to find want
// (newest first), and fails t if it does not.
func searchEventually(t *testing.T, s courier.Store, user, q string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(searchLag)
	for {
		got := search(t, s, user, q, nil)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("Search(%q, %q) = %v, want %v", user, q, got, want)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testSearch checks full-text search: words in nested strings of data
// (not keys, numbers or other users' messages), phrases, prefixes, AND of
// terms, case, each user's own seqs, and that a query looking like engine
// syntax finds only the user's rows and never fails.
func testSearch(t *testing.T, open Opener) {
	s := newStore(t, open)
	batch := []*courier.Envelope{
		dm("s1", "alice", "bob", at(1), data(`{"text":"Pizza on Friday?","meta":{"tags":["food","weekend"]}}`)),
		dm("s2", "bob", "alice", at(2), data(`{"text":"friday works, PIZZA it is","n":42}`)),
		dm("s3", "carol", "dave", at(3), data(`{"text":"pizza party friday, secret plans"}`)),
		dm("s4", "alice", "carol", at(4), data(`{"pizza":"no","text":"the quick brown fox"}`)),
		dm("s5", "billing", "alice", noCopy, at(5), data(`{"invoice":{"lines":[{"item":"Pizzeria dinner"}]}}`)),
		dm("s6", "alice", "alice", at(6), data(`"note: buy flour for pizza"`)),
		dm("s7", "bob", "alice", at(7), data(`{"text":"caf\u00e9 na\u00efve \u0000 fox\u0000trot e-mail","x":"\u0000"}`)),
		rm("s8", "alice", "lobby", at(8), data(`{"text":"pizza in the lobby"}`)),
		dm("s9", "alice", "bob", at(9), data(`null`)),
		dm("s10", "alice", "bob", at(10), data(`12345`)),
	}
	mustAppend(t, s, batch...)
	seqOf := func(user string) map[string]uint64 {
		m := map[string]uint64{}
		for _, e := range batch {
			switch {
			case e.To == user:
				m[e.ID] = e.ToSeq
			case e.From == user && !e.NoSenderCopy && e.Room == "":
				m[e.ID] = e.FromSeq
			}
		}
		return m
	}
	// Wait for the index: the newest direct message of each inbox.
	searchEventually(t, s, "alice", "flour", "s6")
	searchEventually(t, s, "dave", "secret", "s3")
	searchEventually(t, s, "alice", "trot", "s7")

	cases := []struct {
		user, q string
		want    []string
	}{
		{"alice", "pizza", []string{"s6", "s2", "s1"}}, // not s4's key, s5's pizzeria, s3 (carol-dave), s8 (a room)
		{"bob", "pizza", []string{"s2", "s1"}},
		{"carol", "pizza", []string{"s3"}}, // she sent s3; s4 has pizza as a key only
		{"dave", "pizza", []string{"s3"}},
		{"alice", "PIZZA", []string{"s6", "s2", "s1"}},       // case-insensitive
		{"alice", "Pizza FRIDAY", []string{"s2", "s1"}},      // AND of terms
		{"alice", `"pizza on friday"`, []string{"s1"}},       // a phrase
		{"alice", `"friday pizza"`, nil},                     // not in that order
		{"alice", `"works pizza"`, []string{"s2"}},           // punctuation between words is no word
		{"alice", "pizz*", []string{"s6", "s5", "s2", "s1"}}, // a prefix: pizzeria too
		{"alice", `"pizza on fri*"`, []string{"s1"}},         // a phrase ending in a prefix
		{"alice", "weekend", []string{"s1"}},                 // nested array in an object
		{"alice", "tags", nil},                               // keys are not indexed
		{"alice", "42", nil},                                 // numbers are not strings
		{"alice", "dinner", []string{"s5"}},                  // from a server API label: in alice's inbox
		{"billing", "dinner", nil},                           // the label has no inbox
		{"alice", "fox", []string{"s7", "s4"}},
		{"carol", "fox", []string{"s4"}},
		{"dave", "fox", nil},
		{"alice", "café", []string{"s7"}},
		{"alice", "cafe", nil}, // accents are kept
		{"alice", "e-mail", []string{"s7"}},
		{"alice", "lobby", nil}, // room messages are in no inbox
		{"alice", "secret", nil},
		{"erin", "pizza", nil}, // no inbox at all
		{"alice", "12345", nil},
	}
	for _, c := range cases {
		if got := search(t, s, c.user, c.q, seqOf(c.user)); !slices.Equal(got, c.want) {
			t.Errorf("Search(%q, %q) = %v, want %v", c.user, c.q, got, c.want)
		}
	}
	// Queries that look like FTS5 or tsquery syntax are words to the
	// parser: they find only alice's rows (if any) and never fail.
	own := seqOf("alice")
	for _, q := range []string{
		`pizza OR secret`, `pizza" OR "secret`, `NEAR(pizza secret)`, `pizza & secret`, `pizza | secret`,
		`!pizza`, `pizza:*`, `body:secret`, `owners:u1`, `{owners}: u3`, `'secret'`, `secret') OR ('1'='1`,
		`*`, `"*"`, `^pizza`, `pizza -secret`, `\secret\`, `pizza<->secret`, `(secret)`, `@1`, `u1`, `"" secret`,
	} {
		pq, err := courier.ParseQuery(q)
		if err != nil {
			if !errors.Is(err, courier.ErrBadRequest) {
				t.Errorf("ParseQuery(%q): %v, want ErrBadRequest", q, err)
			}
			continue
		}
		ms, err := s.Search(context.Background(), "alice", pq, 100)
		if err != nil {
			t.Errorf("Search(alice, %q): %v", q, err)
			continue
		}
		for _, m := range ms {
			if _, ok := own[m.ID]; !ok {
				t.Errorf("Search(alice, %q) found %s, not in alice's inbox", q, m.ID)
			}
		}
	}
	// A Query made by hand with engine syntax in a word is refused.
	for _, q := range []courier.Query{
		{}, {Terms: []courier.Term{{}}},
		{Terms: []courier.Term{{Words: []string{`pizza" OR "secret`}}}},
		{Terms: []courier.Term{{Words: []string{`secret'`}}}},
		{Terms: []courier.Term{{Words: []string{"Pizza"}}}},
		{Terms: []courier.Term{{Words: []string{""}}}},
	} {
		if ms, err := s.Search(context.Background(), "alice", q, 100); !errors.Is(err, courier.ErrBadRequest) {
			t.Errorf("Search(alice, %+v) = %d messages, %v; want ErrBadRequest", q, len(ms), err)
		}
	}
	// The limit.
	pq, _ := courier.ParseQuery("pizza")
	if ms, err := s.Search(context.Background(), "alice", pq, 2); err != nil || len(ms) != 2 || ms[0].ID != "s6" {
		t.Errorf("Search(alice, pizza, limit 2) = %v, %v; want s6, s2", ms, err)
	}
	checkFound(t, s, batch[1], own[batch[1].ID])
}

// checkFound checks that Search returns e whole, with seq.
func checkFound(t *testing.T, s courier.Store, e *courier.Envelope, seq uint64) {
	t.Helper()
	pq, _ := courier.ParseQuery("works")
	ms, err := s.Search(context.Background(), e.To, pq, 10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Search(%s, works) = %v, %v; want one message", e.To, ms, err)
	}
	checkMessage(t, ms[0], e, seq)
}

// testSearchMany checks search over more messages than one batch of
// indexing, appended in many batches, and that each user finds only
// their own.
func testSearchMany(t *testing.T, open Opener) {
	s := newStore(t, open)
	users := []string{"u0", "u1", "u2", "u3"}
	count := map[string]int{}
	n, last := 0, ""
	for b := range 30 {
		var batch []*courier.Envelope
		for i := range 40 {
			from, to := users[(b+i)%4], users[(b+2*i+1)%4]
			word := "odd"
			if n%2 == 0 {
				word = "even"
			}
			batch = append(batch, dm(fmt.Sprint("m", n), from, to, at(n), data(fmt.Sprintf(`{"text":"message %s w%d"}`, word, n))))
			last = to
			if word == "even" {
				count[to]++
				if from != to {
					count[from]++
				}
			}
			n++
		}
		mustAppend(t, s, batch...)
	}
	searchEventually(t, s, last, fmt.Sprintf("w%d", n-1), fmt.Sprint("m", n-1))
	for _, u := range users {
		pq, _ := courier.ParseQuery("even message")
		deadline := time.Now().Add(searchLag)
		for {
			ms, err := s.Search(context.Background(), u, pq, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == count[u] || time.Now().After(deadline) {
				if len(ms) != count[u] {
					t.Errorf("Search(%s, even message) found %d, want %d", u, len(ms), count[u])
				}
				for i := 1; i < len(ms); i++ {
					if ms[i].Seq >= ms[i-1].Seq {
						t.Errorf("Search(%s): seq %d after %d: not newest first", u, ms[i].Seq, ms[i-1].Seq)
						break
					}
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
