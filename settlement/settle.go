package settlement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"encoding/hex"

	"yibao"
	"yibao/audit"
	"yibao/gmcrypto"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/policy"
	"yibao/sqlstore"
)

// Settlement kinds and states.
const (
	KindOutpatient = "outpatient" // general/chronic outpatient and emergency
	KindPharmacy   = "pharmacy"
	KindMidStay    = "mid_stay"  // 中途结算: an inpatient stay settled so far, stay goes on
	KindDischarge  = "discharge" // 出院结算

	StatusPending   = "pending"   // legs reserved, waiting for the out-of-pocket payment
	StatusCompleted = "completed" // all legs posted
	StatusVoided    = "voided"    // pending released, never completed
	StatusReversed  = "reversed"  // completed, then undone by mirrored transfers

	PayCash  = "cash"  // out-of-pocket part paid at the counter: completes at once
	PayLater = "later" // out-of-pocket part paid later (wallet, mobile): pending until completed

	// PayCounter completes a pending settlement with money taken at the
	// counter (the wallet declined and the patient paid cash or card).
	PayCounter = "counter"
)

// pendingBackstop is the ledger timeout of a pending leg: far beyond the
// settlement's own TTL, so the settlement sweeper (which also restores
// accumulators) always acts first and the ledger's expiry is only a net.
const pendingBackstop = 24 * 3600

// Leg is one ledger transfer of a settlement.
type Leg struct {
	Leg         string    `json:"leg"` // fund:310100, acct_pay, acct_mulaid_pay, psn_cash_pay
	FundPayType string    `json:"fund_pay_type,omitempty"`
	Debit       string    `json:"debit"`
	Credit      string    `json:"credit"`
	Amount      money.Fen `json:"amount"`
	Pending     bool      `json:"pending,omitempty"`
}

// Settlement is a stored settlement.
type Settlement struct {
	SetlID        string         `json:"setl_id"`
	MdtrtID       string         `json:"mdtrt_id"`
	PsnNo         string         `json:"psn_no"`
	FixmedinsCode string         `json:"fixmedins_code"`
	Insutype      string         `json:"insutype"`
	InsuAdmdvs    string         `json:"insu_admdvs"`
	PolicyVersion string         `json:"policy_version"`
	Kind          string         `json:"kind"`
	Segment       int            `json:"segment"` // 1 = the visit's first settlement
	PayMode       string         `json:"pay_mode"`
	Status        string         `json:"status"`
	Year          int            `json:"acc_year"`
	MedfeeSumamt  money.Fen      `json:"medfee_sumamt"`
	FundPaySumamt money.Fen      `json:"fund_pay_sumamt"`
	AcctPay       money.Fen      `json:"acct_pay"`
	PsnCashPay    money.Fen      `json:"psn_cash_pay"`
	Channel       string         `json:"channel,omitempty"`
	Legs          []Leg          `json:"legs"`
	Result        *policy.Result `json:"result,omitempty"`
	Lines         []FeeLine      `json:"fee_lines,omitempty"`
	Review        []ReviewHit    `json:"review_hits,omitempty"` // on the settle answer only
	CreatedBy     string         `json:"created_by"`
	CreatedAt     time.Time      `json:"created_at"`
	ExpiresAt     *time.Time     `json:"expires_at,omitempty"`
	ResolvedAt    *time.Time     `json:"resolved_at,omitempty"`
	ReversedAt    *time.Time     `json:"reversed_at,omitempty"`
	ReversedBy    string         `json:"reversed_by,omitempty"`
	input         *policy.Input
}

// SettleRequest asks to settle a visit's unsettled fee lines.
type SettleRequest struct {
	Kind        string `json:"kind,omitempty"`     // mid_stay or discharge for inpatients; default by visit type
	PayMode     string `json:"pay_mode,omitempty"` // cash (default) or later
	UseAccount  *bool  `json:"acct_used_flag,omitempty"`
	FamilyPsnNo string `json:"family_psn_no,omitempty"` // 家庭共济: the linked holder whose account may pay
	Explain     bool   `json:"explain,omitempty"`       // pre-settlement only: include the step-by-step text
	// KeepBlocked, pre-settlement only: report blocking review findings
	// instead of refusing (the fee upload shows them; the settlement
	// will refuse).
	KeepBlocked bool `json:"-"`
	// Check, if set, sees the calculated result before anything is
	// written and may refuse it (the national interface compares the
	// figures the HIS sent); its error is returned as is.
	Check func(*policy.Result) error `json:"-"`
	// Also, if set, runs inside the settlement's own database transaction
	// after the settlement row is written: what it writes (a payment
	// order) commits with the settlement or not at all.
	Also func(ctx context.Context, tx *sqlstore.Tx, st *Settlement) error `json:"-"`
	// Hold, with PayMode later, reserves the out-of-pocket part on a
	// credit line in the settlement's own ledger unit: a pending leg
	// "credit_hold" from Hold.Line to the bank's clearing account, posted
	// by Complete(…, Hold.Channel) and voided by Void. A line without
	// enough left fails the whole settlement with credit_limit_exceeded.
	Hold *CreditHold `json:"-"`
	// Release lists pending ledger transfers (an inpatient's credit
	// guarantee) voided in the same unit ahead of the legs, so what they
	// held is free for the settlement's own hold.
	Release []string `json:"-"`
}

// CreditHold names the credit line that pays a settlement's out-of-pocket
// part and the bank's channel that clears it.
type CreditHold struct {
	Line    ledger.Account
	Channel string
}

// Preview is a pre-settlement: the calculator's answer, nothing stored.
type Preview struct {
	MdtrtID string         `json:"mdtrt_id"`
	Kind    string         `json:"kind"`
	Result  *policy.Result `json:"result"`
	Legs    []Leg          `json:"legs"`
	Review  []ReviewHit    `json:"review_hits,omitempty"`
}

