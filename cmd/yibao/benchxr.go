package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"yibao"
	"yibao/app"
	"yibao/loadgen"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
)

// benchXR measures cross-region settlement against local settlement on
// the same node: three province nodes and the hub in this process on
// loopback (each node its own SQLite database), patients of Shandong
// treated in Jiangsu, next to Jiangsu's own insured at the same hospital.
// Each bill: open the visit (the first one fetches the person from the
// insured node), upload 2 fee lines, settle (cross-region: snapshot,
// policy, two-phase commit through the hub).
func benchXR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao bench xr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bills := fs.Int("bills", 200, "bills of each kind")
	workers := fs.Int("workers", 8, "concurrent cashiers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "yibao-bench-xr-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stdout, "starting 3 province nodes and the hub in %s …\n", dir)
	r, err := app.OpenRegions(ctx, app.RegionsConfig{DataDir: dir, Provinces: []string{"37", "32", "44"}, LogOut: io.Discard,
		Tune: func(_ string, c *app.Config) { c.LogLevel = "error"; c.PasswordIterations = 1000 }})
	if err != nil {
		return err
	}
	defer r.Close()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := r.Serve(sctx); err != nil {
		return err
	}
	js := r.Node("32")
	var hosp string
	for _, in := range js.Dataset.Institutions {
		if in.Kind == yibao.KindHospital && hosp == "" {
			hosp = in.Code
		}
	}
	var items []string
	for _, c := range js.Dataset.Catalog {
		if len(items) == 0 && c.Class == yibao.ClassA || len(items) == 1 && c.Class == yibao.ClassB {
			items = append(items, c.Code)
		}
	}
	patients := func(d []yibao.Coverage, region string) []string {
		var out []string
		for _, c := range d {
			if c.EndDate == "" && c.Admdvs == region && (c.Insutype == "310" || c.Insutype == "390") && !slices.Contains(out, c.PsnNo) {
				out = append(out, c.PsnNo)
			}
		}
		return out
	}
	ctxH := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "bench", Role: yibao.RoleCashier, Institution: hosp})
	run := func(label string, psns []string) ([]time.Duration, time.Duration, int, error) {
		lat := make([]time.Duration, 0, *bills)
		var mu sync.Mutex
		var firstErr error
		errs := 0
		jobs := make(chan string)
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for psn := range jobs {
					t0 := time.Now()
					err := oneBill(ctxH, js.App.Settle, hosp, psn, items)
					d := time.Since(t0)
					mu.Lock()
					if err != nil {
						errs++
						if firstErr == nil {
							firstErr = err
						}
					} else {
						lat = append(lat, d)
					}
					if n := len(lat) + errs; n%50 == 0 {
						fmt.Fprintf(stdout, "  %s: %d/%d\n", label, n, *bills)
					}
					mu.Unlock()
				}
			}()
		}
		for i := 0; i < *bills; i++ {
			jobs <- psns[i%len(psns)]
		}
		close(jobs)
		wg.Wait()
		if errs > 0 {
			fmt.Fprintf(stdout, "  %s: %d errors, first: %v\n", label, errs, firstErr)
		}
		return lat, time.Since(start), errs, nil
	}
	local := patients(js.Dataset.Coverages, "320100")
	remote := patients(r.Node("37").Dataset.Coverages, "370100")
	// Warm both paths (the first cross-region visit of a person imports it).
	for _, p := range remote {
		if err := oneBill(ctxH, js.App.Settle, hosp, p, items); err != nil {
			return fmt.Errorf("warm-up %s: %w", p, err)
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	type row struct {
		label string
		lat   []time.Duration
		took  time.Duration
		errs  int
	}
	var rows []row
	for _, k := range []struct {
		label string
		psns  []string
	}{{"local (Jiangsu insured)", local}, {"cross-region (Shandong insured)", remote}} {
		lat, took, errs, _ := run(k.label, k.psns)
		rows = append(rows, row{k.label, lat, took, errs})
	}
	fmt.Fprintf(stdout, "\n%d bills each, %d cashiers, %d patients local / %d cross-region; one process, 3 nodes + hub on loopback, SQLite\n\n",
		*bills, *workers, len(local), len(remote))
	fmt.Fprintln(tw, "kind\tbills/s\tp50\tp95\tp99\tmax\terrors\t")
	for _, rw := range rows {
		r := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%d\t\n", rw.label, float64(len(rw.lat))/rw.took.Seconds(), r(loadgen.Percentile(rw.lat, .5)),
			r(loadgen.Percentile(rw.lat, .95)), r(loadgen.Percentile(rw.lat, .99)), r(slices.Max(append(rw.lat, 0))), rw.errs)
	}
	tw.Flush()
	st, err := r.Hub.Hub.Status(ctx)
	if err == nil {
		fmt.Fprintf(stdout, "\nhub: %v\n", st.Txns)
	}
	return nil
}

// oneBill opens a general-outpatient visit, uploads two lines and settles.
func oneBill(ctx context.Context, s *settlement.Service, hosp, psn string, items []string) error {
	v, err := s.OpenVisit(ctx, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: hosp, Type: policy.GeneralOutpatient})
	if err != nil {
		return err
	}
	var lines []settlement.FeeLineInput
	for i, code := range items {
		lines = append(lines, settlement.FeeLineInput{FeedetlSn: fmt.Sprintf("B%d", i+1), CatalogCode: code, UnitPrice: 8850, Quantity: money.MustRatio(2, 1)})
	}
	if _, err := s.AddFeeLines(ctx, v.MdtrtID, lines); err != nil {
		return err
	}
	_, err = s.Settle(ctx, v.MdtrtID, settlement.SettleRequest{})
	return err
}
