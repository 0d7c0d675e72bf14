package load

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histBuckets covers every uint64: 256 exact buckets, then 128 buckets per
// power of two, so a quantile is within 1/128 (0.8%) of the true value.
const histBuckets = 256 + 56*128

// Hist is a log-linear (HDR-style) latency histogram of fixed size
// (about 60 KiB) that many goroutines may record into at once.
type Hist struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

func histIndex(v uint64) int {
	if v < 256 {
		return int(v)
	}
	e := bits.Len64(v) - 8
	return 256 + (e-1)*128 + int(v>>e) - 128
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 256 {
		return uint64(i)
	}
	e := (i-256)/128 + 1
	m := uint64((i-256)%128 + 128)
	return m<<e + (uint64(1)<<e)/2
}

// Record adds one observation; negative durations count as zero.
func (h *Hist) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[histIndex(uint64(v))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Hist) Count() uint64 { return h.n.Load() }

// Max is the largest observation.
func (h *Hist) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the q-quantile (0 < q <= 1), 0 when empty.
func (h *Hist) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	want = min(max(want, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= want {
			return min(time.Duration(histValue(i)), h.Max())
		}
	}
	return h.Max()
}
