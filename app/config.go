// Package app wires the platform together: configuration, the database,
// the services and the HTTP server, and the demo dataset. cmd/yibao is a
// thin shell around it, and end-to-end tests build an App directly.
package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"yibao/demo"
	"yibao/sqlstore"
)

// Config is the platform's configuration. It is filled in this order, each
// step overriding the last: Defaults, a JSON config file (--config or
// YIBAO_CONFIG), environment variables YIBAO_*, then flags.
type Config struct {
	Addr               string        `json:"addr"`                // listen address, YIBAO_ADDR
	DataDir            string        `json:"data_dir"`            // YIBAO_DATA_DIR
	DB                 string        `json:"db"`                  // DSN: SQLite path or postgres://…, YIBAO_DB; default <data_dir>/yibao.db
	MasterKey          string        `json:"master_key"`          // 64 hex chars, YIBAO_MASTER_KEY; default: <data_dir>/master.key, created on first start
	LogLevel           string        `json:"log_level"`           // debug | info | warn | error, YIBAO_LOG_LEVEL
	LogFormat          string        `json:"log_format"`          // text | json, YIBAO_LOG_FORMAT
	MaxBodyBytes       int64         `json:"max_body_bytes"`      // YIBAO_MAX_BODY_BYTES
	MaxImportBytes     int64         `json:"max_import_bytes"`    // YIBAO_MAX_IMPORT_BYTES
	PasswordIterations int           `json:"password_iterations"` // PBKDF2-SM3 cost, YIBAO_PASSWORD_ITERATIONS
	SessionTTL         time.Duration `json:"session_ttl"`         // YIBAO_SESSION_TTL, e.g. 12h
	AdminPassword      string        `json:"admin_password"`      // first-start admin password, YIBAO_ADMIN_PASSWORD; random if empty
	EcertStepSeconds   int           `json:"ecert_step_seconds"`  // e-certificate code time step, YIBAO_ECERT_STEP_SECONDS; a code lives its step ±1
	// Wallets: "sim" runs the WeChat Pay and Alipay simulators in-process
	// (the default: the real providers are not reachable from here), an
	// http:// URL uses a `yibao sim wallet` server there (keys shared
	// through wallet_keys), "off" runs without wallet channels. YIBAO_WALLETS
	Wallets    string `json:"wallets"`
	WalletKeys string `json:"wallet_keys"` // folder of the wallet keys, YIBAO_WALLET_KEYS; default <data_dir>/wallet-keys
	// Banks: "sim" runs the credit bank simulator (医惠银行, bank code
	// yhbank) in-process (the default), an http:// URL uses a `yibao sim
	// bank` server there (its public key in bank_keys/bank-public.pem),
	// "off" runs without credit payment. YIBAO_BANKS
	Banks    string `json:"banks"`
	BankKeys string `json:"bank_keys"`
	// Face: "auto" (the default) turns face payment on when the ONNX
	// Runtime and the models are installed (third_party/face, or
	// face_dir), "off" never. YIBAO_FACE, YIBAO_FACE_DIR
	Face      string `json:"face"`
	FaceDir   string `json:"face_dir"`   // folder of the bank keys, YIBAO_BANK_KEYS; default <data_dir>/bank-keys
	PublicURL string `json:"public_url"` // base URL wallets call back on, YIBAO_PUBLIC_URL; default http://<addr as bound>
	LogOrigin string `json:"log_origin"` // the transparency log's checkpoint origin, YIBAO_LOG_ORIGIN
	// KeyStore holds the key-encryption key that wraps every other key
	// (docs/security.md, "Keys"): "software" (the default: the master key)
	// or "pkcs11" (a key in a PKCS#11 module; needs a binary built with
	// -tags pkcs11). YIBAO_KEY_STORE
	KeyStore       string `json:"key_store"`
	PKCS11Module   string `json:"pkcs11_module"`    // the module's .so, YIBAO_PKCS11_MODULE
	PKCS11Token    string `json:"pkcs11_token"`     // the token's label, YIBAO_PKCS11_TOKEN
	PKCS11PIN      string `json:"pkcs11_pin"`       // the user PIN, YIBAO_PKCS11_PIN (keep it in the environment)
	PKCS11KEKLabel string `json:"pkcs11_kek_label"` // the KEK's label, YIBAO_PKCS11_KEK_LABEL; default yibao-kek
	// Cross-region (docs/cross-region.md): with xr_hub set, this node joins
	// the national hub at that URL as node xr_node, keeping the insured of
	// the provinces in xr_prefixes (comma-separated 2-digit codes; default
	// the demo province); xr_hub_key is the hub's public key (PEM file).
	// YIBAO_XR_HUB, YIBAO_XR_NODE, YIBAO_XR_PREFIXES, YIBAO_XR_HUB_KEY
	XRHub      string `json:"xr_hub"`
	XRNode     string `json:"xr_node"`
	XRPrefixes string `json:"xr_prefixes"`
	XRHubKey   string `json:"xr_hub_key"`
	// XRDoubtAfter is how long a prepared cross-region settlement waits
	// before the node's recovery asks the hub how it ended (0: 15 s);
	// YIBAO_XR_DOUBT_AFTER, a duration such as "3s" (the crash test).
	XRDoubtAfter time.Duration `json:"xr_doubt_after"`
	// DemoProvince is the province whose demo dataset a demo node seeds
	// (demo.BuildProvince): "37" Shandong (the default), "32" Jiangsu or
	// "44" Guangdong. YIBAO_DEMO_PROVINCE, --demo-province
	DemoProvince string `json:"demo_province"`
}

