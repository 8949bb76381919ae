// Package hub is the national cross-region hub (docs/cross-region.md): it
// routes a treating region's questions to the insured region's node,
// coordinates every cross-region settlement as a two-phase commit with a
// durable decision log, delivers decisions and reversals until the nodes
// acknowledge them, and clears the money between regions each month.
// It talks to the nodes only through signed HTTP (package wire).
package hub

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/ledger/engine"
	"yibao/settlement"
	"yibao/sqlstore"
	"yibao/xregion/wire"
)

// Node is a region node the hub knows.
type Node struct {
	ID       string              `json:"id"`       // e.g. "37"
	Name     string              `json:"name"`     // e.g. 山东省
	URL      string              `json:"url"`      // base URL of its API
	Prefixes []string            `json:"prefixes"` // the 2-digit province codes whose insured it keeps
	Key      *gmcrypto.PublicKey `json:"-"`
	KeyPEM   string              `json:"public_key"`
}

// Serves reports whether the node keeps region admdvs.
func (n *Node) Serves(admdvs string) bool {
	return len(admdvs) == 6 && slices.Contains(n.Prefixes, admdvs[:2])
}

// Config configures the hub.
type Config struct {
	Nodes          []Node
	Key            *gmcrypto.PrivateKey // the hub's signing key
	AdminToken     string               // bearer token of the hub's administrator endpoints
	PrepareTimeout time.Duration        // how long the insured node has to vote; default 5 s
	Log            *slog.Logger
}

// Hub is the national hub. It is safe for concurrent use.
type Hub struct {
	db     *sqlstore.DB
	led    *engine.Engine
	cfg    Config
	nodes  map[string]*Node
	client *wire.Client
	verify *wire.Verifier
	log    *slog.Logger
	clock  atomic.Pointer[func() time.Time]
	kick   chan struct{}

	mu      sync.Mutex
	closing bool

	// fault, in tests, runs at named points of the protocol; an error
	// there stops the step as a crash would.
	fault atomic.Pointer[func(point, txid string) error]
}

