package settlement

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/policy"
	"yibao/registry"
	"yibao/sqlstore"
)

// Cross-region settlement (docs/cross-region.md). A person insured in
// region A is treated in region B. B's node settles as usual with B's
// catalog, A's policy and A's accumulators; A's node keeps the
// accumulators and pays from its funds. The settlement is one two-phase
// transaction coordinated by the national hub:
//
//	B: calculate, write the settlement "prepared" (every leg pending, fee
//	   lines linked, visit moved on), then ask the hub to commit
//	hub: log the transaction, ask A to prepare (A reserves its fund and
//	   account legs and applies the accumulator change), log the decision
//	A, B: post (commit) or void (abort) what they prepared
//
// The remote side is reached through Remote (package xregion); this file
// is what each side does to its own database.

// Cross-region states, on both sides.
const (
	XRPrepared  = "prepared"
	XRCommitted = "committed"
	XRAborted   = "aborted"
	XRReversed  = "reversed"
)

// Remote connects the service to the nodes of other regions. Nil: this
// node settles only the persons it insures.
type Remote interface {
	// Local reports whether this node keeps the insured persons of admdvs.
	Local(admdvs string) bool
	// Snapshot reads the person's accumulators for the year and month and
	// the personal account's available balance at the insured node.
	Snapshot(ctx context.Context, r SnapshotRequest) (*Snapshot, error)
	// Policies returns the published policy documents of an insured region.
	Policies(ctx context.Context, admdvs string) ([][]byte, error)
	// Commit runs the hub's two-phase commit for a settlement this node
	// has prepared. An error means the outcome is not known yet (the hub
	// or the insured node did not answer): the settlement stays prepared
	// and recovery resolves it (ResolveTreating).
	Commit(ctx context.Context, p *Prepare) (*Decision, error)
	// Person fetches a person insured by another node, their coverages
	// and the filing that applies to treatment here.
	Person(ctx context.Context, r PersonRequest) (*RemotePerson, error)
}

// PersonRequest asks the insured node about a person treated here.
type PersonRequest struct {
	PsnNo          string `json:"psn_no"`
	IDNumber       string `json:"id_number,omitempty"` // instead of psn_no: the ID card shown (1101 of a first-time patient)
	InsuAdmdvs     string `json:"insu_admdvs"`
	TreatingAdmdvs string `json:"treating_admdvs"`
	FixmedinsCode  string `json:"fixmedins_code"`
	Date           string `json:"date"`
}

// RemotePerson is the insured node's answer.
type RemotePerson struct {
	Person    yibao.Person     `json:"person"` // in clear: the treating institution identifies the patient
	Region    yibao.Region     `json:"region"`
	Coverages []yibao.Coverage `json:"coverages"`
	Filing    *registry.Filing `json:"filing,omitempty"` // the filing that applies, if any
}

// SnapshotRequest asks for a person's accumulators at the insured node.
type SnapshotRequest struct {
	InsuAdmdvs string `json:"insu_admdvs"`
	PsnNo      string `json:"psn_no"`
	Insutype   string `json:"insutype"`
	Year       int    `json:"acc_year"`
	Month      string `json:"month"`
}

// Snapshot is the insured node's answer: the accumulators with their row
// version (the prepare fails if it moved) and the account balance.
type Snapshot struct {
	Accumulators policy.Accumulators `json:"accumulators"`
	Version      int64               `json:"version"`
	Exists       bool                `json:"exists"`
	Account      money.Fen           `json:"acct_balc"`
}

