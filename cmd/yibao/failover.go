package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"yibao/chaos"
	"yibao/loadgen"
)

// runFailover is yibao chaos failover: the synchronous-standby failover
// drill (R19, docs/reliability.md; chaos/failover.go).
func runFailover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao chaos failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 30*time.Second, "load of the failover run")
	killAfter := fs.Duration("kill-after", 0, "stop the primary this long into the run (default: a third of --duration)")
	promoteAfter := fs.Duration("promote-after", 0, "promote the standby this long after the kill (a failover manager's detection time)")
	clients := fs.Int("clients", 32, "concurrent HIS clients")
	ports := fs.String("ports", "5441,5442", "ports of the primary and the standby (0 = any free port)")
	compare := fs.Duration("compare", 0, "before the failover run, measure latency open loop this long each with the standby synchronous, not, and synchronous again")
	rate := fs.Float64("rate", 10, "transactions a second offered in the --compare phases (0: closed loop, as fast as the clients go)")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the load")
	pgbin := fs.String("pg-bin", "", "PostgreSQL's bin folder (default: the newest /usr/lib/postgresql/*/bin)")
	keep := fs.Bool("keep", false, "keep the temporary folder (both clusters stopped, their logs, server.log)")
	history := fs.String("history", "", "write the failover run's history (invoke/ok/fail/info per call) as JSON lines here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ps [2]int
	parts := strings.Split(*ports, ",")
	if len(parts) != 2 {
		return fmt.Errorf("--ports %q: want two ports, e.g. 5441,5442", *ports)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("--ports %q: %q is not a port", *ports, p)
		}
		ps[i] = n
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	c := chaos.FailoverConfig{PGBin: *pgbin, Ports: ps, Duration: *duration, KillAfter: *killAfter, PromoteAfter: *promoteAfter,
		Compare: *compare, Rate: *rate,
		Load: loadgen.Config{Clients: *clients, CreditPersons: 8, CreditFraction: 0.1, Seed: *seed}}
	return failoverDrill(ctx, []string{exe}, nil, *keep, *history, c, stdout, stderr)
}

// chaosRunDir makes a fresh temporary folder for a fault test (removed
// by done unless keep) and opens its history file, if one is asked for.
func chaosRunDir(prefix string, keep bool, history string, stderr io.Writer) (dir string, hist io.Writer, done func(), err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, nil, err
	}
	var f *os.File
	if history != "" {
		if f, err = os.Create(history); err != nil {
			os.RemoveAll(dir)
			return "", nil, nil, err
		}
		hist = f
	}
	return dir, hist, func() {
		if f != nil {
			f.Close()
		}
		if keep {
			fmt.Fprintf(stderr, "kept %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}, nil
}

// failoverDrill runs the drill in a fresh temporary folder, removed
// afterwards unless keep, and prints its figures.
func failoverDrill(ctx context.Context, command, env []string, keep bool, history string, c chaos.FailoverConfig, stdout, stderr io.Writer) error {
	dir, hist, done, err := chaosRunDir("yibao-failover-", keep, history, stderr)
	if err != nil {
		return err
	}
	defer done()
	c.Command, c.Env, c.Dir, c.Log, c.History = command, env, dir, stderr, hist
	fmt.Fprintf(stdout, "failover drill R19 — %s, seed %d\n", machine(), c.Load.Seed)
	rep, err := chaos.Failover(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep.Summary())
	printFindings(stdout, &rep.Report)
	if !rep.OK() {
		return fmt.Errorf("failover drill failed (seed %d)", c.Load.Seed)
	}
	return nil
}
