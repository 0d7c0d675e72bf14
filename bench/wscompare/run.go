package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxzan/gws"
)

type runConfig struct {
	lib, mode        string
	n                int
	settle, duration time.Duration
	warmup           time.Duration
	window, size     int
	dialers, perSrc  int
	srcBase          int
	pin              bool
	out              string
}

// result is one run; it is printed and optionally appended to -out as JSON.
type result struct {
	Time    string  `json:"time"`
	Lib     string  `json:"lib"`
	Mode    string  `json:"mode"`
	N       int     `json:"n"`
	Pinned  bool    `json:"pinned"`
	Go      string  `json:"go"`
	NumCPU  int     `json:"nproc"`        // machine cores (/proc/stat), not this pinned process's
	Conns   int     `json:"connected"`    // client side successes
	SrvConn int64   `json:"server_conns"` // server's own count at measurement
	DialErr int     `json:"dial_errors"`
	DialSec float64 `json:"connect_s"`
	NoFile  uint64  `json:"rlimit_nofile"`

	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	KiBPerConn   float64 `json:"kib_per_conn"`
	HeapPerConn  float64 `json:"heap_kib_per_conn"`
	StackPerConn float64 `json:"stack_kib_per_conn"`
	GorBefore    int     `json:"goroutines_before"`
	GorAfter     int     `json:"goroutines_after"`
	GorPerConn   float64 `json:"goroutines_per_conn"`
	// Kernel slab growth on the whole machine divided by 2N sockets (both
	// ends of every loopback connection live on this machine). Informative.
	SlabKiBPerSock float64 `json:"slab_kib_per_socket"`

	Msgs       int64   `json:"msgs"`
	Interval   float64 `json:"interval_s"`
	MsgPerSec  float64 `json:"msg_per_s"`
	ServerCPU  float64 `json:"server_cpu_s"`
	MsgPerCPU  float64 `json:"msg_per_server_cpu_s"`
	ClientCPU  float64 `json:"client_cpu_s"`
	BadMsgs    int64   `json:"bad_msgs"`
	RSSLoadKiB int64   `json:"rss_under_load_kib"`
	// Whole-core accounting from /proc/stat over the measured interval, as
	// fractions of one core: busy = everything but idle and iowait; softirq
	// (loopback TCP processing) is not in any process's utime+stime.
	CPU0Busy    float64 `json:"cpu0_busy"`
	CPU0SoftIRQ float64 `json:"cpu0_softirq"`
	CPU1Busy    float64 `json:"cpu1_busy"`
	CPU1SoftIRQ float64 `json:"cpu1_softirq"`
	// OtherCPU is core time (in cores) used during the interval by anything
	// but the two benchmark processes: other work on the machine (and
	// softirq work done in ksoftirqd rather than in our processes' context).
	OtherCPU float64 `json:"other_cpu_cores"`
	// PreBusy is machine busy (in cores) in the second before the run.
	PreBusy      float64 `json:"pre_busy_cores"`
	GorUnderLoad int     `json:"goroutines_under_load"`
}

