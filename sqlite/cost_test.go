package sqlite

import (
	"syscall"
	"testing"
	"time"

	lib "modernc.org/sqlite/lib"
)

// cost measures what a benchmark's messages cost beyond its wall time:
// pages written by the writer connection (SQLITE_DBSTATUS_CACHE_WRITE:
// each is a 4 KiB WAL frame, fsynced at commit and copied again at
// checkpoint) and CPU time of the whole process, both per message.
type cost struct {
	s     *Store
	pages int64
	cpu   time.Duration
}

func startCost(s *Store) *cost { return &cost{s: s, pages: s.writerPages(), cpu: cpuTime()} }

// report adds pages/msg and cpu-µs/msg to b, for n messages, once the
// background work they caused (the full-text indexer) is done.
func (c *cost) report(b *testing.B, n int) {
	c.s.waitIndexed(b)
	b.ReportMetric(float64(c.s.writerPages()-c.pages)/float64(n), "pages/msg")
	b.ReportMetric(float64((cpuTime()-c.cpu).Microseconds())/float64(n), "cpu-µs/msg")
}

// writerPages returns how many pages the writer connection has written.
func (s *Store) writerPages() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.wc
	p := c.tls.Alloc(8)
	defer c.tls.Free(8)
	lib.Xsqlite3_db_status(c.tls, c.db, lib.SQLITE_DBSTATUS_CACHE_WRITE, p, p+4, 0)
	return int64(*(*int32)(ptr(p)))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitIndexed waits until the indexer has indexed every message.
func (s *Store) waitIndexed(t testing.TB) {
	t.Helper()
	if s.idx == nil {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pk, indexed int64
		err := s.reader.QueryRow(`SELECT coalesce(max(pk), 0) FROM messages`).Scan(&pk)
		if err == nil {
			err = s.search.QueryRow(`SELECT indexed_pk FROM state`).Scan(&indexed)
		}
		if err != nil {
			t.Fatal(err)
		}
		if indexed >= pk {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("indexer at pk %d of %d after 30s", indexed, pk)
		}
		s.idx.wake()
		time.Sleep(5 * time.Millisecond)
	}
}
