package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/courier-im/courier"
)

// TestDataSync checks that with SyncFull the commits' WAL syncs are
// fdatasyncs (dataSync), the first one excepted (it also syncs the
// directory of the new WAL), that so is a checkpoint's sync of the database
// file, and that what they committed is there after the store is opened
// again.
func TestDataSync(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	wal, db := dataSyncs.wal.Load(), dataSyncs.db.Load()
	ctx := context.Background()
	const commits = 5
	for i := range commits {
		e := &courier.Envelope{Message: courier.Message{ID: fmt.Sprintf("m%d", i), From: "a", To: "b", Event: "message"}}
		if err := s.Append(ctx, []*courier.Envelope{e}); err != nil {
			t.Fatal(err)
		}
	}
	// Other stores of this package's parallel tests may add to the counts,
	// never take from them.
	if got := dataSyncs.wal.Load() - wal; got < commits-1 {
		t.Errorf("%d WAL syncs by fdatasync for %d commits, want at least %d", got, commits, commits-1)
	}
	// A checkpoint that copies the commits' pages syncs the database file.
	n, _ := s.ckpt.stats()
	s.ckpt.wake()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		m, err := s.ckpt.stats()
		if err != nil {
			t.Fatal(err)
		}
		if m > n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint ran")
		}
	}
	if got := dataSyncs.db.Load() - db; got < 1 {
		t.Errorf("%d database file syncs by fdatasync after a checkpoint, want at least 1", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	if got := inboxIDs(t, s, "b"); len(got) != commits {
		t.Errorf("inbox of b after reopening = %v, want %d messages", got, commits)
	}
}
