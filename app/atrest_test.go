package app_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/credit"
	"yibao/demo"
	"yibao/sim/banksim"
	"yibao/sqlstore/sqltest"
)

// TestNoPersonalDataAtRest seeds the demo and runs credit and fund flows
// (which store agreements, statements, bank state and audit entries),
// then reads every file under the data folder — the SQLite database, its
// WAL, the transparency log's tiles and bundles, the bank simulator's
// state, the keys — for every demo person's ID number, phone number and
// name in clear. It must find none (SQLite only: PostgreSQL's files are
// not ours to read).
func TestNoPersonalDataAtRest(t *testing.T) {
	if os.Getenv(sqltest.EnvPG) != "" {
		t.Skip("reads the SQLite files")
	}
	a, d := apptest.Open(t, func(c *app.Config) { c.Wallets = "sim" })
	ctx := context.Background()
	// Some traffic that stores things about persons.
	psn := demo.AgreementHolders(d)[1]
	if _, err := a.Credit.Apply(ctx, psn, credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true}); err != nil {
		t.Fatal(err)
	}
	sys := yibao.WithPrincipal(ctx, yibao.System("test"))
	if _, err := a.Funds.PrepareContributions(sys, bytes.NewReader(demo.ContributionsCSV(d, "2026-12")), nil); err != nil {
		t.Fatal(err)
	}
	a.Close() // flush the WAL and the log
	var secrets [][]byte
	for _, p := range d.Persons {
		for _, v := range []string{p.IDNumber, p.Phone, p.Name} {
			if len([]rune(v)) >= 3 {
				secrets = append(secrets, []byte(v))
			}
		}
	}
	files := 0
	err := filepath.WalkDir(a.Config.DataDir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range secrets {
			if i := bytes.Index(b, s); i >= 0 {
				t.Errorf("%s holds %q in clear at byte %d", strings.TrimPrefix(path, a.Config.DataDir), s, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("read only %d files under %s", files, a.Config.DataDir)
	}
	t.Logf("X12: %d files (database, WAL, logs) scanned for %d personal values in clear: hits 0", files, len(secrets))
}
