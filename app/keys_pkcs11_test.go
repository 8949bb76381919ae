//go:build pkcs11

package app_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"yibao"
	"yibao/app"
	"yibao/demo"
	"yibao/gmcrypto/keystore"
	"yibao/sqlstore/sqltest"
)

// TestKeysPKCS11Platform runs the whole platform with key_store pkcs11 on
// a SoftHSM token (apt-get install softhsm2): no master key, every key
// wrapped by or held in the token; the demo seeds, a data-key rotation and
// re-encryption leave every value readable.
func TestKeysPKCS11Platform(t *testing.T) {
	module := os.Getenv("YIBAO_TEST_PKCS11_MODULE")
	if module == "" {
		module = "/usr/lib/softhsm/libsofthsm2.so"
	}
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("no PKCS#11 module (apt-get install softhsm2, or set YIBAO_TEST_PKCS11_MODULE): %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	os.MkdirAll(filepath.Join(dir, "tokens"), 0o700)
	os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "yibao-app", "--so-pin", "0000", "--pin", "4321").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	// The key ceremony: the KEK is made in the token once.
	ks, err := keystore.OpenPKCS11(keystore.PKCS11Config{Module: module, Token: "yibao-app", PIN: "4321", CreateKEK: true})
	if err != nil {
		t.Fatal(err)
	}
	ks.Close()

	ctx := context.Background()
	cfg := app.Defaults()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.DB = sqltest.DSN(t)
	cfg.PasswordIterations = 1000
	cfg.LogLevel = "error"
	cfg.Wallets, cfg.Face = "off", "off"
	cfg.KeyStore, cfg.PKCS11Module, cfg.PKCS11Token, cfg.PKCS11PIN = "pkcs11", module, "yibao-app", "4321"
	a, err := app.Open(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "master.key")); err == nil {
		t.Fatal("a master key file was made with a PKCS#11 key store")
	}
	d := demo.Build()
	if _, err := a.Seed(ctx, d); err != nil {
		t.Fatal(err)
	}
	recs, _ := a.Keys.List(ctx)
	for _, r := range recs {
		if r.KeyStore != "pkcs11:yibao-app/yibao-kek" || r.Origin != "generated" {
			t.Fatalf("%s: %s, %s", r.ID, r.KeyStore, r.Origin)
		}
	}
	if _, err := a.AuditKeys(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Keys.RotateData(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if err := a.RefreshKeys(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Keys.Reencrypt(ctx, "test", app.SealedColumns(), nil)
	if err != nil || rep.Unreadable != 0 || len(rep.Remaining) != 0 || rep.Resealed == 0 {
		t.Fatalf("re-encryption: %+v %v", rep, err)
	}
	kr, _ := a.Keys.Keyring(ctx)
	scan, err := a.Keys.Scan(ctx, app.SealedColumns(), kr)
	if err != nil || scan.Unreadable != 0 || scan.ByKey["k1"] != 0 {
		t.Fatalf("scan: %+v %v", scan, err)
	}
	if p, err := a.Registry.PersonByIDNumber(yibao.WithPrincipal(ctx, yibao.System("test")), d.Persons[0].IDNumber); err != nil || p != d.Persons[0].PsnNo {
		t.Fatalf("lookup: %v", err)
	}
}
