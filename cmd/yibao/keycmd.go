package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"yibao/app"
	"yibao/gmcrypto"
	"yibao/gmcrypto/keystore"
)

const keysUsage = `usage:
  yibao keys list [--json]                  ids, kinds, purposes, states, creation; the checkpoint verifier keys of every generation
  yibao keys rotate --data [--no-reencrypt] a new active data key (the old one decrypt-only), then re-encrypt
  yibao keys rotate --signing [--purpose checkpoint|bank-request]
                                            a new signing key (the old public key stays, so old receipts verify)
  yibao keys reencrypt                      re-seal every stored value under the active data key (resumes an interrupted run)
  yibao keys check                          count the stored values per data key and open every one
  yibao keys retire ID                      destroy a decrypt-only key nothing refers to any more`

// keysActor names the operator tool in the audit entries of key changes.
const keysActor = "system:yibao-keys"

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(keysUsage)
	}
	sub, args := args[0], args[1:]
	var (
		asJSON, data, signing, noReencrypt bool
		purpose                            string
	)
	extra := func(fs *flag.FlagSet) {
		switch sub {
		case "list":
			fs.BoolVar(&asJSON, "json", false, "print JSON")
		case "rotate":
			fs.BoolVar(&data, "data", false, "rotate the data-encryption key (SM4)")
			fs.BoolVar(&signing, "signing", false, "rotate a signing key")
			fs.StringVar(&purpose, "purpose", "checkpoint", "with --signing: checkpoint (the SM2 and Ed25519 checkpoint keys together) or bank-request")
			fs.BoolVar(&noReencrypt, "no-reencrypt", false, "with --data: do not re-encrypt now (run `yibao keys reencrypt` later)")
		}
	}
	switch sub {
	case "list", "rotate", "reencrypt", "check", "retire":
	default:
		return errors.New(keysUsage)
	}
	var id string // retire ID, before or after the flags
	if sub == "retire" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	cfg, fs, err := loadConfig("keys "+sub, args, stderr, extra)
	if err != nil {
		return err
	}
	a, err := app.OpenStore(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	switch sub {
	case "list":
		return keysList(ctx, a, asJSON, stdout)
	case "rotate":
		if data == signing {
			return errors.New("yibao keys rotate: give --data or --signing")
		}
		if data {
			r, err := a.Keys.RotateData(ctx, keysActor)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "data key %s is active; the previous data key is decrypt-only (running servers move to %s within %s)\n", r.ID, r.ID, keystore.RefreshInterval)
			if noReencrypt {
				fmt.Fprintln(stdout, "values stay under their old keys until `yibao keys reencrypt`")
				return nil
			}
			return keysReencrypt(ctx, a, stdout, stderr)
		}
		purposes := []string{keystore.PurposeBankRequest}
		switch purpose {
		case "checkpoint":
			purposes = keystore.CheckpointPurposes
		case "bank-request":
		default:
			return fmt.Errorf("--purpose %q: checkpoint or bank-request", purpose)
		}
		rs, err := a.Keys.Rotate(ctx, keysActor, purposes...)
		if err != nil {
			return err
		}
		for _, r := range rs {
			fmt.Fprintf(stdout, "%s key %s (%s) is active, fingerprint %s; the previous one is verify-only\n", r.Purpose, r.ID, r.Alg, fingerprint(r.Public))
		}
		fmt.Fprintln(stdout, "restart the servers to sign with it")
		if purpose == "checkpoint" {
			ks, err := a.CheckpointVerifierKeys(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, "give verifiers and witnesses the new verifier keys (the old ones still verify old receipts):")
			for _, v := range ks[0].VerifierKey {
				fmt.Fprintln(stdout, "  "+v)
			}
		} else {
			fmt.Fprintln(stdout, "give the partner banks the new public key (bank_keys/platform-public.pem is rewritten at the next start)")
		}
		return nil
	case "reencrypt":
		return keysReencrypt(ctx, a, stdout, stderr)
	case "check":
		return keysCheck(ctx, a, stdout)
	case "retire":
		if id == "" && fs.NArg() == 1 {
			id = fs.Arg(0)
		} else if id == "" || fs.NArg() != 0 {
			return errors.New("usage: yibao keys retire ID")
		}
		r, err := a.Keys.Retire(ctx, keysActor, id, app.SealedColumns())
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s is retired: its material is destroyed", r.ID)
		if r.Kind == keystore.KindSigning {
			fmt.Fprint(stdout, "; its public key stays, so what it signed still verifies")
		}
		fmt.Fprintln(stdout)
		return nil
	}
	return nil
}

func fingerprint(pub []byte) string {
	if pub == nil {
		return ""
	}
	h := gmcrypto.SM3(pub)
	return hex.EncodeToString(h[:6])
}

