package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"yibao"
	"yibao/audit"
	"yibao/audit/tlog"
	"yibao/auth"
	"yibao/credit"
	"yibao/delivery"
	"yibao/ecert"
	"yibao/faceid"
	"yibao/funds"
	"yibao/gmcrypto"
	"yibao/gmcrypto/keystore"
	"yibao/httpapi"
	"yibao/ledger/engine"
	"yibao/nhsa"
	"yibao/pay"
	"yibao/registry"
	"yibao/review"
	"yibao/settlement"
	"yibao/sim/banksim"
	"yibao/sim/walletsim"
	"yibao/sqlstore"
	"yibao/xregion"
)

// Version is set at build time with -ldflags "-X yibao/app.Version=…".
var Version = "dev"

// App is a running platform: database, services and HTTP handler.
type App struct {
	Config    Config
	Log       *slog.Logger
	DB        *sqlstore.DB
	Registry  *registry.Service
	Auth      *auth.Service
	Ledger    *engine.Engine
	Settle    *settlement.Service
	Ecert     *ecert.Service
	Delivery  *delivery.Service
	Pay       *pay.Service
	Audit     *audit.Writer
	TLog      *tlog.Log // the transparency log of the audit entries
	LogKeys   *audit.Keys
	Sequencer *audit.Sequencer
	Review    *review.Service
	Wallets   *walletsim.Server // the in-process wallet simulators, when configured
	Credit    *credit.Service
	Funds     *funds.Service
	Face      *faceid.Service
	Bank      *banksim.Server // the in-process bank simulator, when configured
	XR        *xregion.Node   // the cross-region node, when joined to a hub
	API       *httpapi.Server
	// Keys is the key catalog: every data key, derivation secret and
	// signing key, wrapped under the key store's KEK (docs/security.md).
	Keys *keystore.Catalog
	// master is the derivation root (catalog purpose derivation-root): the
	// HKDF-SM3 input of the blind-index, reference, scope, OTP and session
	// keys and of the e-certificate keys. On a data dir from before the
	// catalog it is the master key itself; on a new one a random secret.
	// The master key proper only wraps keys (the software key store).
	master   []byte
	keys     *gmcrypto.Keyring // the SM4 data keys, refreshed from the catalog while serving
	keyStore keystore.KeyStore

	faceEmbedder interface{ Close() error }
}

