// Package pay is the money side of a settlement: payment orders whose legs
// (fund, personal account, out-of-pocket) each have a status, the
// out-of-pocket leg collected through a wallet channel (under a
// withholding agreement, or confirmed by the patient in the wallet app) or
// at the counter, refunds idempotent by refund number, wallet
// notifications applied once, a recovery loop that settles every unknown
// outcome by querying (never by charging again), and the daily
// reconciliation of each channel's bill against our orders.
//
// The two flows: one-code (the cashier scans, the platform settles the
// visit pending and charges the patient's wallet; success completes the
// settlement, refusal leaves it for cash or voiding) and mobile (the HIS
// uploads a bill, the patient confirms it in the app with a fresh
// e-certificate code, then pays as above).
package pay

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/credit"
	"yibao/ecert"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/pay/channel"
	"yibao/settlement"
	"yibao/sqlstore"
)

// Modes of an order.
const (
	ModeOneCode = "onecode" // settled at the counter after a code scan
	ModeMobile  = "mobile"  // pushed to the patient's phone by the HIS
)

// Order states (docs/payments.md has the diagram).
const (
	StatusAwaiting          = "awaiting_patient"   // mobile: uploaded, not yet confirmed by the patient
	StatusPaying            = "paying"             // settled pending; the out-of-pocket leg is in flight
	StatusDeclined          = "declined"           // the wallet refused; settlement still pending (cash or cancel)
	StatusReview            = "review"             // a wallet notification disagreed with the order; held for a person
	StatusPaid              = "paid"               // every leg posted
	StatusPartiallyRefunded = "partially_refunded" // part of the out-of-pocket leg returned
	StatusRefunded          = "refunded"           // settlement reversed and out-of-pocket money returned
	StatusVoided            = "voided"             // settlement released, nothing paid
	StatusRevoked           = "revoked"            // mobile: withdrawn by the HIS before the patient paid
)

// Leg states.
const (
	LegNone              = "none"     // the leg is zero
	LegPlanned           = "planned"  // mobile: in the pre-settlement only
	LegReserved          = "reserved" // fund / account money held by a pending settlement
	LegAwaiting          = "awaiting" // out-of-pocket: waiting for the payer in the wallet app
	LegPaying            = "paying"   // out-of-pocket: charge sent, outcome not known yet
	LegDeclined          = "declined"
	LegReview            = "review"
	LegPaid              = "paid"
	LegReleased          = "released"
	LegPartiallyRefunded = "partially_refunded"
	LegRefunded          = "refunded"
)

// ChannelCounter is cash or card paid at the hospital's counter.
const ChannelCounter = "counter"

// Order is a payment order.
type Order struct {
	PayOrdID      string              `json:"pay_ord_id"`
	Mode          string              `json:"mode"`
	SetlID        string              `json:"setl_id,omitempty"`
	MdtrtID       string              `json:"mdtrt_id"`
	PsnNo         string              `json:"psn_no"`
	FixmedinsCode string              `json:"fixmedins_code"`
	Status        string              `json:"status"`
	Channel       string              `json:"channel,omitempty"`
	MedfeeSumamt  money.Fen           `json:"medfee_sumamt"`
	FundPay       money.Fen           `json:"fund_pay"`
	AcctPay       money.Fen           `json:"acct_pay"`
	SelfPay       money.Fen           `json:"self_pay"`
	Refunded      money.Fen           `json:"refunded"`
	Legs          []LegState          `json:"legs"`
	Attempt       int                 `json:"attempt"`
	OutTradeNo    string              `json:"out_trade_no,omitempty"`
	TransactionID string              `json:"transaction_id,omitempty"`
	AgreementNo   string              `json:"agreement_no,omitempty"`
	PayURL        string              `json:"pay_url,omitempty"`
	MedOrgOrd     string              `json:"med_org_ord,omitempty"`
	Preview       *settlement.Preview `json:"preview,omitempty"`
	Reason        string              `json:"reason,omitempty"`
	CreatedBy     string              `json:"created_by"`
	CreatedAt     time.Time           `json:"created_at"`
	UpdatedAt     time.Time           `json:"updated_at"`
	PaidAt        *time.Time          `json:"paid_at,omitempty"`
	Events        []Event             `json:"events,omitempty"`
	Refunds       []Refund            `json:"refunds,omitempty"`

	payToken  string
	acctUsed  bool
	version   int64
	fundState string
	acctState string
	selfState string
}

