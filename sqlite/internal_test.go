package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	c, err := openRaw(filepath.Join(dir, FileName), "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.exec("PRAGMA journal_mode = WAL"); err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(c, ms[:1]); err != nil {
		t.Fatal(err)
	}
	err = c.exec(`
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
