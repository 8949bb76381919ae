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
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	API       *httpapi.Server
	master    []byte
	keys      *gmcrypto.Keyring

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
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	keys, err := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": gmcrypto.DeriveKey(master, "yibao/pii/sm4/k1", 16)})
	if err != nil {
		db.Close()
		return nil, err
	}
	a := &App{Config: cfg, Log: log, DB: db, master: master, keys: keys}
	a.Registry = registry.New(db, keys, gmcrypto.DeriveKey(master, "yibao/pii/blind-index", 32))
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
	a.API = httpapi.New(httpapi.Config{MaxBodyBytes: cfg.MaxBodyBytes, MaxImportBytes: cfg.MaxImportBytes, Version: Version},
		httpapi.Deps{DB: db, Registry: a.Registry, Auth: a.Auth, Settlement: a.Settle, Ledger: a.Ledger, Ecert: a.Ecert,
			NHSA: nhsa.New(db, a.Registry, a.Settle, a.Ecert, log), Delivery: a.Delivery, Pay: a.Pay,
			Audit: &audit.Store{DB: db, Log: a.TLog}, Review: a.Review, Credit: a.Credit, Funds: a.Funds, Face: a.Face, AuditW: a.Audit, AuditOrigin: cfg.LogOrigin, AuditKeys: a.LogKeys.VerifierKey}, log)
	return a, nil
}

// loadMasterKey returns the 32-byte master secret from the configuration,
// or from <data_dir>/master.key, creating that file (mode 0600) on first
// start. Production deployments set YIBAO_MASTER_KEY from a secret store.
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

// Close stops the ledger writer and releases the database.
func (a *App) Close() error {
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
	return a.DB.Close()
}

// Handler is the whole HTTP surface.
func (a *App) Handler() http.Handler { return a.API.Handler() }

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
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	if a.Config.PublicURL == "" {
		a.Pay.SetNotifyBase("http://" + ln.Addr().String() + "/api/v1/pay/notify")
		if a.Bank != nil {
			a.Bank.Sim.SetCallbackURL("http://" + ln.Addr().String() + "/api/v1/credit/notify/" + banksim.DefaultBankCode)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go a.Settle.Run(ctx, 5*time.Second)           // voids pending settlements nobody paid
	go a.Delivery.Run(ctx, 2*time.Second)         // sends outbox events to institutions' webhooks
	go a.Pay.Run(ctx, 2*time.Second)              // resolves unknown wallet outcomes and open refunds
	go a.Sequencer.Run(ctx, 200*time.Millisecond) // appends audit entries to the transparency log
	go a.Review.Run(ctx, 30*time.Second)          // raises review alerts from the day's settlements
	go a.Credit.Run(ctx, 5*time.Second)           // lost bank answers, growing guarantees, reminders and overdue
	a.Log.Info("serving", "addr", ln.Addr().String(), "db", a.DB.Dialect.String(), "version", Version)
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.Log.Info("shutting down")
	return srv.Shutdown(shutCtx)
}

// openLog opens the transparency log under <data_dir>/log with checkpoint
// keys derived from the master secret, and its sequencer.
func (a *App) openLog(ctx context.Context) error {
	// Tessera logs through klog: into our logs, its chatter ("Failed to
	// fetch old checkpoint" on a new log) at debug level.
	// klog's logger is process-wide and read by tessera's goroutines
	// without a lock: set it once, and point it at the latest platform's
	// logger through an atomic (tests open many platforms in one process).
	klogTarget.Store(&a.Log)
	klogOnce.Do(func() { klog.SetSlogLogger(slog.New(infoAsDebug{klogForward{}})) })
	keys, err := audit.DeriveKeys(a.master, a.Config.LogOrigin)
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

// AuditKeys are the transparency log's checkpoint keys (derived from the
// master secret; tools such as `yibao log verify` need only the store).
func (a *App) AuditKeys() (*audit.Keys, error) { return audit.DeriveKeys(a.master, a.Config.LogOrigin) }

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
