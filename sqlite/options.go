package sqlite

import "time"

// Synchronous is the durability an acknowledged Append has, set with
// WithSynchronous; it maps to SQLite's PRAGMA synchronous.
//
// In WAL mode SyncFull syncs the WAL to disk at every commit (with
// fdatasync on Linux, as checkpoints sync the database file; see
// dataSync), so an Append that has returned
// survives a crash of the process, of the OS, and a power loss (as far as
// the disk honours flushes). SyncNormal fsyncs only at checkpoints: a
// returned Append survives a crash of the process (its WAL frames are in the
// OS page cache), but an OS crash or power loss can lose the transactions
// committed since the last checkpoint; the database stays consistent either
// way, it just goes back in time.
//
// SyncFull is the default: acknowledged must mean committed. Its cost is one
// fsync per commit, which the hub's group commit shares over the batch; on
// the 2-vCPU VM of the numbers in the package's benchmarks, about 100µs plus
// 5µs per 4 KiB page of the commit, a third or more of BenchmarkDurableSend.
// SyncNormal saves that, and is as safe as SyncFull against a crash of the
// process: a committed transaction is in the OS's page cache when Append
// returns (with SyncNormal the store writes the WAL straight through, see
// walBufVFS). It is not safe against an OS crash or power loss, which can
// lose the transactions since the last checkpoint: for deployments that
// accept losing the last moments then.
type Synchronous int

const (
	// SyncFull is PRAGMA synchronous=FULL: durable across power loss.
	SyncFull Synchronous = iota
	// SyncNormal is PRAGMA synchronous=NORMAL: durable across process crash
	// only.
	SyncNormal
)

func (s Synchronous) pragma() string {
	if s == SyncNormal {
		return "NORMAL"
	}
	return "FULL"
}

// An Option configures Open.
type Option func(*config)

type config struct {
	sync        Synchronous
	readers     int
	busyTimeout time.Duration
}

// WithSynchronous sets the durability of a committed Append; SyncFull by
// default.
func WithSynchronous(s Synchronous) Option { return func(c *config) { c.sync = s } }

// WithReaders sets the number of read connections; by default
// max(4, GOMAXPROCS).
func WithReaders(n int) Option { return func(c *config) { c.readers = n } }

// WithBusyTimeout sets how long a statement waits for a lock held by another
// connection (another process on the same file, or a checkpoint) before it
// fails; 5s by default.
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }
