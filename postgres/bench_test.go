package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/courier-im/courier"
)

// BenchmarkAppend measures Append per message: one op is one message,
// appended in batches of the given size, by one caller or by several
// nodes at once (each its own Store, as separate processes would be).
// Messages go between 1000 users, each with an idempotency key, one in
// eight to one of 10 rooms, as in package sqlite's BenchmarkAppend.
//
// PostgreSQL 15 (synchronous_commit on, fdatasync) on the same 2-vCPU VM
// as the benchmark, both shared with other jobs (load average 5-6 while
// measured, so absolute numbers are inflated); -benchtime 2s, 3 runs;
// µs and allocs per message, with package sqlite's SyncFull measured in
// the same minutes:
//
//	                      postgres       sqlite FULL
//	batch=1               2050-2800 / 282   1040 / 9
//	batch=16               270-335  /  59    210 / 8
//	batch=128              111-115  /  36     96 / 8
//	nodes=4/batch=16       500-680  /  59    (one writer only)
//
// A batch is two round trips and one commit (one WAL flush); the
// server's work, on the same two cores, is most of the time: the Go side
// uses under a tenth of the CPU. unnest() beat COPY at the hub's batch
// sizes (COPY is a round trip per table, and cannot be pipelined with the
// rest): batch=1 1.4 ms against 1.9 ms, batch=16 230 µs against 300-460,
// batch=128 about even. The allocations are mostly pgx boxing each array
// element into an interface as it encodes the unnest() arrays.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct{ nodes, size int }{{1, 1}, {1, 16}, {1, 128}, {4, 16}} {
		name := fmt.Sprintf("batch=%d", c.size)
		if c.nodes > 1 {
			name = fmt.Sprintf("nodes=%d/%s", c.nodes, name)
		}
		b.Run(name, func(b *testing.B) { benchAppend(b, c.nodes, c.size) })
	}
}

func benchAppend(b *testing.B, nodes, size int) {
	url := requirePostgres(b)
	schema := testSchema(b, url, b.Name()+b.TempDir())
	stores := make([]*Store, nodes)
	for i := range stores {
		stores[i] = openTest(b, url, schema)
		defer stores[i].Close()
	}
	// The steady state: every user and room has a row already (the first
	// message to a name creates it in a transaction of its own).
	_, err := stores[0].pool.Exec(context.Background(), `INSERT INTO users (name) SELECT 'u' || g FROM generate_series(0, 999) AS g;
		INSERT INTO rooms (name) SELECT 'room' || g FROM generate_series(0, 9) AS g`)
	if err != nil {
		b.Fatal(err)
	}
	data := json.RawMessage(`{"text":"hello there, this is a message of some ordinary length","n":42}`)
	now := courier.Now()
	var next atomic.Int64 // message ids, over all nodes
	var node atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(1, nodes/2)) // GOMAXPROCS is 2 here: nodes goroutines in all
	b.ResetTimer()
	run := func(s *Store, rng *rand.Rand, more func() bool) {
		batch := make([]*courier.Envelope, 0, size)
		ctx := context.Background()
		for more() {
			i := next.Add(1)
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
			if len(batch) == size {
				if err := s.Append(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			if err := s.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	if nodes == 1 {
		n := 0
		run(stores[0], rand.New(rand.NewPCG(1, 2)), func() bool { n++; return n <= b.N })
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		k := node.Add(1)
		run(stores[int(k)%nodes], rand.New(rand.NewPCG(uint64(k), 2)), pb.Next)
	})
}