// ReviewHit is a smart-review finding on one fee line (docs/review.md).
type ReviewHit struct {
	Rule     string `json:"rule"`
	Kind     string `json:"kind"`
	Sn       string `json:"feedetl_sn"`
	Action   string `json:"action"` // warn, self_pay (the line is paid in full by the patient), block
	Message  string `json:"message"`
	Evidence string `json:"evidence,omitempty"`
}

// Review actions.
const (
	ReviewWarn    = "warn"
	ReviewSelfPay = "self_pay"
	ReviewBlock   = "block"
)

// ReviewBill is what smart review sees of a bill.
type ReviewBill struct {
	Visit *Visit
	Age   int
	Sex   string // GB/T 2261.1: 1 male, 2 female
	Lines []FeeLine
}

// ReviewFunc checks a bill before it is calculated.
type ReviewFunc func(ctx context.Context, b ReviewBill) ([]ReviewHit, error)

// errStale means the state a settlement was calculated on changed before
// it committed (another settlement of the person or visit won the race):
// the caller recalculates.
var errStale = errors.New("settlement: state changed; recalculate")

const maxAttempts = 8

// plan is one calculated settlement, ready to commit.
type plan struct {
	v         *Visit
	kind      string
	lines     []FeeLine
	pol       *policy.Policy
	in        *policy.Input
	res       *policy.Result
	accVer    int64
	accExists bool
	legs      []Leg
	accounts  []ledger.Account
	family    string
	review    []ReviewHit
	remote    bool // the insured region is kept by another node
}

// prepare loads everything a settlement depends on and runs the calculator.
func (s *Service) prepare(ctx context.Context, id string, r SettleRequest, explain bool) (*plan, error) {
	v, err := s.loadVisit(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	kind, err := settleKind(v, r.Kind)
	if err != nil {
		return nil, err
	}
	lines, err := s.feeLines(ctx, s.db, id, true)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "visit %s has no unsettled fee lines", id)
	}
	var birth, category, gender string
	if err := s.db.QueryRow(ctx, `SELECT birth_date, category, gender FROM persons WHERE psn_no = ?`, v.PsnNo).Scan(&birth, &category, &gender); err != nil {
		return nil, err
	}
	today := s.today()
	pv := policy.Visit{Type: v.Type, Level: v.Level, SettlementDate: today, AdmissionDate: v.BeginDate,
		CrossRegion: policy.CrossRegionInfo{Status: v.CrossStatus, Scope: v.CrossScope}, TransferFromLevel: v.TransferFromLevel}
	if v.Type == policy.Inpatient {
		pv.StaySegment = v.Segments + 1
		if kind == KindDischarge {
			pv.DischargeDate = v.EndDate
		}
		if v.Segments > 0 {
			pv.TransferFromLevel = 0 // paid with the stay's first settlement
		}
	}
	pol, err := s.selectPolicy(ctx, v.InsuAdmdvs, &pv)
	if err != nil {
		return nil, err
	}
	year, month, err := pol.AccountingYear(&pv)
	if err != nil {
		return nil, err
	}
	basis := pol.BasisDate(&pv)
	person := policy.Person{Insutype: v.Insutype, Category: category, Age: yibao.AgeOn(birth, basis)}
	if person.Age < 18 {
		person.Groups = append(person.Groups, "child")
	}
	if person.Age >= 60 {
		person.Groups = append(person.Groups, "elderly")
	}
	p := &plan{v: v, kind: kind, lines: lines, pol: pol, remote: s.isRemote(v.InsuAdmdvs)}
	var acc policy.Accumulators
	if p.remote {
		// The insured region keeps the accumulators and the account.
		snap, err := s.Remote.Snapshot(ctx, SnapshotRequest{InsuAdmdvs: v.InsuAdmdvs, PsnNo: v.PsnNo, Insutype: v.Insutype, Year: year, Month: month})
		if err != nil {
			return nil, err
		}
		acc, p.accVer, p.accExists = snap.Accumulators, snap.Version, snap.Exists
	} else {
		acc, p.accVer, p.accExists, err = s.loadAccumulators(ctx, s.db, v.PsnNo, v.Insutype, year, month)
		if err != nil {
			return nil, err
		}
		if acc.AccountBalance, err = s.accountAvailable(ctx, v.PsnNo); err != nil {
			return nil, err
		}
	}
	in := &policy.Input{Person: person, Visit: pv, Accumulators: acc, UseAccount: r.UseAccount}
	if r.FamilyPsnNo != "" && p.remote {
		return nil, yibao.Errorf(yibao.CodePrecondition, "family mutual aid (家庭共济) is not available for cross-region settlement")
	}
	if r.FamilyPsnNo != "" {
		if err := s.checkFamily(ctx, r.FamilyPsnNo, v.PsnNo); err != nil {
			return nil, err
		}
		fb := money.Fen(0)
		if b, err := s.led.Balance(ctx, ledger.PersonalAccount(r.FamilyPsnNo).ID); err == nil {
			fb = max(b.Available, 0)
		}
		in.FamilyAccount = &policy.FamilyAccount{PsnNo: r.FamilyPsnNo, Balance: fb}
		p.family = r.FamilyPsnNo
	}
	// Smart review before the calculator: a blocking hit stops the bill;
	// a self-pay hit makes its line fully self-paid (as a class C item).
	selfPay := map[string]bool{}
	if s.Review != nil {
		hits, err := s.Review(ctx, ReviewBill{Visit: v, Age: person.Age, Sex: gender, Lines: lines})
		if err != nil {
			return nil, err
		}
		p.review = hits
		var blocked []string
		for _, h := range hits {
			switch h.Action {
			case ReviewBlock:
				blocked = append(blocked, h.Sn+": "+h.Message)
			case ReviewSelfPay:
				selfPay[h.Sn] = true
			}
		}
		if len(blocked) > 0 && !r.KeepBlocked {
			return nil, &yibao.Error{Code: yibao.CodePrecondition, Message: "review_blocked: " + strings.Join(blocked, "; ")}
		}
	}
	for _, l := range lines {
		ratio, qty, amt := l.SelfPayRatio, l.Quantity, l.Amount
		pl := policy.Line{ID: l.FeedetlSn, Class: l.Class, UnitPrice: l.UnitPrice, Quantity: &qty, Amount: &amt, PriceCap: l.PriceCap}
		if selfPay[l.FeedetlSn] {
			pl.Class = string(yibao.ClassC)
		}
		if l.Class == string(yibao.ClassB) {
			pl.SelfPay = &ratio
		}
		in.Lines = append(in.Lines, pl)
	}
	res, err := policy.Calc(pol, in, policy.Options{Explain: explain})
	if err != nil {
		return nil, err
	}
	p.in, p.res = in, res
	payMode := r.PayMode
	if p.remote {
		if r.PayMode == PayLater || r.Hold != nil {
			return nil, yibao.FieldError("pay_mode", "a cross-region settlement is paid at the counter (pay_mode cash)")
		}
		payMode = PayLater // every leg pending until the hub decides; the cash part is taken when it commits
	}
	if err := p.buildLegs(payMode, r.Hold); err != nil {
		return nil, err
	}
	return p, nil
}