// Prepare is what the insured node is asked to reserve.
type Prepare struct {
	TxID           string                   `json:"txid"` // the treating node's setl_id
	PsnNo          string                   `json:"psn_no"`
	Insutype       string                   `json:"insutype"`
	InsuAdmdvs     string                   `json:"insu_admdvs"`
	TreatingAdmdvs string                   `json:"treating_admdvs"`
	FixmedinsCode  string                   `json:"fixmedins_code"`
	MedfeeSumamt   money.Fen                `json:"medfee_sumamt"`
	FundPay        money.Fen                `json:"fund_pay"`
	AcctPay        money.Fen                `json:"acct_pay"`
	Funds          []RemoteFund             `json:"funds"` // fund_pay_type → amount, from the insured region's funds
	Change         policy.AccumulatorChange `json:"acc_change"`
	Version        int64                    `json:"version"`
	Exists         bool                     `json:"exists"`
}

// RemoteFund is one fund's share of a cross-region settlement.
type RemoteFund struct {
	FundPayType string    `json:"fund_pay_type"`
	Amount      money.Fen `json:"amount"`
}

// Decision is the hub's outcome of a cross-region settlement.
type Decision struct {
	TxID      string `json:"txid,omitempty"`
	Committed bool   `json:"committed"`
	ClrMonth  string `json:"clr_month,omitempty"`
	Reason    string `json:"reason,omitempty"` // why it aborted
	Stale     bool   `json:"stale,omitempty"`  // the accumulators moved: calculate again
	Funds     bool   `json:"insufficient_funds,omitempty"`
}

// remotePolicyTTL is how long another region's policies are cached.
const remotePolicyTTL = 5 * time.Minute

type remotePolicies struct {
	mu   sync.Mutex
	byAd map[string]remotePolicyEntry
}

type remotePolicyEntry struct {
	list []*policy.Policy
	at   time.Time
}

// isRemote reports whether a visit's insured region is kept by another node.
func (s *Service) isRemote(admdvs string) bool { return s.Remote != nil && !s.Remote.Local(admdvs) }

// remotePublished returns another region's published policies, cached.
func (s *Service) remotePublished(ctx context.Context, admdvs string) ([]*policy.Policy, error) {
	s.remote.mu.Lock()
	e, ok := s.remote.byAd[admdvs]
	s.remote.mu.Unlock()
	if ok && s.now().Sub(e.at) < remotePolicyTTL {
		return e.list, nil
	}
	docs, err := s.Remote.Policies(ctx, admdvs)
	if err != nil {
		return nil, err
	}
	var list []*policy.Policy
	for _, d := range docs {
		p, err := policy.LoadPolicy(bytes.NewReader(d))
		if err != nil {
			return nil, yibao.Wrap(yibao.CodeUnavailable, err, "a policy of region "+admdvs+" from its node does not load")
		}
		list = append(list, p)
	}
	s.remote.mu.Lock()
	if s.remote.byAd == nil {
		s.remote.byAd = map[string]remotePolicyEntry{}
	}
	s.remote.byAd[admdvs] = remotePolicyEntry{list: list, at: s.now()}
	s.remote.mu.Unlock()
	return list, nil
}

// prepareFor builds the insured node's part of a plan.
func (p *plan) prepareFor(setlID, treating string) *Prepare {
	si := &p.res.SetlInfo
	m := &Prepare{TxID: setlID, PsnNo: p.v.PsnNo, Insutype: p.v.Insutype, InsuAdmdvs: p.v.InsuAdmdvs, TreatingAdmdvs: treating,
		FixmedinsCode: p.v.FixmedinsCode, MedfeeSumamt: si.MedfeeSumamt, FundPay: si.FundPaySumamt, AcctPay: si.AcctPay,
		Change: p.res.Accumulators, Version: p.accVer, Exists: p.accExists}
	for _, l := range p.legs {
		if l.FundPayType != "" && l.FundPayType != "310200" {
			m.Funds = append(m.Funds, RemoteFund{FundPayType: l.FundPayType, Amount: l.Amount})
		}
	}
	return m
}

// neverExpire takes the ledger's backstop off pending legs: the legs of a
// two-phase settlement wait for the hub's decision however long it takes,
// so the decision can always be applied.
func neverExpire(ts []ledger.Transfer) []ledger.Transfer {
	for i := range ts {
		ts[i].Timeout = 0
	}
	return ts
}

