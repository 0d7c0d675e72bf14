package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// summarizeFile prints markdown tables (median, with every run's value in
// brackets) from a JSON-lines file written by -out.
//
// Throughput runs during which other work on the machine used more than
// maxOther cores (see otherCPU) are left out of the table and listed below it.
func summarizeFile(path string, maxOther float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct {
		mode string
		n    int
		lib  string
	}
	groups := map[key][]result{}
	var excluded []result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if r.Mode == "throughput" && otherCPU(r) > maxOther {
			excluded = append(excluded, r)
			continue
		}
		k := key{r.Mode, r.N, r.Lib}
		groups[k] = append(groups[k], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	libOrder := map[string]int{}
	for i, l := range libs {
		libOrder[l] = i
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.mode != b.mode {
			return a.mode < b.mode
		}
		if a.n != b.n {
			return a.n < b.n
		}
		return libOrder[a.lib] < libOrder[b.lib]
	})

	col := func(rs []result, get func(result) float64, format string) string {
		vals := make([]string, len(rs))
		for i, r := range rs {
			vals[i] = fmt.Sprintf(format, get(r))
		}
		return fmt.Sprintf(format+" (%s)", median(rs, get), strings.Join(vals, ", "))
	}

	var lastMode string
	var lastN int
	for _, k := range keys {
		rs := groups[k]
		if k.mode != lastMode || k.n != lastN {
			lastMode, lastN = k.mode, k.n
			fmt.Println()
			switch k.mode {
			case "idle":
				fmt.Printf("Idle, N = %d (median, then each run in order)\n\n", k.n)
				fmt.Println("| library | runs | server RSS KiB/conn | Go heap KiB/conn | Go stack KiB/conn | goroutines/conn | server conns seen | kernel slab KiB/socket |")
				fmt.Println("|---|---|---|---|---|---|---|---|")
			case "throughput":
				fmt.Printf("Echo throughput, %d conns (median, then each run in order)\n\n", k.n)
				fmt.Println("| library | runs | msg/s round-tripped | server CPU s per s | msg per server CPU-s | client CPU s per s | goroutines under load | server RSS under load MiB | core 0 busy (softirq) | core 1 busy (softirq) | other load, cores |")
				fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
			}
		}
		switch k.mode {
		case "idle":
			fmt.Printf("| %s | %d | %s | %s | %s | %s | %s | %s |\n", k.lib, len(rs),
				col(rs, func(r result) float64 { return r.KiBPerConn }, "%.2f"),
				col(rs, func(r result) float64 { return r.HeapPerConn }, "%.2f"),
				col(rs, func(r result) float64 { return r.StackPerConn }, "%.2f"),
				col(rs, func(r result) float64 { return r.GorPerConn }, "%.2f"),
				col(rs, func(r result) float64 { return float64(r.SrvConn) }, "%.0f"),
				col(rs, func(r result) float64 { return r.SlabKiBPerSock }, "%.2f"))
		case "throughput":
			fmt.Printf("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k.lib, len(rs),
				col(rs, func(r result) float64 { return r.MsgPerSec }, "%.0f"),
				col(rs, func(r result) float64 { return r.ServerCPU / r.Interval }, "%.2f"),
				col(rs, func(r result) float64 { return r.MsgPerCPU }, "%.0f"),
				col(rs, func(r result) float64 { return r.ClientCPU / r.Interval }, "%.2f"),
				col(rs, func(r result) float64 { return float64(r.GorUnderLoad) }, "%.0f"),
				col(rs, func(r result) float64 { return float64(r.RSSLoadKiB) / 1024 }, "%.1f"),
				fmt.Sprintf("%.2f (%.2f)", mean(rs, func(r result) float64 { return r.CPU0Busy }), mean(rs, func(r result) float64 { return r.CPU0SoftIRQ })),
				fmt.Sprintf("%.2f (%.2f)", mean(rs, func(r result) float64 { return r.CPU1Busy }), mean(rs, func(r result) float64 { return r.CPU1SoftIRQ })),
				col(rs, otherCPU, "%.2f"))
		}
	}
	if len(excluded) > 0 {
		fmt.Printf("\nLeft out: %d throughput runs with other load > %.2f cores:", len(excluded), maxOther)
		for _, r := range excluded {
			fmt.Printf(" %s %.0f msg/s (%.0f msg/CPU-s, other %.2f);", r.Lib, r.MsgPerSec, r.MsgPerCPU, otherCPU(r))
		}
		fmt.Println()
	}
	return nil
}

func mean(rs []result, get func(result) float64) float64 {
	var s float64
	for _, r := range rs {
		s += get(r)
	}
	return s / float64(len(rs))
}

func median(rs []result, get func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = get(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