func settleKind(v *Visit, asked string) (string, error) {
	switch v.Type {
	case policy.Inpatient:
		switch {
		case asked == KindMidStay && v.Status == VisitOpen:
			return KindMidStay, nil
		case (asked == KindDischarge || asked == "") && v.Status == VisitDischarged:
			return KindDischarge, nil
		case asked == "" || asked == KindDischarge:
			return "", yibao.Errorf(yibao.CodePrecondition, "visit %s is %s: discharge the patient first, or settle kind mid_stay", v.MdtrtID, v.Status)
		case asked == KindMidStay:
			return "", yibao.Errorf(yibao.CodePrecondition, "visit %s is %s: mid-stay settlement is for an ongoing stay", v.MdtrtID, v.Status)
		}
		return "", yibao.FieldError("kind", "an inpatient stay settles mid_stay or discharge")
	case policy.Pharmacy:
		if asked != "" && asked != KindPharmacy {
			return "", yibao.FieldError("kind", "a pharmacy purchase settles as kind pharmacy")
		}
		if v.Status != VisitOpen {
			return "", yibao.Errorf(yibao.CodePrecondition, "visit %s is %s", v.MdtrtID, v.Status)
		}
		return KindPharmacy, nil
	default:
		if asked != "" && asked != KindOutpatient {
			return "", yibao.FieldError("kind", "an outpatient or emergency visit settles as kind outpatient")
		}
		if v.Status != VisitOpen {
			return "", yibao.Errorf(yibao.CodePrecondition, "visit %s is %s", v.MdtrtID, v.Status)
		}
		return KindOutpatient, nil
	}
}

// fundAccount maps a setldetail fund to the region's ledger account.
func fundAccount(admdvs, fundPayType string) ledger.Account {
	switch fundPayType {
	case "310100":
		return ledger.FundPool(admdvs, "310")
	case "390100":
		return ledger.FundPool(admdvs, "390")
	case "320100":
		return ledger.LayerFund(admdvs, "320", ledger.KindLargeAmountFund)
	case "330100":
		return ledger.LayerFund(admdvs, "330", ledger.KindLargeAmountFund)
	case "390200":
		return ledger.LayerFund(admdvs, "392", ledger.KindCriticalIllness)
	case "610100":
		return ledger.AssistanceFund(admdvs)
	}
	return ledger.LayerFund(admdvs, fundPayType[:3], ledger.KindLargeAmountFund)
}