// errInDoubt wraps a cross-region settlement whose outcome the hub has
// not told yet.
func inDoubt(setlID string, err error) error {
	return yibao.Wrap(yibao.CodeUnavailable, err, fmt.Sprintf(
		"cross_region_in_doubt: settlement %s is prepared and waits for the insured region's answer; it completes or voids by itself — query it, do not settle again", setlID))
}

// settleRemote commits a cross-region plan: prepared here, then the hub's
// two-phase commit, then posted (paid at the counter) or voided.
func (s *Service) settleRemote(ctx context.Context, p *plan, r SettleRequest, who string) (*Settlement, error) {
	treating, err := s.institutionRegion(ctx, p.v.FixmedinsCode)
	if err != nil {
		return nil, err
	}
	st, err := s.commitPlan(ctx, p, PayCash, who, func(ctx context.Context, tx *sqlstore.Tx, st *Settlement) error {
		now := micros(s.now())
		if _, err := tx.Exec(ctx, `INSERT INTO xr_treating (setl_id, psn_no, insu_admdvs, treating_admdvs, fixmedins_code, medfee_sumamt, fund_pay,
			acct_pay, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, st.SetlID, st.PsnNo, st.InsuAdmdvs, treating,
			st.FixmedinsCode, int64(st.MedfeeSumamt), int64(st.FundPaySumamt), int64(st.AcctPay), XRPrepared, now, now); err != nil {
			return err
		}
		if r.Also != nil {
			return r.Also(ctx, tx, st)
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	if s.hookAfterPrepare != nil {
		if err := s.hookAfterPrepare(st.SetlID); err != nil {
			return nil, inDoubt(st.SetlID, err)
		}
	}
	d, err := s.Remote.Commit(ctx, p.prepareFor(st.SetlID, treating))
	if err != nil {
		return nil, inDoubt(st.SetlID, err)
	}
	out, err := s.resolveTreating(ctx, st.SetlID, d, false) // Settle holds the person's lock
	if err != nil {
		return nil, inDoubt(st.SetlID, err)
	}
	switch {
	case d.Committed:
		return out, nil
	case d.Stale:
		return nil, errStale
	case d.Funds:
		return nil, yibao.Errorf(yibao.CodeInsufficientFunds, "acct: the personal account at the insured region changed meanwhile: %s", d.Reason)
	}
	return nil, yibao.Errorf(yibao.CodeUnavailable, "cross_region_aborted: the insured region did not accept the settlement: %s", d.Reason)
}

// ResolveTreating applies the hub's decision to a settlement this node
// prepared: committed → posted, paid at the counter; aborted → voided.
// Applying it again returns the settlement.
func (s *Service) ResolveTreating(ctx context.Context, setlID string, d *Decision) (*Settlement, error) {
	return s.resolveTreating(ctx, setlID, d, true)
}

func (s *Service) resolveTreating(ctx context.Context, setlID string, d *Decision, lock bool) (*Settlement, error) {
	ctx = yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	var state string
	if err := s.db.QueryRow(ctx, `SELECT state FROM xr_treating WHERE setl_id = ?`, setlID).Scan(&state); err != nil {
		if notFound(err) {
			return nil, yibao.Errorf(yibao.CodeNotFound, "no cross-region settlement %s", setlID)
		}
		return nil, err
	}
	if state != XRPrepared {
		return s.GetSettlement(ctx, setlID)
	}
	if d.Committed {
		return s.CompleteAlso(ctx, setlID, PayCounter, func(ctx context.Context, tx *sqlstore.Tx, st *Settlement) error {
			_, err := tx.Exec(ctx, `UPDATE xr_treating SET state = ?, clr_month = ?, updated_at = ? WHERE setl_id = ? AND state = ?`,
				XRCommitted, d.ClrMonth, micros(s.now()), setlID, XRPrepared)
			return err
		})
	}
	return s.void(ctx, setlID, lock)
}

// InDoubtTreating lists settlements this node prepared and has not heard
// the decision of, prepared before the given time.
func (s *Service) InDoubtTreating(ctx context.Context, before time.Time) ([]string, error) {
	return s.db.Strings(ctx, `SELECT setl_id FROM xr_treating WHERE state = ? AND created_at < ? ORDER BY created_at LIMIT 500`, XRPrepared, micros(before))
}

// remoteUndone records, inside a void's or reversal's transaction, what
// became of a cross-region settlement; a reversal of a committed one is
// queued for the hub (the insured node then gives back its funds and
// accumulators: the compensation).
func (s *Service) remoteUndone(ctx context.Context, tx *sqlstore.Tx, st *Settlement, to string) error {
	from, state := XRPrepared, XRAborted
	if to == StatusReversed {
		from, state = XRCommitted, XRReversed
	}
	now := micros(s.now())
	res, err := tx.Exec(ctx, `UPDATE xr_treating SET state = ?, updated_at = ? WHERE setl_id = ? AND state = ?`, state, now, st.SetlID, from)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return yibao.Errorf(yibao.CodeConflict, "cross-region settlement %s is not %s", st.SetlID, from)
	}
	if to != StatusReversed {
		return nil
	}
	body, _ := json.Marshal(map[string]string{"txid": st.SetlID})
	_, err = tx.Exec(ctx, `INSERT INTO xr_outbox (id, kind, body, next_at, created_at) VALUES (?, ?, ?, ?, ?)`,
		"reverse:"+st.SetlID, "reverse", string(body), now, now)
	return err
}

// SetReversalMonth records the clearing month the hub gave a reversal.
func (s *Service) SetReversalMonth(ctx context.Context, setlID, month string) error {
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE xr_treating SET rev_month = ? WHERE setl_id = ?`, month, setlID)
		return err
	})
}