func run(cfg runConfig) error {
	// Hard bound on the whole run, whatever happens.
	watchdog := time.AfterFunc(15*time.Minute, func() {
		fmt.Fprintln(os.Stderr, "watchdog: run exceeded 15 minutes, exiting")
		os.Exit(3)
	})
	defer watchdog.Stop()

	preBusy := waitQuiet(60 * time.Second)
	srv, err := startChild(cfg)
	if err != nil {
		return err
	}
	defer srv.stop()

	res := result{
		Time: time.Now().UTC().Format(time.RFC3339), Lib: cfg.lib, Mode: cfg.mode,
		N: cfg.n, Pinned: cfg.pin, Go: runtime.Version(), NumCPU: len(coreTicks()),
		PreBusy: preBusy,
	}

	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		res.NoFile = lim.Cur
		if uint64(cfg.n)+64 > lim.Cur {
			return fmt.Errorf("-n %d needs more file descriptors than RLIMIT_NOFILE %d allows (in this process and the server)", cfg.n, lim.Cur)
		}
	}
	time.Sleep(500 * time.Millisecond)
	before, rssBefore, err := srv.stats()
	if err != nil {
		return err
	}
	res.RSSBeforeKiB, res.GorBefore = rssBefore, before.Goroutines
	slab0 := meminfoKiB("Slab")

	var recv, bad atomic.Int64
	var stopping atomic.Bool
	payload := make([]byte, cfg.size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	var handler gws.Event = gws.BuiltinEventHandler{}
	if cfg.mode == "throughput" {
		handler = &echoClient{recv: &recv, bad: &bad, stopping: &stopping, payload: payload}
	} else if cfg.mode != "idle" {
		return fmt.Errorf("unknown -mode %q", cfg.mode)
	}

	t0 := time.Now()
	conns, dialErrs := dialAll(cfg, srv.addr, handler)
	res.DialSec = time.Since(t0).Seconds()
	res.Conns, res.DialErr = len(conns), dialErrs
	defer func() {
		for _, c := range conns {
			_ = c.NetConn().Close()
		}
	}()
	fmt.Fprintf(os.Stderr, "%s/%s: %d connected, %d failed in %.1fs\n", cfg.lib, cfg.mode, len(conns), dialErrs, res.DialSec)
	if dialErrs > cfg.n/100 {
		return fmt.Errorf("too many dial errors: %d of %d", dialErrs, cfg.n)
	}

	switch cfg.mode {
	case "idle":
		time.Sleep(cfg.settle)
		after, rssAfter, err := srv.stats()
		if err != nil {
			return err
		}
		n := float64(len(conns))
		res.SrvConn = after.Conns
		res.RSSAfterKiB, res.GorAfter = rssAfter, after.Goroutines
		res.KiBPerConn = float64(rssAfter-rssBefore) / n
		res.HeapPerConn = (float64(after.HeapInuse) - float64(before.HeapInuse)) / 1024 / n
		res.StackPerConn = (float64(after.StackInuse) - float64(before.StackInuse)) / 1024 / n
		res.GorPerConn = float64(after.Goroutines-before.Goroutines) / n
		res.SlabKiBPerSock = float64(meminfoKiB("Slab")-slab0) / (2 * n)

	case "throughput":
		for _, c := range conns {
			go c.ReadLoop()
		}
		for _, c := range conns {
			for j := 0; j < cfg.window; j++ {
				if err := c.WriteMessage(gws.OpcodeText, payload); err != nil {
					return fmt.Errorf("initial write: %w", err)
				}
			}
		}
		time.Sleep(cfg.warmup)
		k0 := coreTicks()
		m0, c0, cl0, w0 := recv.Load(), procCPU(srv.pid), selfCPU(), time.Now()
		time.Sleep(cfg.duration)
		m1, c1, cl1, w1 := recv.Load(), procCPU(srv.pid), selfCPU(), time.Now()
		k1 := coreTicks()
		res.CPU0Busy, res.CPU0SoftIRQ = k1["cpu0"].busyFrac(k0["cpu0"])
		res.CPU1Busy, res.CPU1SoftIRQ = k1["cpu1"].busyFrac(k0["cpu1"])
		res.RSSLoadKiB = vmRSS(srv.pid)
		res.Interval = w1.Sub(w0).Seconds()
		res.Msgs = m1 - m0
		res.MsgPerSec = float64(res.Msgs) / res.Interval
		res.ServerCPU = c1 - c0
		res.ClientCPU = cl1 - cl0
		if res.ServerCPU > 0 {
			res.MsgPerCPU = float64(res.Msgs) / res.ServerCPU
		}
		res.OtherCPU = otherCPU(res)
		st, _, err := srv.stats()
		if err == nil {
			res.GorUnderLoad = st.Goroutines
			res.SrvConn = st.Conns
			res.GorPerConn = float64(st.Goroutines-before.Goroutines) / float64(len(conns))
		}
		stopping.Store(true)
		res.BadMsgs = bad.Load()
	}

	srv.stop() // server first: its sockets close, the client's never enter TIME_WAIT
	printResult(res)
	if cfg.out != "" {
		f, err := os.OpenFile(cfg.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		b, _ := json.Marshal(res)
		if _, err := f.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

func printResult(r result) {
	switch r.Mode {
	case "idle":
		fmt.Printf("%-12s idle n=%d conns=%d srv_conns=%d rss %d->%d KiB  %.2f KiB/conn (heap %.2f, stack %.2f)  goroutines %d->%d (%.2f/conn)  kernel slab %.2f KiB/socket  connect %.1fs\n",
			r.Lib, r.N, r.Conns, r.SrvConn, r.RSSBeforeKiB, r.RSSAfterKiB, r.KiBPerConn, r.HeapPerConn, r.StackPerConn,
			r.GorBefore, r.GorAfter, r.GorPerConn, r.SlabKiBPerSock, r.DialSec)
	case "throughput":
		fmt.Printf("%-12s throughput n=%d  %.0f msg/s  server CPU %.2fs in %.1fs  %.0f msg/server-CPU-s  client CPU %.2fs  bad=%d  goroutines %d  rss under load %d KiB  cpu0 busy %.2f (softirq %.2f) cpu1 busy %.2f (softirq %.2f)  other load %.2f cores\n",
			r.Lib, r.N, r.MsgPerSec, r.ServerCPU, r.Interval, r.MsgPerCPU, r.ClientCPU, r.BadMsgs, r.GorUnderLoad, r.RSSLoadKiB,
			r.CPU0Busy, r.CPU0SoftIRQ, r.CPU1Busy, r.CPU1SoftIRQ, r.OtherCPU)
	}
}

// echoClient keeps -window messages in flight per connection: each echo
// received is counted and answered with the next message.
type echoClient struct {
	gws.BuiltinEventHandler
	recv, bad *atomic.Int64
	stopping  *atomic.Bool
	payload   []byte
}

func (e *echoClient) OnMessage(s *gws.Conn, m *gws.Message) {
	if m.Data.Len() != len(e.payload) {
		e.bad.Add(1)
	}
	m.Close()
	e.recv.Add(1)
	if !e.stopping.Load() {
		_ = s.WriteMessage(gws.OpcodeText, e.payload)
	}
}

// dialAll opens cfg.n client connections with cfg.dialers goroutines. The
// i-th connection binds source address 127.0.0.(srcBase + i/perSrc), so
// more than ~28k connections do not exhaust one address's ephemeral ports.
func dialAll(cfg runConfig, addr string, h gws.Event) ([]*gws.Conn, int) {
	deadline := time.Now().Add(5 * time.Minute)
	var (
		next  atomic.Int64
		errs  atomic.Int64
		mu    sync.Mutex
		conns = make([]*gws.Conn, 0, cfg.n)
		wg    sync.WaitGroup
		first sync.Once
	)
	url := "ws://" + addr + "/ws"
	for w := 0; w < cfg.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.n || time.Now().After(deadline) {
					return
				}
				src := net.IPv4(127, 0, 0, byte(cfg.srcBase+i/cfg.perSrc))
				c, _, err := gws.NewClient(h, &gws.ClientOption{
					Addr:             url,
					ReadBufferSize:   1024,
					HandshakeTimeout: 10 * time.Second,
					NewDialer: func() (gws.Dialer, error) {
						return &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}, nil
					},
				})
				if err != nil {
					errs.Add(1)
					first.Do(func() { fmt.Fprintln(os.Stderr, "dial error (first):", err) })
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, int(errs.Load())
}

// child is the server process under test.
type child struct {
	cmd   *exec.Cmd
	pid   int
	addr  string
	lines chan string
	stdin interface{ Close() error }
	once  sync.Once
}

func startChild(cfg runConfig) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{exe, "-role", "server", "-lib", cfg.lib}
	env := os.Environ()
	if cfg.pin {
		ts, err := lookTaskset()
		if err != nil {
			return nil, err
		}
		args = append([]string{ts, "-c", "0"}, args...)
		env = append(env, "GOMAXPROCS=1")
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, lines: make(chan string, 16), stdin: stdin}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.stop()
				return nil, errors.New("server exited before listening")
			}
			if strings.HasPrefix(l, "LISTEN ") {
				c.addr = strings.TrimPrefix(l, "LISTEN ")
				return c, nil
			}
			fmt.Fprintln(os.Stderr, "server:", l)
		case <-timeout:
			c.stop()
			return nil, errors.New("server start timed out")
		}
	}
}