// buildLegs turns the result into ledger legs: every fund and the personal
// account pay the institution's receivable; the out-of-pocket part is a
// counter payment (cash) or, paid later, comes through a channel's
// clearing account when the settlement completes.
func (p *plan) buildLegs(payMode string, hold *CreditHold) error {
	if payMode == "" {
		payMode = PayCash
	}
	if payMode != PayCash && payMode != PayLater {
		return yibao.FieldError("pay_mode", "want cash or later")
	}
	si := &p.res.SetlInfo
	h := p.v.FixmedinsCode
	recv := ledger.HospitalReceivable(h)
	pending := payMode == PayLater
	p.accounts = []ledger.Account{recv}
	p.legs = []Leg{}
	// Who pays the funds' and the account's parts: the region's funds and
	// the person's account; for a person insured by another node, the
	// position with that region (异地垫付: this node advances it, clearing
	// collects it).
	fundFrom := func(fpt string) ledger.Account { return fundAccount(p.v.InsuAdmdvs, fpt) }
	acctFrom := ledger.PersonalAccount(p.v.PsnNo)
	if p.remote {
		xr := ledger.InterRegion(p.v.InsuAdmdvs)
		fundFrom = func(string) ledger.Account { return xr }
		acctFrom = xr
		p.accounts = append(p.accounts, xr)
	}
	var funds money.Fen
	for _, d := range p.res.SetlDetail {
		if d.FundPayType == "310200" || d.FundPayamt == 0 {
			continue // the personal account is its own legs below
		}
		p.legs = append(p.legs, Leg{Leg: "fund:" + d.FundPayType, FundPayType: d.FundPayType, Debit: fundFrom(d.FundPayType).ID, Credit: recv.ID,
			Amount: d.FundPayamt, Pending: pending})
		funds += d.FundPayamt
	}
	if funds != si.FundPaySumamt {
		return yibao.Errorf(yibao.CodeInternal, "fund legs %s differ from fund_pay_sumamt %s", funds, si.FundPaySumamt)
	}
	if own := si.AcctPay - si.AcctMulaidPay; own > 0 {
		if !p.remote {
			p.accounts = append(p.accounts, acctFrom)
		}
		p.legs = append(p.legs, Leg{Leg: "acct_pay", FundPayType: "310200", Debit: acctFrom.ID, Credit: recv.ID, Amount: own, Pending: pending})
	}
	if si.AcctMulaidPay > 0 {
		a := ledger.PersonalAccount(p.family)
		p.accounts = append(p.accounts, a)
		p.legs = append(p.legs, Leg{Leg: "acct_mulaid_pay", FundPayType: "310200", Debit: a.ID, Credit: recv.ID, Amount: si.AcctMulaidPay, Pending: pending})
	}
	if si.PsnCashPay > 0 && payMode == PayCash {
		cash, bank := ledger.PatientCash(h), ledger.HospitalBank(h)
		p.accounts = append(p.accounts, cash, bank)
		p.legs = append(p.legs, Leg{Leg: "psn_cash_pay", Debit: cash.ID, Credit: bank.ID, Amount: si.PsnCashPay})
	}
	if hold != nil && si.PsnCashPay > 0 {
		if !pending {
			return yibao.FieldError("pay_mode", "a credit hold needs pay_mode later")
		}
		clear := ledger.ChannelClearing(hold.Channel)
		p.accounts = append(p.accounts, hold.Line, clear)
		p.legs = append(p.legs, Leg{Leg: LegCreditHold, Debit: hold.Line.ID, Credit: clear.ID, Amount: si.PsnCashPay, Pending: true})
	}
	return nil
}

// LegCreditHold is the pending leg that holds a settlement's out-of-pocket
// part on a credit line.
const LegCreditHold = "credit_hold"

func legTransfers(setlID, code string, legs []Leg) []ledger.Transfer {
	out := make([]ledger.Transfer, 0, len(legs))
	for _, l := range legs {
		t := ledger.Transfer{ID: setlID + ":" + l.Leg, DebitAccountID: l.Debit, CreditAccountID: l.Credit, Amount: l.Amount,
			Ledger: ledger.CNY, Code: code, UserData: setlID, Leg: l.Leg}
		if l.Pending {
			t.Flags, t.Timeout = ledger.Pending, pendingBackstop
		}
		out = append(out, t)
	}
	return out
}

// PreSettle runs the calculator on the visit's unsettled lines and stores
// nothing (预结算).
func (s *Service) PreSettle(ctx context.Context, id string, r SettleRequest) (*Preview, error) {
	p, err := s.prepare(ctx, id, r, r.Explain)
	if err != nil {
		return nil, err
	}
	return &Preview{MdtrtID: id, Kind: p.kind, Result: p.res, Legs: p.legs, Review: p.review}, nil
}

