package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/courier-im/courier"
)

// BenchmarkAppend measures Append per message: one op is one message,
// appended in batches of the given size, with both Synchronous settings.
// Messages go between 1000 users, each with an idempotency key, one in
// eight to one of 10 rooms.
//
// µs and allocs per message, -benchtime 2s, 2-vCPU VM shared with other
// jobs (±30%), before (one statement per row through database/sql, text
// keys, max(seq)) and after the write path described in the package doc:
//
//	                  before         after
//	FULL   batch=1    290-450 / 159  285-355 / 8
//	FULL   batch=16   114-138 / 129   59-65  / 8
//	FULL   batch=128   88-115 / 127   42-60  / 8
//	NORMAL batch=128  108-125 / 127   53-63  / 8
//
// The 8 allocations are the benchmark's own. batch=4096 is the hub's
// largest commit (courier.DefaultMaxBatch): FULL 20-27 µs per message,
// 25-34 cpu-µs/msg and 0.32 pages/msg, against 38-48, 42-52 and 3.05 at
// 128 (2026-12-07, a quiet hour).
//
// pages/msg and cpu-µs/msg (cost_test.go) are the pages the writer wrote
// and the CPU time of the whole process, the search indexer's included
// (the benchmark waits for it before it stops counting), per message. BenchmarkDurableSend (package
// courier, the hub's group commit of ~32 messages from 64 senders) went
// from 48-55µs and 100 allocs a message to 21-30µs and 10, all the hub's.
func BenchmarkAppend(b *testing.B) {
	data := json.RawMessage(`{"text":"hello there, this is a message of some ordinary length","n":42}`)
	for _, sync := range []Synchronous{SyncFull, SyncNormal} {
		for _, size := range []int{1, 16, 128, 4096} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync.pragma(), size), func(b *testing.B) {
				s := openTest(b, b.TempDir(), WithSynchronous(sync))
				defer s.Close()
				rng := rand.New(rand.NewPCG(1, 2))
				ctx := context.Background()
				now := courier.Now()
				batch := make([]*courier.Envelope, 0, size)
				b.ReportAllocs()
				c := startCost(s)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					e := &courier.Envelope{
						Message: courier.Message{
							ID: fmt.Sprintf("m%d", i), From: fmt.Sprintf("u%d", rng.IntN(1000)),
							Event: "message", Data: data, Time: now,
						},
						Key: fmt.Sprintf("k%d", i),
					}
					if rng.IntN(8) == 0 {
						e.Room = fmt.Sprintf("room%d", rng.IntN(10))
					} else {
						e.To = fmt.Sprintf("u%d", rng.IntN(1000))
					}
					batch = append(batch, e)
					if len(batch) == size || i == b.N-1 {
						if err := s.Append(ctx, batch); err != nil {
							b.Fatal(err)
						}
						batch = batch[:0]
					}
				}
				b.StopTimer()
				c.report(b, b.N)
			})
		}
	}
}
