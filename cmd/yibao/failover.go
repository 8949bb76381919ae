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

// failoverDrill runs the drill in a fresh temporary folder, removed
// afterwards unless keep, and prints its figures.
func failoverDrill(ctx context.Context, command, env []string, keep bool, history string, c chaos.FailoverConfig, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "yibao-failover-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Fprintf(stderr, "kept %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	c.Command, c.Env, c.Dir, c.Log = command, env, dir, stderr
	if history != "" {
		f, err := os.Create(history)
		if err != nil {
			return err
		}
		defer f.Close()
		c.History = f
	}
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
