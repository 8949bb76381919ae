package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"yibao/gmcrypto"
	"yibao/gmcrypto/keystore"
	"yibao/hub"
	"yibao/ledger/engine"
	"yibao/sqlstore"
	"yibao/xregion"
)

// NodePublicKeyFile is where a node writes its cross-region public key
// (PEM) for the hub's operator, under its data dir.
const NodePublicKeyFile = "xr-node-public.pem"

// xrPrefixes is the node's province codes.
func (c *Config) xrPrefixes() []string {
	s := c.XRPrefixes
	if s == "" {
		s = c.DemoProvince
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// validateXR checks the cross-region settings.
func (c *Config) validateXR() []string {
	if c.XRHub == "" {
		return nil
	}
	var errs []string
	if !strings.HasPrefix(c.XRHub, "http://") && !strings.HasPrefix(c.XRHub, "https://") {
		errs = append(errs, fmt.Sprintf("xr_hub %q: must be the hub's http(s):// URL", c.XRHub))
	}
	if c.XRNode == "" || c.XRNode == "hub" || len(c.XRNode) > 20 {
		errs = append(errs, "xr_node: this node's id at the hub (1–20 characters, not \"hub\") is required with xr_hub")
	}
	if c.XRHubKey == "" {
		errs = append(errs, "xr_hub_key: the hub's public key file (PEM) is required with xr_hub")
	}
	if c.XRDoubtAfter < 0 {
		errs = append(errs, "xr_doubt_after: must not be negative")
	}
	for _, p := range c.xrPrefixes() {
		if len(p) != 2 || p[0] < '1' || p[0] > '9' || p[1] < '0' || p[1] > '9' {
			errs = append(errs, fmt.Sprintf("xr_prefixes: %q is not a 2-digit province code", p))
		}
	}
	return errs
}

// openXR joins the node to the hub when configured: the settlement
// service reaches other regions through it, and /xr/v1/ serves the hub.
func (a *App) openXR(ctx context.Context) error {
	cfg := a.Config
	if cfg.XRHub == "" {
		return nil
	}
	pem, err := os.ReadFile(cfg.XRHubKey)
	if err != nil {
		return fmt.Errorf("xr_hub_key: %w", err)
	}
	hubKey, err := gmcrypto.ParsePublicKeyPEM(pem)
	if err != nil {
		return fmt.Errorf("xr_hub_key %s: %w", cfg.XRHubKey, err)
	}
	key, err := a.signingKey(ctx, keystore.PurposeNode)
	if err != nil {
		return fmt.Errorf("cross-region signing key: %w", err)
	}
	pub, err := gmcrypto.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, NodePublicKeyFile), pub, 0o644); err != nil {
		return err
	}
	a.XR = xregion.New(xregion.Config{ID: cfg.XRNode, Prefixes: cfg.xrPrefixes(), HubURL: cfg.XRHub, HubKey: hubKey, Key: key,
		DoubtAfter: cfg.XRDoubtAfter, Log: a.Log},
		a.DB, a.Settle, a.Ecert)
	a.Settle.Remote = a.XR
	a.Ecert.Remote = a.XR.ResolveCode
	a.Registry.Keeps = a.XR.Local
	return nil
}

// NodePublicKey returns this node's cross-region public key (PEM).
func (a *App) NodePublicKey(ctx context.Context) ([]byte, error) {
	key, err := a.signingKey(ctx, keystore.PurposeNode)
	if err != nil {
		return nil, err
	}
	return gmcrypto.MarshalPublicKeyPEM(key.Public())
}

// HubConfig configures `yibao hub serve`.
type HubConfig struct {
	Addr       string     // listen address
	DataDir    string     // hub.key, hub-public.pem, admin.token and the SQLite database
	DB         string     // DSN; default <data_dir>/hub.db
	Nodes      []hub.Node // the region nodes
	AdminToken string     // default: <data_dir>/admin.token, created on first start
	Log        *slog.Logger
}

// HubApp is a running hub.
type HubApp struct {
	Config HubConfig
	DB     *sqlstore.DB
	Ledger *engine.Engine
	Hub    *hub.Hub
	Token  string
}

// LoadHubKey returns the hub's signing key from <data_dir>/hub.key,
// creating it (and hub-public.pem beside it) on first use.
func LoadHubKey(dataDir string) (*gmcrypto.PrivateKey, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, "hub.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := gmcrypto.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		pemb, err := gmcrypto.MarshalPrivateKeyPEM(k)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pemb, 0o600); err != nil {
			return nil, err
		}
		pub, err := gmcrypto.MarshalPublicKeyPEM(k.Public())
		if err != nil {
			return nil, err
		}
		return k, os.WriteFile(filepath.Join(dataDir, "hub-public.pem"), pub, 0o644)
	}
	if err != nil {
		return nil, err
	}
	return gmcrypto.ParsePrivateKeyPEM(b)
}

// LoadHubNodes reads a nodes file: a JSON array of {id, name, url,
// prefixes, public_key (PEM text) or public_key_file}.
func LoadHubNodes(path string) ([]hub.Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		hub.Node
		KeyFile string `json:"public_key_file"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("nodes file %s: %w", path, err)
	}
	out := make([]hub.Node, len(raw))
	for i, r := range raw {
		out[i] = r.Node
		if r.KeyFile != "" {
			k, err := os.ReadFile(r.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", r.ID, err)
			}
			out[i].KeyPEM = string(k)
		}
	}
	return out, nil
}

// OpenHub opens the hub's database and ledger and builds the hub.
func OpenHub(ctx context.Context, cfg HubConfig, logOut io.Writer) (*HubApp, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(logOut, nil))
	}
	key, err := LoadHubKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("hub key: %w", err)
	}
	if cfg.AdminToken == "" {
		path := filepath.Join(cfg.DataDir, "admin.token")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			t := make([]byte, 16)
			rand.Read(t)
			b = []byte(hex.EncodeToString(t))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, err
		}
		cfg.AdminToken = strings.TrimSpace(string(b))
	}
	if cfg.DB == "" {
		cfg.DB = filepath.Join(cfg.DataDir, "hub.db")
	}
	db, err := sqlstore.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	led, err := engine.Open(ctx, db, engine.Options{Log: cfg.Log})
	if err != nil {
		db.Close()
		return nil, err
	}
	h, err := hub.New(db, led, hub.Config{Nodes: cfg.Nodes, Key: key, AdminToken: cfg.AdminToken, Log: cfg.Log})
	if err != nil {
		led.Close()
		db.Close()
		return nil, err
	}
	return &HubApp{Config: cfg, DB: db, Ledger: led, Hub: h, Token: cfg.AdminToken}, nil
}

// Close releases the hub's ledger and database.
func (h *HubApp) Close() error {
	h.Ledger.Close()
	return h.DB.Close()
}

// Serve runs the hub's API and its delivery loop until ctx ends.
func (h *HubApp) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", h.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", h.Config.Addr, err)
	}
	return h.ServeOn(ctx, ln, ready)
}

// ServeOn is Serve on a listener the caller opened.
func (h *HubApp) ServeOn(ctx context.Context, ln net.Listener, ready func(addr string)) error {
	return serveHTTP(ctx, ln, h.Hub.Handler(), h.Config.Log, func() {
		go h.Hub.Run(ctx)
		h.Config.Log.Info("hub serving", "addr", ln.Addr().String(), "nodes", len(h.Config.Nodes))
		if ready != nil {
			ready(ln.Addr().String())
		}
	})
}