func (s *Service) institutionRegion(ctx context.Context, code string) (string, error) {
	var admdvs string
	err := s.db.QueryRow(ctx, `SELECT admdvs FROM institutions WHERE fixmedins_code = ?`, code).Scan(&admdvs)
	return admdvs, err
}

// GuestRegion is the insured region of a patient kept by another
// region's node — insuplc (NHSA insuplc_admdvs) if given, else the region
// the psn_no's first four digits name — or "" for a patient of this node
// (or on a node without a hub).
func (s *Service) GuestRegion(insuplc, psnNo string) string {
	ad := insuplc
	if ad == "" && len(psnNo) >= 4 {
		ad = psnNo[:4] + "00"
	}
	if ad == "" || !s.isRemote(ad) {
		return ""
	}
	return ad
}

// ImportRemotePerson copies a person insured by another node (and their
// coverage) into this node's registry, found by r's psn_no or ID number,
// and returns the psn_no and the cross-region status their filing gives
// treatment at r's institution on r's date.
func (s *Service) ImportRemotePerson(ctx context.Context, r PersonRequest) (psnNo, status string, err error) {
	if !yibao.ValidAdmdvs(r.InsuAdmdvs) {
		return "", "", yibao.FieldError("insuplc_admdvs", "want the insured region's 6-digit code")
	}
	if s.Remote == nil {
		return "", "", yibao.Errorf(yibao.CodePrecondition, "this node is not joined to a cross-region hub")
	}
	rp, err := s.Remote.Person(ctx, r)
	if err != nil {
		return "", "", err
	}
	if (r.PsnNo != "" && rp.Person.PsnNo != r.PsnNo) || (r.PsnNo == "" && !strings.EqualFold(rp.Person.IDNumber, r.IDNumber)) {
		return "", "", yibao.Errorf(yibao.CodeUnavailable, "the insured region answered for another person (%s)", rp.Person.PsnNo)
	}
	sys := yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	if err := s.reg.ImportGuest(sys, rp.Region, rp.Person, rp.Coverages); err != nil {
		return "", "", err
	}
	if rp.Filing == nil {
		return rp.Person.PsnNo, policy.Unregistered, nil
	}
	return rp.Person.PsnNo, registry.FilingStatus(rp.Filing.Kind), nil
}

