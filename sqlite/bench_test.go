package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/courier-im/courier"
)

// countedSeq makes a Store give out seqs from counter tables, bumped by an
// upsert, instead of max(seq)+1: the alternative BenchmarkAppend measures.
func countedSeq(c *config) {
	c.seqSchema = `
		CREATE TABLE IF NOT EXISTS inbox_heads (user TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) STRICT, WITHOUT ROWID;
		CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) STRICT, WITHOUT ROWID;`
	c.seqSQL = [2]string{
		`INSERT INTO inbox_heads (user, last_seq) VALUES (?, 1)
			ON CONFLICT (user) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`,
		`INSERT INTO rooms (room, last_seq) VALUES (?, 1)
			ON CONFLICT (room) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq`,
	}
}

// BenchmarkAppend measures Append per message: one op is one message,
// appended in batches of the given size. It covers both Synchronous settings
// and both ways of giving out seqs: max(seq)+1 (what Open does) and counter
// tables. Messages go between 1000 users, each with an idempotency key, one
// in eight to one of 10 rooms.
func BenchmarkAppend(b *testing.B) {
	data := json.RawMessage(`{"text":"hello there, this is a message of some ordinary length","n":42}`)
	for _, sync := range []Synchronous{SyncFull, SyncNormal} {
		for _, seq := range []string{"max", "counter"} {
			for _, size := range []int{1, 16, 128} {
				name := fmt.Sprintf("sync=%s/seq=%s/batch=%d", sync.pragma(), seq, size)
				b.Run(name, func(b *testing.B) {
					opts := []Option{WithSynchronous(sync)}
					if seq == "counter" {
						opts = append(opts, countedSeq)
					}
					s := openTest(b, b.TempDir(), opts...)
					defer s.Close()
					rng := rand.New(rand.NewPCG(1, 2))
					ctx := context.Background()
					now := courier.Now()
					batch := make([]*courier.Envelope, 0, size)
					b.ReportAllocs()
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
				})
			}
		}
	}
}