func keysList(ctx context.Context, a *app.App, asJSON bool, stdout io.Writer) error {
	recs, err := a.Keys.List(ctx)
	if err != nil {
		return err
	}
	ck, err := a.CheckpointVerifierKeys(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		type key struct {
			ID          string `json:"id"`
			Kind        string `json:"kind"`
			Purpose     string `json:"purpose"`
			Alg         string `json:"alg"`
			State       string `json:"state"`
			Created     string `json:"created"`
			Changed     string `json:"changed"`
			KeyStore    string `json:"key_store"`
			Origin      string `json:"origin"`
			PublicKey   string `json:"public_key,omitempty"`
			HasMaterial bool   `json:"has_material"`
		}
		out := struct {
			Keys       []key                `json:"keys"`
			Checkpoint []app.CheckpointKeys `json:"checkpoint_keys"`
		}{Checkpoint: ck}
		for _, r := range recs {
			out.Keys = append(out.Keys, key{r.ID, string(r.Kind), r.Purpose, string(r.Alg), string(r.State), r.Created.Format(time.RFC3339),
				r.Changed.Format(time.RFC3339), r.KeyStore, r.Origin, hex.EncodeToString(r.Public), r.Wrapped != nil})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tPURPOSE\tALG\tSTATE\tCREATED\tKEY STORE\tPUBLIC KEY\tORIGIN")
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Purpose < recs[j].Purpose })
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Kind, r.Purpose, r.Alg, r.State, r.Created.Local().Format("2006-01-02 15:04:05"),
			r.KeyStore, fingerprint(r.Public), r.Origin)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\ncheckpoint verifier keys (Ed25519, SM2) by generation:")
	for _, k := range ck {
		fmt.Fprintf(stdout, "  generation %d (%s):\n", k.Generation, k.State)
		for _, v := range k.VerifierKey {
			fmt.Fprintln(stdout, "    "+v)
		}
	}
	return nil
}

func keysReencrypt(ctx context.Context, a *app.App, stdout, stderr io.Writer) error {
	start := time.Now()
	last := time.Time{}
	rep, err := a.Keys.Reencrypt(ctx, keysActor, app.SealedColumns(), func(p keystore.Progress) {
		if time.Since(last) < 200*time.Millisecond && p.Done < p.Total {
			return
		}
		last = time.Now()
		fmt.Fprintf(stderr, "re-encrypting under %s (pass %d): %d/%d rows, %d values re-sealed [%s]\n", p.KeyID, p.Pass, p.Done, p.Total, p.Resealed, p.Table)
	})
	if err != nil {
		if rep != nil && rep.Rows > 0 {
			return fmt.Errorf("%w (%d rows done; run `yibao keys reencrypt` again to resume)", err, rep.Rows)
		}
		return err
	}
	resumed := ""
	if rep.Resumed {
		resumed = ", resuming an interrupted run"
	}
	fmt.Fprintf(stdout, "re-encrypted under %s in %s%s: %d rows read, %d values re-sealed, %d unreadable, %d pass(es)\n",
		rep.KeyID, time.Since(start).Round(time.Millisecond), resumed, rep.Rows, rep.Resealed, rep.Unreadable, rep.Passes)
	var left []string
	for id, n := range rep.Remaining {
		left = append(left, fmt.Sprintf("%s: %d", id, n))
	}
	sort.Strings(left)
	if len(left) > 0 {
		fmt.Fprintf(stdout, "values still under other keys: %s\n", strings.Join(left, ", "))
		if rep.Unreadable > 0 {
			return fmt.Errorf("%d values did not open: see `yibao keys check`", rep.Unreadable)
		}
		return errors.New("values were written under an old key meanwhile: run `yibao keys reencrypt` again once every server has refreshed")
	}
	fmt.Fprintf(stdout, "no stored value refers to another data key: decrypt-only data keys can be retired (`yibao keys retire ID`)\n")
	return nil
}

func keysCheck(ctx context.Context, a *app.App, stdout io.Writer) error {
	kr, err := a.Keys.Keyring(ctx)
	if err != nil {
		return err
	}
	rep, err := a.Keys.Scan(ctx, app.SealedColumns(), kr)
	if err != nil {
		return err
	}
	var by []string
	for id, n := range rep.ByKey {
		by = append(by, fmt.Sprintf("%s: %d", id, n))
	}
	sort.Strings(by)
	fmt.Fprintf(stdout, "%d rows, %d sealed values (%s); active data key %s; unreadable %d\n", rep.Rows, rep.Values, strings.Join(by, ", "), kr.ActiveKeyID(), rep.Unreadable)
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, "  UNREADABLE:", p)
	}
	if rep.Unreadable > 0 {
		return fmt.Errorf("%d sealed values do not open", rep.Unreadable)
	}
	return nil
}