// OpenStore validates cfg, opens and migrates the database and builds the
// registry and auth services: what operator tools (migrate, import, ledger
// check) need, without taking the ledger writer that a running server
// holds. logOut receives the logs (os.Stderr in production).
func OpenStore(ctx context.Context, cfg Config, logOut io.Writer) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level, _ := parseLevel(cfg.LogLevel)
	var h slog.Handler
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level})
	} else {
		h = slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(h)
	master, err := loadMasterKey(cfg)
	if err != nil {
		return nil, err
	}
	db, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	existed, err := hadSchema(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	a := &App{Config: cfg, Log: log, DB: db}
	if err := a.openKeys(ctx, master, existed); err != nil {
		db.Close()
		if a.keyStore != nil {
			a.keyStore.Close()
		}
		return nil, err
	}
	keys := a.keys
	a.Registry = registry.New(db, keys, gmcrypto.DeriveKey(a.master, "yibao/pii/blind-index", 32))
	a.Auth = auth.New(db, keys)
	if cfg.PasswordIterations > 0 {
		a.Auth.PasswordIterations = cfg.PasswordIterations
	}
	a.Auth.SessionTTL = cfg.SessionTTL
	return a, nil
}

// Open is OpenStore plus the ledger writer, the settlement service (and
// the chart of accounts it keeps) and the HTTP API: the running platform.
// Only one process per database may hold it.
func Open(ctx context.Context, cfg Config, logOut io.Writer) (*App, error) {
	a, err := OpenStore(ctx, cfg, logOut)
	if err != nil {
		return nil, err
	}
	db, log := a.DB, a.Log
	if a.Ledger, err = engine.Open(ctx, db, engine.Options{Log: log}); err != nil {
		db.Close()
		return nil, err
	}
	a.Settle = settlement.New(db, a.Registry, a.Ledger, log)
	a.Audit = audit.NewWriter(a.master)
	a.Settle.Audit = a.Audit
	a.Auth.Audit = a.Audit
	if _, err := a.Settle.EnsureChart(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("chart of accounts: %w", err)
	}
	a.Ecert = ecert.New(db, a.Registry, a.master, ecert.OutboxSMS{DB: db}, ecert.Config{StepSeconds: cfg.EcertStepSeconds}, log)
	a.Ecert.Audit = a.Audit
	if err := a.Ecert.EnsurePlatforms(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("e-certificate platforms: %w", err)
	}
	a.Delivery = delivery.New(db, a.keys, log)
	wallets, err := a.openWallets()
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Pay = pay.New(db, a.Settle, a.Ecert, a.Ledger, wallets, pay.Config{NotifyBase: strings.TrimSuffix(cfg.PublicURL, "/") + "/api/v1/pay/notify"}, log)
	a.Pay.Audit = a.Audit
	if err := a.openLog(ctx); err != nil {
		a.Close()
		return nil, err
	}
	a.openFace()
	a.Pay.Tune(func(c *pay.Config) {
		c.FaceCapPharmacy, c.FaceCapHospital = a.Face.Config().CapPharmacy, a.Face.Config().CapHospital
	})
	a.Funds = funds.New(db, a.Ledger, log)
	a.Funds.Audit = a.Audit
	if err := a.openCredit(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("credit payment: %w", err)
	}
	if err := a.openReview(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("smart review: %w", err)
	}
	if err := a.openXR(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("cross-region: %w", err)
	}
	nh := nhsa.New(db, a.Registry, a.Settle, a.Ecert, log)
	nh.RefundedFor = a.Pay.RefundedFor
	a.API = httpapi.New(httpapi.Config{MaxBodyBytes: cfg.MaxBodyBytes, MaxImportBytes: cfg.MaxImportBytes, Version: Version},
		httpapi.Deps{DB: db, Registry: a.Registry, Auth: a.Auth, Settlement: a.Settle, Ledger: a.Ledger, Ecert: a.Ecert,
			NHSA: nh, Delivery: a.Delivery, Pay: a.Pay,
			Audit: &audit.Store{DB: db, Log: a.TLog}, Review: a.Review, Credit: a.Credit, Funds: a.Funds, Face: a.Face, AuditW: a.Audit, AuditOrigin: cfg.LogOrigin, AuditKeys: a.LogKeys.VerifierKey}, log)
	return a, nil
}

// loadMasterKey returns the 32-byte master secret from the configuration,
// or from <data_dir>/master.key, creating that file (mode 0600) on first
// start. Production deployments set YIBAO_MASTER_KEY from a secret store.
// With a PKCS#11 key store the master key is optional (nil when absent,
// never created): it is needed only once, to import the keys of a data
// dir from before the key catalog.
func loadMasterKey(cfg Config) ([]byte, error) {
	if cfg.MasterKey != "" {
		b, err := hex.DecodeString(cfg.MasterKey)
		if err != nil || len(b) != 32 {
			return nil, errors.New("master_key: must be 64 hex characters")
		}
		return b, nil
	}
	path := filepath.Join(cfg.DataDir, "master.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s: must hold 64 hex characters", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if cfg.KeyStore == "pkcs11" {
		return nil, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// hadSchema reports whether the database had been migrated before (a
// database from before the key catalog holds values sealed under the keys
// the master key derived; a new one gets fresh keys).
func hadSchema(ctx context.Context, db *sqlstore.DB) (bool, error) {
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.Dialect == sqlstore.Postgres {
		q = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`
	}
	var n int
	if err := db.QueryRow(ctx, q).Scan(&n); err != nil {
		return false, fmt.Errorf("reading the schema: %w", err)
	}
	return n > 0, nil
}

// openKeyStore opens the configured key store.
func openKeyStore(cfg Config, master []byte) (keystore.KeyStore, error) {
	if cfg.KeyStore == "pkcs11" {
		ks, err := keystore.OpenPKCS11(keystore.PKCS11Config{Module: cfg.PKCS11Module, Token: cfg.PKCS11Token, PIN: cfg.PKCS11PIN, KEKLabel: cfg.PKCS11KEKLabel})
		if err != nil {
			return nil, fmt.Errorf("key_store pkcs11: %w", err)
		}
		return ks, nil
	}
	return keystore.NewSoftware(master)
}

// openKeys opens the key store and the catalog, fills the catalog on first
// start — with the keys the master key derived before the catalog existed
// if the database is older than it, so old values open and old receipts
// verify — and loads the data keyring and the derivation root.
func (a *App) openKeys(ctx context.Context, master []byte, existed bool) error {
	ks, err := openKeyStore(a.Config, master)
	if err != nil {
		return err
	}
	a.keyStore = ks
	db := a.DB
	cat := &keystore.Catalog{DB: db, Store: ks,
		WriteTx: func(ctx context.Context, fn func(keystore.DB) error) error {
			return db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return fn(tx) })
		}}
	a.Keys = cat
	missing, err := cat.Missing(ctx)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		var legacy map[string]keystore.Legacy
		if existed {
			if master == nil {
				return fmt.Errorf("this database predates the key catalog and has no %s key: give the master key it was made with (master_key) once, so its keys can be imported", strings.Join(missing, ", "))
			}
			legacy = keystore.LegacyKeys(master)
		}
		created, err := cat.Bootstrap(ctx, legacy)
		if err != nil {
			return fmt.Errorf("key catalog: %w", err)
		}
		for _, r := range created {
			a.Log.Info("key created", "id", r.ID, "purpose", r.Purpose, "alg", r.Alg, "origin", r.Origin, "key_store", r.KeyStore)
		}
	}
	if a.master, err = cat.Secret(ctx, keystore.PurposeRoot); err != nil {
		return fmt.Errorf("key catalog: %w", err)
	}
	if a.keys, err = cat.Keyring(ctx); err != nil {
		return fmt.Errorf("key catalog: %w", err)
	}
	w := audit.NewWriter(a.master)
	cat.Event = func(ctx context.Context, tx keystore.DB, e keystore.Event) error {
		stx, ok := tx.(*sqlstore.Tx)
		if !ok {
			return errors.New("app: key events are recorded in a sqlstore transaction")
		}
		return w.Record(ctx, stx, audit.Entry{ID: e.ID, Kind: audit.KindKey, Actor: e.Actor, Subject: e.Key.ID, Data: e.Data})
	}
	return nil
}

// SealedColumns are the database columns sealed with the data keyring,
// with the associated data each owning service binds (registry, auth,
// delivery, faceid): what `yibao keys reencrypt` re-seals after a data-key
// rotation. A new sealed column must be added here (a test compares this
// list with the migrations).
func SealedColumns() []keystore.Target {
	person := func(field string) func(string, []string) []byte {
		return func(psn string, _ []string) []byte { return []byte("person/" + psn + "/" + field) }
	}
	return []keystore.Target{
		{Table: "persons", Key: "psn_no", Columns: []keystore.Column{
			{Name: "id_cipher", AAD: person("id_number")}, {Name: "name_cipher", AAD: person("name")}, {Name: "phone_cipher", AAD: person("phone")}}},
		{Table: "api_keys", Key: "key_id", Columns: []keystore.Column{
			{Name: "secret_cipher", AAD: func(id string, _ []string) []byte { return []byte("api_key/" + id) }}}},
		{Table: "webhooks", Key: "fixmedins_code", Columns: []keystore.Column{
			{Name: "secret_cipher", AAD: func(code string, _ []string) []byte { return []byte("webhook/" + code) }}}},
		{Table: "face_templates", Key: "id", IntKey: true, Extra: []string{"psn_no"}, KeyIDColumn: "key_id", Columns: []keystore.Column{
			{Name: "sealed", AAD: func(id string, x []string) []byte { return []byte("face/" + x[0] + "/" + id) }}}},
	}
}

// signingKey returns the active SM2 key of a purpose; its private half
// stays in the key store.
func (a *App) signingKey(ctx context.Context, purpose string) (*gmcrypto.PrivateKey, error) {
	s, err := a.Keys.Signer(ctx, purpose)
	if err != nil {
		return nil, err
	}
	return s.SM2()
}

// storeNoteSigner signs checkpoints (signed notes) with a key of the store.
type storeNoteSigner struct {
	name string
	hash uint32
	s    *keystore.Signer
}

func (n *storeNoteSigner) Name() string                    { return n.name }
func (n *storeNoteSigner) KeyHash() uint32                 { return n.hash }
func (n *storeNoteSigner) Sign(msg []byte) ([]byte, error) { return n.s.Sign(nil, msg) }

// vkeyHash is the key hash in a verifier key name+hash+key.
func vkeyHash(vkey string) (uint32, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return 0, fmt.Errorf("malformed verifier key %q", vkey)
	}
	h, err := strconv.ParseUint(parts[1], 16, 32)
	return uint32(h), err
}

// checkpointVerifierKeys returns the note verifier keys of a checkpoint
// key pair: Ed25519 first, then SM2 (audit.Keys' order).
func checkpointVerifierKeys(origin string, ed, sm keystore.Record) ([]string, error) {
	edV, err := note.NewEd25519VerifierKey(origin, ed.Public)
	if err != nil {
		return nil, err
	}
	pub, err := gmcrypto.ParsePublicKey(sm.Public)
	if err != nil {
		return nil, err
	}
	return []string{edV, tlog.SM2VerifierKey(origin, pub)}, nil
}

// logKeys builds the transparency log's checkpoint signers from the active
// checkpoint keys of the catalog.
func (a *App) logKeys(ctx context.Context) (*audit.Keys, error) {
	origin := a.Config.LogOrigin
	ed, err := a.Keys.Signer(ctx, keystore.PurposeCheckpointEd25519)
	if err != nil {
		return nil, err
	}
	sm, err := a.Keys.Signer(ctx, keystore.PurposeCheckpointSM2)
	if err != nil {
		return nil, err
	}
	vkeys, err := checkpointVerifierKeys(origin, ed.Record, sm.Record)
	if err != nil {
		return nil, err
	}
	hash, err := vkeyHash(vkeys[0])
	if err != nil {
		return nil, err
	}
	smKey, err := sm.SM2()
	if err != nil {
		return nil, err
	}
	smSigner, err := tlog.NewSM2Signer(origin, smKey)
	if err != nil {
		return nil, err
	}
	return &audit.Keys{Ed25519: &storeNoteSigner{name: origin, hash: hash, s: ed}, SM2: smSigner, VerifierKey: vkeys}, nil
}

// CheckpointKeys is one generation of checkpoint keys.
type CheckpointKeys struct {
	Generation  int
	State       keystore.State // the SM2 key's (both change together)
	VerifierKey []string       // Ed25519, SM2: verify receipts of this generation with audit.Verifiers(VerifierKey...)
}

// CheckpointVerifierKeys lists every generation of checkpoint keys, the
// active one first: receipts and checkpoints signed before a rotation
// verify with their generation's (archived) keys.
func (a *App) CheckpointVerifierKeys(ctx context.Context) ([]CheckpointKeys, error) {
	recs, err := a.Keys.List(ctx)
	if err != nil {
		return nil, err
	}
	eds, sms := map[int]keystore.Record{}, map[int]keystore.Record{}
	for _, r := range recs {
		switch r.Purpose {
		case keystore.PurposeCheckpointEd25519:
			eds[r.Generation()] = r
		case keystore.PurposeCheckpointSM2:
			sms[r.Generation()] = r
		}
	}
	var out []CheckpointKeys
	for g, sm := range sms {
		ed, ok := eds[g]
		if !ok {
			continue
		}
		vk, err := checkpointVerifierKeys(a.Config.LogOrigin, ed, sm)
		if err != nil {
			return nil, err
		}
		out = append(out, CheckpointKeys{Generation: g, State: sm.State, VerifierKey: vk})
	}
	sort.Slice(out, func(i, j int) bool {
		if ai, aj := out[i].State == keystore.StateActive, out[j].State == keystore.StateActive; ai != aj {
			return ai
		}
		return out[i].Generation > out[j].Generation
	})
	return out, nil
}

// RefreshKeys reloads the data keys from the catalog now: a rotated data
// key seals from then on, a retired one no longer opens.
func (a *App) RefreshKeys(ctx context.Context) error { return a.Keys.Refresh(ctx, a.keys) }

// refreshKeys reloads the data keys from the catalog every
// keystore.RefreshInterval, so a rotation made by `yibao keys rotate` seals
// from then on without a restart, and warns once when a signing key was
// rotated (signing keys change at the next start).
func (a *App) refreshKeys(ctx context.Context) {
	t := time.NewTicker(keystore.RefreshInterval)
	defer t.Stop()
	warned := map[string]bool{}
	using := map[string]string{}
	for _, p := range []string{keystore.PurposeCheckpointSM2, keystore.PurposeCheckpointEd25519, keystore.PurposeBankRequest} {
		if r, err := a.Keys.Active(ctx, p); err == nil {
			using[p] = r.ID
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before := a.keys.ActiveKeyID()
		if err := a.RefreshKeys(ctx); err != nil {
			a.Log.Error("refreshing the data keys", "err", err)
			continue
		}
		if now := a.keys.ActiveKeyID(); now != before {
			a.Log.Info("data key rotated: sealing under the new key", "old", before, "new", now)
		}
		for p, id := range using {
			if r, err := a.Keys.Active(ctx, p); err == nil && r.ID != id && !warned[p] {
				warned[p] = true
				a.Log.Warn("a signing key was rotated: restart to sign with it", "purpose", p, "signing_with", id, "active", r.ID)
			}
		}
	}
}

// Close stops the ledger writer and releases the database.
func (a *App) Close() error {
	if a.API != nil {
		a.API.Close()
	}
	if a.Wallets != nil {
		a.Wallets.Close()
	}
	if a.Bank != nil {
		a.Bank.Close()
	}
	if a.faceEmbedder != nil {
		a.faceEmbedder.Close()
	}
	if a.TLog != nil {
		a.TLog.Close()
	}
	if a.Ledger != nil {
		a.Ledger.Close()
	}
	err := a.DB.Close()
	if a.keyStore != nil {
		a.keyStore.Close()
	}
	return err
}

// Handler is the whole HTTP surface: the API, and the hub's messages
// under /xr/v1/ when the node is joined to a hub.
func (a *App) Handler() http.Handler {
	if a.XR == nil {
		return a.API.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle("/xr/v1/", a.XR.Handler())
	mux.Handle("/", a.API.Handler())
	return mux
}

// EnsureAdmin creates the first administrator on an empty user table, with
// cfg.AdminPassword or a random password it logs once.
func (a *App) EnsureAdmin(ctx context.Context) error {
	var n int
	if err := a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	pw := a.Config.AdminPassword
	generated := pw == ""
	if generated {
		b := make([]byte, 12)
		rand.Read(b)
		pw = hex.EncodeToString(b)
	}
	ctx = yibao.WithPrincipal(ctx, yibao.System("bootstrap"))
	if _, err := a.Auth.CreateUser(ctx, auth.NewUser{Username: "admin", Password: pw, Role: yibao.RoleAdmin, DisplayName: "医保局管理员"}); err != nil {
		return err
	}
	if generated {
		a.Log.Warn("created the first administrator; change this password", "username", "admin", "password", pw)
	}
	return nil
}

// Serve listens on cfg.Addr until ctx ends, then shuts down gracefully.
// ready, if not nil, receives the bound address once listening.
func (a *App) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Addr, err)
	}
	return a.ServeOn(ctx, ln, ready)
}

// ServeOn is Serve on a listener the caller opened (several nodes in one
// process learn each other's addresses first).
func (a *App) ServeOn(ctx context.Context, ln net.Listener, ready func(addr string)) error {
	if a.Config.PublicURL == "" {
		a.Pay.SetNotifyBase("http://" + ln.Addr().String() + "/api/v1/pay/notify")
		if a.Bank != nil {
			a.Bank.Sim.SetCallbackURL("http://" + ln.Addr().String() + "/api/v1/credit/notify/" + banksim.DefaultBankCode)
		}
	}
	return serveHTTP(ctx, ln, a.Handler(), a.Log, func() {
		go a.Settle.Run(ctx, 5*time.Second)           // voids pending settlements nobody paid
		go a.Delivery.Run(ctx, 2*time.Second)         // sends outbox events to institutions' webhooks
		go a.Pay.Run(ctx, 2*time.Second)              // resolves unknown wallet outcomes and open refunds
		go a.Sequencer.Run(ctx, 200*time.Millisecond) // appends audit entries to the transparency log
		go a.Review.Run(ctx, 30*time.Second)          // raises review alerts from the day's settlements
		go a.Credit.Run(ctx, 5*time.Second)           // lost bank answers, growing guarantees, reminders and overdue
		go a.refreshKeys(ctx)                         // data keys rotated by `yibao keys rotate`
		go sqlstore.KeepPartitions(ctx, a.DB, a.Log)  // PostgreSQL: the coming months' partitions, now and daily
		if a.XR != nil {
			go a.XR.Run(ctx, 2*time.Second) // settlements left in doubt, reversals for the hub
		}
		a.Log.Info("serving", "addr", ln.Addr().String(), "db", a.DB.Dialect.String(), "version", Version)
		if ready != nil {
			ready(ln.Addr().String())
		}
	})
}

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully
// (10 s); started runs once the server accepts.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, started func()) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	started()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log.Info("shutting down")
	return srv.Shutdown(shutCtx)
}

// openLog opens the transparency log under <data_dir>/log with the active
// checkpoint keys of the key catalog, and its sequencer.
func (a *App) openLog(ctx context.Context) error {
	// Tessera logs through klog: into our logs, its chatter ("Failed to
	// fetch old checkpoint" on a new log) at debug level.
	// klog's logger is process-wide and read by tessera's goroutines
	// without a lock: set it once, and point it at the latest platform's
	// logger through an atomic (tests open many platforms in one process).
	klogTarget.Store(&a.Log)
	klogOnce.Do(func() { klog.SetSlogLogger(slog.New(infoAsDebug{klogForward{}})) })
	keys, err := a.logKeys(ctx)
	if err != nil {
		return fmt.Errorf("log keys: %w", err)
	}
	a.LogKeys = keys
	a.TLog, err = tlog.Open(ctx, tlog.Config{Dir: filepath.Join(a.Config.DataDir, "log"), Origin: a.Config.LogOrigin, Ed25519: keys.Ed25519, SM2: keys.SM2})
	if err != nil {
		return fmt.Errorf("transparency log: %w", err)
	}
	a.Sequencer = audit.NewSequencer(a.DB, a.TLog, a.Log)
	return nil
}

// AuditKeys are the transparency log's active checkpoint keys (from the key
// catalog; tools such as `yibao log verify` need only the store). Older
// generations: CheckpointVerifierKeys.
func (a *App) AuditKeys() (*audit.Keys, error) { return a.logKeys(context.Background()) }

var (
	klogOnce   sync.Once
	klogTarget atomic.Pointer[*slog.Logger]
)

// klogForward hands klog's records to the current platform's logger.
type klogForward struct{}

func (klogForward) h() slog.Handler {
	if l := klogTarget.Load(); l != nil {
		return (*l).Handler()
	}
	return slog.Default().Handler()
}

func (f klogForward) Enabled(ctx context.Context, l slog.Level) bool { return f.h().Enabled(ctx, l) }
func (f klogForward) Handle(ctx context.Context, r slog.Record) error {
	return f.h().Handle(ctx, r)
}
func (f klogForward) WithAttrs(as []slog.Attr) slog.Handler { return f.h().WithAttrs(as) }
func (f klogForward) WithGroup(name string) slog.Handler    { return f.h().WithGroup(name) }

// infoAsDebug passes records on with info lowered to debug.
type infoAsDebug struct{ slog.Handler }

func (h infoAsDebug) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h infoAsDebug) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h infoAsDebug) WithAttrs(as []slog.Attr) slog.Handler {
	return infoAsDebug{h.Handler.WithAttrs(as)}
}

func (h infoAsDebug) WithGroup(name string) slog.Handler {
	return infoAsDebug{h.Handler.WithGroup(name)}
}