// --- the insured node's side ---

// PersonInsured answers a treating node's person request: the person in
// clear, their coverages and the filing that applies there.
func (s *Service) PersonInsured(ctx context.Context, r PersonRequest) (*RemotePerson, error) {
	ctx = yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	if !s.Remote.Local(r.InsuAdmdvs) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "region %s is not insured on this node", r.InsuAdmdvs)
	}
	if r.PsnNo == "" {
		psn, err := s.reg.PersonByIDNumber(ctx, r.IDNumber)
		if err != nil {
			return nil, err
		}
		r.PsnNo = psn
	}
	p, err := s.reg.Person(ctx, r.PsnNo, true)
	if err != nil {
		return nil, err
	}
	if !s.Remote.Local(p.Admdvs) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "person %s is not insured on this node", r.PsnNo)
	}
	reg, err := s.reg.Region(ctx, p.Admdvs)
	if err != nil {
		return nil, err
	}
	covs, err := s.reg.Coverages(ctx, r.PsnNo)
	if err != nil {
		return nil, err
	}
	f, err := s.reg.FilingFor(ctx, r.PsnNo, r.TreatingAdmdvs, r.FixmedinsCode, r.Date)
	if err != nil {
		return nil, err
	}
	// Who learned whom is on the record: the person goes out in clear.
	now := s.now()
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		return s.Audit.Record(ctx, tx, audit.Entry{ID: fmt.Sprintf("cross_region:person:%s:%s:%d", s.Audit.Person(r.PsnNo), r.FixmedinsCode, now.UnixMicro()),
			Kind: audit.KindXR, At: audit.Stamp(now), Actor: "node:" + r.TreatingAdmdvs, Subject: s.Audit.Person(r.PsnNo),
			Data: map[string]any{"event": "person_disclosed", "treating_admdvs": r.TreatingAdmdvs, "fixmedins_code": r.FixmedinsCode, "date": r.Date}})
	})
	if err != nil {
		return nil, err
	}
	return &RemotePerson{Person: *p, Region: *reg, Coverages: covs, Filing: f}, nil
}

// SnapshotInsured answers a treating node's snapshot request.
func (s *Service) SnapshotInsured(ctx context.Context, r SnapshotRequest) (*Snapshot, error) {
	acc, ver, exists, err := s.loadAccumulators(ctx, s.db, r.PsnNo, r.Insutype, r.Year, r.Month)
	if err != nil {
		return nil, err
	}
	out := &Snapshot{Accumulators: acc, Version: ver, Exists: exists}
	if out.Account, err = s.accountAvailable(ctx, r.PsnNo); err != nil {
		return nil, err
	}
	out.Accumulators.AccountBalance = out.Account
	return out, nil
}