// Defaults returns the configuration used when nothing is set.
func Defaults() Config {
	return Config{
		Addr:               "127.0.0.1:8080",
		DataDir:            ".yibao",
		LogLevel:           "info",
		LogFormat:          "text",
		MaxBodyBytes:       1 << 20,
		MaxImportBytes:     64 << 20,
		PasswordIterations: 0, // gmcrypto's default
		SessionTTL:         12 * time.Hour,
		EcertStepSeconds:   20,
		Wallets:            "sim",
		Banks:              "sim",
		Face:               "auto",
		LogOrigin:          "yibao.local/log",
		KeyStore:           "software",
		PKCS11KEKLabel:     "yibao-kek",
		DemoProvince:       "37",
	}
}

// LoadFile merges a JSON config file over c. Unknown keys are errors;
// session_ttl is a duration string such as "12h".
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	fc := struct {
		*Config
		SessionTTL   string `json:"session_ttl"`
		XRDoubtAfter string `json:"xr_doubt_after"`
	}{Config: c}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if fc.SessionTTL != "" {
		d, err := time.ParseDuration(fc.SessionTTL)
		if err != nil {
			return fmt.Errorf("config file %s: session_ttl: %w", path, err)
		}
		c.SessionTTL = d
	}
	if fc.XRDoubtAfter != "" {
		d, err := time.ParseDuration(fc.XRDoubtAfter)
		if err != nil {
			return fmt.Errorf("config file %s: xr_doubt_after: %w", path, err)
		}
		c.XRDoubtAfter = d
	}
	return nil
}

// LoadEnv merges YIBAO_* variables over c.
func (c *Config) LoadEnv(getenv func(string) string) error {
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	str("YIBAO_ADDR", &c.Addr)
	str("YIBAO_DATA_DIR", &c.DataDir)
	str("YIBAO_DB", &c.DB)
	str("YIBAO_MASTER_KEY", &c.MasterKey)
	str("YIBAO_LOG_LEVEL", &c.LogLevel)
	str("YIBAO_LOG_FORMAT", &c.LogFormat)
	str("YIBAO_ADMIN_PASSWORD", &c.AdminPassword)
	str("YIBAO_WALLETS", &c.Wallets)
	str("YIBAO_WALLET_KEYS", &c.WalletKeys)
	str("YIBAO_BANKS", &c.Banks)
	str("YIBAO_BANK_KEYS", &c.BankKeys)
	str("YIBAO_FACE", &c.Face)
	str("YIBAO_FACE_DIR", &c.FaceDir)
	str("YIBAO_PUBLIC_URL", &c.PublicURL)
	str("YIBAO_LOG_ORIGIN", &c.LogOrigin)
	str("YIBAO_KEY_STORE", &c.KeyStore)
	str("YIBAO_PKCS11_MODULE", &c.PKCS11Module)
	str("YIBAO_PKCS11_TOKEN", &c.PKCS11Token)
	str("YIBAO_PKCS11_PIN", &c.PKCS11PIN)
	str("YIBAO_PKCS11_KEK_LABEL", &c.PKCS11KEKLabel)
	str("YIBAO_XR_HUB", &c.XRHub)
	str("YIBAO_XR_NODE", &c.XRNode)
	str("YIBAO_XR_PREFIXES", &c.XRPrefixes)
	str("YIBAO_XR_HUB_KEY", &c.XRHubKey)
	str("YIBAO_DEMO_PROVINCE", &c.DemoProvince)
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"YIBAO_MAX_BODY_BYTES", &c.MaxBodyBytes}, {"YIBAO_MAX_IMPORT_BYTES", &c.MaxImportBytes}} {
		if v := getenv(f.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: must be a whole number of bytes", f.name)
			}
			*f.dst = n
		}
	}
	if v := getenv("YIBAO_ECERT_STEP_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("YIBAO_ECERT_STEP_SECONDS: must be a whole number of seconds")
		}
		c.EcertStepSeconds = n
	}
	if v := getenv("YIBAO_PASSWORD_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("YIBAO_PASSWORD_ITERATIONS: must be a whole number")
		}
		c.PasswordIterations = n
	}
	if v := getenv("YIBAO_SESSION_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("YIBAO_SESSION_TTL: %w", err)
		}
		c.SessionTTL = d
	}
	if v := getenv("YIBAO_XR_DOUBT_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("YIBAO_XR_DOUBT_AFTER: %w", err)
		}
		c.XRDoubtAfter = d
	}
	return nil
}

