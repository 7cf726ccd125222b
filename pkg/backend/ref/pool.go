package ref

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// serialWork is the amount of work (roughly multiply-adds) below which an
// operation runs on the calling goroutine: starting goroutines costs more.
const serialWork = 1 << 15

// parallel runs job(j) for every j in [0, jobs) on min(GOMAXPROCS, jobs)
// goroutines. newWorker is called once per goroutine and returns the job
// function with its own scratch memory. Jobs must write disjoint outputs; the
// result then cannot depend on which goroutine ran which job.
func parallel(jobs int, work int64, newWorker func() func(job int)) {
	if jobs <= 0 {
		return
	}
	workers := runtime.GOMAXPROCS(0)
	if workers > jobs {
		workers = jobs
	}
	if workers <= 1 || work < serialWork {
		run := newWorker()
		for j := range jobs {
			run(j)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			run := newWorker()
			for {
				j := int(next.Add(1) - 1)
				if j >= jobs {
					return
				}
				run(j)
			}
		}()
	}
	wg.Wait()
}

// chunks is the number of pieces of size at most size that cover n.
func chunks(n, size int) int { return (n + size - 1) / size }

// span returns the [lo, hi) range of piece j of size size within n.
func span(j, size, n int) (int, int) {
	lo := j * size
	return lo, min(lo+size, n)
}
