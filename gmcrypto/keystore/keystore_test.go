package keystore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao/gmcrypto"
	"yibao/gmcrypto/keystore"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// catalogOn returns a catalog on db with the software store of master.
func catalogOn(t testing.TB, db *sqlstore.DB, master []byte) *keystore.Catalog {
	t.Helper()
	ks, err := keystore.NewSoftware(master)
	if err != nil {
		t.Fatal(err)
	}
	return &keystore.Catalog{DB: db, Store: ks, RetireAfter: -1,
		WriteTx: func(ctx context.Context, fn func(keystore.DB) error) error {
			return db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return fn(tx) })
		}}
}

func master(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

type legacyVector struct {
	Name          string `json:"name"`
	Master        string `json:"master"`
	K1            string `json:"k1"`
	CheckpointSM2 string `json:"checkpoint_sm2_public"`
	CheckpointEd  string `json:"checkpoint_ed25519_public"`
	BankSM2       string `json:"bank_request_public"`
	Sealed        []struct {
		AAD, Plaintext, Sealed string
	} `json:"sealed_under_k1"`
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLegacyDataOpens: values sealed, and keys made, by the platform before
// the catalog (testdata/legacy_keys.json, written by that code) open and
// match after the catalog imports the legacy keys of the master key.
func TestLegacyDataOpens(t *testing.T) {
	raw, err := os.ReadFile("testdata/legacy_keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var vecs []legacyVector
	if err := json.Unmarshal(raw, &vecs); err != nil {
		t.Fatal(err)
	}
	if len(vecs) < 3 {
		t.Fatalf("%d vectors", len(vecs))
	}
	ctx := context.Background()
	for _, v := range vecs {
		t.Run(v.Name, func(t *testing.T) {
			m := unhex(t, v.Master)
			lk := keystore.LegacyKeys(m)
			if got := hex.EncodeToString(lk[keystore.PurposePII].Material); got != v.K1 || lk[keystore.PurposePII].ID != "k1" {
				t.Fatalf("legacy k1 = %s %s, want k1 %s", lk[keystore.PurposePII].ID, got, v.K1)
			}
			db := sqltest.Open(t)
			c := catalogOn(t, db, m)
			created, err := c.Bootstrap(ctx, lk)
			if err != nil {
				t.Fatal(err)
			}
			if len(created) != len(keystore.Specs) {
				t.Fatalf("created %d keys, want %d", len(created), len(keystore.Specs))
			}
			for _, r := range created {
				if _, old := lk[r.Purpose]; !old {
					continue // a purpose newer than the catalog (node-request): made new
				}
				if !strings.HasPrefix(r.Origin, "imported: ") || r.Generation() != 1 || r.State != keystore.StateActive {
					t.Errorf("%s: origin %q, generation %d, state %s", r.ID, r.Origin, r.Generation(), r.State)
				}
			}
			kr, err := c.Keyring(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range v.Sealed {
				pt, err := kr.Open(unhex(t, s.Sealed), []byte(s.AAD))
				if err != nil || string(pt) != s.Plaintext {
					t.Errorf("%s: %q, %v", s.AAD, pt, err)
				}
			}
			for purpose, want := range map[string]string{keystore.PurposeCheckpointSM2: v.CheckpointSM2,
				keystore.PurposeCheckpointEd25519: v.CheckpointEd, keystore.PurposeBankRequest: v.BankSM2} {
				s, err := c.Signer(ctx, purpose)
				if err != nil {
					t.Fatal(err)
				}
				if hex.EncodeToString(s.Public) != want {
					t.Errorf("%s public key %x, want %s", purpose, s.Public, want)
				}
				sig, err := s.Sign(nil, []byte("checkpoint body"))
				if err != nil || !keystore.VerifyPublic(s.Alg, unhex(t, want), nil, []byte("checkpoint body"), sig) {
					t.Errorf("%s: the imported key does not sign as the old one (%v)", purpose, err)
				}
			}
			if root, err := c.Secret(ctx, keystore.PurposeRoot); err != nil || !bytes.Equal(root, m) {
				t.Errorf("derivation root of a legacy data dir must be the master key: %v", err)
			}
			// The wrapped rows hold no key in clear.
			recs, _ := c.List(ctx)
			for _, r := range recs {
				if l, old := lk[r.Purpose]; old && bytes.Contains(r.Wrapped, l.Material) {
					t.Errorf("%s: the wrapped column holds the key in clear", r.ID)
				}
			}
		})
	}
}

// sealedTable makes a table with two sealed columns (one nullable) and a
// key-id column, and fills it with n rows sealed by kr.
func sealedTable(t *testing.T, db *sqlstore.DB, kr *gmcrypto.Keyring, n int) keystore.Target {
	t.Helper()
	blob := "BLOB"
	if db.Dialect == sqlstore.Postgres {
		blob = "BYTEA"
	}
	ctx := context.Background()
	if _, err := db.Exec(ctx, `CREATE TABLE sealed_things (id BIGINT PRIMARY KEY, owner TEXT NOT NULL, a `+blob+` NOT NULL, b `+blob+`, key_id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	tgt := keystore.Target{Table: "sealed_things", Key: "id", IntKey: true, Extra: []string{"owner"}, KeyIDColumn: "key_id",
		Columns: []keystore.Column{
			{Name: "a", AAD: func(id string, x []string) []byte { return []byte("thing/" + x[0] + "/" + id + "/a") }},
			{Name: "b", AAD: func(id string, x []string) []byte { return []byte("thing/" + x[0] + "/" + id + "/b") }},
		}}
	err := db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		for i := 1; i <= n; i++ {
			owner := fmt.Sprintf("o%d", i%7)
			id := fmt.Sprint(i)
			a, _ := kr.Seal(fmt.Appendf(nil, "a-%d", i), tgt.Columns[0].AAD(id, []string{owner}))
			var b []byte
			if i%3 != 0 {
				b, _ = kr.Seal(fmt.Appendf(nil, "b-%d", i), tgt.Columns[1].AAD(id, []string{owner}))
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sealed_things (id, owner, a, b, key_id) VALUES (?, ?, ?, ?, ?)`, int64(i), owner, a, b, kr.ActiveKeyID()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tgt
}

// readAll opens every row of the table and checks the clear values.
func readAll(t *testing.T, db *sqlstore.DB, kr *gmcrypto.Keyring, tgt keystore.Target) (unreadable int) {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT id, owner, a, b FROM sealed_things ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var owner string
		var a, b []byte
		rows.Scan(&id, &owner, &a, &b)
		sid := fmt.Sprint(id)
		if pt, err := kr.Open(a, tgt.Columns[0].AAD(sid, []string{owner})); err != nil || string(pt) != fmt.Sprintf("a-%d", id) {
			unreadable++
		}
		if b != nil {
			if pt, err := kr.Open(b, tgt.Columns[1].AAD(sid, []string{owner})); err != nil || string(pt) != fmt.Sprintf("b-%d", id) {
				unreadable++
			}
		}
	}
	return unreadable
}

// TestDataKeyRotation: after a rotation every old value still opens; the
// re-encryption job (interrupted once, then resumed) leaves no value under
// the old key and keeps the key-id column in step; the old key is then
// retired and cannot open or seal anything.
func TestDataKeyRotation(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t)
	c := catalogOn(t, db, master(7))
	if _, err := c.Bootstrap(ctx, nil); err != nil {
		t.Fatal(err)
	}
	kr, err := c.Keyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kr.ActiveKeyID() != "k1" {
		t.Fatalf("first data key %s", kr.ActiveKeyID())
	}
	const rows = 700 // a few batches
	tgt := sealedTable(t, db, kr, rows)
	targets := []keystore.Target{tgt}
	keep, _ := kr.Seal([]byte("kept aside under k1"), []byte("aside"))

	k2, err := c.RotateData(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID != "k2" || k2.State != keystore.StateActive {
		t.Fatalf("rotated to %+v", k2)
	}
	if k1, _ := c.Get(ctx, "k1"); k1.State != keystore.StateDecryptOnly {
		t.Fatalf("k1 is %s after the rotation", k1.State)
	}
	// A server's keyring follows: new values under k2, old ones open.
	if err := c.Refresh(ctx, kr); err != nil {
		t.Fatal(err)
	}
	if v, _ := kr.Seal([]byte("x"), nil); !bytes.HasPrefix(v[2:], []byte("k2")) {
		t.Fatal("the refreshed keyring does not seal under k2")
	}
	if n := readAll(t, db, kr, tgt); n != 0 {
		t.Fatalf("after the rotation %d values are unreadable", n)
	}
	scan, err := c.Scan(ctx, targets, kr)
	if err != nil {
		t.Fatal(err)
	}
	values := scan.Values
	if scan.Unreadable != 0 || scan.ByKey["k1"] != values || values < rows {
		t.Fatalf("scan after the rotation: %+v", scan)
	}
	// The job stops after its second batch (a crash), then resumes.
	jobCtx, stop := context.WithCancel(ctx)
	var seen []keystore.Progress
	_, err = c.Reencrypt(jobCtx, "test", targets, func(p keystore.Progress) {
		seen = append(seen, p)
		if len(seen) == 2 {
			stop()
		}
	})
	if err == nil {
		t.Fatal("the interrupted job did not stop")
	}
	mid, _ := c.Scan(ctx, targets, nil)
	if mid.ByKey["k1"] == 0 || mid.ByKey["k2"] == 0 {
		t.Fatalf("after the interruption: %+v", mid.ByKey)
	}
	var lines []string
	rep, err := c.Reencrypt(ctx, "test", targets, func(p keystore.Progress) {
		lines = append(lines, fmt.Sprintf("%d/%d", p.Done, p.Total))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.Unreadable != 0 || len(rep.Remaining) != 0 || rep.KeyID != "k2" {
		t.Fatalf("resumed job: %+v", rep)
	}
	if rep.Rows >= rows {
		t.Fatalf("the resumed job read %d rows: it started over", rep.Rows)
	}
	if last := lines[len(lines)-1]; last != fmt.Sprintf("%d/%d", rows, rows) {
		t.Fatalf("progress ends at %s (lines %v)", last, lines)
	}
	after, err := c.Scan(ctx, targets, kr)
	if err != nil {
		t.Fatal(err)
	}
	if after.Unreadable != 0 || after.ByKey["k1"] != 0 || after.ByKey["k2"] != values {
		t.Fatalf("after re-encryption: %+v", after)
	}
	var stale int
	db.QueryRow(ctx, `SELECT COUNT(*) FROM sealed_things WHERE key_id <> 'k2'`).Scan(&stale)
	if stale != 0 {
		t.Fatalf("%d rows' key_id still names the old key", stale)
	}
	if n := readAll(t, db, kr, tgt); n != 0 {
		t.Fatalf("after re-encryption %d values are unreadable", n)
	}
	// Running it again finds nothing to do.
	if again, err := c.Reencrypt(ctx, "test", targets, nil); err != nil || again.Resealed != 0 || again.Resumed {
		t.Fatalf("second run: %+v %v", again, err)
	}

	// Retire k1: its material is destroyed, nothing opens or seals with it.
	if _, err := c.Retire(ctx, "test", "k1", targets); err != nil {
		t.Fatal(err)
	}
	r1, _ := c.Get(ctx, "k1")
	if r1.State != keystore.StateRetired || r1.Wrapped != nil {
		t.Fatalf("retired k1: %+v", r1)
	}
	if err := c.Refresh(ctx, kr); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(keep, []byte("aside")); err == nil {
		t.Fatal("a value under the retired key still opens")
	}
	if _, err := c.DataKey(ctx, "k1"); !errors.Is(err, keystore.ErrRetired) {
		t.Fatalf("retired key material: %v", err)
	}
	for _, id := range kr.KeyIDs() {
		if id == "k1" {
			t.Fatal("the retired key is in the keyring")
		}
	}
	if n := readAll(t, db, kr, tgt); n != 0 {
		t.Fatalf("after retiring k1, %d values are unreadable", n)
	}
	// Rotating again never brings k1 back: k3 seals.
	if k3, err := c.RotateData(ctx, "test"); err != nil || k3.ID != "k3" {
		t.Fatalf("third key: %+v %v", k3, err)
	}
	c.Refresh(ctx, kr)
	if kr.ActiveKeyID() != "k3" {
		t.Fatalf("active %s", kr.ActiveKeyID())
	}
	t.Logf("X13: data key rotated k1 → k2 → k3 over %d rows (%d values), re-encrypted after a stop and resumed, k1 retired: unreadable 0, values left under k1 0", rows, values)
}

// TestKeyStateRules: what each state allows, as a table.
func TestKeyStateRules(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t)
	c := catalogOn(t, db, master(9))
	if _, err := c.Bootstrap(ctx, nil); err != nil {
		t.Fatal(err)
	}
	kr, _ := c.Keyring(ctx)
	tgt := sealedTable(t, db, kr, 10)
	if _, err := c.RotateData(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	targets := []keystore.Target{tgt}
	cases := []struct {
		name string
		do   func() error
		want string // substring of the error; "" = success
	}{
		{"the active key cannot be retired", func() error { _, err := c.Retire(ctx, "t", "k2", targets); return err }, "rotate first"},
		{"a key still referred to cannot be retired", func() error { _, err := c.Retire(ctx, "t", "k1", targets); return err }, "still sealed under k1"},
		{"a key retired too soon is refused", func() error {
			c2 := *c
			c2.RetireAfter = time.Hour
			_, err := c2.Retire(ctx, "t", "k1", nil)
			return err
		}, "retire it after"},
		{"the derivation root is not rotatable", func() error { _, err := c.Rotate(ctx, "t", keystore.PurposeRoot); return err }, "cannot be rotated"},
		{"an unknown purpose", func() error { _, err := c.Rotate(ctx, "t", "coffee"); return err }, "unknown purpose"},
		{"an unknown key", func() error { _, err := c.Retire(ctx, "t", "k9", targets); return err }, "no such key"},
		{"re-encrypt, then retire", func() error {
			if _, err := c.Reencrypt(ctx, "t", targets, nil); err != nil {
				return err
			}
			_, err := c.Retire(ctx, "t", "k1", targets)
			return err
		}, ""},
		{"a retired key cannot be retired again", func() error { _, err := c.Retire(ctx, "t", "k1", targets); return err }, "retired"},
		{"a retired key gives no material", func() error { _, err := c.DataKey(ctx, "k1"); return err }, "retired"},
	}
	for _, tc := range cases {
		err := tc.do()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestSigningKeyRotation: a rotated signing key stops signing, its public
// half stays and verifies what it signed; the new key signs; a retired key
// cannot sign.
func TestSigningKeyRotation(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t)
	c := catalogOn(t, db, master(3))
	if _, err := c.Bootstrap(ctx, nil); err != nil {
		t.Fatal(err)
	}
	msg := []byte("yibao.local/log\n7\nroot\n")
	old := map[string]*keystore.Signer{}
	oldSig := map[string][]byte{}
	for _, p := range keystore.CheckpointPurposes {
		s, err := c.Signer(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		old[p] = s
		if oldSig[p], err = s.Sign(nil, msg); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := c.Rotate(ctx, "test", keystore.CheckpointPurposes...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != "cp-sm2-2" || rs[1].ID != "cp-ed-2" {
		t.Fatalf("rotated: %v %v", rs[0].ID, rs[1].ID)
	}
	for _, p := range keystore.CheckpointPurposes {
		s, err := c.Signer(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID == old[p].ID {
			t.Fatalf("%s still signs with %s", p, s.ID)
		}
		sig, _ := s.Sign(nil, msg)
		archived, _ := c.Get(ctx, old[p].ID)
		if archived.State != keystore.StateDecryptOnly || !bytes.Equal(archived.Public, old[p].Public) {
			t.Fatalf("%s: archived %+v", p, archived)
		}
		if !keystore.VerifyPublic(archived.Alg, archived.Public, nil, msg, oldSig[p]) {
			t.Errorf("%s: the old signature no longer verifies with the archived key", p)
		}
		if keystore.VerifyPublic(archived.Alg, archived.Public, nil, msg, sig) || !keystore.VerifyPublic(s.Alg, s.Public, nil, msg, sig) {
			t.Errorf("%s: the new signature is not the new key's", p)
		}
	}
	// Retire generation 1: the public keys stay, the private ones are gone.
	for _, p := range keystore.CheckpointPurposes {
		r, err := c.Retire(ctx, "test", old[p].ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Wrapped != nil || r.Public == nil {
			t.Fatalf("retired %s: %+v", r.ID, r)
		}
		got, _ := c.Get(ctx, old[p].ID)
		if got.Wrapped != nil || !keystore.VerifyPublic(got.Alg, got.Public, nil, msg, oldSig[p]) {
			t.Fatalf("%s after retirement", got.ID)
		}
		if _, err := c.Store.Sign(got.Alg, got.ID, got.Wrapped, nil, msg); err == nil {
			t.Errorf("%s: a retired key signed", got.ID)
		}
	}
	// Bank keys rotate on their own.
	if rs, err := c.Rotate(ctx, "test", keystore.PurposeBankRequest); err != nil || rs[0].ID != "bank-sm2-2" {
		t.Fatalf("bank key: %v", err)
	}
	k, _ := c.Signer(ctx, keystore.PurposeBankRequest)
	sm2, err := k.SM2()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sm2.SignUID([]byte("bank"), msg)
	if err != nil || !sm2.Public().VerifyUID([]byte("bank"), msg, sig) {
		t.Fatalf("store-backed SM2 key: %v", err)
	}
}

// TestAnotherMasterKeyIsRefused: a catalog wrapped under one master key
// does not open under another, with a message that says so.
func TestAnotherMasterKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t)
	if _, err := catalogOn(t, db, master(1)).Bootstrap(ctx, nil); err != nil {
		t.Fatal(err)
	}
	other := catalogOn(t, db, master(2))
	if _, err := other.Keyring(ctx); !errors.Is(err, keystore.ErrOtherStore) {
		t.Fatalf("keyring under another master: %v", err)
	}
	if _, err := other.Signer(ctx, keystore.PurposeCheckpointSM2); !errors.Is(err, keystore.ErrOtherStore) {
		t.Fatalf("signer under another master: %v", err)
	}
	if _, err := other.RotateData(ctx, "t"); !errors.Is(err, keystore.ErrOtherStore) {
		t.Fatalf("rotation under another master: %v", err)
	}
}

// TestBootstrapRace: processes starting together on an empty catalog end
// with one key per purpose.
func TestBootstrapRace(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = catalogOn(t, db, master(5)).Bootstrap(ctx, nil)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, err := catalogOn(t, db, master(5)).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(keystore.Specs) {
		t.Fatalf("%d keys after concurrent bootstraps", len(recs))
	}
}

// TestNewKeysAreNotDerived: a fresh catalog's keys are random, not the
// master key's old derivations.
func TestNewKeysAreNotDerived(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t)
	m := master(4)
	c := catalogOn(t, db, m)
	if _, err := c.Bootstrap(ctx, nil); err != nil {
		t.Fatal(err)
	}
	legacy := keystore.LegacyKeys(m)
	k1, err := c.DataKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := c.Secret(ctx, keystore.PurposeRoot)
	if bytes.Equal(k1, legacy[keystore.PurposePII].Material) || bytes.Equal(root, m) {
		t.Fatal("a fresh catalog derived its keys from the master key")
	}
	s, _ := c.Signer(ctx, keystore.PurposeCheckpointSM2)
	if s.Origin != "generated" {
		t.Fatalf("origin %q", s.Origin)
	}
}

// TestSoftwareSignerIsBoundToItsID: a wrapped signing key signs only as
// the key it was made for.
func TestSoftwareSignerIsBoundToItsID(t *testing.T) {
	ks, _ := keystore.NewSoftware(master(6))
	ref, pub, err := ks.GenerateSigner(keystore.AlgSM2, "bank-sm2-1")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ks.Sign(keystore.AlgSM2, "bank-sm2-1", ref, nil, []byte("m"))
	if err != nil || !keystore.VerifyPublic(keystore.AlgSM2, pub, nil, []byte("m"), sig) {
		t.Fatalf("sign: %v", err)
	}
	if _, err := ks.Sign(keystore.AlgSM2, "cp-sm2-1", ref, nil, []byte("m")); err == nil {
		t.Fatal("signed under another id")
	}
	if _, err := ks.Sign(keystore.AlgEd25519, "bank-sm2-1", ref, nil, []byte("m")); err == nil {
		t.Fatal("signed as another algorithm")
	}
	other, _ := keystore.NewSoftware(master(7))
	if _, err := other.Sign(keystore.AlgSM2, "bank-sm2-1", ref, nil, []byte("m")); err == nil {
		t.Fatal("another master key's store signed")
	}
}
