package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"yibao/app"
	"yibao/ledger/engine"
)

func runLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "check" {
		return errors.New("usage: yibao ledger check [flags]")
	}
	asJSON := false
	cfg, _, err := loadConfig("ledger check", args[1:], stderr, nil)
	if err != nil {
		return err
	}
	a, err := app.OpenStore(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	rep, err := engine.Check(ctx, a.DB, time.Now().UnixMicro())
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	fmt.Fprintf(stdout, "checked %d accounts and %d transfers (%d pending) in %s\n", rep.Accounts, rep.Transfers, rep.Pending, time.Since(start).Round(time.Millisecond))
	for _, w := range rep.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	if !rep.OK() {
		for _, v := range rep.Violations {
			fmt.Fprintln(stdout, "VIOLATION:", v)
		}
		return fmt.Errorf("%d invariant violation(s)", len(rep.Violations))
	}
	fmt.Fprintln(stdout, "all invariants hold: debits = credits, no account breaks its flags, balances equal their transfers, every pending resolved at most once")
	return nil
}
