package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"yibao/chaos"
)

// runChaosXR is yibao chaos xr: the cross-region crash test (R20,
// docs/reliability.md; chaos/xr.go). The hub and three province nodes run
// as child processes; one at a time is killed with SIGKILL under a load of
// cross-region settlements and started again.
func runChaosXR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao chaos xr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 40*time.Second, "how long the load runs; the kills are spread over it")
	kills := fs.Int("kills", 6, "how many times to kill -9 a random process (the hub or a node)")
	workers := fs.Int("workers", 6, "concurrent HIS workers settling cross-region bills")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the kill times, the victims and the load")
	doubt := fs.Duration("doubt-after", 3*time.Second, "the nodes' xr_doubt_after: recovery asks the hub about a settlement prepared this long ago")
	quiet := fs.Duration("quiet", 60*time.Second, "how long to wait, after the load, for the system to settle")
	keep := fs.Bool("keep", false, "keep the temporary folder (databases, nodes.json, every process's log)")
	history := fs.String("history", "", "write every settle attempt as JSON lines here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return xrCrashTest(ctx, []string{exe}, nil, *keep, *history, chaos.XRConfig{Duration: *duration, Kills: *kills, Workers: *workers,
		Seed: *seed, DoubtAfter: *doubt, Quiet: *quiet}, stdout, stderr)
}

// xrCrashTest runs the test in a fresh temporary folder, removed
// afterwards unless keep, and prints its figures.
func xrCrashTest(ctx context.Context, command, env []string, keep bool, history string, c chaos.XRConfig, stdout, stderr io.Writer) error {
	dir, hist, done, err := chaosRunDir("yibao-chaos-xr-", keep, history, stderr)
	if err != nil {
		return err
	}
	defer done()
	c.Command, c.Env, c.Dir, c.Log, c.History = command, env, dir, stderr, hist
	fmt.Fprintf(stdout, "cross-region crash test R20 — %s\nthe hub and nodes 37, 32, 44 as processes on SQLite, seed %d; %d workers, %s, %d kills\n",
		machine(), c.Seed, c.Workers, c.Duration, c.Kills)
	rep, err := chaos.CrossRegion(ctx, c)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep.Summary())
	if l := rep.NotOkLines(); len(l) > 0 {
		fmt.Fprintln(stdout, "calls not ok (step, outcome, code):")
		for _, s := range l {
			fmt.Fprintln(stdout, " ", s)
		}
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "  problem:", p)
	}
	for _, v := range rep.LedgerViolations {
		fmt.Fprintln(stdout, "  ledger:", v)
	}
	if !rep.OK() {
		return fmt.Errorf("cross-region crash test failed (seed %d)", c.Seed)
	}
	return nil
}