// New builds a hub over its own database and ledger.
func New(db *sqlstore.DB, led *engine.Engine, cfg Config) (*Hub, error) {
	if cfg.Key == nil {
		return nil, errors.New("hub: no signing key")
	}
	if cfg.PrepareTimeout == 0 {
		cfg.PrepareTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{db: db, led: led, cfg: cfg, nodes: map[string]*Node{}, log: cfg.Log, kick: make(chan struct{}, 1)}
	for i := range cfg.Nodes {
		n := &cfg.Nodes[i]
		if n.Key == nil {
			k, err := gmcrypto.ParsePublicKeyPEM([]byte(n.KeyPEM))
			if err != nil {
				return nil, fmt.Errorf("hub: node %s: public key: %w", n.ID, err)
			}
			n.Key = k
		}
		if n.ID == "" || n.ID == "hub" || h.nodes[n.ID] != nil {
			return nil, fmt.Errorf("hub: node id %q is empty, reserved or repeated", n.ID)
		}
		h.nodes[n.ID] = n
	}
	h.client = &wire.Client{Signer: &wire.Signer{From: "hub", Key: cfg.Key}, Timeout: cfg.PrepareTimeout}
	h.verify = &wire.Verifier{Keys: func(from string) *gmcrypto.PublicKey {
		if n := h.nodes[from]; n != nil {
			return n.Key
		}
		return nil
	}}
	return h, nil
}

// SetClock replaces the clock (tests).
func (h *Hub) SetClock(now func() time.Time) { h.clock.Store(&now) }

// now reads the clock.
func (h *Hub) now() time.Time {
	if f := h.clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// SetFault installs a fault hook (tests).
func (h *Hub) SetFault(f func(point, txid string) error) {
	if f == nil {
		h.fault.Store(nil)
		return
	}
	h.fault.Store(&f)
}

func (h *Hub) faultAt(point, txid string) error {
	if f := h.fault.Load(); f != nil {
		return (*f)(point, txid)
	}
	return nil
}

// nodeFor returns the node keeping region admdvs.
func (h *Hub) nodeFor(admdvs string) (*Node, error) {
	for _, n := range h.cfg.Nodes {
		if n.Serves(admdvs) {
			return h.nodes[n.ID], nil
		}
	}
	return nil, yibao.Errorf(yibao.CodeNotFound, "no node keeps region %s", admdvs)
}

// Nodes lists the nodes.
func (h *Hub) Nodes() []Node { return h.cfg.Nodes }

func micros(t time.Time) int64 { return t.UnixMicro() }

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func notFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// Txn is the hub's record of a cross-region settlement.
type Txn struct {
	TxID           string     `json:"txid"`
	InsuredNode    string     `json:"insured_node"`
	TreatingNode   string     `json:"treating_node"`
	InsuAdmdvs     string     `json:"insu_admdvs"`
	TreatingAdmdvs string     `json:"treating_admdvs"`
	PsnNo          string     `json:"psn_no"`
	FixmedinsCode  string     `json:"fixmedins_code"`
	MedfeeSumamt   int64      `json:"medfee_sumamt"`
	FundPay        int64      `json:"fund_pay"`
	AcctPay        int64      `json:"acct_pay"`
	State          string     `json:"state"` // preparing, committed, aborted
	Reason         string     `json:"reason,omitempty"`
	ClrMonth       string     `json:"clr_month,omitempty"`
	Reversed       bool       `json:"reversed"`
	RevMonth       string     `json:"rev_month,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	Deadline       time.Time  `json:"deadline"` // for the insured node's vote
	DecidedAt      *time.Time `json:"decided_at,omitempty"`
}

// decision is what the log says of a decided transaction.
func (t *Txn) decision() *settlement.Decision {
	return &settlement.Decision{TxID: t.TxID, Committed: t.State == "committed", ClrMonth: t.ClrMonth, Reason: t.Reason}
}

// noVote is the reason of a transaction aborted because the insured
// node did not vote by the deadline.
const noVote = "the insured region did not vote in time"

const txnCols = `txid, insured_node, treating_node, insu_admdvs, treating_admdvs, psn_no, fixmedins_code, medfee_sumamt, fund_pay, acct_pay,
	state, reason, clr_month, reversed, rev_month, created_at, deadline, decided_at`

func scanTxn(sc interface{ Scan(...any) error }) (*Txn, error) {
	var t Txn
	var rev int
	var created, deadline, decided int64
	if err := sc.Scan(&t.TxID, &t.InsuredNode, &t.TreatingNode, &t.InsuAdmdvs, &t.TreatingAdmdvs, &t.PsnNo, &t.FixmedinsCode, &t.MedfeeSumamt,
		&t.FundPay, &t.AcctPay, &t.State, &t.Reason, &t.ClrMonth, &rev, &t.RevMonth, &created, &deadline, &decided); err != nil {
		return nil, err
	}
	t.Reversed = rev != 0
	t.CreatedAt, t.Deadline = time.UnixMicro(created).UTC(), time.UnixMicro(deadline).UTC()
	if decided != 0 {
		d := time.UnixMicro(decided).UTC()
		t.DecidedAt = &d
	}
	return &t, nil
}

// Txn returns one transaction.
func (h *Hub) Txn(ctx context.Context, txid string) (*Txn, error) {
	t, err := scanTxn(h.db.QueryRow(ctx, `SELECT `+txnCols+` FROM hub_txns WHERE txid = ?`, txid))
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "no cross-region transaction %s", txid)
	}
	return t, err
}

// Txns lists the transactions of a clearing month (or every one with
// month ""), newest first, at most limit.
func (h *Hub) Txns(ctx context.Context, month string, limit int) ([]Txn, error) {
	q, args := `SELECT `+txnCols+` FROM hub_txns`, []any{}
	if month != "" {
		q += ` WHERE clr_month = ? OR rev_month = ?`
		args = append(args, month, month)
	}
	rows, err := h.db.Query(ctx, q+` ORDER BY created_at DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Txn{}
	for rows.Next() {
		t, err := scanTxn(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}

// openMonth is the clearing month a decision made at t counts in: t's
// month in China time, or the first month after it not yet cleared.
func (h *Hub) openMonth(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) *sql.Row
}, t time.Time) (string, error) {
	m := t.In(yibao.ChinaTime).Format("2006-01")
	var last string
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(clr_month), '') FROM hub_clearings`).Scan(&last)
	if err != nil {
		return "", err
	}
	for last != "" && m <= last {
		mt, _ := time.Parse("2006-01", m)
		m = mt.AddDate(0, 1, 0).Format("2006-01")
	}
	return m, nil
}

// Begin runs the two-phase commit of a settlement the treating node has
// prepared: record it, ask the insured node to prepare, record the
// decision, queue it for both nodes and answer it. Asked again for the
// same transaction it answers the recorded decision.
func (h *Hub) Begin(ctx context.Context, from string, m *settlement.Prepare) (*settlement.Decision, error) {
	treating := h.nodes[from]
	if treating == nil || !treating.Serves(m.TreatingAdmdvs) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "node %s does not keep the treating region %s", from, m.TreatingAdmdvs)
	}
	insured, err := h.nodeFor(m.InsuAdmdvs)
	if err != nil {
		return nil, err
	}
	if insured.ID == treating.ID {
		return nil, yibao.Errorf(yibao.CodeInvalid, "region %s is insured by the treating node itself", m.InsuAdmdvs)
	}
	if m.TxID == "" || len(m.TxID) > 64 || m.FundPay < 0 || m.AcctPay < 0 {
		return nil, yibao.Errorf(yibao.CodeInvalid, "a transaction needs a txid (≤ 64) and amounts ≥ 0")
	}
	now := h.now()
	err = h.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO hub_txns (txid, insured_node, treating_node, insu_admdvs, treating_admdvs, psn_no, fixmedins_code,
			medfee_sumamt, fund_pay, acct_pay, state, deadline, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'preparing', ?, ?)`,
			m.TxID, insured.ID, treating.ID, m.InsuAdmdvs, m.TreatingAdmdvs, m.PsnNo, m.FixmedinsCode, int64(m.MedfeeSumamt), int64(m.FundPay),
			int64(m.AcctPay), micros(now.Add(h.cfg.PrepareTimeout)), micros(now))
		return err
	})
	if sqlstore.IsUniqueViolation(err) {
		return h.recorded(ctx, from, m.TxID)
	}
	if err != nil {
		return nil, err
	}
	if err := h.faultAt("after-begin", m.TxID); err != nil {
		return nil, err
	}
	var vote settlement.Decision
	err = h.client.Call(ctx, insured.URL, "/xr/v1/prepare", m, &vote)
	if err != nil {
		vote = settlement.Decision{Reason: "the insured region did not vote: " + yibao.ErrorMessage(err)}
		if yibao.IsCode(err, yibao.CodeInternal) {
			vote.Reason = "the insured region failed to prepare"
		}
	}
	if err := h.faultAt("after-vote", m.TxID); err != nil {
		return nil, err
	}
	// The decision is written even if the treating node hung up meanwhile.
	d, err := h.decide(context.WithoutCancel(ctx), m.TxID, vote)
	if err != nil {
		return nil, err
	}
	if err := h.faultAt("after-decision", m.TxID); err != nil {
		return nil, err
	}
	h.Kick()
	return d, nil
}