// accountAvailable is what a person's account can still pay (0 for a
// person without one).
func (s *Service) accountAvailable(ctx context.Context, psnNo string) (money.Fen, error) {
	b, err := s.led.Balance(ctx, ledger.PersonalAccount(psnNo).ID)
	if yibao.IsCode(err, yibao.CodeNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return max(b.Available, 0), nil
}

// insuredLegs are the insured node's legs: its funds and the person's
// account pay the position with the treating region.
func insuredLegs(m *Prepare) ([]Leg, []ledger.Account) {
	xr := ledger.InterRegion(m.TreatingAdmdvs)
	accs := []ledger.Account{xr}
	var legs []Leg
	for _, f := range m.Funds {
		fa := fundAccount(m.InsuAdmdvs, f.FundPayType)
		accs = append(accs, fa)
		legs = append(legs, Leg{Leg: "fund:" + f.FundPayType, FundPayType: f.FundPayType, Debit: fa.ID, Credit: xr.ID, Amount: f.Amount, Pending: true})
	}
	if m.AcctPay > 0 {
		a := ledger.PersonalAccount(m.PsnNo)
		accs = append(accs, a)
		legs = append(legs, Leg{Leg: "acct_pay", FundPayType: "310200", Debit: a.ID, Credit: xr.ID, Amount: m.AcctPay, Pending: true})
	}
	return legs, accs
}

// PrepareInsured is phase one at the insured node: reserve the fund and
// account legs and apply the accumulator change, provided the
// accumulators are still at the version the treating node calculated on.
// It answers the vote; asked again it answers the same.
func (s *Service) PrepareInsured(ctx context.Context, m *Prepare) (*Decision, error) {
	ctx = yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	var sum money.Fen
	for _, f := range m.Funds {
		sum += f.Amount
	}
	if sum != m.FundPay || m.TxID == "" || m.Change.Year == 0 {
		return nil, yibao.Errorf(yibao.CodeInvalid, "prepare %s: fund legs %s differ from fund_pay %s", m.TxID, sum, m.FundPay)
	}
	if !s.Remote.Local(m.InsuAdmdvs) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "region %s is not insured on this node", m.InsuAdmdvs)
	}
	if d, ok, err := s.insuredVote(ctx, m.TxID); err != nil || ok {
		return d, err
	}
	defer s.lockPersons(m.PsnNo)()
	legs, accs := insuredLegs(m)
	change, _ := json.Marshal(m.Change)
	legJSON, _ := json.Marshal(legs)
	unit := engine.Unit{Accounts: accs, Transfers: neverExpire(legTransfers(m.TxID+":xr", "cross_region", legs))}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		if err := s.saveAccumulators(ctx, tx, m.PsnNo, m.Insutype, &m.Change, m.Version, m.Exists); err != nil {
			return err
		}
		now := micros(s.now())
		_, err := tx.Exec(ctx, `INSERT INTO xr_insured (txid, psn_no, insutype, insu_admdvs, treating_admdvs, fixmedins_code, medfee_sumamt, fund_pay,
			acct_pay, acc_change, legs, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.TxID, m.PsnNo, m.Insutype, m.InsuAdmdvs, m.TreatingAdmdvs, m.FixmedinsCode, int64(m.MedfeeSumamt), int64(m.FundPay), int64(m.AcctPay),
			string(change), string(legJSON), XRPrepared, now, now)
		if err != nil {
			return err
		}
		return s.auditInsured(ctx, tx, m, legs, XRPrepared)
	}
	_, err := s.led.Submit(ctx, unit)
	switch {
	case err == nil:
		return &Decision{Committed: true}, nil
	case errors.Is(err, errStale):
		return &Decision{Stale: true, Reason: "the accumulators changed since the snapshot"}, nil
	case yibao.IsCode(err, yibao.CodeInsufficientFunds):
		return &Decision{Funds: true, Reason: err.Error()}, nil
	case sqlstore.IsUniqueViolation(err):
		d, _, err := s.insuredVote(ctx, m.TxID)
		return d, err
	}
	return nil, err
}

// insuredVote returns the vote already given for txid, if any.
func (s *Service) insuredVote(ctx context.Context, txid string) (*Decision, bool, error) {
	var state string
	err := s.db.QueryRow(ctx, `SELECT state FROM xr_insured WHERE txid = ?`, txid).Scan(&state)
	if notFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if state == XRAborted {
		return &Decision{Reason: "aborted before it was prepared"}, true, nil
	}
	return &Decision{Committed: true}, true, nil
}

type insuredRow struct {
	m     Prepare
	legs  []Leg
	state string
}

func (s *Service) loadInsured(ctx context.Context, q querier, txid string) (*insuredRow, error) {
	var r insuredRow
	var change, legs string
	var medfee, fund, acct int64
	err := q.QueryRow(ctx, `SELECT psn_no, insutype, insu_admdvs, treating_admdvs, fixmedins_code, medfee_sumamt, fund_pay, acct_pay, acc_change, legs, state
		FROM xr_insured WHERE txid = ?`, txid).Scan(&r.m.PsnNo, &r.m.Insutype, &r.m.InsuAdmdvs, &r.m.TreatingAdmdvs, &r.m.FixmedinsCode,
		&medfee, &fund, &acct, &change, &legs, &r.state)
	if err != nil {
		return nil, err
	}
	r.m.TxID, r.m.MedfeeSumamt, r.m.FundPay, r.m.AcctPay = txid, money.Fen(medfee), money.Fen(fund), money.Fen(acct)
	if err := json.Unmarshal([]byte(change), &r.m.Change); err != nil {
		return nil, err
	}
	return &r, json.Unmarshal([]byte(legs), &r.legs)
}

// CommitInsured is phase two at the insured node: post what was reserved.
// Committing again is a no-op.
func (s *Service) CommitInsured(ctx context.Context, txid, clrMonth string) error {
	ctx = yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	r, err := s.loadInsured(ctx, s.db, txid)
	if notFound(err) {
		return yibao.Errorf(yibao.CodeNotFound, "no prepared cross-region settlement %s", txid)
	}
	if err != nil {
		return err
	}
	switch r.state {
	case XRCommitted, XRReversed:
		return nil
	case XRAborted:
		return yibao.Errorf(yibao.CodeConflict, "cross-region settlement %s was aborted here; it cannot commit", txid)
	}
	var ts []ledger.Transfer
	for _, l := range r.legs {
		ts = append(ts, ledger.Transfer{ID: txid + ":xr:post:" + l.Leg, PendingID: txid + ":xr:" + l.Leg, Amount: l.Amount, Flags: ledger.PostPending,
			Code: "cross_region_post", UserData: txid, Leg: l.Leg})
	}
	return s.moveInsured(ctx, txid, ts, XRPrepared, XRCommitted, "clr_month", clrMonth, r, false)
}

// AbortInsured voids what the insured node reserved and takes the
// accumulator change back. Aborting a transaction never prepared here
// leaves a tombstone, so a late prepare is refused.
func (s *Service) AbortInsured(ctx context.Context, txid string) error {
	ctx = yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	r, err := s.loadInsured(ctx, s.db, txid)
	if notFound(err) {
		return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			now := micros(s.now())
			_, err := tx.Exec(ctx, `INSERT INTO xr_insured (txid, psn_no, insutype, insu_admdvs, treating_admdvs, fixmedins_code, medfee_sumamt, fund_pay,
				acct_pay, acc_change, legs, state, created_at, updated_at) VALUES (?, '', '', '', '', '', 0, 0, 0, '{}', '[]', ?, ?, ?)
				ON CONFLICT DO NOTHING`, txid, XRAborted, now, now)
			return err
		})
	}
	if err != nil {
		return err
	}
	switch r.state {
	case XRAborted:
		return nil
	case XRCommitted, XRReversed:
		return yibao.Errorf(yibao.CodeConflict, "cross-region settlement %s was committed here; it cannot abort", txid)
	}
	var ts []ledger.Transfer
	for _, l := range r.legs {
		ts = append(ts, ledger.Transfer{ID: txid + ":xr:void:" + l.Leg, PendingID: txid + ":xr:" + l.Leg, Flags: ledger.VoidPending,
			Code: "cross_region_void", UserData: txid, Leg: l.Leg})
	}
	return s.moveInsured(ctx, txid, ts, XRPrepared, XRAborted, "", "", r, true)
}

// ReverseInsured gives back a committed cross-region settlement (the
// treating node reversed it): mirrored legs and the accumulator change
// taken back. Reversing again is a no-op.
func (s *Service) ReverseInsured(ctx context.Context, txid, revMonth string) error {
	ctx = yibao.WithPrincipal(ctx, yibao.System("cross-region"))
	r, err := s.loadInsured(ctx, s.db, txid)
	if notFound(err) {
		return yibao.Errorf(yibao.CodeNotFound, "no cross-region settlement %s", txid)
	}
	if err != nil {
		return err
	}
	switch r.state {
	case XRReversed:
		return nil
	case XRCommitted:
	default:
		return yibao.Errorf(yibao.CodePrecondition, "cross-region settlement %s is %s here; only a committed one is reversed", txid, r.state)
	}
	var ts []ledger.Transfer
	for _, l := range r.legs {
		ts = append(ts, ledger.Transfer{ID: txid + ":xr:rev:" + l.Leg, DebitAccountID: l.Credit, CreditAccountID: l.Debit, Amount: l.Amount,
			Ledger: ledger.CNY, Code: "cross_region_reversal", UserData: txid, Leg: l.Leg})
	}
	return s.moveInsured(ctx, txid, ts, XRCommitted, XRReversed, "rev_month", revMonth, r, true)
}

// moveInsured moves an insured-side row from one state to another in one
// ledger unit with its transfers and audits it; restore takes its
// accumulator change back in the same transaction.
func (s *Service) moveInsured(ctx context.Context, txid string, ts []ledger.Transfer, from, to, monthCol, month string, row *insuredRow, restore bool) error {
	unit := engine.Unit{Transfers: ts}
	if len(ts) == 0 {
		unit.Accounts = []ledger.Account{ledger.ClearingHouse("hub")}
	}
	if restore {
		defer s.lockPersons(row.m.PsnNo)()
	}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		set, args := `state = ?, updated_at = ?`, []any{to, micros(s.now())}
		if monthCol != "" {
			set += `, ` + monthCol + ` = ?`
			args = append(args, month)
		}
		res, err := tx.Exec(ctx, `UPDATE xr_insured SET `+set+` WHERE txid = ? AND state = ?`, append(args, txid, from)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "cross-region settlement %s changed meanwhile", txid)
		}
		if row != nil {
			if err := s.auditInsured(ctx, tx, &row.m, row.legs, to); err != nil {
				return err
			}
		}
		if restore {
			st := &Settlement{PsnNo: row.m.PsnNo, Insutype: row.m.Insutype, Result: &policy.Result{Accumulators: row.m.Change}}
			return s.restoreAccumulators(ctx, tx, st)
		}
		return nil
	}
	_, err := s.led.Submit(ctx, unit)
	return err
}

// auditInsured records a state of the insured node's side: the funds and
// the account it moves, the person by reference.
func (s *Service) auditInsured(ctx context.Context, tx *sqlstore.Tx, m *Prepare, legs []Leg, state string) error {
	var ls []map[string]any
	for _, l := range legs {
		ls = append(ls, map[string]any{"leg": l.Leg, "debit": s.auditAccount(l.Debit), "credit": l.Credit, "amount": l.Amount.String()})
	}
	return s.Audit.Record(ctx, tx, audit.Entry{ID: "cross_region:" + m.TxID + ":" + state, Kind: audit.KindXR, At: audit.Stamp(s.now()),
		Actor: "hub", Subject: m.TxID, Data: map[string]any{"event": state, "psn": s.Audit.Person(m.PsnNo), "insu_admdvs": m.InsuAdmdvs,
			"treating_admdvs": m.TreatingAdmdvs, "fixmedins_code": m.FixmedinsCode, "fund_pay": m.FundPay.String(), "acct_pay": m.AcctPay.String(), "legs": ls}})
}

// InDoubtInsured lists transactions this node prepared and has not heard
// the decision of, prepared before the given time.
func (s *Service) InDoubtInsured(ctx context.Context, before time.Time) ([]string, error) {
	return s.db.Strings(ctx, `SELECT txid FROM xr_insured WHERE state = ? AND created_at < ? ORDER BY created_at LIMIT 500`, XRPrepared, micros(before))
}

// SetCrashPoint installs, for tests, a hook that runs after a
// cross-region settlement is prepared here and before the hub is asked:
// an error there stops the settlement as a crash at that point would.
func (s *Service) SetCrashPoint(f func(setlID string) error) { s.hookAfterPrepare = f }
