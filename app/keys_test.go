package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/app"
	"yibao/app/apptest"
	"yibao/audit"
	"yibao/audit/tlog"
	"yibao/auth"
	"yibao/delivery"
	"yibao/demo"
	"yibao/gmcrypto"
	"yibao/gmcrypto/keystore"
	"yibao/registry"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// legacyDataDir makes a data dir the way the platform did before the key
// catalog: the same services, given keys derived from the master key
// (k1 = HKDF-SM3(master, "yibao/pii/sm4/k1"), the blind-index key, the
// checkpoint keys of audit.DeriveKeys), write persons, HMAC API keys, a
// webhook secret, a face template and an audit entry in the transparency
// log. It returns the configuration and that entry's receipt.
func legacyDataDir(t *testing.T, master []byte) (app.Config, *tlog.Receipt, *demo.Dataset) {
	t.Helper()
	ctx := context.Background()
	cfg := app.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.DB = sqltest.DSN(t)
	cfg.MasterKey = hex.EncodeToString(master)
	cfg.PasswordIterations = 1000
	cfg.LogLevel = "error"
	cfg.Wallets, cfg.Face = "off", "off"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ring, err := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": gmcrypto.DeriveKey(master, "yibao/pii/sm4/k1", 16)})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(db, ring, gmcrypto.DeriveKey(master, "yibao/pii/blind-index", 32))
	sys := yibao.WithPrincipal(ctx, yibao.System("seed"))
	d := demo.Build()
	for _, x := range d.Regions {
		if _, err := reg.CreateRegion(sys, x); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range d.Schemes {
		if _, err := reg.CreateScheme(sys, x); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range d.Institutions {
		if _, err := reg.CreateInstitution(sys, x); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.ImportBytes(sys, registry.ImportPersons, demo.PersonsCSV(d.Persons, d.Coverages)); err != nil {
		t.Fatal(err)
	}
	au := auth.New(db, ring)
	for _, k := range d.APIKeys {
		if _, err := au.CreateAPIKey(sys, k.FixmedinsCode, k.Alg, k.KeyID, k.Secret, nil); err != nil {
			t.Fatal(err)
		}
	}
	inst := d.Institutions[0].Code
	hosp := yibao.WithPrincipal(ctx, &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "his", Role: yibao.RoleCashier, Institution: inst})
	if _, err := delivery.New(db, ring, nil).SetWebhook(hosp, inst, "https://his.example/hook"); err != nil {
		t.Fatal(err)
	}
	// A face template, sealed as faceid seals it (bound to person and id).
	psn := d.Persons[0].PsnNo
	tmpl, _ := ring.Seal(bytes.Repeat([]byte{1, 2, 3, 4}, 128), []byte(fmt.Sprintf("face/%s/%d", psn, 4242)))
	if _, err := db.Exec(ctx, `INSERT INTO face_templates (id, psn_no, space, key_id, sealed, scope, admdvs, quality, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(4242), psn, "test", "k1", tmpl, "scope", d.Persons[0].Admdvs, "", int64(1)); err != nil {
		t.Fatal(err)
	}
	// The transparency log, signed with the derived checkpoint keys.
	// Tessera logs through klog, whose process-wide logger app.Open sets
	// once while tessera's goroutines read it without a lock: let a
	// platform open first, so that write happens before this log runs.
	warm := app.Defaults()
	warm.DataDir, warm.DB, warm.MasterKey, warm.LogLevel = t.TempDir(), sqltest.DSN(t), cfg.MasterKey, "error"
	warm.Wallets, warm.Banks, warm.Face = "off", "off", "off"
	if wa, err := app.Open(ctx, warm, io.Discard); err != nil {
		t.Fatal(err)
	} else {
		wa.Close()
	}
	keys, err := audit.DeriveKeys(master, cfg.LogOrigin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(ctx, tlog.Config{Dir: filepath.Join(cfg.DataDir, "log"), Origin: cfg.LogOrigin, Ed25519: keys.Ed25519, SM2: keys.SM2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w := audit.NewWriter(master)
	if err := db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		return w.Record(ctx, tx, audit.Entry{ID: "test:legacy", Kind: audit.KindKey, Actor: "system:test", Subject: "legacy", Data: map[string]any{"person": w.Person(psn)}})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.NewSequencer(db, l, nil).Step(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := (&audit.Store{DB: db, Log: l}).ReceiptFor(ctx, "test:legacy")
	if err != nil {
		t.Fatal(err)
	}
	return cfg, r, d
}

func verifies(t *testing.T, r *tlog.Receipt, vkeys []string) bool {
	t.Helper()
	vs, err := audit.Verifiers(vkeys...)
	if err != nil {
		t.Fatal(err)
	}
	return tlog.VerifyReceipt(r, vs) == nil
}

// TestKeysLegacyDataDirOpens: a data dir from before the key catalog opens
// with its old keys imported (wrapped) under their old ids: every person
// reads back in clear and is found by ID number, every sealed value opens,
// the old receipt verifies with the keys the platform now signs with, and
// the bank key is the old one. A data-key rotation then re-seals every
// value (none left under k1, none unreadable) and k1 is retired.
func TestKeysLegacyDataDirOpens(t *testing.T) {
	ctx := context.Background()
	master := bytes.Repeat([]byte{0x5a}, 32)
	cfg, receipt, d := legacyDataDir(t, master)
	a, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	sys := yibao.WithPrincipal(ctx, yibao.System("test"))

	recs, err := a.Keys.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if r.Purpose == keystore.PurposeNode {
			// The cross-region key came after the catalog: a legacy data
			// dir has none to import, so it is made new.
			if r.Origin != "generated" || r.State != keystore.StateActive {
				t.Errorf("%s: %s, %s", r.ID, r.Origin, r.State)
			}
			continue
		}
		ids = append(ids, r.ID)
		if !strings.HasPrefix(r.Origin, "imported: ") || r.State != keystore.StateActive {
			t.Errorf("%s: %s, %s", r.ID, r.Origin, r.State)
		}
	}
	slices.Sort(ids)
	if want := []string{"bank-sm2-1", "cp-ed-1", "cp-sm2-1", "k1", "root1"}; !slices.Equal(ids, want) {
		t.Fatalf("imported keys %v, want %v", ids, want)
	}
	old, _ := audit.DeriveKeys(master, cfg.LogOrigin)
	now, err := a.AuditKeys()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(now.VerifierKey, old.VerifierKey) {
		t.Fatalf("checkpoint keys changed: %v vs %v", now.VerifierKey, old.VerifierKey)
	}
	if !verifies(t, receipt, now.VerifierKey) {
		t.Fatal("the old receipt does not verify")
	}
	pemb, err := os.ReadFile(filepath.Join(cfg.BankKeys, "platform-public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bankPub, _ := gmcrypto.ParsePublicKeyPEM(pemb)
	if want := gmcrypto.DeterministicKey(gmcrypto.DeriveKey(master, "yibao/credit/platform-sm2", 32)).Public(); !bankPub.Equal(want) {
		t.Fatal("the bank-request key changed")
	}

	readPersons := func(stage string) {
		t.Helper()
		for _, p := range d.Persons {
			got, err := a.Registry.Person(sys, p.PsnNo, true)
			if err != nil || got.IDNumber != p.IDNumber || got.Name != p.Name || got.Phone != p.Phone {
				t.Fatalf("%s: person %s reads %+v, %v", stage, p.PsnNo, got, err)
			}
			if psn, err := a.Registry.PersonByIDNumber(sys, p.IDNumber); err != nil || psn != p.PsnNo {
				t.Fatalf("%s: lookup by ID number: %q %v", stage, psn, err)
			}
		}
	}
	readPersons("legacy")
	kr, err := a.Keys.Keyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cols := app.SealedColumns()
	before, err := a.Keys.Scan(ctx, cols, kr)
	if err != nil {
		t.Fatal(err)
	}
	if before.Unreadable != 0 || before.ByKey["k1"] != before.Values || before.Values < 3*int64(len(d.Persons)) {
		t.Fatalf("legacy values: %+v", before)
	}

	// Rotate, re-encrypt, retire.
	if _, err := a.Keys.RotateData(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if err := a.RefreshKeys(ctx); err != nil {
		t.Fatal(err)
	}
	kr, _ = a.Keys.Keyring(ctx)
	mid, _ := a.Keys.Scan(ctx, cols, kr)
	if mid.Unreadable != 0 {
		t.Fatalf("after the rotation %d values are unreadable: %v", mid.Unreadable, mid.Problems)
	}
	rep, err := a.Keys.Reencrypt(ctx, "test", cols, nil)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := a.Keys.Scan(ctx, cols, kr)
	if rep.Unreadable != 0 || after.Unreadable != 0 || after.ByKey["k1"] != 0 || after.ByKey["k2"] != before.Values || rep.Resealed != before.Values {
		t.Fatalf("re-encryption %+v; after %+v", rep, after)
	}
	var faceKey string
	a.DB.QueryRow(ctx, `SELECT key_id FROM face_templates WHERE id = 4242`).Scan(&faceKey)
	if faceKey != "k2" {
		t.Fatalf("face template key_id %q", faceKey)
	}
	readPersons("re-encrypted")
	keys := a.Keys
	keys.RetireAfter = -1
	if _, err := keys.Retire(ctx, "test", "k1", cols); err != nil {
		t.Fatal(err)
	}
	if err := a.RefreshKeys(ctx); err != nil {
		t.Fatal(err)
	}
	readPersons("k1 retired")
	// An HMAC-signed institution request still verifies (its secret was
	// re-sealed under k2).
	k := d.APIKeys[0]
	ts := fmt.Sprint(time.Now().Unix())
	if _, err := a.Auth.VerifyTIF(ctx, k.KeyID, ts, "nonce-0123456789abcdef", auth.TIFSignature(ts, hex.EncodeToString(k.Secret), "nonce-0123456789abcdef")); err != nil {
		t.Fatalf("signed request with a re-sealed secret: %v", err)
	}
	// The entries of the rotation and the retirement are in the audit trail.
	var n int
	a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM audit_entries WHERE kind = 'key' AND (id = 'key:k2:rotated' OR id = 'key:k1:retired' OR id LIKE 'key:k2:reencrypted:%')`).Scan(&n)
	if n != 3 {
		t.Fatalf("%d key audit entries", n)
	}
	// No unwrapped key sits in the data dir (SQLite: the files are ours).
	if os.Getenv(sqltest.EnvPG) == "" {
		a.Close()
		secrets := [][]byte{keystore.LegacyKeys(master)[keystore.PurposePII].Material}
		for _, l := range keystore.LegacyKeys(master) {
			secrets = append(secrets, l.Material)
		}
		filepath.WalkDir(cfg.DataDir, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			b, _ := os.ReadFile(path)
			for _, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s holds key material in clear", path)
				}
			}
			return nil
		})
	}
}

