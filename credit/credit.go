// Package credit is credit payment (信用就医, treat first, pay later): a
// partner bank grants an insured person a credit line; the out-of-pocket
// part of a settlement is held on the line in the settlement's own ledger
// unit, posted when the bank has taken the draw, and becomes a statement
// with a due date; the patient repays through a wallet or at the bank,
// which restores the line; unpaid statements become overdue, and the line
// is suspended and its limit set to zero. An inpatient's line stands
// guarantee for the stay instead of a deposit. The bank is paid and pays
// the hospitals through a daily settlement file that is matched row by row.
//
// The ledger carries every movement (docs/credit.md has the table):
//
//	grant / raise a limit   creditlimit:<bank> → credit:<agreement>
//	hold at settlement      credit:<agreement> → clear:<bank>   pending, posted on completion
//	completion              clear:<bank> → recv:<hospital>
//	bank pays the hospital  recv:<hospital> → bank:<hospital>
//	repay through a wallet  clear:<wallet> → credit:<agreement>
//	repay at the bank       repaid:<bank> → credit:<agreement>
//	lower / zero a limit    credit:<agreement> → creditlimit:<bank>
//
// The line account may never be overdrawn, pending holds included, so no
// number of concurrent payments can spend more than the limit.
package credit

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/credit/bankapi"
	"yibao/gmcrypto"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/settlement"
	"yibao/sqlstore"
)

// Agreement states.
const (
	StatusApplying  = "applying"  // sent to the bank, no decision yet
	StatusActive    = "active"    // the line can be used
	StatusDeclined  = "declined"  // the bank said no
	StatusSuspended = "suspended" // no new use (overdue, or the bank's decision); repayments still count
	StatusClosed    = "closed"
)

// Scenes an agreement covers.
const (
	SceneAll        = "all"
	SceneOutpatient = "outpatient"
	SceneInpatient  = "inpatient"
)

// Bank is what the service needs of a partner bank; *bankapi.Client is
// the production implementation.
type Bank interface {
	Apply(ctx context.Context, r bankapi.ApplyRequest) (*bankapi.Decision, error)
	Application(ctx context.Context, applyID string) (*bankapi.Decision, error)
	Draw(ctx context.Context, d bankapi.DrawNotice) error
	Repaid(ctx context.Context, r bankapi.Repayment) error
	Report(ctx context.Context, r bankapi.StatusReport) error
	SubmitDay(ctx context.Context, f bankapi.DayFile) (*bankapi.DayReply, error)
}

// Wallet collects repayments through the patient's wallet withholding
// agreement (the payment service implements it).
type Wallet interface {
	// ChargeAgreement charges the person's active agreement with the
	// named wallet. paid is the definite outcome; a *yibao.Error of code
	// failed_precondition is a refusal; any other error is unknown.
	ChargeAgreement(ctx context.Context, psnNo, wallet, outTradeNo string, amount money.Fen, description string) (paid bool, err error)
	// QueryCharge asks the wallet about an earlier charge: ChargePaid,
	// ChargeDeclined, ChargePending or ChargeNotFound.
	QueryCharge(ctx context.Context, wallet, outTradeNo string) (string, error)
}

// What a wallet says of a charge.
const (
	ChargePaid     = "paid"
	ChargeDeclined = "declined"
	ChargePending  = "pending"
	ChargeNotFound = "not_found"
)

// Config tunes the service.
type Config struct {
	// GuaranteeInitial is held on the line when an inpatient stay opens
	// a guarantee (default ¥2,000, or what the line has left).
	GuaranteeInitial money.Fen
	// GuaranteeStep rounds each increase of a guarantee up (default ¥500).
	GuaranteeStep money.Fen
	// BankTimeout bounds one call to a bank (default 10 s).
	BankTimeout time.Duration
	// RefKey keys the person references banks see (HMAC-SM3 per bank),
	// so two banks cannot link their customers through us.
	RefKey []byte
}

// Service runs credit agreements.
type Service struct {
	db     *sqlstore.DB
	led    *engine.Engine
	settle *settlement.Service
	cfg    Config
	now    func() time.Time
	log    *slog.Logger

	mu     sync.RWMutex
	banks  map[string]Bank
	nonces *bankapi.NonceCache

	// Audit records agreements, repayments, limits and settlement files.
	Audit *audit.Writer
	// Wallet collects repayments (nil: repay at the bank only).
	Wallet Wallet
}

