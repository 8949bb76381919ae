package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"yibao/ledger/engine"
	"yibao/sqlstore"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: yibao bench ledger|calc|qr|settle|log|face|e2e|xr [flags]")
	}
	switch args[0] {
	case "ledger":
		return benchLedger(ctx, args[1:], stdout, stderr)
	case "calc":
		return benchCalc(ctx, args[1:], stdout, stderr)
	case "qr":
		return benchQR(ctx, args[1:], stdout, stderr)
	case "settle":
		return benchSettle(ctx, args[1:], stdout, stderr)
	case "face":
		return runBenchFace(ctx, args[1:], stdout, stderr)
	case "log":
		return benchLog(ctx, args[1:], stdout, stderr)
	case "e2e":
		return benchE2E(ctx, args[1:], stdout, stderr)
	case "xr":
		return benchXR(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown benchmark %q (have: ledger, calc, qr, settle, log, face, e2e, xr)", args[0])
}

func benchLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench ledger", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := engine.DefaultBenchConfig()
	pg := fs.String("pg", os.Getenv("YIBAO_TEST_PG"), "also run on this PostgreSQL DSN (a throw-away schema is used)")
	sqliteOnly := fs.Bool("sqlite-only", false, "skip PostgreSQL")
	quick := fs.Bool("quick", false, "a short smoke run (CI)")
	fs.IntVar(&cfg.Transfers, "transfers", cfg.Transfers, "transfers per engine scenario")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent in-process clients")
	fs.IntVar(&cfg.NaiveTransfers, "naive-transfers", cfg.NaiveTransfers, "transfers for the naive baseline")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop, err := cpuProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	if *quick {
		cfg.Transfers, cfg.NaiveTransfers, cfg.RateFor = 20_000, 2_000, time.Second
	}
	fmt.Fprintf(stdout, "ledger benchmark — %s\n", machine())
	fmt.Fprintf(stdout, "every transfer debits one hot fund account; durable commits (SQLite synchronous=FULL, PostgreSQL synchronous_commit=on)\n\n")

	dir, err := os.MkdirTemp("", "yibao-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	targets := []struct{ name, dsn string }{{"SQLite", filepath.Join(dir, "bench.db")}}
	if *pg != "" && !*sqliteOnly {
		targets = append(targets, struct{ name, dsn string }{"PostgreSQL", *pg})
	}
	for _, tg := range targets {
		fmt.Fprintf(stderr, "%s:\n", tg.name)
		db, cleanup, err := benchDB(ctx, tg.dsn)
		if err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		rows, err := engine.Bench(ctx, db, cfg, stderr)
		cleanup()
		if err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
		fmt.Fprintf(stdout, "%s\n", tg.name)
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\ttransfers\ttransfers/s\tp50\tp99\tcommits\t")
		for _, r := range rows {
			commits := ""
			if r.Commits > 0 {
				commits = fmt.Sprint(r.Commits)
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t\n", r.Scenario, r.Transfers, r.PerSecond, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), commits)
		}
		tw.Flush()
		if n := len(rows); n >= 2 && rows[n-1].PerSecond > 0 {
			fmt.Fprintf(stdout, "engine single transfers are %.1f× the naive baseline\n", rows[0].PerSecond/rows[n-1].PerSecond)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// benchDSN gives a fresh database: the SQLite file given, or a new schema
// on the PostgreSQL server (dropped by cleanup).
func benchDSN(ctx context.Context, dsn string) (string, func(), error) {
	if !sqlstore.IsPostgresDSN(dsn) {
		return dsn, func() {}, nil
	}
	admin, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "bench_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return "", nil, err
	}
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	}, nil
}

// benchDB opens a fresh migrated database (see benchDSN).
func benchDB(ctx context.Context, dsn string) (*sqlstore.DB, func(), error) {
	fresh, drop, err := benchDSN(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	db, err := sqlstore.Open(ctx, fresh)
	if err == nil {
		if err = db.Migrate(ctx); err != nil {
			db.Close()
		}
	}
	if err != nil {
		drop()
		return nil, nil, err
	}
	return db, func() { db.Close(); drop() }, nil
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					model = strings.TrimSpace(v)
					break
				}
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d× %s%s, %s %s/%s", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// cpuProfile starts a CPU profile into path (none if path is empty); the
// returned function stops it.
func cpuProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
