package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"yibao/app"
	"yibao/audit"
	"yibao/audit/tlog"
	"yibao/audit/witness"
)

type keyList []string

func (k *keyList) String() string     { return strings.Join(*k, ",") }
func (k *keyList) Set(v string) error { *k = append(*k, v); return nil }

// runVerify: yibao verify receipt.json --key VKEY [--key VKEY]: checks a
// receipt offline — the checkpoint's signatures with the log's public
// keys, the entry's leaf hash and its inclusion proof.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keys keyList
	fs.Var(&keys, "key", "a checkpoint verifier key of the log (repeat for Ed25519 and SM2; from GET /api/v1/audit/log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: yibao verify [--key VKEY]… receipt.json")
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	// A receipt as the patient page downloads it ({receipt, verifier_keys,
	// origin}) or a bare receipt.
	var wrapped struct {
		Receipt *tlog.Receipt `json:"receipt"`
		Keys    []string      `json:"verifier_keys"`
	}
	if err := json.Unmarshal(b, &wrapped); err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	r := wrapped.Receipt
	if r == nil {
		r = &tlog.Receipt{}
		if err := json.Unmarshal(b, r); err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
	}
	if len(keys) == 0 {
		if len(wrapped.Keys) == 0 {
			return errors.New("give the log's verifier keys with --key")
		}
		keys = wrapped.Keys
		fmt.Fprintln(stderr, "note: using the keys written in the receipt file itself; pass --key with the keys the log publishes to check against them")
	}
	vs, err := audit.Verifiers(keys...)
	if err != nil {
		return err
	}
	if err := tlog.VerifyReceipt(r, vs); err != nil {
		return fmt.Errorf("receipt does NOT verify: %w", err)
	}
	cp, _ := tlog.OpenCheckpoint([]byte(r.Checkpoint), vs)
	var e audit.Entry
	json.Unmarshal(r.Data, &e)
	fmt.Fprintf(stdout, "ok  entry %s (%s) is leaf %d of %s at size %d, signed by", e.ID, e.Kind, r.Index, cp.Origin, cp.Size)
	for _, s := range cp.Signers {
		fmt.Fprintf(stdout, " %s/%08x", s.Name, s.Hash)
	}
	fmt.Fprintln(stdout)
	return nil
}

// runLog: yibao log verify — re-derives the whole tree from the stored
// tiles and entry bundles and compares every stored entry with its leaf.
func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("usage: yibao log verify [--data-dir DIR] [--db DSN]")
	}
	cfg, _, err := loadConfig("log verify", args[1:], stderr, nil)
	if err != nil {
		return err
	}
	a, err := app.OpenStore(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	keys, err := a.AuditKeys()
	if err != nil {
		return err
	}
	vs, err := audit.Verifiers(keys.VerifierKey...)
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.DataDir, "log")
	fmt.Fprintf(stderr, "re-deriving the tree in %s…\n", dir)
	rep, err := tlog.VerifyTree(ctx, dir, vs)
	if rep != nil {
		fmt.Fprintf(stdout, "log %s: %d leaves, %d entry bundles and %d tiles read, root %x\n", rep.Origin, rep.Size, rep.Bundles, rep.Tiles, rep.Root)
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, "  PROBLEM:", p)
		}
	}
	if err != nil {
		return fmt.Errorf("the log does not verify: %w", err)
	}
	// The stored entries against the leaves, read from the tile files
	// (the server may hold the log's writer lock).
	leaves := map[uint64][]byte{}
	f := client.FileFetcher{Root: dir}
	for i := uint64(0); i < rep.Size; i += layout.EntryBundleWidth {
		b, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, i/layout.EntryBundleWidth, rep.Size)
		if err != nil {
			return fmt.Errorf("entry bundle %d: %w", i/layout.EntryBundleWidth, err)
		}
		for j, e := range b.Entries {
			leaves[i+uint64(j)] = e
		}
	}
	check, err := audit.CheckLeaves(ctx, a.DB, rep.Size, func(_ context.Context, i uint64) ([]byte, error) {
		if b, ok := leaves[i]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("leaf %d not in the entry bundles", i)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database: %d sequenced entries compared with their leaves (%d waiting for the log)\n", check.Sequenced, check.Pending)
	for _, b := range append(check.Mismatches, check.Unsequenced...) {
		fmt.Fprintln(stdout, "  PROBLEM:", b)
	}
	if !check.OK() {
		return fmt.Errorf("%d stored entries differ from the log", len(check.Mismatches)+len(check.Unsequenced))
	}
	fmt.Fprintln(stdout, "ok  the log and the stored entries agree")
	return nil
}

// runWitness: yibao witness --log URL --key VKEY --state FILE follows a
// log once (or every --every), refusing rollbacks and split views.
func runWitness(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yibao witness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logURL := fs.String("log", "http://127.0.0.1:8080/log/", "the log's tiles")
	state := fs.String("state", ".yibao/witness/state.json", "where the witness keeps the last accepted checkpoint")
	every := fs.Duration("every", 0, "follow the log, checking at this interval (0: once)")
	wkey := fs.String("witness-key", "", "the witness's own note signer key (PRIVATE+KEY+…) to cosign with; made and kept beside the state if empty")
	var keys keyList
	fs.Var(&keys, "key", "a checkpoint verifier key of the log (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("give the log's verifier keys with --key (GET /api/v1/audit/log)")
	}
	vs, err := audit.Verifiers(keys...)
	if err != nil {
		return err
	}
	signer, vkey, err := witnessSigner(*wkey, filepath.Join(filepath.Dir(*state), "witness.key"))
	if err != nil {
		return err
	}
	w := &witness.Witness{LogURL: *logURL, Verifiers: vs, Signer: signer, StatePath: *state}
	for {
		out, err := w.Update(ctx)
		if err != nil {
			fmt.Fprintln(stdout, "REFUSED:", err)
			return err
		}
		switch {
		case out.First:
			fmt.Fprintf(stdout, "%s  first checkpoint, size %d, trusted on first use; cosigned as %s\n", time.Now().Format(time.TimeOnly), out.New, vkey)
		case out.New == out.Old:
			fmt.Fprintf(stdout, "%s  size %d unchanged\n", time.Now().Format(time.TimeOnly), out.New)
		default:
			fmt.Fprintf(stdout, "%s  size %d → %d: consistent; cosigned\n", time.Now().Format(time.TimeOnly), out.Old, out.New)
		}
		if *every <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*every):
		}
	}
}

func witnessSigner(skey, path string) (note.Signer, string, error) {
	if skey == "" {
		if b, err := os.ReadFile(path); err == nil {
			skey = strings.TrimSpace(string(b))
		} else {
			var err error
			if skey, _, err = tlog.GenerateEd25519("witness.yibao.local"); err != nil {
				return nil, "", err
			}
			os.MkdirAll(filepath.Dir(path), 0o700)
			if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
				return nil, "", err
			}
		}
	}
	s, err := tlog.NewEd25519Signer(skey)
	if err != nil {
		return nil, "", err
	}
	return s, s.Name(), nil
}
