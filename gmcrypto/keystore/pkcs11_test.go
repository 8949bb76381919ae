//go:build pkcs11

package keystore_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"yibao/gmcrypto"
	"yibao/gmcrypto/keystore"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

// The PKCS#11 tests run against SoftHSM (Debian: apt-get install
// softhsm2): a token in a temporary folder, made with softhsm2-util.
// YIBAO_TEST_PKCS11_MODULE overrides the module path.

const (
	testToken = "yibao-test"
	testPIN   = "1234"
)

var (
	hsmOnce   sync.Once
	hsmModule string
	hsmDir    string
	hsmErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if hsmDir != "" {
		os.RemoveAll(hsmDir)
	}
	os.Exit(code)
}

// softHSM makes one token for the test binary (SoftHSM reads its
// configuration once per process) and returns the module path.
func softHSM(t *testing.T) string {
	t.Helper()
	hsmOnce.Do(func() {
		hsmModule = os.Getenv("YIBAO_TEST_PKCS11_MODULE")
		if hsmModule == "" {
			hsmModule = "/usr/lib/softhsm/libsofthsm2.so"
		}
		if _, err := os.Stat(hsmModule); err != nil {
			hsmErr = fmt.Errorf("no PKCS#11 module at %s (apt-get install softhsm2, or set YIBAO_TEST_PKCS11_MODULE): %v", hsmModule, err)
			return
		}
		dir, err := os.MkdirTemp("", "yibao-softhsm-")
		if err != nil {
			hsmErr = err
			return
		}
		hsmDir = dir
		conf := filepath.Join(dir, "softhsm2.conf")
		if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
			hsmErr = err
			return
		}
		if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
			hsmErr = err
			return
		}
		os.Setenv("SOFTHSM2_CONF", conf)
		out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", testToken, "--so-pin", "0000", "--pin", testPIN).CombinedOutput()
		if err != nil {
			hsmErr = fmt.Errorf("softhsm2-util --init-token: %v\n%s", err, out)
		}
	})
	if hsmErr != nil {
		t.Fatal(hsmErr)
	}
	return hsmModule
}

