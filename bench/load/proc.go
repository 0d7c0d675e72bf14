package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clkTck = 100

// RSSKiB returns VmRSS of process pid (0: this process) in KiB.
func RSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(v))
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in %s", procPath(pid, "status"))
}

// CPUSeconds returns the user+system CPU time process pid (0: this
// process) has used, from /proc/PID/stat.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields after the last ')' start with field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed " + procPath(pid, "stat"))
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short " + procPath(pid, "stat"))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(ut+st) / clkTck, nil
}

// ServerCPU returns the CPU seconds the processes pids have used, added
// up; a process that cannot be read counts 0.
func ServerCPU(pids []int) float64 { return sumProcs(pids, CPUSeconds) }

// ServerRSSKiB returns the RSS of the processes pids, added up.
func ServerRSSKiB(pids []int) int64 { return sumProcs(pids, RSSKiB) }

func sumProcs[T int64 | float64](pids []int, f func(int) (T, error)) T {
	var sum T
	for _, pid := range pids {
		v, _ := f(pid)
		sum += v
	}
	return sum
}

// MachineBusy returns the CPU seconds all cores have spent busy (not idle
// or waiting for I/O) since boot, from /proc/stat.
func MachineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		busy += n
	}
	return float64(busy) / clkTck
}

// SelfCPU returns this process's user+system CPU time from getrusage,
// which is finer than /proc/self/stat's clock ticks.
func SelfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return "/proc/" + strconv.Itoa(pid) + "/" + file
}

// RaiseNoFile raises this process's RLIMIT_NOFILE soft limit to its hard
// limit and returns the new soft limit.
func RaiseNoFile() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return l.Cur, err
		}
	}
	return l.Cur, nil
}

// NoFileLimit returns the "Max open files" soft limit of process pid, or 0
// when unknown.
func NoFileLimit(pid int) uint64 {
	b, err := os.ReadFile(procPath(pid, "limits"))
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("Max open files")); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// FindListener returns the pid of the process with a TCP socket listening
// on port, found through the socket's inode in /proc/net/tcp{,6} and the
// process's /proc/PID/fd links.
func FindListener(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			fl := strings.Fields(line)
			if i == 0 || len(fl) < 10 || fl[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fl[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if ok && err == nil && int(p) == port && fl[9] != "0" {
				inodes["socket:["+fl[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no socket listens on port %d", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, dir := range procs {
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && inodes[link] {
				return strconv.Atoi(filepath.Base(filepath.Dir(dir)))
			}
		}
	}
	return 0, fmt.Errorf("no process found for the listener on port %d", port)
}

// ScrapeAll scrapes every endpoint in urls and adds their samples up; a
// name is in the result only when every endpoint had it.
func ScrapeAll(ctx context.Context, urls []string, names ...string) map[string]float64 {
	if len(urls) == 0 {
		return nil
	}
	sum := map[string]float64{}
	seen := map[string]int{}
	for _, u := range urls {
		for k, v := range ScrapeMetrics(ctx, u, names...) {
			sum[k] += v
			seen[k]++
		}
	}
	for k, n := range seen {
		if n < len(urls) {
			delete(sum, k)
		}
	}
	return sum
}

// ScrapeMetrics fetches a Prometheus text endpoint and returns the values
// of the unlabelled samples names that it has; nil when it cannot be
// read.
func ScrapeMetrics(ctx context.Context, url string, names ...string) map[string]float64 {
	if url == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return parseMetrics(resp.Body, names)
}

func parseMetrics(r io.Reader, names []string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			rest, ok := strings.CutPrefix(line, name)
			if !ok || len(rest) == 0 || rest[0] != ' ' {
				continue
			}
			if v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64); err == nil {
				out[name] = v
			}
		}
	}
	return out
}