// New returns the service.
func New(db *sqlstore.DB, led *engine.Engine, settle *settlement.Service, cfg Config, log *slog.Logger) *Service {
	if cfg.GuaranteeInitial == 0 {
		cfg.GuaranteeInitial = 200000
	}
	if cfg.GuaranteeStep == 0 {
		cfg.GuaranteeStep = 50000
	}
	if cfg.BankTimeout == 0 {
		cfg.BankTimeout = 10 * time.Second
	}
	return &Service{db: db, led: led, settle: settle, cfg: cfg, now: time.Now, log: log, banks: map[string]Bank{}, nonces: bankapi.NewNonceCache(15 * time.Minute)}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Tune changes the configuration before use (tests).
func (s *Service) Tune(f func(*Config)) { f(&s.cfg) }

// Connect sets the client of a registered bank.
func (s *Service) Connect(bankCode string, b Bank) {
	s.mu.Lock()
	s.banks[bankCode] = b
	s.mu.Unlock()
}

func (s *Service) bank(code string) (Bank, error) {
	s.mu.RLock()
	b, ok := s.banks[code]
	s.mu.RUnlock()
	if !ok {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "bank %s is not connected", code)
	}
	return b, nil
}

// PsnRef is the person reference bank bankCode sees: stable for that bank,
// unlinkable across banks, never the person number.
func (s *Service) PsnRef(bankCode, psnNo string) string {
	return "P" + strings.ToUpper(hex.EncodeToString(gmcrypto.HMACSM3(s.cfg.RefKey, []byte(bankCode+"\x00"+psnNo))[:12]))
}

// BankInfo is a registered partner bank.
type BankInfo struct {
	BankCode         string    `json:"bank_code"`
	Name             string    `json:"name"`
	KeyID            string    `json:"key_id"`
	PublicKey        string    `json:"public_key"`
	BaseURL          string    `json:"base_url"`
	InterestFreeDays int       `json:"interest_free_days"`
	Status           string    `json:"status"`
	CreatedAt        time.Time `json:"created_at"`
}

