package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/klog/v2"

	"yibao/audit"
	"yibao/audit/tlog"
	"yibao/sqlstore"
)

// benchLog: how fast the transparency log takes entries, and what
// recording an entry adds to a settlement's transaction.
func benchLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench log", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("entries", 50000, "entries to append")
	conc := fs.Int("concurrency", 256, "concurrent appenders")
	records := fs.Int("records", 2000, "transactions that record one entry each (the cost a settlement pays)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	klog.SetSlogLogger(slog.New(slog.DiscardHandler)) // tessera's progress lines
	dir, err := os.MkdirTemp("", "yibao-bench-log-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stderr, "appending %d entries with %d appenders…\n", *n, *conc)
	r, err := tlog.Bench(ctx, filepath.Join(dir, "log"), *n, *conc)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "log append   %8.0f entries/s   %d entries of %d B in %s   Add p50 %s p99 %s   all published after %s\n",
		r.EntriesPerSec, r.N, r.EntryBytes, r.Elapsed.Round(time.Millisecond), r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond),
		r.Published.Round(time.Millisecond))

	// What a settlement pays: one INSERT into audit_entries inside its
	// transaction (the append happens later, in the sequencer).
	db, err := sqlstore.Open(ctx, filepath.Join(dir, "bench.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	w := audit.NewWriter(make([]byte, 32))
	with, without := make([]time.Duration, 0, *records), make([]time.Duration, 0, *records)
	for i := range *records {
		for _, rec := range []bool{false, true} {
			start := time.Now()
			err := db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO request_nonces (key_id, nonce, seen_at) VALUES (?, ?, ?)`, "bench", fmt.Sprintf("%v-%d", rec, i), i); err != nil {
					return err
				}
				if !rec {
					return nil
				}
				return w.Record(ctx, tx, audit.Entry{ID: fmt.Sprintf("bench:%d", i), Kind: audit.KindSettlement, Subject: "ST", Data: map[string]any{
					"person": w.Person("37010000000000000001"), "medfee_sumamt": "1440.00", "fund_pay_sumamt": "537.85", "legs": []string{"fund", "acct", "cash"}}})
			})
			if err != nil {
				return err
			}
			if rec {
				with = append(with, time.Since(start))
			} else {
				without = append(without, time.Since(start))
			}
		}
	}
	p := func(xs []time.Duration, q float64) time.Duration {
		slices.Sort(xs)
		return xs[int(q*float64(len(xs)-1))]
	}
	fmt.Fprintf(stdout, "record entry  a transaction on SQLite: p50 %s → %s, p99 %s → %s with the audit entry (added at p99: %s)\n",
		p(without, .5).Round(time.Microsecond), p(with, .5).Round(time.Microsecond), p(without, .99).Round(time.Microsecond),
		p(with, .99).Round(time.Microsecond), (p(with, .99) - p(without, .99)).Round(time.Microsecond))
	return nil
}