// Settle settles the visit's unsettled fee lines as one ledger unit: the
// settlement record, the accumulator change, the fee lines' link, the
// visit's state, an outbox event and every leg's transfer commit together
// or not at all. Paid in cash it completes at once; paid later its fund
// and account legs are pending until Complete or Void. If another
// settlement of the same person or visit commits first, it recalculates.
func (s *Service) Settle(ctx context.Context, id string, r SettleRequest) (*Settlement, error) {
	if r.PayMode == "" {
		r.PayMode = PayCash
	}
	who, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.loadVisit(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	defer s.lockPersons(v.PsnNo, r.FamilyPsnNo)()
	for attempt := 0; ; attempt++ {
		p, err := s.prepare(ctx, id, r, false)
		if err != nil {
			return nil, err
		}
		if r.Check != nil {
			if err := r.Check(p.res); err != nil {
				return nil, err
			}
		}
		var st *Settlement
		if p.remote {
			st, err = s.settleRemote(ctx, p, r, who.ID())
		} else {
			st, err = s.commitPlan(ctx, p, r.PayMode, who.ID(), r.Also, r.Release)
		}
		if err == nil {
			return st, nil
		}
		if r.Hold != nil && ledger.ReasonOf(err) == ledger.ReasonExceedsCredits && strings.Contains(err.Error(), r.Hold.Line.ID) {
			return nil, yibao.Wrap(yibao.CodeCreditLimitExceeded, err, fmt.Sprintf("credit_limit_exceeded: the out-of-pocket part %s yuan is more than the credit line has left", p.res.SetlInfo.PsnCashPay))
		}
		retry := errors.Is(err, errStale) ||
			(yibao.IsCode(err, yibao.CodeInsufficientFunds) && strings.Contains(err.Error(), "acct:")) // the account balance moved
		if !retry {
			return nil, err
		}
		s.recalcs.Add(1)
		if attempt+1 >= maxAttempts {
			return nil, yibao.Errorf(yibao.CodeConflict, "visit %s: other settlements of this person kept changing the state; try again", id)
		}
		time.Sleep(time.Duration(attempt+1) * time.Duration(rand.IntN(5000)) * time.Microsecond) // another node's settlement won; back off
	}
}

func (s *Service) commitPlan(ctx context.Context, p *plan, payMode, who string, also func(context.Context, *sqlstore.Tx, *Settlement) error, release []string) (*Settlement, error) {
	now := s.now()
	si := &p.res.SetlInfo
	st := &Settlement{SetlID: newID("ST"), MdtrtID: p.v.MdtrtID, PsnNo: p.v.PsnNo, FixmedinsCode: p.v.FixmedinsCode,
		Insutype: p.v.Insutype, InsuAdmdvs: p.v.InsuAdmdvs, PolicyVersion: p.pol.Version, Kind: p.kind, Segment: p.v.Segments + 1,
		PayMode: payMode, Status: StatusCompleted, Year: p.res.Accumulators.Year, MedfeeSumamt: si.MedfeeSumamt, FundPaySumamt: si.FundPaySumamt,
		AcctPay: si.AcctPay, PsnCashPay: si.PsnCashPay, Legs: p.legs, Result: p.res, Lines: p.lines, Review: p.review, CreatedBy: who, CreatedAt: now.UTC()}
	var expires int64
	if payMode == PayLater || p.remote {
		st.Status = StatusPending
		exp := now.Add(s.PendingTTL).UTC()
		st.ExpiresAt, expires = &exp, micros(exp)
	}
	if payMode == PayCash && !p.remote {
		st.Channel = PayCash
		st.ResolvedAt = &st.CreatedAt
	}
	inJSON, _ := json.Marshal(p.in)
	resJSON, _ := json.Marshal(p.res)
	legJSON, _ := json.Marshal(p.legs)
	newStatus := p.v.Status
	if p.kind != KindMidStay {
		newStatus = VisitSettled
	}
	var ts []ledger.Transfer
	for _, id := range release {
		ts = append(ts, ledger.Transfer{ID: st.SetlID + ":release:" + id, PendingID: id, Flags: ledger.VoidPending, Code: "guarantee_release", UserData: st.SetlID})
	}
	legs := legTransfers(st.SetlID, "settlement", p.legs)
	if p.remote {
		legs = neverExpire(legs) // the hub decides; see remote.go
	}
	unit := engine.Unit{Accounts: p.accounts, Transfers: append(ts, legs...)}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		if p.remote {
			// the insured node applies the change when it prepares
		} else if err := s.saveAccumulators(ctx, tx, p.v.PsnNo, p.v.Insutype, &p.res.Accumulators, p.accVer, p.accExists); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `UPDATE visits SET segments = segments + 1, status = ?, updated_at = ? WHERE mdtrt_id = ? AND segments = ? AND status = ?`,
			newStatus, micros(now), p.v.MdtrtID, p.v.Segments, p.v.Status)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errStale
		}
		sns := make([]any, 0, len(p.lines)+2)
		sns = append(sns, st.SetlID, p.v.MdtrtID)
		for _, l := range p.lines {
			sns = append(sns, l.FeedetlSn)
		}
		res, err = tx.Exec(ctx, `UPDATE fee_lines SET setl_id = ? WHERE mdtrt_id = ? AND setl_id = '' AND status = 'active' AND feedetl_sn IN (`+
			strings.TrimSuffix(strings.Repeat("?, ", len(p.lines)), ", ")+`)`, sns...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != int64(len(p.lines)) {
			return errStale // a line was cancelled meanwhile
		}
		if newStatus == VisitSettled {
			var left int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM fee_lines WHERE mdtrt_id = ? AND setl_id = '' AND status = 'active'`, p.v.MdtrtID).Scan(&left); err != nil {
				return err
			}
			if left > 0 {
				return errStale // a line arrived meanwhile
			}
		}
		var resolved int64
		if payMode == PayCash && !p.remote {
			resolved = micros(now)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO settlements (setl_id, mdtrt_id, psn_no, fixmedins_code, insutype, insu_admdvs, policy_version, kind,
			segment, pay_mode, status, acc_year, medfee_sumamt, fund_pay_sumamt, acct_pay, psn_cash_pay, input, result, legs, channel, created_by,
			created_at, expires_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			st.SetlID, st.MdtrtID, st.PsnNo, st.FixmedinsCode, st.Insutype, st.InsuAdmdvs, st.PolicyVersion, st.Kind, st.Segment, st.PayMode, st.Status,
			st.Year, int64(st.MedfeeSumamt), int64(st.FundPaySumamt), int64(st.AcctPay), int64(st.PsnCashPay), string(inJSON), string(resJSON),
			string(legJSON), st.Channel, who, micros(now), expires, resolved); err != nil {
			return err
		}
		if len(p.review) > 0 {
			amounts := map[string]money.Fen{}
			for _, l := range p.lines {
				amounts[l.FeedetlSn] = l.Amount
			}
			month := now.In(yibao.ChinaTime).Format("2006-01")
			for _, h := range p.review {
				if _, err := tx.Exec(ctx, `INSERT INTO review_hits (setl_id, feedetl_sn, rule_id, kind, action, fixmedins_code, month, amount)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, st.SetlID, h.Sn, h.Rule, h.Kind, h.Action, st.FixmedinsCode, month,
					int64(amounts[h.Sn])); err != nil {
					return err
				}
			}
		}
		if also != nil {
			if err := also(ctx, tx, st); err != nil {
				return err
			}
		}
		return s.outbox(ctx, tx, "settlement."+st.Status, st, now)
	}
	if _, err := s.led.Submit(ctx, unit); err != nil {
		return nil, err
	}
	return st, nil
}

// outbox records an event in the same transaction as the change.
// outbox queues the settlement's webhook event and records its audit
// entry, both inside the settlement's own transaction.
func (s *Service) outbox(ctx context.Context, tx *sqlstore.Tx, topic string, st *Settlement, now time.Time) error {
	payload, _ := json.Marshal(map[string]any{"setl_id": st.SetlID, "mdtrt_id": st.MdtrtID, "psn_no": st.PsnNo,
		"fixmedins_code": st.FixmedinsCode, "status": st.Status, "medfee_sumamt": st.MedfeeSumamt,
		"fund_pay_sumamt": st.FundPaySumamt, "acct_pay": st.AcctPay, "psn_cash_pay": st.PsnCashPay})
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, topic, subject, payload, created_at, fixmedins_code, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		newID("EV"), topic, st.SetlID, string(payload), micros(now), st.FixmedinsCode, micros(now)); err != nil {
		return err
	}
	return s.Audit.Record(ctx, tx, s.auditEntry(ctx, st, now))
}