// LegState is one leg of an order as the cashier sees it.
type LegState struct {
	Leg    string    `json:"leg"` // fund, acct, self
	Amount money.Fen `json:"amount"`
	Status string    `json:"status"`
}

// Event is one entry of an order's timeline.
type Event struct {
	Seq    int       `json:"seq"`
	At     time.Time `json:"at"`
	Event  string    `json:"event"`
	Detail string    `json:"detail,omitempty"`
}

// Config tunes the service.
type Config struct {
	// NotifyBase is the public base URL wallets call back on, e.g.
	// https://yibao.example/api/v1/pay/notify (the channel name is appended).
	NotifyBase string
	// ChargeTimeout bounds one wallet call (default 10 s).
	ChargeTimeout time.Duration
	// CheckAfter is how long after an unknown outcome the recovery loop
	// queries the wallet (default 5 s); it backs off to CheckMax.
	CheckAfter time.Duration
	CheckMax   time.Duration

	// CrashAfterCharge, for fault tests only: when it returns true the
	// service stops right after a wallet charge returned, as if the
	// process died before acting on the answer. The recovery loop must
	// then finish the order from the wallet's side alone.
	CrashAfterCharge func(payOrdID string) bool

	// FaceCapPharmacy and FaceCapHospital bound a visit whose person was
	// identified by face alone (its ecToken came from a face terminal):
	// above them the cashier scans the e-certificate code as a second
	// factor, or the patient pays at the counter.
	FaceCapPharmacy, FaceCapHospital money.Fen
}

// Service runs payment orders.
type Service struct {
	db       *sqlstore.DB
	settle   *settlement.Service
	ecert    *ecert.Service
	led      *engine.Engine
	channels map[string]channel.Channel
	cfg      Config
	now      func() time.Time

	credit *credit.Service

	// Audit records the orders' states and refunds (nil: none).
	Audit *audit.Writer
	log   *slog.Logger
}

// New returns the service. channels are the wallet adapters by name.
func New(db *sqlstore.DB, settle *settlement.Service, ec *ecert.Service, led *engine.Engine, channels []channel.Channel, cfg Config, log *slog.Logger) *Service {
	if cfg.ChargeTimeout == 0 {
		cfg.ChargeTimeout = 10 * time.Second
	}
	if cfg.CheckAfter == 0 {
		cfg.CheckAfter = 5 * time.Second
	}
	if cfg.CheckMax == 0 {
		cfg.CheckMax = 5 * time.Minute
	}
	s := &Service{db: db, settle: settle, ecert: ec, led: led, channels: map[string]channel.Channel{}, cfg: cfg, now: time.Now, log: log}
	for _, c := range channels {
		s.channels[c.Name()] = c
	}
	settle.KeepPending = s.keepPending
	return s
}

// SetNotifyBase sets where wallets call back (the server knows its own
// address only once it listens).
func (s *Service) SetNotifyBase(url string) { s.cfg.NotifyBase = url }

// Tune changes the configuration of a service that is not yet in use
// by other goroutines (tests: shorter timeouts, the crash hook).
func (s *Service) Tune(f func(*Config)) { f(&s.cfg) }

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Channels lists the configured wallet channels.
func (s *Service) Channels() []string {
	return slices.Sorted(maps.Keys(s.channels))
}

