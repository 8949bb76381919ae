// Package ecert runs the medical-insurance e-certificate (医保电子凭证):
// channels that carry it, activation by real name and a one-time code to
// the registered phone, device bindings certified by the region platform,
// revocation, and the online resolution of a scanned dynamic code into an
// ecToken for one institution — each code accepted once, anywhere.
//
// The code format and the offline verifier are in ecert/code.
package ecert

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/ecert/code"
	"yibao/gmcrypto"
	"yibao/registry"
	"yibao/sqlstore"
)

// SMS sends a text to a phone. The platform's development gateway
// (OutboxSMS) writes to a table the demo shows; production plugs in the
// operator's gateway.
type SMS interface {
	Send(ctx context.Context, phone, text string) error
}

// Config tunes the service.
type Config struct {
	StepSeconds   int           // code time step (default 20): a code is valid for its step ±1, at most 60 s
	TokenTTL      time.Duration // ecToken lifetime (default 4 h)
	OTPTTL        time.Duration // activation code lifetime (default 5 min)
	CredentialTTL time.Duration // device credential lifetime (default 1 year)
}

// Service is the e-certificate platform of every region in the registry.
type Service struct {
	// Audit records channel changes in the audit trail (nil: none).
	Audit *audit.Writer

	// Remote resolves a code of another province's platform through the
	// national hub (codeRegion: the code's 6-digit region; the calling
	// institution and its region). Nil: such codes are refused.
	Remote func(ctx context.Context, text, codeRegion, institution, instAdmdvs string) (*Resolution, error)

	db     *sqlstore.DB
	reg    *registry.Service
	sms    SMS
	cfg    Config
	master []byte
	now    func() time.Time
	log    *slog.Logger
	otpKey []byte
	root   *gmcrypto.PrivateKey // the national root SIMULATOR (see Directory)
	mu     sync.RWMutex
	plats  map[uint32]*platform // by admdvs
	verify *code.Verifier
}

type platform struct {
	key  *gmcrypto.PrivateKey
	cert *code.PlatformCert
}

// platformKeyID is the current key of every platform (rotation adds 2, …).
const platformKeyID = 1

// New builds the service. master is the platform master key; platform
// keys and the national-root simulator's key are derived from it.
func New(db *sqlstore.DB, reg *registry.Service, master []byte, sms SMS, cfg Config, log *slog.Logger) *Service {
	if cfg.StepSeconds == 0 {
		cfg.StepSeconds = 20
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 4 * time.Hour
	}
	if cfg.OTPTTL == 0 {
		cfg.OTPTTL = 5 * time.Minute
	}
	if cfg.CredentialTTL == 0 {
		cfg.CredentialTTL = 365 * 24 * time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: db, reg: reg, sms: sms, cfg: cfg, master: master, now: time.Now, log: log,
		otpKey: gmcrypto.DeriveKey(master, "yibao/ecert/otp", 32),
		root:   gmcrypto.DeterministicKey(gmcrypto.DeriveKey(master, "yibao/ecert/national-root-simulator", 32)),
		plats:  map[uint32]*platform{}}
	s.verify = &code.Verifier{StepSeconds: cfg.StepSeconds, Platform: s.platformKey}
	return s
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// StepSeconds is the code step devices must use.
func (s *Service) StepSeconds() int { return s.cfg.StepSeconds }

func (s *Service) platformKey(admdvs, keyID uint32) (*gmcrypto.PublicKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.plats[admdvs]
	if p == nil || p.cert.KeyID != keyID {
		return nil, false
	}
	return p.cert.Public, true
}

// EnsurePlatforms gives every region of the registry its platform key,
// certified by the national root. Run at start and after regions change.
func (s *Service) EnsurePlatforms(ctx context.Context) error {
	rows, err := s.db.Query(ctx, `SELECT admdvs FROM regions`)
	if err != nil {
		return err
	}
	var regions []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			rows.Close()
			return err
		}
		regions = append(regions, a)
	}
	rows.Close()
	// The built-in official-app channel (/app) is the platform itself.
	if _, err := s.db.Exec(ctx, `INSERT INTO channels (channel_id, name, public_key, status, created_at) SELECT ?, ?, ?, 'active', ?
		WHERE NOT EXISTS (SELECT 1 FROM channels WHERE channel_id = ?)`, OfficialChannel, "国家医保服务平台（内置 /app）",
		gmcrypto.DeterministicKey(gmcrypto.DeriveKey(s.master, "yibao/ecert/channel/official", 32)).Public().Bytes(),
		s.now().UnixMicro(), OfficialChannel); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range regions {
		n, err := strconv.ParseUint(a, 10, 32)
		if err != nil {
			return err
		}
		if s.plats[uint32(n)] != nil {
			continue
		}
		key := gmcrypto.DeterministicKey(gmcrypto.DeriveKey(s.master, fmt.Sprintf("yibao/ecert/platform/%s/%d", a, platformKeyID), 32))
		cert, err := code.IssuePlatformCert(s.root, uint32(n), platformKeyID, key.Public(), s.now().AddDate(10, 0, 0))
		if err != nil {
			return err
		}
		s.plats[uint32(n)] = &platform{key: key, cert: cert}
	}
	return nil
}

