package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"yibao/gmcrypto"
	"yibao/sim/banksim"
)

// runSimBank: yibao sim bank runs the bank simulator (not a real bank) on
// its own port. args are what follows "sim" (a leading "bank" is skipped).
func runSimBank(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "bank" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("yibao sim bank", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8091", "listen address")
	dir := fs.String("keys", ".yibao/bank-keys", "folder of the simulated bank's key (bank.pem; bank-public.pem is written for the platform)")
	platformKey := fs.String("platform-key", "", "PEM file of the platform's SM2 public key (default <keys>/platform-public.pem)")
	callback := fs.String("callback", "", "the platform's notify URL for bank callbacks, e.g. http://127.0.0.1:8080/api/v1/credit/notify/"+banksim.DefaultBankCode)
	bankCode := fs.String("bank-code", banksim.DefaultBankCode, "the simulated bank's code")
	bankKeyID := fs.String("bank-key-id", banksim.DefaultBankKeyID, "the key id the bank signs with")
	platformKeyID := fs.String("platform-key-id", banksim.DefaultPlatformKeyID, "the key id the platform signs with")
	state := fs.String("state", "", "JSON file keeping the simulated bank's agreements, draws and repayments across restarts (default <keys>/bank-state.json)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("yibao sim bank: unexpected arguments %q", fs.Args())
	}
	keys, err := banksim.LoadKeys(*dir)
	if err != nil {
		return err
	}
	if *platformKey == "" {
		*platformKey = filepath.Join(*dir, "platform-public.pem")
	}
	b, err := os.ReadFile(*platformKey)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no platform public key at %s: give --platform-key FILE (the platform's SM2 public key, PEM)", *platformKey)
	}
	if err != nil {
		return err
	}
	pub, err := gmcrypto.ParsePublicKeyPEM(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *platformKey, err)
	}
	if *state == "" {
		*state = filepath.Join(*dir, "bank-state.json")
	}
	srv, err := banksim.Start(banksim.Options{BankCode: *bankCode, BankKeyID: *bankKeyID, Key: keys.Bank,
		PlatformKeyID: *platformKeyID, PlatformKey: pub, CallbackURL: *callback, StateFile: *state}, *addr)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "bank simulator (not a real bank) %s on %s: yibao's signed credit protocol under /credit/\n", *bankCode, srv.URL)
	fmt.Fprintf(stdout, "  bank key id %s, public key %s; platform key id %s, public key %s\n",
		*bankKeyID, filepath.Join(*dir, "bank-public.pem"), *platformKeyID, *platformKey)
	fmt.Fprintf(stdout, "  state kept in %s\n", *state)
	if *callback == "" {
		fmt.Fprintln(stdout, "  no --callback: bank actions (counter repayments, limit changes, ...) will not reach the platform")
	} else {
		fmt.Fprintf(stdout, "  callbacks to %s\n", *callback)
	}
	fmt.Fprintf(stdout, "  state: curl -s %s/sim/state\n", srv.URL)
	fmt.Fprintf(stdout, "  inject faults: curl -s %s/sim/faults --json '{\"day_extra\":1}'\n", srv.URL)
	fmt.Fprintf(stdout, "  counter repayment: curl -s %s/sim/agreements/AGREEMENT_NO/repay --json '{\"amount_fen\":1000}'\n", srv.URL)
	<-ctx.Done()
	return nil
}