// stats asks the child for GC + FreeOSMemory + stats, then reads its VmRSS.
func (c *child) stats() (serverStats, int64, error) {
	if err := syscall.Kill(c.pid, syscall.SIGUSR1); err != nil {
		return serverStats{}, 0, err
	}
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return serverStats{}, 0, errors.New("server exited")
			}
			if st, ok := parseStatsLine(l); ok {
				return st, vmRSS(c.pid), nil
			}
		case <-timeout:
			return serverStats{}, 0, errors.New("stats timed out")
		}
	}
}

func (c *child) stop() {
	c.once.Do(func() {
		_ = c.stdin.Close()
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	})
}

// vmRSS returns VmRSS of pid in KiB, from /proc/PID/status.
func vmRSS(pid int) int64 {
	return procStatusKiB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
}

func meminfoKiB(key string) int64 { return procStatusKiB("/proc/meminfo", key) }

func procStatusKiB(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key+":") {
			f := strings.Fields(line[len(key)+1:])
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

// clkTck is USER_HZ, 100 on Linux/amd64 and arm64.
const clkTck = 100.0

// procCPU returns utime+stime of pid in seconds, from /proc/PID/stat.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	// After "pid (comm)": f[0]=state ... utime is field 14, stime 15 (1-based
	// over the whole line), i.e. f[11] and f[12].
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// waitQuiet waits (at most max) for a second in which the machine's cores
// are less than 0.2 cores busy in total, so that other work on a shared
// machine disturbs the run less. It returns the last second's busy cores.
func waitQuiet(max time.Duration) float64 {
	deadline := time.Now().Add(max)
	for {
		k0 := coreTicks()
		time.Sleep(time.Second)
		k1 := coreTicks()
		var busy float64
		for name, t := range k1 {
			b, _ := t.busyFrac(k0[name])
			busy += b
		}
		if busy < 0.2 || time.Now().After(deadline) {
			if busy >= 0.2 {
				fmt.Fprintf(os.Stderr, "machine still busy (%.2f cores) after %v; running anyway\n", busy, max)
			}
			return busy
		}
	}
}

// otherCPU: machine busy minus the two benchmark processes. Softirq handled
// in a process's context is charged to that process's stime as well as to
// /proc/stat's softirq column, so softirq is not subtracted separately.
func otherCPU(r result) float64 {
	if r.Interval <= 0 {
		return 0
	}
	return r.CPU0Busy + r.CPU1Busy - (r.ServerCPU+r.ClientCPU)/r.Interval
}

// ticks is one "cpuN" line of /proc/stat.
type ticks struct{ total, idle, softirq float64 }

func (t ticks) busyFrac(prev ticks) (busy, softirq float64) {
	d := t.total - prev.total
	if d <= 0 {
		return 0, 0
	}
	return (d - (t.idle - prev.idle)) / d, (t.softirq - prev.softirq) / d
}

// coreTicks reads the per-core lines of /proc/stat.
func coreTicks() map[string]ticks {
	m := map[string]ticks{}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var t ticks
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			if i >= 7 { // steal, guest, guest_nice: guest time is already in user
				if i == 7 {
					t.total += x
				}
				continue
			}
			t.total += x
			switch i {
			case 3, 4: // idle, iowait
				t.idle += x
			case 6:
				t.softirq += x
			}
		}
		m[f[0]] = t
	}
	return m
}