// auditAccount names a ledger account in an audit entry: personal
// accounts (named by the person number) by the person's reference.
func (s *Service) auditAccount(id string) string {
	if psn, ok := strings.CutPrefix(id, "acct:"); ok {
		return "acct:" + s.Audit.Person(psn)
	}
	return id
}

// auditEntry is a settlement's state as the audit log keeps it: the
// figures and legs, the person only as a salted reference, the fee lines
// as an SM3 digest.
func (s *Service) auditEntry(ctx context.Context, st *Settlement, now time.Time) audit.Entry {
	legs := make([]map[string]any, 0, len(st.Legs))
	for _, l := range st.Legs {
		legs = append(legs, map[string]any{"leg": l.Leg, "debit": s.auditAccount(l.Debit), "credit": s.auditAccount(l.Credit), "amount": l.Amount.String()})
	}
	data := map[string]any{"setl_id": st.SetlID, "mdtrt_id": st.MdtrtID, "person": s.Audit.Person(st.PsnNo),
		"fixmedins_code": st.FixmedinsCode, "insutype": st.Insutype, "insu_admdvs": st.InsuAdmdvs, "policy_version": st.PolicyVersion,
		"kind": st.Kind, "segment": st.Segment, "pay_mode": st.PayMode, "status": st.Status, "channel": st.Channel,
		"medfee_sumamt": st.MedfeeSumamt.String(), "fund_pay_sumamt": st.FundPaySumamt.String(), "acct_pay": st.AcctPay.String(),
		"psn_cash_pay": st.PsnCashPay.String(), "legs": legs}
	if len(st.Lines) > 0 {
		lines := make([]string, 0, len(st.Lines))
		for _, l := range st.Lines {
			lines = append(lines, l.FeedetlSn+"|"+l.CatalogCode+"|"+l.Amount.String())
		}
		b, _ := json.Marshal(lines)
		sum := gmcrypto.SM3(b)
		data["fee_lines_sm3"] = hex.EncodeToString(sum[:])
		data["fee_lines"] = len(st.Lines)
	}
	actor := ""
	if p := yibao.PrincipalFrom(ctx); p != nil {
		actor = p.ID()
	}
	return audit.Entry{ID: "settlement:" + st.SetlID + ":" + st.Status, Kind: audit.KindSettlement, At: audit.Stamp(now), Actor: actor,
		Subject: st.SetlID, Data: data}
}

const settlementCols = `setl_id, mdtrt_id, psn_no, fixmedins_code, insutype, insu_admdvs, policy_version, kind, segment, pay_mode, status, acc_year,
	medfee_sumamt, fund_pay_sumamt, acct_pay, psn_cash_pay, input, result, legs, channel, created_by, created_at, expires_at, resolved_at,
	reversed_at, reversed_by`

func scanSettlement(sc interface{ Scan(...any) error }, full bool) (*Settlement, error) {
	var st Settlement
	var in, res, legs string
	var c, e, r, rv int64
	if err := sc.Scan(&st.SetlID, &st.MdtrtID, &st.PsnNo, &st.FixmedinsCode, &st.Insutype, &st.InsuAdmdvs, &st.PolicyVersion, &st.Kind,
		&st.Segment, &st.PayMode, &st.Status, &st.Year, &st.MedfeeSumamt, &st.FundPaySumamt, &st.AcctPay, &st.PsnCashPay, &in, &res, &legs, &st.Channel,
		&st.CreatedBy, &c, &e, &r, &rv, &st.ReversedBy); err != nil {
		return nil, err
	}
	st.CreatedAt, st.ExpiresAt, st.ResolvedAt, st.ReversedAt = fromMicros(c), optTime(e), optTime(r), optTime(rv)
	if err := json.Unmarshal([]byte(legs), &st.Legs); err != nil {
		return nil, fmt.Errorf("settlement %s legs: %w", st.SetlID, err)
	}
	if full {
		st.Result, st.input = &policy.Result{}, &policy.Input{}
		if err := json.Unmarshal([]byte(res), st.Result); err != nil {
			return nil, fmt.Errorf("settlement %s result: %w", st.SetlID, err)
		}
		if err := json.Unmarshal([]byte(in), st.input); err != nil {
			return nil, fmt.Errorf("settlement %s input: %w", st.SetlID, err)
		}
	}
	return &st, nil
}

// loadSettlement reads a settlement the caller may act on.
func (s *Service) loadSettlement(ctx context.Context, q querier, id string, full bool) (*Settlement, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	st, err := scanSettlement(q.QueryRow(ctx, `SELECT `+settlementCols+` FROM settlements WHERE setl_id = ?`, id), full)
	if notFound(err) || (err == nil && !p.ActsFor(st.FixmedinsCode)) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "settlement %s not found", id)
	}
	return st, err
}

// GetSettlement returns a settlement with its result and fee lines.
func (s *Service) GetSettlement(ctx context.Context, id string) (*Settlement, error) {
	st, err := s.loadSettlement(ctx, s.db, id, true)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+feeLineCols+` FROM fee_lines WHERE setl_id = ? ORDER BY created_at, feedetl_sn`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		l, err := scanFeeLine(rows)
		if err != nil {
			return nil, err
		}
		st.Lines = append(st.Lines, *l)
	}
	return st, rows.Err()
}

// Complete posts a pending settlement once its out-of-pocket part is paid
// through channel (e.g. wechat, alipay, unionpay): every reserved leg is
// posted and the channel's clearing account pays the rest to the
// institution. Completing again with the same channel returns the
// settlement; a voided one cannot complete.
func (s *Service) Complete(ctx context.Context, id, channel string) (*Settlement, error) {
	return s.CompleteAlso(ctx, id, channel, nil)
}