func openHSM(t *testing.T, kek string, create bool) keystore.KeyStore {
	t.Helper()
	ks, err := keystore.OpenPKCS11(keystore.PKCS11Config{Module: softHSM(t), Token: testToken, PIN: testPIN, KEKLabel: kek, CreateKEK: create})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// TestPKCS11Store: wrapping under a KEK that never leaves the token, an
// Ed25519 key that is made and signs inside it, SM2 keys wrapped by it.
func TestPKCS11Store(t *testing.T) {
	ks := openHSM(t, "kek-store-test", true)
	if ks.ID() != "pkcs11:"+testToken+"/kek-store-test" {
		t.Fatalf("ID %s", ks.ID())
	}
	key := bytes.Repeat([]byte{0x42}, 16)
	w, err := ks.Wrap(key, []byte("k2/pii"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, key) {
		t.Fatal("the wrapped key shows the key")
	}
	if got, err := ks.Unwrap(w, []byte("k2/pii")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("unwrap: %x %v", got, err)
	}
	tampered := append([]byte(nil), w...)
	tampered[3] ^= 1
	for name, c := range map[string]struct{ w, aad []byte }{"another id": {w, []byte("k3/pii")}, "tampered": {tampered, []byte("k2/pii")}} {
		if _, err := ks.Unwrap(c.w, c.aad); !errors.Is(err, gmcrypto.ErrUnwrap) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another store on the same token (a second process) finds the KEK.
	again := openHSM(t, "kek-store-test", false)
	if got, err := again.Unwrap(w, []byte("k2/pii")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("second session: %v", err)
	}
	// Without the KEK and without CreateKEK the store is refused.
	if _, err := keystore.OpenPKCS11(keystore.PKCS11Config{Module: softHSM(t), Token: testToken, PIN: testPIN, KEKLabel: "no-such-kek"}); err == nil {
		t.Fatal("opened without a KEK")
	}
	if _, err := keystore.OpenPKCS11(keystore.PKCS11Config{Module: softHSM(t), Token: "no-such-token", PIN: testPIN}); err == nil {
		t.Fatal("opened a missing token")
	}

	msg := []byte("checkpoint")
	ref, pub, err := ks.GenerateSigner(keystore.AlgEd25519, "cp-ed-9")
	if err != nil {
		t.Fatal(err)
	}
	if ref[0] != 'o' {
		t.Fatalf("Ed25519 key not held in the token: ref %q", ref)
	}
	sig, err := ks.Sign(keystore.AlgEd25519, "cp-ed-9", ref, nil, msg)
	if err != nil || !ed25519.Verify(pub, msg, sig) {
		t.Fatalf("token Ed25519 signature: %v", err)
	}
	if err := ks.Destroy(keystore.AlgEd25519, "cp-ed-9", ref); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Sign(keystore.AlgEd25519, "cp-ed-9", ref, nil, msg); err == nil {
		t.Fatal("a destroyed token key signed")
	}
	ref, pub, err = ks.GenerateSigner(keystore.AlgSM2, "bank-sm2-9")
	if err != nil {
		t.Fatal(err)
	}
	sig, err = ks.Sign(keystore.AlgSM2, "bank-sm2-9", ref, []byte("uid"), msg)
	if err != nil || !keystore.VerifyPublic(keystore.AlgSM2, pub, []byte("uid"), msg, sig) {
		t.Fatalf("SM2 signature: %v", err)
	}
	if _, err := ks.Sign(keystore.AlgSM2, "bank-sm2-8", ref, nil, msg); err == nil {
		t.Fatal("a wrapped key signed under another id")
	}
}

// TestPKCS11Catalog: the whole key life on the token: bootstrap, seal,
// rotate, re-encrypt, rotate the checkpoint keys, retire (the token's
// Ed25519 object is destroyed, its public key stays).
func TestPKCS11Catalog(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t)
	ks := openHSM(t, "kek-catalog-test", true)
	c := &keystore.Catalog{DB: db, Store: ks, RetireAfter: -1,
		WriteTx: func(ctx context.Context, fn func(keystore.DB) error) error {
			return db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return fn(tx) })
		}}
	if _, err := c.Bootstrap(ctx, nil); err != nil {
		t.Fatal(err)
	}
	recs, _ := c.List(ctx)
	for _, r := range recs {
		if r.KeyStore != ks.ID() {
			t.Fatalf("%s under %s", r.ID, r.KeyStore)
		}
	}
	kr, err := c.Keyring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tgt := sealedTable(t, db, kr, 300)
	if _, err := c.RotateData(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	c.Refresh(ctx, kr)
	if n := readAll(t, db, kr, tgt); n != 0 {
		t.Fatalf("%d unreadable after the rotation", n)
	}
	rep, err := c.Reencrypt(ctx, "test", []keystore.Target{tgt}, nil)
	if err != nil || rep.Unreadable != 0 || len(rep.Remaining) != 0 {
		t.Fatalf("re-encryption %+v %v", rep, err)
	}
	if _, err := c.Retire(ctx, "test", "k1", []keystore.Target{tgt}); err != nil {
		t.Fatal(err)
	}
	c.Refresh(ctx, kr)
	if n := readAll(t, db, kr, tgt); n != 0 {
		t.Fatalf("%d unreadable after retiring k1", n)
	}

	ed1, _ := c.Signer(ctx, keystore.PurposeCheckpointEd25519)
	msg := []byte("checkpoint")
	sig1, err := ed1.Sign(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rotate(ctx, "test", keystore.CheckpointPurposes...); err != nil {
		t.Fatal(err)
	}
	ed2, _ := c.Signer(ctx, keystore.PurposeCheckpointEd25519)
	sig2, _ := ed2.Sign(nil, msg)
	if ed2.ID != "cp-ed-2" || !ed25519.Verify(ed2.Public, msg, sig2) || ed25519.Verify(ed1.Public, msg, sig2) {
		t.Fatal("the new Ed25519 key")
	}
	if _, err := c.Retire(ctx, "test", "cp-ed-1", nil); err != nil {
		t.Fatal(err)
	}
	old, _ := c.Get(ctx, "cp-ed-1")
	if !ed25519.Verify(old.Public, msg, sig1) {
		t.Fatal("the retired key's public half no longer verifies its signature")
	}
	if _, err := ks.Sign(keystore.AlgEd25519, "cp-ed-1", ed1.Wrapped, nil, msg); err == nil {
		t.Fatal("the retired key still signs in the token")
	}
	// A software store cannot use keys wrapped by the token.
	sw := catalogOn(t, db, master(1))
	if _, err := sw.Keyring(ctx); !errors.Is(err, keystore.ErrOtherStore) {
		t.Fatalf("software store on token keys: %v", err)
	}
}
