package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"yibao/app"
	"yibao/chaos"
	"yibao/demo"
	"yibao/loadgen"
	"yibao/sqlstore"
)

// benchE2E measures whole one-code outpatient transactions over HTTP: the
// platform runs in this process on a loopback port with a fresh seeded
// database, and loadgen's HIS clients drive it exactly as hospitals would
// (signed requests, a fresh e-certificate code per bill, idempotency keys).
func benchE2E(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clients := fs.Int("clients", 64, "concurrent HIS clients")
	duration := fs.Duration("duration", 30*time.Second, "how long to start transactions")
	txs := fs.Int64("tx", 0, "stop after this many transactions (0: --duration only)")
	rate := fs.Float64("rate", 0, "open loop: offer this many transactions per second (0: closed loop)")
	pg := fs.String("pg", "", "run on this PostgreSQL DSN (a throw-away schema) instead of SQLite")
	quick := fs.Bool("quick", false, "a smoke run of a few seconds (CI)")
	lines := fs.Int("lines", 20, "fee lines per bill")
	creditFrac := fs.Float64("credit", 0.1, "share of the credit-line holders' bills paid on credit")
	creditPersons := fs.Int("credit-persons", 8, "persons who open a credit line at the simulated bank")
	extra := fs.Int("extra-persons", 0, "persons to import besides the demo's (no personal-account money)")
	svg := fs.String("svg", "", "draw the run (completions per second, step latencies) as an SVG chart into this file")
	history := fs.String("history", "", "write the history (invoke/ok/fail/info per call) as JSON lines here")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run (server and clients) to this file")
	blockprofile := fs.String("blockprofile", "", "write a profile of where goroutines waited (blocking ≥ 100 µs) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *quick {
		*duration, *txs = 3*time.Second, 0
		if *clients > 16 {
			*clients = 16
		}
	}
	dir, err := os.MkdirTemp("", "yibao-bench-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	name, dsn := "SQLite", filepath.Join(dir, "bench.db")
	if *pg != "" {
		name = "PostgreSQL"
		fresh, drop, err := benchDSN(ctx, *pg)
		if err != nil {
			return err
		}
		defer drop()
		dsn = fresh
	}

	cfg := app.Defaults()
	cfg.DataDir, cfg.DB, cfg.Addr, cfg.LogLevel, cfg.Face = dir, dsn, "127.0.0.1:0", "error", "off"
	cfg.PasswordIterations = 1000
	a, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(stderr, "seeding the demo on %s…\n", name)
	if _, err := a.Seed(ctx, demo.Build()); err != nil {
		return err
	}
	sctx, stopServer := context.WithCancel(ctx)
	addrc := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx, func(addr string) { addrc <- addr }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-served:
		stopServer()
		return err
	}
	defer func() { stopServer(); <-served }()

	lc := loadgen.Config{URL: "http://" + addr, Clients: *clients, Lines: *lines, CreditPersons: *creditPersons, CreditFraction: *creditFrac,
		ExtraPersons: *extra, Seed: uint64(time.Now().UnixNano())}
	fleet, err := loadgen.Setup(ctx, lc, stderr)
	if err != nil {
		return err
	}
	before, err := tableCounts(ctx, a.DB)
	if err != nil {
		return err
	}
	mode := "closed loop"
	if *rate > 0 {
		mode = fmt.Sprintf("open loop at %.0f tx/s offered", *rate)
	}
	fmt.Fprintf(stdout, "end-to-end benchmark — %s\n", machine())
	fmt.Fprintf(stdout, "%s; %d HIS clients, %s; %d persons with a bound device (%d with a credit line), %d hospitals; each transaction: mint code → resolve → open visit → %d fee lines → pay (counter, %.0f%% of the credit holders' on credit)\n",
		name, *clients, mode, fleet.Persons(), fleet.CreditPersons(), fleet.Hospitals(), *lines, 100**creditFrac)

	if *cpuprofile != "" {
		stop, err := cpuProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *blockprofile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		defer func() {
			if f, err := os.Create(*blockprofile); err == nil {
				pprof.Lookup("block").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	var ctr loadgen.Counters
	done := make(chan struct{})
	go progress(stderr, &ctr, done)
	res := fleet.Run(ctx, loadgen.RunOptions{Duration: *duration, Tx: *txs, Rate: *rate}, &ctr)
	close(done)
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if *svg != "" {
		if err := os.WriteFile(*svg, []byte(e2eSVG(fmt.Sprintf("yibao bench e2e — %s, %s", name, machine()), res)), 0o644); err != nil {
			return err
		}
	}
	if *history != "" {
		f, err := os.Create(*history)
		if err != nil {
			return err
		}
		err = res.History.WriteJSONL(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	after, err := tableCounts(ctx, a.DB)
	if err != nil {
		return err
	}
	rep, err := chaos.Check(ctx, a.DB, res.Txs, res.Start.UnixMicro())
	if err != nil {
		return err
	}
	rep.CountOps(res.History)
	printE2E(stdout, res, rep, before, after)
	if !rep.OK() {
		return fmt.Errorf("the durability check failed: %d lost, %d unlogged, %d phantom, %d partial, %d duplicate, trial balance %d fen, %d ledger violations, %d accumulator mismatches",
			rep.Lost, rep.Unlogged, rep.Phantom, rep.Partial, rep.Duplicate, rep.TrialBalance, len(rep.LedgerViolations), rep.AccumulatorMismatches)
	}
	return nil
}

// progress prints a line a second: transactions done, the last second's
// rate, errors.
func progress(w io.Writer, c *loadgen.Counters, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start, last := time.Now(), int64(0)
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		n := c.Done.Load()
		fmt.Fprintf(w, "%5.0fs  %8d tx  %6d tx/s  %d errors\n", time.Since(start).Seconds(), n, n-last, c.Errors.Load())
		last = n
	}
}

func printE2E(w io.Writer, res *loadgen.Result, rep *chaos.Report, before, after map[string]int64) {
	var ok []loadgen.Tx
	errs := map[string]int{}
	for _, tx := range res.Txs {
		if tx.Outcome == loadgen.Ok {
			ok = append(ok, tx)
		} else {
			errs[tx.FailStep.String()+" "+tx.Outcome.String()+" "+tx.Code]++
		}
	}
	var credit, fallback, acct int
	for _, tx := range ok {
		if tx.Channel == "credit" {
			credit++
		}
		if tx.Fallback {
			fallback++
		}
		if tx.AcctPaid {
			acct++
		}
	}
	el := res.Elapsed.Seconds()
	fmt.Fprintf(w, "\n%d transactions in %.1f s: %d ok, %d not ok — throughput %.0f tx/s (ok)\n", len(res.Txs), el, len(ok), len(res.Txs)-len(ok), float64(len(ok))/el)
	fmt.Fprintf(w, "paid: %d at the counter, %d on credit (%d refused by the line and paid at the counter); %d used the personal account\n",
		len(ok)-credit, credit, fallback, acct)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ok transactions)\tp50\tp95\tp99\tmax\t")
	row := func(label string, xs []time.Duration) {
		r := func(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", label, r(loadgen.Percentile(xs, .5)), r(loadgen.Percentile(xs, .95)),
			r(loadgen.Percentile(xs, .99)), r(slices.Max(append(xs, 0))))
	}
	all := make([]time.Duration, len(ok))
	for i, tx := range ok {
		all[i] = tx.Total
	}
	row("whole transaction", all)
	for s := loadgen.StepCode; s < loadgen.NumSteps; s++ {
		xs := make([]time.Duration, len(ok))
		for i, tx := range ok {
			xs[i] = tx.Steps[s]
		}
		row(s.String(), xs)
	}
	tw.Flush()
	if len(errs) > 0 {
		fmt.Fprintln(w, "errors (transactions not ok, by step, outcome and code):")
		keys := slices.Sorted(maps.Keys(errs))
		for _, k := range keys {
			fmt.Fprintf(w, "  %6d  %s\n", errs[k], k)
		}
	} else {
		fmt.Fprintln(w, "errors: none")
	}
	fmt.Fprintf(w, "history: %d calls — %d ok, %d fail, %d info\n", rep.Ops, rep.OpsOk, rep.OpsFail, rep.OpsInfo)
	if len(ok) > 0 {
		type tc struct {
			name string
			n    int64
		}
		var grew []tc
		var total int64
		for t, n := range after {
			if d := n - before[t]; d != 0 {
				grew = append(grew, tc{t, d})
				total += d
			}
		}
		sort.Slice(grew, func(i, j int) bool { return grew[i].n > grew[j].n })
		var b strings.Builder
		for _, g := range grew {
			fmt.Fprintf(&b, " %s %.1f,", g.name, float64(g.n)/float64(len(ok)))
		}
		fmt.Fprintf(w, "rows added per ok transaction: %.1f —%s\n", float64(total)/float64(len(ok)), strings.TrimSuffix(b.String(), ","))
	}
	fmt.Fprintf(w, "durability: %d acknowledged, %d found with every leg, %d lost, %d without audit entry, %d phantom, %d partial, %d duplicate; trial balance diff %d fen; %d ledger violations; %d accumulator rows, %d mismatches\n",
		rep.AckedOk, rep.FoundOk, rep.Lost, rep.Unlogged, rep.Phantom, rep.Partial, rep.Duplicate, rep.TrialBalance, len(rep.LedgerViolations),
		rep.AccumulatorRows, rep.AccumulatorMismatches)
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "  problem:", p)
	}
}

// tableCounts counts the rows of every table.
func tableCounts(ctx context.Context, db *sqlstore.DB) (map[string]int64, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if db.Dialect == sqlstore.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	}
	names, err := db.Strings(ctx, q)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, n := range names {
		var c int64
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+n).Scan(&c); err != nil {
			return nil, fmt.Errorf("counting %s: %w", n, err)
		}
		out[n] = c
	}
	return out, nil
}
