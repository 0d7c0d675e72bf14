package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

func dmAt(id, from, to string, ms int) *courier.Envelope {
	return &courier.Envelope{Message: courier.Message{ID: id, From: from, To: to, Event: "message",
		Data: json.RawMessage(`{"id":"` + id + `"}`), Time: time.UnixMilli(int64(ms)).UTC()}}
}

func inboxIDs(t *testing.T, s *Store, user string) []string {
	t.Helper()
	ms, err := s.Inbox(context.Background(), user, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, m := range ms {
		if m.Seq != uint64(i+1) {
			t.Errorf("inbox %s: %s at seq %d, want %d", user, m.ID, m.Seq, i+1)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// TestTwoStoresOneFile checks that the heads Append keeps in memory follow
// commits by another connection to the same file (PRAGMA data_version):
// two stores taking turns give out every seq once.
func TestTwoStoresOneFile(t *testing.T) {
	dir := t.TempDir()
	a, b := openTest(t, dir), openTest(t, dir)
	defer a.Close()
	defer b.Close()
	var want []string
	for i := range 20 {
		s := a
		if i%3 == 2 {
			s = b
		}
		id := fmt.Sprint("m", i)
		room := &courier.Envelope{Message: courier.Message{ID: id + "r", From: "ann", Room: "hall", Time: time.Now()}}
		if err := s.Append(context.Background(), []*courier.Envelope{dmAt(id, "ann", "bo", i), room}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		want = append(want, id)
	}
	for _, s := range []*Store{a, b} {
		for _, u := range []string{"ann", "bo"} {
			if got := inboxIDs(t, s, u); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("inbox %s holds %v, want %v", u, got, want)
			}
		}
	}
	e := &courier.Envelope{Message: courier.Message{ID: "last", From: "ann", Room: "hall"}}
	if err := a.Append(context.Background(), []*courier.Envelope{e}); err != nil || e.ToSeq != 21 {
		t.Errorf("room seq after 20 messages from two stores: %d, %v; want 21", e.ToSeq, err)
	}
}

// TestMigrateFromV1 opens a database of schema version 1, with data, and
// checks that version 2 keeps it: inboxes, seqs, keys.
func TestMigrateFromV1(t *testing.T) {
	dir := t.TempDir()
	c := rawAtVersion(t, dir, 1)
	err := c.exec(`
		INSERT INTO messages (pk, id, sender, recipient, room, event, data, ts, sender_key, to_seq, from_seq) VALUES
			(1, 'm1', 'ann', 'bo', '', 'message', '{}', 1, 'k1', 1, 1),
			(2, 'm2', 'bo', 'ann', '', 'message', '{}', 2, NULL, 2, 2),
			(3, 'm3', 'api', 'bo', '', 'message', '{}', 3, NULL, 3, 0),
			(4, 'r1', 'ann', '', 'hall', 'message', '{}', 4, NULL, 1, 0);
		INSERT INTO inbox (user, seq, msg, peer) VALUES
			('bo', 1, 1, 'ann'), ('ann', 1, 1, 'bo'), ('ann', 2, 2, 'bo'), ('bo', 2, 2, 'ann'), ('bo', 3, 3, 'api');
		INSERT INTO room_messages (room, seq, msg) VALUES ('hall', 1, 4);`)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir)
	defer s.Close()
	if got := strings.Join(inboxIDs(t, s, "bo"), ","); got != "m1,m2,m3" {
		t.Errorf("bo's inbox after migration: %s, want m1,m2,m3", got)
	}
	if got := strings.Join(inboxIDs(t, s, "ann"), ","); got != "m1,m2" {
		t.Errorf("ann's inbox after migration: %s, want m1,m2", got)
	}
	batch := []*courier.Envelope{
		dmAt("m4", "ann", "bo", 5),
		{Message: courier.Message{ID: "dup", From: "ann", To: "cy"}, Key: "k1"},
		{Message: courier.Message{ID: "r2", From: "bo", Room: "hall"}},
	}
	if err := s.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if e := batch[0]; e.ToSeq != 4 || e.FromSeq != 3 {
		t.Errorf("first message after migration: seqs %d/%d, want 4/3", e.ToSeq, e.FromSeq)
	}
	if e := batch[1]; !e.Duplicate || e.ID != "m1" {
		t.Errorf("key stored before migration: duplicate %v of %s, want of m1", e.Duplicate, e.ID)
	}
	if e := batch[2]; e.ToSeq != 2 {
		t.Errorf("room message after migration: seq %d, want 2", e.ToSeq)
	}
	var n int64
	if err := s.reader.QueryRow(`SELECT count(*) FROM inbox AS i JOIN users AS u ON u.uid = i.uid
		JOIN users AS p ON p.uid = i.peer WHERE u.name = 'bo' AND p.name = 'api'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("conversation bo-api after migration: %d rows, %v; want 1", n, err)
	}
}

// TestBigTransaction writes a batch larger than the WAL buffer, then
// reads it from another connection and after reopening.
func TestBigTransaction(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	pad := strings.Repeat("x", 100<<10)
	var batch []*courier.Envelope
	for i := range 120 { // 12 MB > walBufMax
		e := dmAt(fmt.Sprint("m", i), "ann", "bo", i)
		e.Data = json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))
		batch = append(batch, e)
	}
	if err := s.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	var n, size int64
	if err := rawDB(t, s.Path()).QueryRow(`SELECT count(*), sum(length(data)) FROM messages`).Scan(&n, &size); err != nil || n != 120 || size < 120*100<<10 {
		t.Errorf("another connection sees %d messages of %d bytes, %v; want 120 of 12 MB", n, size, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	ms, err := s.Inbox(context.Background(), "bo", 110, 100)
	if err != nil || len(ms) != 10 || !strings.Contains(string(ms[9].Data), pad) {
		t.Fatalf("after reopen: %d messages, %v", len(ms), err)
	}
}

// TestWALBounded checks that checkpoints run and keep the WAL near
// writerCheckpointFrames pages while far more than that is written.
func TestWALBounded(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	// The checkpoints alone: readers, such as the search indexer, hold
	// snapshots that a checkpoint must leave in the WAL, so the WAL grows
	// past the bound while they read.
	s.idx.close()
	pad := strings.Repeat("y", 12<<10) // 4 pages a message
	ctx := context.Background()
	var most int64
	for i := range 100 { // 100 * 32 * 4 = 12800 pages, past the bound
		var batch []*courier.Envelope
		for j := range 32 {
			e := dmAt(fmt.Sprint("m", i, "-", j), "ann", fmt.Sprint("u", j), i)
			e.Data = json.RawMessage(fmt.Sprintf("%q", pad))
			batch = append(batch, e)
		}
		if err := s.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(s.Path() + "-wal"); err == nil {
			most = max(most, fi.Size())
		}
	}
	n, err := s.ckpt.stats()
	if n == 0 || err != nil {
		t.Errorf("background checkpoints: %d, last error %v", n, err)
	}
	// A commit here is about 200 frames: the bound is one commit's worth
	// past the threshold, and some.
	if bound := int64(writerCheckpointFrames+512) * (4096 + 24); most > bound {
		t.Errorf("WAL grew to %d bytes, want at most %d", most, bound)
	}
}

func TestHeadsTrim(t *testing.T) {
	h := newHeads()
	h.max = 10
	for i := range 25 {
		h.users[fmt.Sprint("u", i)] = &head{id: int64(i)}
	}
	h.trim()
	if n := len(h.users); n > 10 || n < 5 {
		t.Errorf("%d users remembered after trim, want 5 to 10", n)
	}
}

func TestAppendCanceled(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := dmAt("m1", "ann", "bo", 1)
	if err := s.Append(ctx, []*courier.Envelope{e}); err == nil || e.ToSeq != 0 {
		t.Errorf("Append with a canceled context: %v, seq %d; want an error", err, e.ToSeq)
	}
	if got := inboxIDs(t, s, "bo"); len(got) != 0 {
		t.Errorf("canceled Append stored %v", got)
	}
}

// TestWALRemovedAtClose checks that Close closes the writer last, so that
// it checkpoints and removes the WAL, with either VFS.
func TestWALRemovedAtClose(t *testing.T) {
	for _, sync := range []Synchronous{SyncFull, SyncNormal} {
		t.Run(sync.pragma(), func(t *testing.T) { walRemoved(t, sync) })
	}
}

func walRemoved(t *testing.T, sync Synchronous) {
	dir := t.TempDir()
	s := openTest(t, dir, WithSynchronous(sync))
	if err := s.Append(context.Background(), []*courier.Envelope{{Message: courier.Message{ID: "x", From: "a", To: "b"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Inbox(context.Background(), "b", 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path() + "-wal"); err == nil {
		t.Errorf("WAL left after Close")
	}
}

// reopenWithoutIndex closes s, removes its search index file and opens the
// store in dir again: the indexer must then fill the index from the file.
func reopenWithoutIndex(t *testing.T, s *Store, dir string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(dir, SearchFileName+suffix)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return openTest(t, dir)
}

// TestSearchIndexRebuilt checks that the search index, derived data in a
// file of its own, is filled again from the messages when the file is
// gone or of another version.
func TestSearchIndexRebuilt(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	e := dmAt("m1", "ann", "bo", 1)
	e.Data = json.RawMessage(`{"text":"pumpkin soup"}`)
	if err := s.Append(ctx, []*courier.Envelope{e}); err != nil {
		t.Fatal(err)
	}
	q, err := courier.ParseQuery("pumpkin")
	if err != nil {
		t.Fatal(err)
	}
	found := func(s *Store) {
		t.Helper()
		s.waitIndexed(t)
		ms, err := s.Search(ctx, "bo", q, 10)
		if err != nil || len(ms) != 1 || ms[0].ID != "m1" || ms[0].Seq != 1 {
			t.Errorf("Search(bo, pumpkin) = %+v, %v; want m1 at seq 1", ms, err)
		}
	}
	found(s)
	s = reopenWithoutIndex(t, s, dir)
	found(s)
	if _, err := s.search.Exec(`PRAGMA user_version = 99; UPDATE state SET indexed_pk = 12345`); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	defer s.Close()
	found(s)
	if n, err := s.idx.stats(); err != nil {
		t.Errorf("indexer: %d runs, last error %v", n, err)
	}
}

// TestMarksRideAlong checks that delivered marks queued while the writer
// is busy commit with the next Append, and wait for the next transaction
// when that Append fails.
func TestMarksRideAlong(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	appendOne := func(e *courier.Envelope) error { return s.Append(ctx, []*courier.Envelope{e}) }
	if err := appendOne(dmAt("m1", "ann", "bo", 1)); err != nil {
		t.Fatal(err)
	}
	req := &markReq{ids: []string{"m1", "nope"}, answered: make(chan struct{})}
	s.marks.add(req)
	if err := appendOne(dmAt("m2", "bo", "ann", 2)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	done, out := req.done, req.out
	s.mu.Unlock()
	if want := []courier.FirstDelivery{{ID: "m1", From: "ann", To: "bo"}}; !done || !slices.Equal(out, want) {
		t.Errorf("after an Append, the queued mark is done %v with %+v; want %+v", done, out, want)
	}
	req2 := &markReq{ids: []string{"m2"}, answered: make(chan struct{})}
	s.marks.add(req2)
	if err := appendOne(dmAt("m1", "cy", "di", 3)); err == nil {
		t.Fatal("Append of a stored id succeeded")
	}
	if req2.done || len(s.marks.pending) != 1 {
		t.Fatalf("after a failed Append: done %v, %d queued; want the mark queued again", req2.done, len(s.marks.pending))
	}
	got, err := s.MarkDelivered(ctx, []string{"m2", "m1"})
	if err != nil || len(got) != 0 || !req2.done || len(req2.out) != 1 || req2.out[0].ID != "m2" {
		t.Errorf("MarkDelivered = %+v, %v; queued mark %+v; want none, and m2 to the queued one", got, err, req2)
	}
}

// TestUpgradeFromVersion3 checks that a database of schema version 3, with
// messages, gets their conversation entries (in the migration) and their
// search rows (from the indexer), and goes on from there.
func TestUpgradeFromVersion3(t *testing.T) {
	dir := t.TempDir()
	c := rawAtVersion(t, dir, 3)
	// Version 3 rows as its Append wrote them: ann -> bo, then bo -> ann.
	err := c.exec(`INSERT INTO users (uid, name) VALUES (1, 'ann'), (2, 'bo');
		INSERT INTO messages (pk, id, sender, recipient, event, data, ts, to_seq, from_seq) VALUES
			(1, 'm1', 'ann', 'bo', 'message', '{"text":"historic pumpkin"}', 1, 1, 1),
			(2, 'm2', 'bo', 'ann', 'message', '{"text":"old soup"}', 2, 2, 2);
		INSERT INTO inbox (uid, peer, seq, msg) VALUES (2, 0, 1, 1), (2, 1, 1, 1), (1, 0, 1, 1), (1, 2, 1, 1),
			(1, 0, 2, 2), (1, 2, 2, 2), (2, 0, 2, 2), (2, 1, 2, 2)`)
	if err := errors.Join(err, c.close()); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir)
	defer s.Close()
	ctx := context.Background()
	cs, err := s.Conversations(ctx, "bo", 10)
	if err != nil || len(cs) != 1 || cs[0].With != "ann" || cs[0].Last.ID != "m2" || cs[0].Last.Seq != 2 || cs[0].Unread != 1 {
		t.Errorf("Conversations(bo) after the upgrade = %+v, %v; want ann, m2 at 2, 1 unread", cs, err)
	}
	s.waitIndexed(t)
	for _, c := range []struct{ user, q, want string }{{"bo", "pumpkin", "m1"}, {"ann", "historic", "m1"}, {"ann", "soup", "m2"}} {
		q, _ := courier.ParseQuery(c.q)
		if found, err := s.Search(ctx, c.user, q, 10); err != nil || len(found) != 1 || found[0].ID != c.want {
			t.Errorf("Search(%s, %s) after the upgrade = %+v, %v; want %s", c.user, c.q, found, err, c.want)
		}
	}
	e := dmAt("m3", "ann", "bo", 3)
	if err := s.Append(ctx, []*courier.Envelope{e}); err != nil || e.ToSeq != 3 || e.FromSeq != 3 {
		t.Errorf("Append after the upgrade: %v, seqs %d, %d; want 3, 3", err, e.ToSeq, e.FromSeq)
	}
	if cs, err := s.Conversations(ctx, "bo", 10); err != nil || len(cs) != 1 || cs[0].Last.ID != "m3" || cs[0].Unread != 2 {
		t.Errorf("Conversations(bo) = %+v, %v; want m3, 2 unread", cs, err)
	}
}

// rawAtVersion creates the database in dir at schema version v, in WAL
// mode, and returns a connection to it.
func rawAtVersion(t *testing.T, dir string, v int) *rawConn {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	c, err := openRaw(filepath.Join(dir, FileName), "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(c.exec("PRAGMA journal_mode = WAL"), migrateTo(c, ms[:v])); err != nil {
		c.close()
		t.Fatal(err)
	}
	return c
}

// TestIndexerHandOff checks that what Append hands the indexer in memory
// indexes the same as reading the messages back from the file (as after a
// restart, a gap, or a full queue): every kind of message, each in the
// right users' results.
func TestIndexerHandOff(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	msg := func(id, from, to, room string, noCopy bool) *courier.Envelope {
		return &courier.Envelope{Message: courier.Message{ID: id, From: from, To: to, Room: room, Event: "message",
			Data: json.RawMessage(`{"text":"walnut ` + id + `"}`), Time: time.Now()}, NoSenderCopy: noCopy}
	}
	batch := []*courier.Envelope{
		msg("dm", "ann", "bo", "", false), msg("self", "ann", "ann", "", false),
		msg("nocopy", "api", "bo", "", true), msg("room", "ann", "", "hall", false),
	}
	if err := s.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	q, err := courier.ParseQuery("walnut")
	if err != nil {
		t.Fatal(err)
	}
	results := func(s *Store) string {
		t.Helper()
		s.waitIndexed(t)
		var out []string
		for _, u := range []string{"ann", "bo", "api"} {
			ms, err := s.Search(ctx, u, q, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				out = append(out, fmt.Sprintf("%s:%s@%d", u, m.ID, m.Seq))
			}
		}
		return strings.Join(out, " ")
	}
	const want = "ann:self@2 ann:dm@1 bo:nocopy@2 bo:dm@1"
	if got := results(s); got != want {
		t.Errorf("indexed from memory: %s, want %s", got, want)
	}
	s.idx.mu.Lock()
	fromMemory := s.idx.fromMemory
	s.idx.maxHanded = 0 // a full queue: Append hands over nothing more
	s.idx.mu.Unlock()
	if fromMemory != len(batch) {
		t.Errorf("%d messages indexed from memory, want %d", fromMemory, len(batch))
	}
	if err := s.Append(ctx, []*courier.Envelope{msg("late", "bo", "ann", "", false)}); err != nil {
		t.Fatal(err)
	}
	const wantLate = "ann:late@3 ann:self@2 ann:dm@1 bo:late@3 bo:nocopy@2 bo:dm@1"
	if got := results(s); got != wantLate {
		t.Errorf("indexed from the file after a full queue: %s, want %s", got, wantLate)
	}
	s.idx.mu.Lock()
	if s.idx.fromMemory != fromMemory {
		t.Errorf("%d messages indexed from memory after the queue was full, want %d", s.idx.fromMemory, fromMemory)
	}
	s.idx.mu.Unlock()
	s = reopenWithoutIndex(t, s, dir)
	defer s.Close()
	if got := results(s); got != wantLate {
		t.Errorf("indexed from the file after a restart: %s, want %s", got, wantLate)
	}
}

// TestIndexerGap checks that two stores appending to one file, each with
// a queue of only its own messages, index every message of both.
func TestIndexerGap(t *testing.T) {
	dir := t.TempDir()
	a, b := openTest(t, dir), openTest(t, dir)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	for i := range 12 {
		s := a
		if i%3 == 1 {
			s = b
		}
		e := dmAt(fmt.Sprint("m", i), "ann", "bo", i)
		e.Data = json.RawMessage(`{"text":"hazel"}`)
		if err := s.Append(ctx, []*courier.Envelope{e}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := courier.ParseQuery("hazel")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		s.waitIndexed(t)
		if ms, err := s.Search(ctx, "bo", q, 100); err != nil || len(ms) != 12 {
			t.Errorf("Search(bo, hazel) found %d messages (%v), want 12", len(ms), err)
		}
	}
}

// TestMarksWaitForAnAppend checks that MarkDelivered leaves its marks to
// the next Append when one comes within the wait, and commits them itself
// when none does.
func TestMarksWaitForAnAppend(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, []*courier.Envelope{dmAt("m1", "ann", "bo", 1)}); err != nil {
		t.Fatal(err)
	}
	s.marks.wait = time.Minute // the Append below comes first, however slow the machine
	type result struct {
		out []courier.FirstDelivery
		err error
	}
	got := make(chan result, 1)
	go func() {
		out, err := s.MarkDelivered(ctx, []string{"m1"})
		got <- result{out, err}
	}()
	for queued := 0; queued == 0; {
		time.Sleep(time.Millisecond)
		s.marks.mu.Lock()
		queued = len(s.marks.pending)
		s.marks.mu.Unlock()
	}
	if err := s.Append(ctx, []*courier.Envelope{dmAt("m2", "bo", "ann", 2)}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	s.mu.Lock()
	own := s.marks.own
	s.mu.Unlock()
	if want := []courier.FirstDelivery{{ID: "m1", From: "ann", To: "bo"}}; r.err != nil || !slices.Equal(r.out, want) || own != 0 {
		t.Errorf("MarkDelivered beside an Append = %+v, %v, with %d transactions of its own; want %+v and none", r.out, r.err, own, want)
	}
	s.marks.wait = time.Millisecond
	out, err := s.MarkDelivered(ctx, []string{"m2"})
	s.mu.Lock()
	own = s.marks.own
	s.mu.Unlock()
	if want := []courier.FirstDelivery{{ID: "m2", From: "bo", To: "ann"}}; err != nil || !slices.Equal(out, want) || own != 1 {
		t.Errorf("MarkDelivered alone = %+v, %v, with %d transactions of its own; want %+v and one", out, err, own, want)
	}
}