// recorded answers a repeated Begin from what the log holds.
func (h *Hub) recorded(ctx context.Context, from, txid string) (*settlement.Decision, error) {
	t, err := h.Txn(ctx, txid)
	if err != nil {
		return nil, err
	}
	if t.TreatingNode != from {
		return nil, yibao.Errorf(yibao.CodeConflict, "transaction %s belongs to another node", txid)
	}
	if t.State == "preparing" {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "transaction %s is still being decided", txid)
	}
	return t.decision(), nil
}

// decide records the outcome of a vote, unless the transaction was
// decided meanwhile (a timeout sweep or an abort request won), and
// queues the decision for both nodes in the same transaction.
func (h *Hub) decide(ctx context.Context, txid string, vote settlement.Decision) (*settlement.Decision, error) {
	now := h.now()
	var out *settlement.Decision
	err := h.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		t, err := scanTxn(tx.QueryRow(ctx, `SELECT `+txnCols+` FROM hub_txns WHERE txid = ?`, txid))
		if err != nil {
			return err
		}
		if t.State != "preparing" {
			out = t.decision()
			return nil
		}
		state, month, reason := "aborted", "", vote.Reason
		if vote.Committed {
			state, reason = "committed", ""
			if month, err = h.openMonth(ctx, tx, now); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE hub_txns SET state = ?, clr_month = ?, reason = ?, decided_at = ? WHERE txid = ? AND state = 'preparing'`,
			state, month, reason, micros(now), txid); err != nil {
			return err
		}
		out = &settlement.Decision{TxID: txid, Committed: vote.Committed, ClrMonth: month, Reason: reason, Stale: vote.Stale, Funds: vote.Funds}
		return h.queueDecision(ctx, tx, t, out)
	})
	return out, err
}

// queueDecision queues a decision for the insured node (commit or abort
// what it prepared) and the treating node (post or void its side).
func (h *Hub) queueDecision(ctx context.Context, tx *sqlstore.Tx, t *Txn, d *settlement.Decision) error {
	if d.Committed {
		if err := h.queue(ctx, tx, "commit:"+t.TxID, t.InsuredNode, "/xr/v1/commit", map[string]string{"txid": t.TxID, "clr_month": d.ClrMonth}); err != nil {
			return err
		}
	} else if err := h.queue(ctx, tx, "abort:"+t.TxID, t.InsuredNode, "/xr/v1/abort", map[string]string{"txid": t.TxID}); err != nil {
		return err
	}
	return h.queue(ctx, tx, "decision:"+t.TxID, t.TreatingNode, "/xr/v1/decision", d)
}

// Decision answers a node asking how a transaction ended (its recovery).
// A transaction the hub never heard of, or one whose insured node did
// not vote in time, is aborted now (presumed abort): a late prepare or
// begin then finds it decided.
func (h *Hub) Decision(ctx context.Context, from, txid string) (*settlement.Decision, error) {
	t, err := h.Txn(ctx, txid)
	if yibao.IsCode(err, yibao.CodeNotFound) {
		// Only the treating node names new transactions.
		n := h.nodes[from]
		err = h.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			now := micros(h.now())
			_, err := tx.Exec(ctx, `INSERT INTO hub_txns (txid, insured_node, treating_node, insu_admdvs, treating_admdvs, psn_no, fixmedins_code,
				medfee_sumamt, fund_pay, acct_pay, state, reason, deadline, created_at, decided_at)
				VALUES (?, '', ?, '', '', '', '', 0, 0, 0, 'aborted', 'presumed abort: the hub never heard of it', ?, ?, ?) ON CONFLICT DO NOTHING`,
				txid, n.ID, now, now, now)
			return err
		})
		if err != nil {
			return nil, err
		}
		t, err = h.Txn(ctx, txid)
	}
	if err != nil {
		return nil, err
	}
	if t.TreatingNode != from && t.InsuredNode != from {
		return nil, yibao.Errorf(yibao.CodeNotFound, "no cross-region transaction %s", txid)
	}
	if t.State == "preparing" {
		if h.now().Before(t.Deadline) {
			return nil, yibao.Errorf(yibao.CodeUnavailable, "transaction %s is still being decided", txid)
		}
		return h.decide(ctx, txid, settlement.Decision{Reason: noVote})
	}
	return t.decision(), nil
}

// SweepTimeouts aborts transactions whose insured node did not vote by
// their deadline (after a hub restart, the ones it was waiting on).
func (h *Hub) SweepTimeouts(ctx context.Context) (int, error) {
	ids, err := h.db.Strings(ctx, `SELECT txid FROM hub_txns WHERE state = 'preparing' AND deadline < ? ORDER BY deadline LIMIT 500`, micros(h.now()))
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := h.decide(ctx, id, settlement.Decision{Reason: noVote}); err != nil {
			return 0, err
		}
	}
	if len(ids) > 0 {
		h.Kick()
	}
	return len(ids), nil
}

// Reverse records that the treating node reversed a committed settlement
// and queues the compensation for the insured node. It returns the
// clearing month the reversal counts in. Reporting again returns it.
func (h *Hub) Reverse(ctx context.Context, from, txid string) (string, error) {
	var month string
	err := h.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		t, err := scanTxn(tx.QueryRow(ctx, `SELECT `+txnCols+` FROM hub_txns WHERE txid = ?`, txid))
		if notFound(err) {
			return yibao.Errorf(yibao.CodeNotFound, "no cross-region transaction %s", txid)
		}
		if err != nil {
			return err
		}
		if t.TreatingNode != from {
			return yibao.Errorf(yibao.CodeForbidden, "only the treating node reverses %s", txid)
		}
		if t.State != "committed" {
			return yibao.Errorf(yibao.CodePrecondition, "transaction %s is %s; only a committed one is reversed", txid, t.State)
		}
		if t.Reversed {
			month = t.RevMonth
			return nil
		}
		if month, err = h.openMonth(ctx, tx, h.now()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE hub_txns SET reversed = 1, rev_month = ? WHERE txid = ?`, month, txid); err != nil {
			return err
		}
		return h.queue(ctx, tx, "reverse:"+txid, t.InsuredNode, "/xr/v1/reverse", map[string]string{"txid": txid, "rev_month": month})
	})
	if err == nil {
		h.Kick()
	}
	return month, err
}