// CompleteAlso is Complete with also run inside the completion's own
// transaction (the credit service records the draw there): it commits
// with the completion or not at all. A settlement completed before
// returns without running also.
func (s *Service) CompleteAlso(ctx context.Context, id, channel string, also func(ctx context.Context, tx *sqlstore.Tx, st *Settlement) error) (*Settlement, error) {
	if !channelRe.MatchString(channel) || channel == PayCash {
		return nil, yibao.FieldError("channel", "name the payment channel (2–20 lowercase letters/digits), e.g. wechat")
	}
	st, err := s.loadSettlement(ctx, s.db, id, false)
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case StatusCompleted:
		if st.Channel == channel {
			return s.GetSettlement(ctx, id)
		}
		return nil, yibao.Errorf(yibao.CodeConflict, "settlement %s was completed through %s", id, st.Channel)
	case StatusPending:
	default:
		return nil, yibao.Errorf(yibao.CodePrecondition, "settlement %s is %s", id, st.Status)
	}
	now := s.now()
	var ts []ledger.Transfer
	for _, l := range st.Legs {
		if l.Pending {
			ts = append(ts, ledger.Transfer{ID: id + ":post:" + l.Leg, PendingID: id + ":" + l.Leg, Amount: l.Amount, Flags: ledger.PostPending,
				Code: "settlement_post", UserData: id, Leg: l.Leg})
		}
	}
	clear := ledger.ChannelClearing(channel)
	if channel == PayCounter {
		clear = ledger.PatientCash(st.FixmedinsCode) // paid at the counter after all
	}
	recv := ledger.HospitalReceivable(st.FixmedinsCode)
	if st.PsnCashPay > 0 {
		ts = append(ts, ledger.Transfer{ID: id + ":psn_cash_pay", DebitAccountID: clear.ID, CreditAccountID: recv.ID, Amount: st.PsnCashPay,
			Ledger: ledger.CNY, Code: "settlement", UserData: id, Leg: "psn_cash_pay"})
	}
	unit := engine.Unit{Accounts: []ledger.Account{clear, recv}, Transfers: ts}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		st.Legs = appendCashLeg(st.Legs, st.PsnCashPay, clear.ID, recv.ID)
		legs, _ := json.Marshal(st.Legs)
		res, err := tx.Exec(ctx, `UPDATE settlements SET status = 'completed', channel = ?, resolved_at = ?, legs = ? WHERE setl_id = ? AND status = 'pending'`,
			channel, micros(now), string(legs), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "settlement %s changed meanwhile", id)
		}
		st.Status = StatusCompleted
		if also != nil {
			if err := also(ctx, tx, st); err != nil {
				return err
			}
		}
		return s.outbox(ctx, tx, "settlement.completed", st, now)
	}
	if _, err := s.led.Submit(ctx, unit); err != nil {
		return nil, err
	}
	return s.GetSettlement(ctx, id)
}

func appendCashLeg(legs []Leg, amt money.Fen, debit, credit string) []Leg {
	if amt <= 0 {
		return legs
	}
	return append(legs, Leg{Leg: "psn_cash_pay", Debit: debit, Credit: credit, Amount: amt})
}

// Void releases a pending settlement: reserved legs are voided, the
// accumulators get back what it reserved and its fee lines can be settled
// again. Voiding again returns the settlement.
func (s *Service) Void(ctx context.Context, id string) (*Settlement, error) {
	return s.void(ctx, id, true)
}

// void is Void; lock false when the caller holds the person's lock
// already (a cross-region settlement aborted inside Settle).
func (s *Service) void(ctx context.Context, id string, lock bool) (*Settlement, error) {
	st, err := s.loadSettlement(ctx, s.db, id, true)
	if err != nil {
		return nil, err
	}
	if lock {
		defer s.lockPersons(st.PsnNo)()
	}
	switch st.Status {
	case StatusVoided:
		return s.GetSettlement(ctx, id)
	case StatusPending:
	default:
		return nil, yibao.Errorf(yibao.CodePrecondition, "settlement %s is %s; only a pending settlement is voided (reverse a completed one)", id, st.Status)
	}
	var ts []ledger.Transfer
	for _, l := range st.Legs {
		if l.Pending {
			ts = append(ts, ledger.Transfer{ID: id + ":void:" + l.Leg, PendingID: id + ":" + l.Leg, Flags: ledger.VoidPending,
				Code: "settlement_void", UserData: id, Leg: l.Leg})
		}
	}
	err = s.undo(ctx, st, ts, StatusPending, StatusVoided)
	if yibao.IsCode(err, yibao.CodePrecondition) && ledger.ReasonOf(err) == ledger.ReasonPendingExpired {
		// The ledger's backstop expired the legs already: record the void.
		err = s.undo(ctx, st, nil, StatusPending, StatusVoided)
	}
	if err != nil {
		return nil, err
	}
	return s.GetSettlement(ctx, id)
}

// Reverse undoes a completed settlement (撤销结算): every posted leg gets
// a mirrored transfer, the accumulators are restored and the fee lines are
// free to be corrected and settled again. Only a visit's latest live
// settlement can be reversed. Reversing again returns the settlement.
func (s *Service) Reverse(ctx context.Context, id string) (*Settlement, error) {
	return s.ReverseRefunded(ctx, id, 0)
}