func (s *Service) channel(name string) (channel.Channel, error) {
	c, ok := s.channels[name]
	if !ok {
		return nil, yibao.Errorf(yibao.CodeInvalid, "unknown payment channel %q", name)
	}
	return c, nil
}

func (s *Service) notifyURL(ch string) string {
	return strings.TrimSuffix(s.cfg.NotifyBase, "/") + "/" + ch
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

const orderCols = `pay_ord_id, mode, COALESCE(setl_id, ''), mdtrt_id, psn_no, fixmedins_code, status, channel, medfee_sumamt, fund_pay, acct_pay,
	self_pay, refunded, fund_status, acct_status, self_status, attempt, out_trade_no, transaction_id, agreement_no, pay_url, pay_token,
	med_org_ord, acct_used, preview, reason, version, created_by, created_at, updated_at, paid_at`

func scanOrder(sc interface{ Scan(...any) error }) (*Order, error) {
	var o Order
	var preview string
	var acct int
	var c, u, p int64
	if err := sc.Scan(&o.PayOrdID, &o.Mode, &o.SetlID, &o.MdtrtID, &o.PsnNo, &o.FixmedinsCode, &o.Status, &o.Channel, &o.MedfeeSumamt,
		&o.FundPay, &o.AcctPay, &o.SelfPay, &o.Refunded, &o.fundState, &o.acctState, &o.selfState, &o.Attempt, &o.OutTradeNo,
		&o.TransactionID, &o.AgreementNo, &o.PayURL, &o.payToken, &o.MedOrgOrd, &acct, &preview, &o.Reason, &o.version, &o.CreatedBy,
		&c, &u, &p); err != nil {
		return nil, err
	}
	o.acctUsed = acct != 0
	o.CreatedAt, o.UpdatedAt = fromMicros(c), fromMicros(u)
	if p != 0 {
		t := fromMicros(p)
		o.PaidAt = &t
	}
	if preview != "" {
		o.Preview = &settlement.Preview{}
		if err := json.Unmarshal([]byte(preview), o.Preview); err != nil {
			return nil, fmt.Errorf("order %s preview: %w", o.PayOrdID, err)
		}
	}
	o.Legs = []LegState{{"fund", o.FundPay, o.fundState}, {"acct", o.AcctPay, o.acctState}, {"self", o.SelfPay, o.selfState}}
	return &o, nil
}

func (s *Service) load(ctx context.Context, q querier, id string) (*Order, error) {
	o, err := scanOrder(q.QueryRow(ctx, `SELECT `+orderCols+` FROM payment_orders WHERE pay_ord_id = ?`, id))
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "payment order %s not found", id)
	}
	return o, err
}

// mayRead checks the caller may see the order: administrators all, an
// institution its own, a patient (system principal acting for the app)
// checked by the caller.
func mayRead(ctx context.Context, o *Order) error {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return err
	}
	if !p.ActsFor(o.FixmedinsCode) {
		return yibao.Errorf(yibao.CodeNotFound, "payment order %s not found", o.PayOrdID) // another hospital's order does not exist for you
	}
	return nil
}

// Get returns an order with its timeline and refunds.
func (s *Service) Get(ctx context.Context, id string) (*Order, error) {
	o, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if err := mayRead(ctx, o); err != nil {
		return nil, err
	}
	return s.withDetail(ctx, o)
}

