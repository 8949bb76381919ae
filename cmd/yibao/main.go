// Command yibao is the one binary of the platform: the server, the demo,
// migrations, imports and the operator tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"yibao/app"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the platform", runServe},
		{"demo", "run the platform on a fresh database seeded with the demo dataset", runDemo},
		{"migrate", "apply database migrations and exit", runMigrate},
		{"import", "import a CSV file: yibao import catalog|persons FILE", runImport},
		{"ledger", "ledger tools: yibao ledger check", runLedger},
		{"pg", "PostgreSQL operations: yibao pg backup --out FILE | restore --in FILE | partitions", runPG},
		{"his", "national-interface smoke test against a running platform: yibao his demo", runHIS},
		{"ecert", "e-certificate simulators for the demo: yibao ecert activate|code|resolve", runEcert},
		{"reconcile", "match a wallet's daily bill against the orders: yibao reconcile channel --channel wechat --date YYYY-MM-DD", runReconcile},
		{"face", "face payment's calibration and demo camera files: yibao face eval | yibao face frames", runFace},
		{"funds", "run a month of fund operations against a running platform: yibao funds month [--period YYYY-MM]", runFunds},
		{"sim", "run a simulator on its own port: yibao sim wallet | yibao sim bank", runSim},
		{"verify", "check a receipt offline with the log's public keys: yibao verify --key VKEY receipt.json", runVerify},
		{"log", "transparency log tools: yibao log verify", runLog},
		{"keys", "the key hierarchy: yibao keys list | rotate --data|--signing | reencrypt | check | retire ID", runKeys},
		{"witness", "follow a log, refusing rollbacks and split views: yibao witness --log URL --key VKEY", runWitness},
		{"calc", "settle one JSON request with the pure calculator: yibao calc [--request FILE] [--explain]", runCalc},
		{"chaos", "crash test R1 and failover drill R19 under load: yibao chaos crash [--kills N] [--pg DSN] | failover", runChaos},
		{"bench", "benchmarks that print numbers: yibao bench ledger|calc|qr|settle|log|face|e2e", runBench},
		{"hub", "the national cross-region hub: yibao hub serve --nodes FILE | status | txns | clearing MONTH [--run]", runHub},
		{"xr", "settle a patient insured in another province at a node: yibao xr settle --url NODE --psn PSN", runXR},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "yibao:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: yibao <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'yibao <command> -h' for a command's flags. Settings also come from YIBAO_* variables and --config FILE.")
}

// loadConfig builds the configuration: defaults, config file, environment,
// then the command's flags.
func loadConfig(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (app.Config, *flag.FlagSet, error) {
	cfg := app.Defaults()
	// The config file is found first, so flags can still override it.
	path := os.Getenv("YIBAO_CONFIG")
	for i, a := range args {
		if a == "--config" || a == "-config" {
			if i+1 < len(args) {
				path = args[i+1]
			}
		} else if v, ok := cutPrefix2(a, "--config=", "-config="); ok {
			path = v
		}
	}
	if path != "" {
		if err := cfg.LoadFile(path); err != nil {
			return cfg, nil, err
		}
	}
	if err := cfg.LoadEnv(os.Getenv); err != nil {
		return cfg, nil, err
	}
	fs := flag.NewFlagSet("yibao "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", path, "JSON configuration file")
	cfg.Flags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	return cfg, fs, nil
}

func cutPrefix2(s, a, b string) (string, bool) {
	if len(s) > len(a) && s[:len(a)] == a {
		return s[len(a):], true
	}
	if len(s) > len(b) && s[:len(b)] == b {
		return s[len(b):], true
	}
	return "", false
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fmt.Fprintln(stdout, "yibao", app.Version)
	return nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, stderr, nil)
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.EnsureAdmin(ctx); err != nil {
		return err
	}
	return a.Serve(ctx, nil)
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("migrate", args, stderr, nil)
	if err != nil {
		return err
	}
	a, err := app.OpenStore(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	v, err := a.DB.Version(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database %s is at migration %d\n", a.DB.Dialect, v)
	return nil
}