// TestKeysSigningRotationKeepsOldReceipts: after `keys rotate --signing`
// and a restart, a receipt issued before still verifies with the archived
// verifier keys of its generation, a new one verifies only with the new
// keys, and the log verifies with the new keys.
func TestKeysSigningRotationKeepsOldReceipts(t *testing.T) {
	ctx := context.Background()
	a, _ := apptest.Open(t, nil)
	record := func(a *app.App, id string) *tlog.Receipt {
		t.Helper()
		if err := a.DB.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			return a.Audit.Record(ctx, tx, audit.Entry{ID: id, Kind: audit.KindKey, Actor: "system:test", Subject: id})
		}); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := a.Sequencer.Step(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		r, err := (&audit.Store{DB: a.DB, Log: a.TLog}).ReceiptFor(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1 := record(a, "test:before-rotation")
	k1, _ := a.AuditKeys()
	v1 := k1.VerifierKey
	if !verifies(t, r1, v1) {
		t.Fatal("receipt before the rotation")
	}
	cfg := a.Config
	a.Close()

	op, err := app.OpenStore(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := op.Keys.Rotate(ctx, "test", keystore.CheckpointPurposes...)
	op.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].ID != "cp-sm2-2" || rs[1].ID != "cp-ed-2" {
		t.Fatalf("rotated to %s, %s", rs[0].ID, rs[1].ID)
	}

	b, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	k2, _ := b.AuditKeys()
	v2 := k2.VerifierKey
	if slices.Equal(v1, v2) || v2[0] == v1[0] || v2[1] == v1[1] {
		t.Fatalf("the keys did not change: %v", v2)
	}
	r2 := record(b, "test:after-rotation")
	if !verifies(t, r2, v2) || verifies(t, r2, v1) {
		t.Fatal("the new receipt is not signed by the new keys alone")
	}
	gens, err := b.CheckpointVerifierKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 2 || gens[0].Generation != 2 || gens[0].State != keystore.StateActive || !slices.Equal(gens[0].VerifierKey, v2) ||
		gens[1].Generation != 1 || gens[1].State != keystore.StateDecryptOnly || !slices.Equal(gens[1].VerifierKey, v1) {
		t.Fatalf("generations: %+v", gens)
	}
	if !verifies(t, r1, gens[1].VerifierKey) {
		t.Fatal("the old receipt does not verify with the archived keys")
	}
	if verifies(t, r1, v2) {
		t.Fatal("the old receipt verifies with the new keys")
	}
	// The rotation itself is an audit entry, in the log under the new keys.
	if r := record(b, "key:cp-sm2-2:rotated"); !verifies(t, r, v2) {
		t.Fatal("the rotation's receipt")
	}
	vs, _ := audit.Verifiers(v2...)
	if _, err := tlog.VerifyTree(ctx, filepath.Join(cfg.DataDir, "log"), vs); err != nil {
		t.Fatalf("log verify with the new keys: %v", err)
	}
}

// TestKeysSealedColumnsCoverTheMigrations: every column the migrations
// declare as sealed (…_cipher, or "sealed", or commented SM4-GCM) is
// re-sealed by `yibao keys reencrypt`, and every listed column exists.
func TestKeysSealedColumnsCoverTheMigrations(t *testing.T) {
	files, err := filepath.Glob("../sqlstore/migrations/sqlite/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v", err)
	}
	create := regexp.MustCompile(`(?i)^\s*CREATE TABLE (?:IF NOT EXISTS )?(\w+)`)
	alter := regexp.MustCompile(`(?i)^\s*ALTER TABLE (\w+) ADD COLUMN (\w+)(.*)$`)
	column := regexp.MustCompile(`^\s+(\w+)\s+(BLOB|BYTEA|TEXT|BIGINT|INTEGER|SMALLINT)\b(.*)$`)
	declared := map[string]bool{} // table.column sealed per the migrations
	exists := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		table := ""
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := sc.Text()
			var col, rest string
			if m := create.FindStringSubmatch(line); m != nil {
				table = m[1]
				continue
			} else if m := alter.FindStringSubmatch(line); m != nil {
				table, col, rest = m[1], m[2], m[3]
			} else if m := column.FindStringSubmatch(line); m != nil && table != "" {
				col, rest = m[1], m[3]
			} else {
				continue
			}
			exists[table+"."+col] = true
			if strings.HasSuffix(col, "_cipher") || col == "sealed" || strings.Contains(rest, "SM4-GCM") {
				declared[table+"."+col] = true
			}
		}
		fh.Close()
	}
	listed := map[string]bool{}
	for _, tg := range app.SealedColumns() {
		for _, c := range tg.Columns {
			listed[tg.Table+"."+c.Name] = true
			if !exists[tg.Table+"."+c.Name] {
				t.Errorf("app.SealedColumns lists %s.%s, which no migration creates", tg.Table, c.Name)
			}
		}
	}
	for c := range declared {
		if !listed[c] {
			t.Errorf("%s is sealed but not in app.SealedColumns: `yibao keys reencrypt` would leave it under old keys", c)
		}
	}
	if len(declared) < 6 {
		t.Fatalf("found only %d sealed columns: %v", len(declared), declared)
	}
}