func (s *Service) withDetail(ctx context.Context, o *Order) (*Order, error) {
	rows, err := s.db.Query(ctx, `SELECT seq, at, event, detail FROM payment_events WHERE pay_ord_id = ? ORDER BY seq`, o.PayOrdID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Event, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		o.Events = append(o.Events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	o.Refunds, err = s.refunds(ctx, o.PayOrdID)
	return o, err
}

// OrderFilter selects orders for a list.
type OrderFilter struct {
	FixmedinsCode string
	PsnNo         string
	Status        string
	Limit         int
}

// List returns recent orders, newest first. Institutions see their own.
func (s *Service) List(ctx context.Context, f OrderFilter) ([]Order, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.IsAdmin() {
		if f.FixmedinsCode != "" && f.FixmedinsCode != p.Institution {
			return nil, yibao.Errorf(yibao.CodeForbidden, "you may list only your own institution's orders")
		}
		f.FixmedinsCode = p.Institution
		if f.FixmedinsCode == "" {
			return nil, yibao.Errorf(yibao.CodeForbidden, "only institutions and administrators list payment orders")
		}
	}
	return s.list(ctx, f)
}

func (s *Service) list(ctx context.Context, f OrderFilter) ([]Order, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	q := `SELECT ` + orderCols + ` FROM payment_orders WHERE 1 = 1`
	var args []any
	if f.FixmedinsCode != "" {
		q += ` AND fixmedins_code = ?`
		args = append(args, f.FixmedinsCode)
	}
	if f.PsnNo != "" {
		q += ` AND psn_no = ?`
		args = append(args, f.PsnNo)
	}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	q += ` ORDER BY created_at DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Order{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *o)
	}
	return out, rows.Err()
}

// event appends to an order's timeline inside tx.
func event(ctx context.Context, tx *sqlstore.Tx, id string, at time.Time, what, detail string) error {
	if tx.Dialect() == sqlstore.Postgres {
		// Under read committed two transactions adding an event to one
		// order (a refund booked while another finishes) would both take
		// MAX(seq) + 1; the order's row lock makes them number in turn.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM payment_orders WHERE pay_ord_id = ? FOR UPDATE`, id); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO payment_events (pay_ord_id, seq, at, event, detail)
		SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ? FROM payment_events WHERE pay_ord_id = ?`, id, micros(at), what, detail, id)
	return err
}

// outbox queues a signed webhook event for the order's institution and
// records the order's new state in the audit trail, in the same
// transaction.
func (s *Service) outbox(ctx context.Context, tx *sqlstore.Tx, topic string, o *Order, now time.Time) error {
	payload, _ := json.Marshal(map[string]any{"pay_ord_id": o.PayOrdID, "setl_id": o.SetlID, "mdtrt_id": o.MdtrtID, "psn_no": o.PsnNo,
		"fixmedins_code": o.FixmedinsCode, "med_org_ord": o.MedOrgOrd, "status": o.Status, "channel": o.Channel,
		"medfee_sumamt": o.MedfeeSumamt, "fund_pay": o.FundPay, "acct_pay": o.AcctPay, "self_pay": o.SelfPay, "refunded": o.Refunded,
		"transaction_id": o.TransactionID})
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, topic, subject, payload, created_at, fixmedins_code, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		newID("EV"), topic, o.PayOrdID, string(payload), micros(now), o.FixmedinsCode, micros(now)); err != nil {
		return err
	}
	actor := ""
	if p := yibao.PrincipalFrom(ctx); p != nil {
		actor = p.ID()
	}
	legs := map[string]any{
		"fund": map[string]string{"amount": o.FundPay.String(), "status": o.fundState},
		"acct": map[string]string{"amount": o.AcctPay.String(), "status": o.acctState},
		"self": map[string]string{"amount": o.SelfPay.String(), "status": o.selfState},
	}
	return s.Audit.Record(ctx, tx, audit.Entry{ID: fmt.Sprintf("payment:%s:%s:%d", o.PayOrdID, o.Status, o.version), Kind: audit.KindPayment,
		At: audit.Stamp(now), Actor: actor, Subject: o.PayOrdID, Data: map[string]any{"pay_ord_id": o.PayOrdID, "mode": o.Mode,
			"setl_id": o.SetlID, "person": s.Audit.Person(o.PsnNo), "fixmedins_code": o.FixmedinsCode, "status": o.Status, "channel": o.Channel,
			"out_trade_no": o.OutTradeNo, "transaction_id": o.TransactionID, "medfee_sumamt": o.MedfeeSumamt.String(),
			"refunded": o.Refunded.String(), "legs": legs}})
}

// transition moves an order from one of the given states under its
// version, with an event and optionally an outbox message. It reports
// whether it won (false: the order moved meanwhile).
type change struct {
	from      []string
	status    string
	fund      string
	acct      string
	self      string
	reason    *string
	txnID     string
	paidAt    time.Time
	checkAt   *time.Time
	event     string
	detail    string
	topic     string
	extraSQL  string
	extraArgs []any
}

func (s *Service) transition(ctx context.Context, tx *sqlstore.Tx, o *Order, c change) (bool, error) {
	now := s.now()
	set := []string{"status = ?", "updated_at = ?", "version = version + 1"}
	args := []any{c.status, micros(now)}
	if c.fund != "" {
		set, args = append(set, "fund_status = ?"), append(args, c.fund)
	}
	if c.acct != "" {
		set, args = append(set, "acct_status = ?"), append(args, c.acct)
	}
	if c.self != "" {
		set, args = append(set, "self_status = ?"), append(args, c.self)
	}
	if c.reason != nil {
		set, args = append(set, "reason = ?"), append(args, *c.reason)
	}
	if c.txnID != "" {
		set, args = append(set, "transaction_id = ?"), append(args, c.txnID)
	}
	if !c.paidAt.IsZero() {
		set, args = append(set, "paid_at = ?"), append(args, micros(c.paidAt))
	}
	if c.checkAt != nil {
		v := int64(0)
		if !c.checkAt.IsZero() {
			v = micros(*c.checkAt)
		}
		set, args = append(set, "check_at = ?"), append(args, v)
	}
	if c.extraSQL != "" {
		set, args = append(set, c.extraSQL), append(args, c.extraArgs...)
	}
	q := `UPDATE payment_orders SET ` + strings.Join(set, ", ") + ` WHERE pay_ord_id = ? AND version = ?`
	args = append(args, o.PayOrdID, o.version)
	if len(c.from) > 0 && !slices.Contains(c.from, o.Status) {
		return false, nil
	}
	res, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	o.version++
	o.Status = c.status
	if c.fund != "" {
		o.fundState = c.fund
	}
	if c.acct != "" {
		o.acctState = c.acct
	}
	if c.self != "" {
		o.selfState = c.self
	}
	if c.txnID != "" {
		o.TransactionID = c.txnID
	}
	if c.event != "" {
		if err := event(ctx, tx, o.PayOrdID, now, c.event, c.detail); err != nil {
			return false, err
		}
	}
	if c.topic != "" {
		if err := s.outbox(ctx, tx, c.topic, o, now); err != nil {
			return false, err
		}
	}
	return true, nil
}

func legState(amt money.Fen, state string) string {
	if amt == 0 {
		return LegNone
	}
	return state
}

func ptr[T any](v T) *T { return &v }

// keepPending tells the settlement sweeper to leave a pending settlement
// alone while its payment's outcome is unknown, or held for review:
// voiding it could strand money the wallet took. The recovery loop, or
// the bureau (Resolve), decides such orders.
func (s *Service) keepPending(ctx context.Context, setlID string) (bool, error) {
	var status, self string
	err := s.db.QueryRow(ctx, `SELECT status, self_status FROM payment_orders WHERE setl_id = ?`, setlID).Scan(&status, &self)
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return (status == StatusPaying && self == LegPaying) || status == StatusReview, nil
}

// RefundedFor returns how much of a settlement's out-of-pocket leg its
// payment order has already refunded (0 without an order). A reversal of
// the settlement must not return that part a second time.
func (s *Service) RefundedFor(ctx context.Context, setlID string) (money.Fen, error) {
	var refunded int64
	err := s.db.QueryRow(ctx, `SELECT refunded FROM payment_orders WHERE setl_id = ?`, setlID).Scan(&refunded)
	if notFound(err) {
		return 0, nil
	}
	return money.Fen(refunded), err
}