// RegisterBank adds or updates a partner bank (administrators). Its
// public key verifies the bank's callbacks.
func (s *Service) RegisterBank(ctx context.Context, b BankInfo) (*BankInfo, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if !channelRe(b.BankCode) {
		return nil, yibao.FieldError("bank_code", "2–20 lowercase letters or digits")
	}
	if strings.TrimSpace(b.Name) == "" {
		return nil, yibao.FieldError("name", "required")
	}
	if _, err := gmcrypto.ParsePublicKeyPEM([]byte(b.PublicKey)); err != nil {
		return nil, yibao.FieldError("public_key", "want an SM2 public key in PEM")
	}
	if b.InterestFreeDays <= 0 || b.InterestFreeDays > 60 {
		b.InterestFreeDays = 10
	}
	if b.KeyID == "" {
		b.KeyID = b.BankCode
	}
	b.Status, b.CreatedAt = "active", s.now().UTC()
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO banks (bank_code, name, key_id, public_key, base_url, interest_free_days, status, created_at)
			VALUES (?, ?, ?, ?, ?, ?, 'active', ?) ON CONFLICT (bank_code) DO UPDATE SET name = excluded.name, key_id = excluded.key_id,
			public_key = excluded.public_key, base_url = excluded.base_url, interest_free_days = excluded.interest_free_days`,
			b.BankCode, b.Name, b.KeyID, b.PublicKey, b.BaseURL, b.InterestFreeDays, micros(b.CreatedAt))
		if err != nil {
			return err
		}
		return s.record(ctx, tx, "bank:"+b.BankCode+":"+fmt.Sprint(b.CreatedAt.UnixMicro()), b.BankCode, map[string]any{
			"event": "bank_registered", "bank_code": b.BankCode, "name": b.Name, "key_id": b.KeyID, "key_sm3": keyDigest(b.PublicKey)})
	})
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func keyDigest(pem string) string {
	h := gmcrypto.SM3([]byte(pem))
	return hex.EncodeToString(h[:])
}

const bankCols = `bank_code, name, key_id, public_key, base_url, interest_free_days, status, created_at`

func scanBank(sc interface{ Scan(...any) error }) (*BankInfo, error) {
	var b BankInfo
	var c int64
	if err := sc.Scan(&b.BankCode, &b.Name, &b.KeyID, &b.PublicKey, &b.BaseURL, &b.InterestFreeDays, &b.Status, &c); err != nil {
		return nil, err
	}
	b.CreatedAt = fromMicros(c)
	return &b, nil
}

// Banks lists the partner banks.
func (s *Service) Banks(ctx context.Context) ([]BankInfo, error) {
	rows, err := s.db.Query(ctx, `SELECT `+bankCols+` FROM banks ORDER BY bank_code`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []BankInfo{}
	for rows.Next() {
		b, err := scanBank(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	return out, rows.Err()
}

// BankByCode returns one partner bank.
func (s *Service) BankByCode(ctx context.Context, code string) (*BankInfo, error) {
	b, err := scanBank(s.db.QueryRow(ctx, `SELECT `+bankCols+` FROM banks WHERE bank_code = ?`, code))
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "bank %s is not registered", code)
	}
	return b, err
}

func channelRe(s string) bool {
	if len(s) < 2 || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// record writes an audit entry of kind credit inside tx.
func (s *Service) record(ctx context.Context, tx *sqlstore.Tx, id, subject string, data map[string]any) error {
	actor := ""
	if p := yibao.PrincipalFrom(ctx); p != nil {
		actor = p.ID()
	}
	return s.Audit.Record(ctx, tx, audit.Entry{ID: "credit:" + id, Kind: audit.KindCredit, At: audit.Stamp(s.now()), Actor: actor, Subject: subject, Data: data})
}

// notice stores a message for the patient (the simulated SMS box) inside tx.
func notice(ctx context.Context, tx *sqlstore.Tx, agreementNo, kind, msg string, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO credit_notices (id, agreement_no, kind, message, created_at) VALUES (?, ?, ?, ?, ?)`,
		newID("CN"), agreementNo, kind, msg, micros(at))
	return err
}

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + time.Now().UTC().Format("060102") + strings.ToUpper(hex.EncodeToString(b))
}

func micros(t time.Time) int64 { return t.UnixMicro() }
func fromMicros(v int64) time.Time {
	return time.UnixMicro(v).UTC()
}

func notFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }

type querier interface {
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func sys(ctx context.Context) context.Context {
	return yibao.WithPrincipal(ctx, yibao.System("credit"))
}

// line is an agreement's ledger account.
func line(agreementNo string) ledger.Account { return ledger.CreditLine(agreementNo) }

// ParseCallback verifies a bank's signed callback against the bank's
// registered key (timestamp window, nonce never reused, SM2 signature)
// and decodes it.
func (s *Service) ParseCallback(ctx context.Context, r *http.Request, body []byte, bankCode string) (*bankapi.Callback, error) {
	b, err := s.BankByCode(ctx, bankCode)
	if err != nil {
		return nil, yibao.Errorf(yibao.CodeNotFound, "no bank %q", bankCode)
	}
	pub, err := gmcrypto.ParsePublicKeyPEM([]byte(b.PublicKey))
	if err != nil {
		return nil, yibao.Errorf(yibao.CodeInternal, "bank %s has an unreadable key", bankCode)
	}
	cb, err := bankapi.ParseCallback(r, body, b.KeyID, pub, time.Now(), s.nonces) // the signature window is wall-clock time, whatever the business clock says
	switch {
	case errors.Is(err, bankapi.ErrReplayed) || errors.Is(err, bankapi.ErrStaleTimestamp):
		return nil, yibao.Errorf(yibao.CodeReplay, "callback refused: %v", err)
	case errors.Is(err, bankapi.ErrMalformed):
		return nil, yibao.Errorf(yibao.CodeInvalid, "callback refused: %v", err)
	case err != nil:
		return nil, yibao.Errorf(yibao.CodeBadSignature, "callback refused: its signature did not verify")
	}
	return cb, nil
}
