// Command latplot draws latency percentiles against offered rate from
// courier-bench JSON lines (dm scenario, volatile --rate runs in JSON
// without compression), one line per target and percentile, each point the
// median of the runs at that rate, as the PNG in docs/benchmarks.md.
//
//	go run ./bench/plot/latplot -out docs/latency.png bench/results/*.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/courier-im/courier/bench/plot"
)

type run struct {
	Target   string  `json:"target"`
	Scenario string  `json:"scenario"`
	Mode     string  `json:"mode"`
	Durable  bool    `json:"durable"`
	Encoding string  `json:"encoding"`
	Compress bool    `json:"compress"`
	Rate     float64 `json:"rate"`
	P50      float64 `json:"lat_p50_ms"`
	P99      float64 `json:"lat_p99_ms"`
}

func main() {
	out := flag.String("out", "latency.png", "PNG file to write")
	flag.Parse()
	// target → rate → the runs' percentiles; the median run is drawn.
	p50 := map[string]map[float64][]float64{}
	p99 := map[string]map[float64][]float64{}
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fail(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r run
			if json.Unmarshal(sc.Bytes(), &r) != nil || r.Scenario != "dm" || r.Mode != "rate" || r.Durable ||
				(r.Encoding != "" && r.Encoding != "json") || r.Compress {
				continue
			}
			for m, v := range map[*map[string]map[float64][]float64]float64{&p50: r.P50, &p99: r.P99} {
				if (*m)[r.Target] == nil {
					(*m)[r.Target] = map[float64][]float64{}
				}
				(*m)[r.Target][r.Rate] = append((*m)[r.Target][r.Rate], v)
			}
		}
		f.Close()
	}
	var series []plot.Series
	for _, target := range sortedKeys(p50) {
		for _, pc := range []struct {
			name string
			m    map[float64][]float64
		}{{"p50", p50[target]}, {"p99", p99[target]}} {
			s := plot.Series{Name: target + " " + pc.name}
			rates := make([]float64, 0, len(pc.m))
			for r := range pc.m {
				rates = append(rates, r)
			}
			sort.Float64s(rates)
			for _, r := range rates {
				s.X = append(s.X, r)
				s.Y = append(s.Y, median(pc.m[r]))
			}
			series = append(series, s)
		}
	}
	c := plot.Chart{Title: "Direct messages, 1,000 users, volatile: end-to-end latency vs offered rate (one core each; medians of the runs)",
		XLabel: "offered msg/s", YLabel: "latency, ms (log)", Series: series}
	w, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	if err := c.WritePNG(w); err != nil {
		fail(err)
	}
	if err := w.Close(); err != nil {
		fail(err)
	}
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "latplot:", err)
	os.Exit(1)
}
