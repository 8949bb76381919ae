package tlog_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"yibao/audit/tlog"
)

func TestBench(t *testing.T) {
	res, err := tlog.Bench(t.Context(), filepath.Join(t.TempDir(), "log"), 3000, 256)
	if err != nil {
		t.Fatal(err)
	}
	if res.N != 3000 || res.EntriesPerSec <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 || res.Published < res.Elapsed {
		t.Errorf("implausible result %+v", res)
	}
	t.Log(res)
	if _, err := tlog.Bench(t.Context(), t.TempDir(), 10, 1); err != nil {
		t.Errorf("empty existing dir: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
	if _, err := tlog.Bench(t.Context(), dir, 10, 1); err == nil {
		t.Error("Bench used a non-empty directory")
	}
}

// TestBenchReport prints the sustained numbers: YIBAO_TLOG_BENCH=n[,concurrency].
func TestBenchReport(t *testing.T) {
	spec := os.Getenv("YIBAO_TLOG_BENCH")
	if spec == "" {
		t.Skip("set YIBAO_TLOG_BENCH=n[,concurrency]")
	}
	n, c := spec, "1024"
	for i := range spec {
		if spec[i] == ',' {
			n, c = spec[:i], spec[i+1:]
		}
	}
	nn, _ := strconv.Atoi(n)
	cc, _ := strconv.Atoi(c)
	res, err := tlog.Bench(t.Context(), filepath.Join(t.TempDir(), "log"), nn, cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
}

// BenchmarkAdd appends b.N entries of 400 bytes from 1,024 goroutines.
func BenchmarkAdd(b *testing.B) {
	k := newKeys(b, origin, "bench")
	l, err := tlog.Open(b.Context(), tlog.Config{Dir: filepath.Join(b.TempDir(), "log"), Origin: origin, Ed25519: k.ed, SM2: k.sm})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var seq atomic.Uint64
	b.SetBytes(400)
	b.SetParallelism(1024 / max(1, runtime.GOMAXPROCS(0))) // goroutines per P
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 400)
		for pb.Next() {
			binary.BigEndian.PutUint64(buf, seq.Add(1))
			if _, err := l.Add(b.Context(), buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