// Forward passes a question of one node (a person, a snapshot, policies)
// to the node keeping the insured region, signed by the hub.
func (h *Hub) Forward(ctx context.Context, from, admdvs, path string, body json.RawMessage) (json.RawMessage, error) {
	switch path {
	case "/xr/v1/person", "/xr/v1/snapshot", "/xr/v1/policies", "/xr/v1/ecert/resolve":
	default:
		return nil, yibao.Errorf(yibao.CodeInvalid, "the hub forwards person, snapshot, policies and e-certificate questions only, not %q", path)
	}
	// A node asks only for its own hospitals: a question naming the
	// treating region must name one the asking node keeps.
	var named struct {
		Treating string `json:"treating_admdvs"`
	}
	json.Unmarshal(body, &named)
	if asker := h.nodes[from]; asker == nil || (named.Treating != "" && !asker.Serves(named.Treating)) ||
		(named.Treating == "" && (path == "/xr/v1/person" || path == "/xr/v1/ecert/resolve")) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "node %s asks only for treatment in its own regions", from)
	}
	n, err := h.nodeFor(admdvs)
	if err != nil {
		return nil, err
	}
	if n.ID == from {
		return nil, yibao.Errorf(yibao.CodeInvalid, "region %s is kept by the asking node itself", admdvs)
	}
	var out json.RawMessage
	if err := h.client.Call(ctx, n.URL, path, body, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// queue records a message for a node in tx; the delivery loop sends it.
func (h *Hub) queue(ctx context.Context, tx *sqlstore.Tx, id, node, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	now := micros(h.now())
	_, err = tx.Exec(ctx, `INSERT INTO hub_deliveries (id, node, path, body, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		id, node, path, string(b), now, now)
	return err
}

// Kick wakes the delivery loop.
func (h *Hub) Kick() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// Deliver sends every due message once and returns how many the nodes
// took. A node that does not answer gets the message again later, with
// backoff up to a minute.
func (h *Hub) Deliver(ctx context.Context) (int, error) {
	rows, err := h.db.Query(ctx, `SELECT id, node, path, body, attempts FROM hub_deliveries WHERE done_at = 0 AND next_at <= ? ORDER BY created_at LIMIT 200`,
		micros(h.now()))
	if err != nil {
		return 0, err
	}
	type msg struct {
		id, node, path, body string
		attempts             int
	}
	var due []msg
	for rows.Next() {
		var m msg
		if err := rows.Scan(&m.id, &m.node, &m.path, &m.body, &m.attempts); err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	done := 0
	for _, m := range due {
		n := h.nodes[m.node]
		var err error
		if n == nil {
			err = fmt.Errorf("node %s is no longer configured", m.node)
		} else if err = h.faultAt("deliver", m.id); err == nil {
			err = h.client.Call(ctx, n.URL, m.path, json.RawMessage(m.body), nil)
		}
		if err == nil {
			done++
		}
		err = wire.Outcome(ctx, h.db, "hub_deliveries", m.id, m.attempts, h.now(), err)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// Undelivered counts messages not yet taken by their node.
func (h *Hub) Undelivered(ctx context.Context) (int, error) {
	var n int
	err := h.db.QueryRow(ctx, `SELECT COUNT(*) FROM hub_deliveries WHERE done_at = 0`).Scan(&n)
	return n, err
}

// Run delivers messages and sweeps timeouts until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	yibao.EveryOrWoken(ctx, 500*time.Millisecond, h.kick, func(ctx context.Context) {
		if _, err := h.SweepTimeouts(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("hub timeout sweep", "err", err)
		}
		if _, err := h.Deliver(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("hub delivery", "err", err)
		}
	})
}

// Status is the hub at a glance.
type Status struct {
	Nodes       []Node         `json:"nodes"`
	Txns        map[string]int `json:"txns"` // by state
	Undelivered int            `json:"undelivered"`
	Cleared     []string       `json:"cleared_months"`
}

// Status reports the hub's state.
func (h *Hub) Status(ctx context.Context) (*Status, error) {
	st := &Status{Nodes: h.cfg.Nodes, Txns: map[string]int{}}
	rows, err := h.db.Query(ctx, `SELECT state, COUNT(*) FROM hub_txns GROUP BY state`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			rows.Close()
			return nil, err
		}
		st.Txns[s] = n
	}
	rows.Close()
	if st.Undelivered, err = h.Undelivered(ctx); err != nil {
		return nil, err
	}
	if st.Cleared, err = h.db.Strings(ctx, `SELECT clr_month FROM hub_clearings ORDER BY clr_month`); err != nil {
		return nil, err
	}
	return st, nil
}

// adminOK checks the hub administrator's bearer token.
func (h *Hub) adminOK(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && h.cfg.AdminToken != "" && gmcrypto.HMACEqual([]byte(tok), []byte(h.cfg.AdminToken))
}