// Flags registers flags on fs that write into c.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory (SQLite database, master key)")
	fs.StringVar(&c.DB, "db", c.DB, "database: SQLite file path or postgres:// DSN (default <data-dir>/yibao.db)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.StringVar(&c.DemoProvince, "demo-province", c.DemoProvince, "the province a demo node seeds: 37 (Shandong), 32 (Jiangsu) or 44 (Guangdong)")
}

// Validate checks c and fills derived defaults. Messages name the setting.
func (c *Config) Validate() error {
	if c.DemoProvince == "" {
		c.DemoProvince = "37" // first: the cross-region prefixes default to it
	}
	var errs []string
	errs = append(errs, c.validateXR()...)
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Sprintf("addr %q: must be host:port, e.g. 127.0.0.1:8080", c.Addr))
	}
	if c.DataDir == "" {
		errs = append(errs, "data_dir: must not be empty")
	}
	if c.DB == "" {
		c.DB = filepath.Join(c.DataDir, "yibao.db")
	}
	if c.MasterKey != "" && len(c.MasterKey) != 64 {
		errs = append(errs, "master_key: must be 64 hex characters (32 bytes)")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err.Error())
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Sprintf("log_format %q: must be text or json", c.LogFormat))
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 64<<20 {
		errs = append(errs, "max_body_bytes: must be between 1 KiB and 64 MiB")
	}
	if c.MaxImportBytes < 1024 || c.MaxImportBytes > 1<<30 {
		errs = append(errs, "max_import_bytes: must be between 1 KiB and 1 GiB")
	}
	if c.PasswordIterations < 0 {
		errs = append(errs, "password_iterations: must not be negative")
	}
	if c.SessionTTL < time.Minute || c.SessionTTL > 30*24*time.Hour {
		errs = append(errs, "session_ttl: must be between 1m and 720h")
	}
	if c.EcertStepSeconds < 5 || c.EcertStepSeconds > 20 {
		errs = append(errs, "ecert_step_seconds: must be between 5 and 20 (a code lives its step ±1: at most 60 s)")
	}
	if c.Wallets != "sim" && c.Wallets != "off" && !strings.HasPrefix(c.Wallets, "http://") && !strings.HasPrefix(c.Wallets, "https://") {
		errs = append(errs, fmt.Sprintf("wallets %q: must be sim, off or the URL of a `yibao sim wallet` server", c.Wallets))
	}
	if c.Banks != "sim" && c.Banks != "off" && !strings.HasPrefix(c.Banks, "http://") && !strings.HasPrefix(c.Banks, "https://") {
		errs = append(errs, fmt.Sprintf("banks %q: must be sim, off or the URL of a `yibao sim bank` server", c.Banks))
	}
	if c.Face != "auto" && c.Face != "off" {
		errs = append(errs, fmt.Sprintf("face %q: must be auto or off", c.Face))
	}
	if c.LogOrigin == "" || strings.ContainsAny(c.LogOrigin, " \n+") {
		errs = append(errs, "log_origin: a name without spaces or '+', e.g. yibao.example/log")
	}
	if c.PKCS11KEKLabel == "" {
		c.PKCS11KEKLabel = "yibao-kek"
	}
	switch c.KeyStore {
	case "", "software":
		c.KeyStore = "software"
	case "pkcs11":
		if c.PKCS11Module == "" || c.PKCS11Token == "" {
			errs = append(errs, "key_store pkcs11: needs pkcs11_module (the module's .so) and pkcs11_token (the token's label)")
		}
	default:
		errs = append(errs, fmt.Sprintf("key_store %q: must be software or pkcs11", c.KeyStore))
	}
	if !demo.KnownProvince(c.DemoProvince) {
		errs = append(errs, fmt.Sprintf("demo_province %q: must be one of %s", c.DemoProvince, strings.Join(demo.Provinces(), ", ")))
	}
	if c.WalletKeys == "" {
		c.WalletKeys = filepath.Join(c.DataDir, "wallet-keys")
	}
	if c.BankKeys == "" {
		c.BankKeys = filepath.Join(c.DataDir, "bank-keys")
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < 8 {
		errs = append(errs, "admin_password: must be at least 8 characters")
	}
	if len(errs) > 0 {
		return errors.New("invalid configuration:\n  " + strings.Join(errs, "\n  "))
	}
	return nil
}

// Redacted returns c safe to log.
func (c Config) Redacted() Config {
	if c.MasterKey != "" {
		c.MasterKey = "(set)"
	}
	if c.AdminPassword != "" {
		c.AdminPassword = "(set)"
	}
	if c.PKCS11PIN != "" {
		c.PKCS11PIN = "(set)"
	}
	if sqlstore.IsPostgresDSN(c.DB) {
		if i := strings.Index(c.DB, "@"); i > 0 {
			if j := strings.Index(c.DB, "://"); j > 0 && j+3 < i {
				c.DB = c.DB[:j+3] + "…" + c.DB[i:]
			}
		}
	}
	return c
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log_level %q: must be debug, info, warn or error", s)
}
