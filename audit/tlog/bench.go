package tlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"yibao/gmcrypto"
)

// BenchResult is what Bench measured.
type BenchResult struct {
	N, Concurrency int
	EntryBytes     int
	// Elapsed runs from the first Add to the last Add returning (every
	// entry durably sequenced and integrated).
	Elapsed       time.Duration
	EntriesPerSec float64
	// Add latencies.
	P50, P99, Max time.Duration
	// Published is the time from the first Add until a published
	// checkpoint covered every entry.
	Published time.Duration
}

func (r BenchResult) String() string {
	return fmt.Sprintf("%d entries of %d B, concurrency %d: %.0f entries/s (%v); Add latency p50 %v p99 %v max %v; all published after %v",
		r.N, r.EntryBytes, r.Concurrency, r.EntriesPerSec, r.Elapsed.Round(time.Millisecond),
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Published.Round(time.Millisecond))
}

// benchEntryBytes is about the size of an audit entry.
const benchEntryBytes = 400

// Bench appends n entries of about 400 bytes to a new log in dir (which
// must not exist or be empty; it is left in place) from concurrency
// goroutines each calling Add in a loop, with throw-away keys and the
// default Config, and measures throughput and Add latency.
func Bench(ctx context.Context, dir string, n, concurrency int) (BenchResult, error) {
	res := BenchResult{N: n, Concurrency: concurrency, EntryBytes: benchEntryBytes}
	if n <= 0 || concurrency <= 0 {
		return res, errors.New("tlog: bench: n and concurrency must be positive")
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return res, fmt.Errorf("tlog: bench: %s is not empty", dir)
	}
	const origin = "bench.yibao.invalid/log"
	skey, _, err := GenerateEd25519(origin)
	if err != nil {
		return res, err
	}
	ed, err := NewEd25519Signer(skey)
	if err != nil {
		return res, err
	}
	k, err := gmcrypto.GenerateKey(nil)
	if err != nil {
		return res, err
	}
	sm, err := NewSM2Signer(origin, k)
	if err != nil {
		return res, err
	}
	l, err := Open(ctx, Config{Dir: dir, Origin: origin, Ed25519: ed, SM2: sm})
	if err != nil {
		return res, err
	}
	defer l.Close()

	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range concurrency {
		wg.Go(func() {
			buf := make([]byte, benchEntryBytes)
			for i := range buf {
				buf[i] = byte('a' + (i+w)%26)
			}
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				binary.BigEndian.PutUint64(buf, uint64(i))
				t := time.Now()
				if _, err := l.Add(ctx, buf); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}
	res.EntriesPerSec = float64(n) / res.Elapsed.Seconds()
	slices.Sort(lat)
	res.P50, res.P99, res.Max = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	if _, err := l.AwaitIntegrated(ctx, uint64(n-1)); err != nil {
		return res, err
	}
	res.Published = time.Since(start)
	return res, l.Close()
}