// ReverseRefunded reverses a completed settlement whose out-of-pocket leg
// was already partly returned by refunds (cashRefunded fen, moved by the
// payment service): the mirrored cash leg is reduced by that much, so the
// hospital's receivable never gives back more than it got.
func (s *Service) ReverseRefunded(ctx context.Context, id string, cashRefunded money.Fen) (*Settlement, error) {
	st, err := s.loadSettlement(ctx, s.db, id, true)
	if err != nil {
		return nil, err
	}
	defer s.lockPersons(st.PsnNo)()
	switch st.Status {
	case StatusReversed:
		return s.GetSettlement(ctx, id)
	case StatusCompleted:
	default:
		return nil, yibao.Errorf(yibao.CodePrecondition, "settlement %s is %s; only a completed settlement is reversed (void a pending one)", id, st.Status)
	}
	for _, l := range st.Legs {
		if l.Leg == LegCreditHold {
			return nil, yibao.Errorf(yibao.CodePrecondition, "settlement %s was paid on credit; reversing credit-paid settlements is not supported yet (the bank's draw would have to be reversed with it)", id)
		}
	}
	var ts []ledger.Transfer
	for _, l := range st.Legs {
		amt := l.Amount
		if l.Leg == "psn_cash_pay" {
			if cashRefunded > amt || cashRefunded < 0 {
				return nil, yibao.Errorf(yibao.CodeInvalid, "settlement %s: %d fen refunded of a %d fen out-of-pocket leg", id, cashRefunded, amt)
			}
			amt -= cashRefunded
			if amt == 0 {
				continue
			}
		}
		ts = append(ts, ledger.Transfer{ID: id + ":rev:" + l.Leg, DebitAccountID: l.Credit, CreditAccountID: l.Debit, Amount: amt,
			Ledger: ledger.CNY, Code: "reversal", UserData: id, Leg: l.Leg})
	}
	if err := s.undo(ctx, st, ts, StatusCompleted, StatusReversed); err != nil {
		return nil, err
	}
	return s.GetSettlement(ctx, id)
}

// undo voids or reverses a settlement in one ledger unit.
func (s *Service) undo(ctx context.Context, st *Settlement, ts []ledger.Transfer, from, to string) error {
	who := yibao.PrincipalFrom(ctx).ID()
	now := s.now()
	unit := engine.Unit{Transfers: ts}
	if len(ts) == 0 {
		// Nothing for the ledger to move (a zero bill, or legs the ledger
		// already expired): still one atomic write through the writer.
		unit.Accounts = []ledger.Account{ledger.HospitalReceivable(st.FixmedinsCode)}
	}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		var segments int
		if err := tx.QueryRow(ctx, `SELECT segments FROM visits WHERE mdtrt_id = ?`, st.MdtrtID).Scan(&segments); err != nil {
			return err
		}
		if segments != st.Segment {
			return yibao.Errorf(yibao.CodePrecondition, "visit %s has a later settlement; undo that one first", st.MdtrtID)
		}
		set := `status = ?, resolved_at = ?`
		args := []any{to, micros(now)}
		if to == StatusReversed {
			set = `status = ?, reversed_at = ?, reversed_by = ?`
			args = []any{to, micros(now), who}
		}
		res, err := tx.Exec(ctx, `UPDATE settlements SET `+set+` WHERE setl_id = ? AND status = ?`, append(args, st.SetlID, from)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "settlement %s changed meanwhile", st.SetlID)
		}
		if s.isRemote(st.InsuAdmdvs) {
			if err := s.remoteUndone(ctx, tx, st, to); err != nil {
				return err
			}
		} else if err := s.restoreAccumulators(ctx, tx, st); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE fee_lines SET setl_id = '' WHERE setl_id = ?`, st.SetlID); err != nil {
			return err
		}
		var vtype, vstatus string
		if err := tx.QueryRow(ctx, `SELECT visit_type, status FROM visits WHERE mdtrt_id = ?`, st.MdtrtID).Scan(&vtype, &vstatus); err != nil {
			return err
		}
		back := vstatus
		if vstatus == VisitSettled {
			back = VisitOpen
			if vtype == policy.Inpatient {
				back = VisitDischarged
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE visits SET segments = segments - 1, status = ?, updated_at = ? WHERE mdtrt_id = ?`, back, micros(now), st.MdtrtID); err != nil {
			return err
		}
		st.Status = to
		return s.outbox(ctx, tx, "settlement."+to, st, now)
	}
	_, err := s.led.Submit(ctx, unit)
	return err
}

// ExpirePending voids every pending settlement past its deadline and
// returns how many it voided.
func (s *Service) ExpirePending(ctx context.Context) (int, error) {
	ids, err := s.db.Strings(ctx, `SELECT setl_id FROM settlements WHERE status = 'pending' AND expires_at <= ?
		AND NOT EXISTS (SELECT 1 FROM xr_treating x WHERE x.setl_id = settlements.setl_id AND x.state = 'prepared') ORDER BY expires_at LIMIT 500`, micros(s.now()))
	if err != nil {
		return 0, err
	}
	ctx = yibao.WithPrincipal(ctx, yibao.System("settlement-expiry"))
	n := 0
	for _, id := range ids {
		if s.KeepPending != nil {
			keep, err := s.KeepPending(ctx, id)
			if err != nil {
				return n, err
			}
			if keep {
				continue // a payment is in flight: its owner resolves it
			}
		}
		st, err := s.Void(ctx, id)
		if err != nil {
			if yibao.IsCode(err, yibao.CodePrecondition) || yibao.IsCode(err, yibao.CodeConflict) {
				continue // completed meanwhile
			}
			return n, err
		}
		if st.Status == StatusVoided {
			n++
		}
	}
	return n, nil
}

// Run voids expired pending settlements every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	yibao.Every(ctx, interval, func(ctx context.Context) {
		if n, err := s.ExpirePending(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("settlement expiry", "err", err)
		} else if n > 0 {
			s.log.Info("voided expired pending settlements", "count", n)
		}
	})
}
