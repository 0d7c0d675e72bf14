package server

import (
	"runtime"
	"sync"
)

// executor runs the connections' backlogs (backlog.go) — the frames that may
// block, and what follows them — on long-lived workers. A goroutine per job
// would start with a small stack and grow it (a copy) as the handler goes
// deep, which took 8-23% of the server's CPU at 20,000 msg/s when every
// frame went through here (docs/benchmarks.md); a worker keeps its grown
// stack from one job to the next. A link's backlog has one job running at
// a time, so any worker may take any job.
//
// When every worker is busy (handlers that wait for the store or the
// cluster), a job gets a goroutine of its own, so a slow handler never
// holds up the others.
type executor struct {
	work chan func()
	stop chan struct{}
	wg   sync.WaitGroup
}

func newExecutor() *executor {
	e := &executor{work: make(chan func()), stop: make(chan struct{})}
	n := max(64, 32*runtime.GOMAXPROCS(0))
	e.wg.Add(n)
	for range n {
		go e.worker()
	}
	return e
}

// run implements nbhttp.Config.ServerExecutor.
func (e *executor) run(f func()) {
	select {
	case e.work <- f:
	default:
		go f()
	}
}

func (e *executor) worker() {
	defer e.wg.Done()
	for {
		select {
		case f := <-e.work:
			f()
		case <-e.stop:
			return
		}
	}
}

// close stops the workers once their jobs are done.
func (e *executor) close() {
	close(e.stop)
	e.wg.Wait()
}
