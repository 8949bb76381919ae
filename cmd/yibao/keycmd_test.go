package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"yibao/app"
	"yibao/demo"
	"yibao/sqlstore/sqltest"
)

// TestKeysCommand drives `yibao keys` as an operator would on a seeded
// data dir: list, rotate the data key (with the re-encryption's progress
// lines), check, rotate the checkpoint keys, list again, and a retirement
// that is refused while servers may still use the key.
func TestKeysCommand(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	base := []string{"--data-dir", dir, "--log-level", "error"}
	if os.Getenv(sqltest.EnvPG) != "" {
		base = append(base, "--db", sqltest.DSN(t))
	}
	t.Setenv("YIBAO_FACE", "off")
	t.Setenv("YIBAO_WALLETS", "off")
	t.Setenv("YIBAO_PASSWORD_ITERATIONS", "1000")
	cfg, _, err := loadConfig("test", base, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.Seed(ctx, demo.Build())
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	keys := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append(append([]string{"keys"}, args...), base...), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	steps := []struct {
		name   string
		args   []string
		want   []string // regexps the output (stdout + stderr) must match
		errHas string   // "" = must succeed
	}{
		{"list a new catalog", []string{"list"}, []string{`(?m)^k1\s+data\s+pii\s+SM4\s+active`, `(?m)^cp-sm2-1\s+signing\s+checkpoint-sm2\s+SM2\s+active`,
			`(?m)^root1\s+secret\s+derivation-root`, `generation 1 \(active\):\n\s+yibao\.local/log\+[0-9a-f]{8}\+`}, ""},
		{"rotate without a kind", []string{"rotate"}, nil, "--data or --signing"},
		{"rotate the data key", []string{"rotate", "--data"}, []string{`data key k2 is active`,
			`re-encrypting under k2 \(pass 1\): \d+/\d+ rows, \d+ values re-sealed`,
			`re-encrypted under k2 in .*: \d+ rows read, \d+ values re-sealed, 0 unreadable`, `no stored value refers to another data key`}, ""},
		{"check", []string{"check"}, []string{`sealed values \(k2: \d+\); active data key k2; unreadable 0`}, ""},
		{"re-encrypt again: nothing to do", []string{"reencrypt"}, []string{`0 values re-sealed, 0 unreadable`}, ""},
		{"rotate the checkpoint keys", []string{"rotate", "--signing"}, []string{`checkpoint-sm2 key cp-sm2-2 \(SM2\) is active`,
			`checkpoint-ed25519 key cp-ed-2 \(Ed25519\) is active`, `restart the servers`}, ""},
		{"rotate the bank key", []string{"rotate", "--signing", "--purpose", "bank-request"}, []string{`bank-request key bank-sm2-2`}, ""},
		{"list after the rotations", []string{"list", "--data-dir", dir}, []string{`(?m)^k1\s+data\s+pii\s+SM4\s+decrypt-only`, `(?m)^k2\s+data\s+pii\s+SM4\s+active`,
			`(?m)^cp-sm2-1\s+.*decrypt-only`, `generation 2 \(active\)`, `generation 1 \(decrypt-only\)`}, ""},
		{"retire too soon", []string{"retire", "k1"}, nil, "retire it after"},
		{"retire the active key", []string{"retire", "k2"}, nil, "rotate first"},
		{"the root is not rotatable by any flag", []string{"rotate", "--signing", "--purpose", "derivation-root"}, nil, "checkpoint or bank-request"},
		{"json", []string{"list", "--json"}, []string{`"id": "k2"`, `"state": "decrypt-only"`, `"checkpoint_keys"`}, ""},
	}
	for _, s := range steps {
		out, errOut, err := keys(s.args...)
		all := out + errOut
		if s.errHas == "" && err != nil {
			t.Fatalf("%s: %v\n%s", s.name, err, all)
		}
		if s.errHas != "" && (err == nil || !strings.Contains(err.Error(), s.errHas)) {
			t.Fatalf("%s: err = %v, want %q\n%s", s.name, err, s.errHas, all)
		}
		for _, w := range s.want {
			if !regexp.MustCompile(w).MatchString(all) {
				t.Errorf("%s: output does not match %s:\n%s", s.name, w, all)
			}
		}
	}
	// Every demo person still reads back after all that, from a restarted platform.
	b, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kr, err := b.Keys.Keyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scan, err := b.Keys.Scan(ctx, app.SealedColumns(), kr)
	if err != nil || scan.Unreadable != 0 || scan.ByKey["k1"] != 0 || scan.Values < int64(rep.Persons) {
		t.Fatalf("after the commands: %+v %v", scan, err)
	}
}
