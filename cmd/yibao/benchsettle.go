package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"yibao"
	"yibao/app"
	"yibao/demo"
	"yibao/money"
	"yibao/settlement"
)

// benchSettle measures whole settlements through the service — visit,
// fee lines, settlement as one ledger unit — on the demo data, from many
// concurrent cashiers.
func benchSettle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench settle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("bills", 3000, "outpatient bills to settle")
	clients := fs.Int("clients", 32, "concurrent cashiers")
	pg := fs.String("pg", os.Getenv("YIBAO_TEST_PG"), "also run on this PostgreSQL DSN (a throw-away schema is used)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop, err := cpuProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "settlement benchmark — %s\n", machine())
	fmt.Fprintf(stdout, "%d two-line outpatient bills of the demo's employees at one hospital, %d concurrent cashiers; each bill opens a visit, uploads lines and settles (one ledger unit)\n", *n, *clients)
	dir, err := os.MkdirTemp("", "yibao-bench-settle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	targets := []struct{ name, dsn string }{{"SQLite", filepath.Join(dir, "bench.db")}}
	if *pg != "" {
		targets = append(targets, struct{ name, dsn string }{"PostgreSQL", *pg})
	}
	for _, tg := range targets {
		dsn, drop, err := benchDSN(ctx, tg.dsn)
		if err != nil {
			return err
		}
		err = benchSettleOn(ctx, tg.name, dsn, dir, *n, *clients, stdout)
		drop()
		if err != nil {
			return fmt.Errorf("%s: %w", tg.name, err)
		}
	}
	return nil
}

func benchSettleOn(ctx context.Context, name, dsn, dir string, n, clients int, stdout io.Writer) error {
	cfg := app.Defaults()
	cfg.DataDir, cfg.DB, cfg.LogLevel, cfg.Face = filepath.Join(dir, strings.ToLower(name)), dsn, "error", "off"
	cfg.PasswordIterations = 1000
	a, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		return err
	}
	defer a.Close()
	d := demo.Build()
	if _, err := a.Seed(ctx, d); err != nil {
		return err
	}
	var psns []string
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.Admdvs == "370100" && c.EndDate == "" {
			psns = append(psns, c.PsnNo)
		}
	}
	today := yibao.DateOf(time.Now())
	var drugs []string
	for _, it := range d.Catalog {
		if it.Kind == yibao.ItemDrug && it.ValidFrom <= today && (it.ValidTo == "" || it.ValidTo >= today) {
			drugs = append(drugs, it.Code)
		}
	}
	sys := yibao.WithPrincipal(ctx, yibao.System("bench"))
	var next atomic.Int64
	lat := make([]time.Duration, n)
	settleLat := make([]time.Duration, n)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				err := func() error {
					v, err := a.Settle.OpenVisit(sys, settlement.VisitRequest{PsnNo: psns[i%len(psns)], FixmedinsCode: "H37010000001", Type: "general_outpatient"})
					if err != nil {
						return err
					}
					lines := []settlement.FeeLineInput{
						{FeedetlSn: "1", CatalogCode: drugs[i%len(drugs)], UnitPrice: money.Fen(1000 + 37*(i%100)), Quantity: money.MustRatio(2, 1)},
						{FeedetlSn: "2", CatalogCode: drugs[(i+7)%len(drugs)], UnitPrice: money.Fen(2500), Quantity: money.MustRatio(1, 1)},
					}
					if _, err := a.Settle.AddFeeLines(sys, v.MdtrtID, lines); err != nil {
						return err
					}
					t1 := time.Now()
					_, err = a.Settle.Settle(sys, v.MdtrtID, settlement.SettleRequest{})
					settleLat[i] = time.Since(t1)
					return err
				}()
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	p := func(xs []time.Duration, q float64) time.Duration {
		s := append([]time.Duration(nil), xs...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[int(float64(len(s)-1)*q)].Round(10 * time.Microsecond)
	}
	fmt.Fprintf(stdout, "%-10s %6.0f bills/s   whole bill p50 %s p99 %s   settle call p50 %s p99 %s   recalculations %d\n", name,
		float64(n)/el.Seconds(), p(lat, .5), p(lat, .99), p(settleLat, .5), p(settleLat, .99), a.Settle.Recalculations())
	return nil
}