// Directory is what a terminal needs to check codes offline: the
// national root's public key, every platform certificate and the step.
type Directory struct {
	// RootPublicKey is the national root. In this deployment it is a
	// SIMULATOR whose key the platform derives itself; in production the
	// platform certificates come signed by NHSA's root.
	RootPublicKey string           `json:"root_public_key"`
	RootIsSimul   bool             `json:"root_is_simulator"`
	StepSeconds   int              `json:"step_seconds"`
	Platforms     []DirectoryEntry `json:"platforms"`
}

// DirectoryEntry is one platform certificate.
type DirectoryEntry struct {
	Admdvs    string `json:"admdvs"`
	KeyID     uint32 `json:"key_id"`
	PublicKey string `json:"public_key"`  // hex, 65-byte point
	Cert      string `json:"certificate"` // hex, 142 bytes (docs/ecert.md)
}

// Directory lists the trust anchors.
func (s *Service) Directory() *Directory {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := &Directory{RootPublicKey: hex.EncodeToString(s.root.Public().Bytes()), RootIsSimul: true, StepSeconds: s.cfg.StepSeconds,
		Platforms: []DirectoryEntry{}}
	for _, p := range s.plats {
		d.Platforms = append(d.Platforms, DirectoryEntry{Admdvs: fmt.Sprintf("%06d", p.cert.Admdvs), KeyID: p.cert.KeyID,
			PublicKey: hex.EncodeToString(p.cert.Public.Bytes()), Cert: hex.EncodeToString(p.cert.Bytes())})
	}
	slices.SortFunc(d.Platforms, func(a, b DirectoryEntry) int { return strings.Compare(a.Admdvs, b.Admdvs) })
	return d
}

// --- channels ---

// Channel is a party that carries e-certificates.
type Channel struct {
	ChannelID string    `json:"channel_id"`
	Name      string    `json:"name"`
	PublicKey string    `json:"public_key"` // hex
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

var channelIDRe = regexp.MustCompile(`^ch_[a-z0-9_]{2,30}$`)

// CreateChannel registers a channel with its SM2 public key (bureau
// administrators). Its requests are then signed with that key.
func (s *Service) CreateChannel(ctx context.Context, id, name string, pub []byte) (*Channel, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if !channelIDRe.MatchString(id) {
		return nil, yibao.FieldError("channel_id", "want ch_ and 2–30 lowercase letters, digits or _")
	}
	if name == "" || len(name) > 100 {
		return nil, yibao.FieldError("name", "1–100 bytes")
	}
	if _, err := gmcrypto.ParsePublicKey(pub); err != nil {
		return nil, yibao.FieldError("public_key", "want a 65-byte SM2 point in hex")
	}
	now := s.now()
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO channels (channel_id, name, public_key, status, created_at) VALUES (?, ?, ?, 'active', ?)`,
			id, name, pub, now.UnixMicro()); err != nil {
			return err
		}
		sum := gmcrypto.SM3(pub)
		return s.channelEntry(ctx, tx, id, "created", map[string]any{"name": name, "public_key_sm3": hex.EncodeToString(sum[:])})
	})
	if sqlstore.IsUniqueViolation(err) {
		return nil, yibao.Errorf(yibao.CodeConflict, "channel %s exists", id)
	}
	if err != nil {
		return nil, err
	}
	return &Channel{ChannelID: id, Name: name, PublicKey: hex.EncodeToString(pub), Status: "active", CreatedAt: now.UTC()}, nil
}

// SetChannelStatus suspends or re-activates a channel; a suspended
// channel's requests are refused at once.
func (s *Service) SetChannelStatus(ctx context.Context, id, status string) error {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	if status != "active" && status != "suspended" {
		return yibao.FieldError("status", "want active or suspended")
	}
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE channels SET status = ? WHERE channel_id = ?`, status, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return yibao.Errorf(yibao.CodeNotFound, "channel %s not found", id)
		}
		return s.channelEntry(ctx, tx, id, status, nil)
	})
}

// channelEntry records a channel change in the audit trail.
func (s *Service) channelEntry(ctx context.Context, tx *sqlstore.Tx, id, what string, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	data["channel_id"], data["change"] = id, what
	actor := ""
	if p := yibao.PrincipalFrom(ctx); p != nil {
		actor = p.ID()
	}
	now := s.now()
	return s.Audit.Record(ctx, tx, audit.Entry{ID: "channel:" + id + ":" + what + ":" + strconv.FormatInt(now.UnixMicro(), 10), Kind: audit.KindKey,
		At: audit.Stamp(now), Actor: actor, Subject: id, Data: data})
}

// Channels lists the channels.
func (s *Service) Channels(ctx context.Context) ([]Channel, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT channel_id, name, public_key, status, created_at FROM channels ORDER BY channel_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Channel{}
	for rows.Next() {
		var c Channel
		var pub []byte
		var at int64
		if err := rows.Scan(&c.ChannelID, &c.Name, &pub, &c.Status, &at); err != nil {
			return nil, err
		}
		c.PublicKey, c.CreatedAt = hex.EncodeToString(pub), time.UnixMicro(at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

func requireChannel(ctx context.Context) (*yibao.Principal, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Kind != yibao.PrincipalChannel {
		return nil, yibao.Errorf(yibao.CodeForbidden, "this call is for e-certificate channels (signed with the channel key)")
	}
	return p, nil
}

func newID(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func notFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }
