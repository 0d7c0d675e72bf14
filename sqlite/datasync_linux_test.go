package sqlite

import (
	"context"
	"fmt"
	"testing"

	"github.com/courier-im/courier"
)

// TestWALDataSync checks that with SyncFull the commits' WAL syncs are
// fdatasyncs (dataSync), the first one excepted (it also syncs the
// directory of the new WAL), and that what they committed is there after
// the store is opened again.
func TestWALDataSync(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	before := dataSyncs.Load()
	ctx := context.Background()
	const commits = 5
	for i := range commits {
		e := &courier.Envelope{Message: courier.Message{ID: fmt.Sprintf("m%d", i), From: "a", To: "b", Event: "message"}}
		if err := s.Append(ctx, []*courier.Envelope{e}); err != nil {
			t.Fatal(err)
		}
	}
	// Other stores of this package's parallel tests may add to the count,
	// never take from it.
	if got := dataSyncs.Load() - before; got < commits-1 {
		t.Errorf("%d WAL syncs by fdatasync for %d commits, want at least %d", got, commits, commits-1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	if got := inboxIDs(t, s, "b"); len(got) != commits {
		t.Errorf("inbox of b after reopening = %v, want %d messages", got, commits)
	}
}
