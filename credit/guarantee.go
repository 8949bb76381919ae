package credit

import (
	"context"
	"fmt"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
	"yibao/sqlstore"
)

// Guarantee states.
const (
	GuaranteeOpen     = "open"     // holding on the line while the stay goes on
	GuaranteeSettled  = "settled"  // released into the discharge settlement's own hold
	GuaranteeReleased = "released" // given back without a settlement (the stay was cancelled)
)

// Guarantee is an inpatient stay's credit guarantee: what the hospital
// sees instead of a deposit.
type Guarantee struct {
	MdtrtID       string    `json:"mdtrt_id"`
	AgreementNo   string    `json:"agreement_no"`
	BankCode      string    `json:"bank_code"`
	BankName      string    `json:"bank_name,omitempty"`
	FixmedinsCode string    `json:"fixmedins_code"`
	Held          money.Fen `json:"held"`
	Holds         int       `json:"holds"`
	Status        string    `json:"status"`
	Estimate      money.Fen `json:"estimated_self_pay"` // the stay's out-of-pocket part so far (pre-settlement)
	Shortfall     money.Fen `json:"shortfall"`          // estimate − held when the line has no more room
	Available     money.Fen `json:"line_available"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func guaranteeHoldID(mdtrtID string, n int) string { return fmt.Sprintf("G:%s:%d", mdtrtID, n) }

func (s *Service) guarantee(ctx context.Context, q querier, mdtrtID string) (*Guarantee, error) {
	var g Guarantee
	var c, u int64
	err := q.QueryRow(ctx, `SELECT g.mdtrt_id, g.agreement_no, a.bank_code, g.fixmedins_code, g.held, g.holds, g.status, g.created_at, g.updated_at
		FROM credit_guarantees g JOIN credit_agreements a ON a.agreement_no = g.agreement_no WHERE g.mdtrt_id = ?`, mdtrtID).Scan(&g.MdtrtID,
		&g.AgreementNo, &g.BankCode, &g.FixmedinsCode, &g.Held, &g.Holds, &g.Status, &c, &u)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "stay %s has no credit guarantee", mdtrtID)
	}
	g.CreatedAt, g.UpdatedAt = fromMicros(c), fromMicros(u)
	return &g, err
}

// OpenGuarantee opens the credit guarantee of an inpatient stay at
// admission: the person's line holds the initial amount (or what it has
// left), and the hospital takes no deposit. The caller is the hospital
// (it sees only its own stays).
func (s *Service) OpenGuarantee(ctx context.Context, mdtrtID string) (*Guarantee, error) {
	v, err := s.settle.GetVisit(ctx, mdtrtID)
	if err != nil {
		return nil, err
	}
	if v.Type != policy.Inpatient {
		return nil, yibao.Errorf(yibao.CodePrecondition, "visit %s is %s; a credit guarantee is for inpatient stays", mdtrtID, v.Type)
	}
	if v.Status == settlement.VisitSettled || v.Status == settlement.VisitCancelled {
		return nil, yibao.Errorf(yibao.CodePrecondition, "visit %s is %s", mdtrtID, v.Status)
	}
	if g, err := s.guarantee(ctx, s.db, mdtrtID); err == nil {
		return s.Guarantee(ctx, g.MdtrtID) // opened before: the same guarantee
	}
	ag, err := s.ActiveAgreement(ctx, v.PsnNo, SceneInpatient)
	if err != nil {
		return nil, err
	}
	amount := min(s.cfg.GuaranteeInitial, ag.Available)
	if amount <= 0 {
		return nil, yibao.Errorf(yibao.CodeCreditLimitExceeded, "credit_limit_exceeded: the credit line has nothing left to stand guarantee; take a deposit")
	}
	now := s.now()
	unit := engine.Unit{
		Accounts:  []ledger.Account{line(ag.AgreementNo), ledger.ChannelClearing(ag.BankCode)},
		Transfers: []ledger.Transfer{guaranteeHold(mdtrtID, 1, ag, amount)},
	}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO credit_guarantees (mdtrt_id, agreement_no, fixmedins_code, held, holds, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, 1, 'open', ?, ?)`, mdtrtID, ag.AgreementNo, v.FixmedinsCode, int64(amount), micros(now), micros(now)); err != nil {
			if sqlstore.IsUniqueViolation(err) {
				return yibao.Errorf(yibao.CodeConflict, "stay %s has a credit guarantee already", mdtrtID)
			}
			return err
		}
		if err := notice(ctx, tx, ag.AgreementNo, "guarantee", fmt.Sprintf("住院信用担保 %s 元，免交押金 / inpatient credit guarantee of ¥%s instead of a deposit", amount, amount), now); err != nil {
			return err
		}
		return s.record(ctx, tx, "guarantee:"+mdtrtID+":1", ag.AgreementNo, map[string]any{"event": "guarantee_opened", "agreement_no": ag.AgreementNo,
			"mdtrt_id": mdtrtID, "fixmedins_code": v.FixmedinsCode, "held": amount.String()})
	}
	if _, err := s.led.Submit(ctx, unit); err != nil {
		if ledger.ReasonOf(err) == ledger.ReasonExceedsCredits {
			return nil, yibao.Wrap(yibao.CodeCreditLimitExceeded, err, "credit_limit_exceeded: the credit line changed meanwhile and has not enough left; try again or take a deposit")
		}
		return nil, err
	}
	return s.Guarantee(ctx, mdtrtID)
}

func guaranteeHold(mdtrtID string, n int, ag *Agreement, amount money.Fen) ledger.Transfer {
	return ledger.Transfer{ID: guaranteeHoldID(mdtrtID, n), DebitAccountID: line(ag.AgreementNo).ID, CreditAccountID: ledger.ChannelClearing(ag.BankCode).ID,
		Amount: amount, Ledger: ledger.CNY, Code: "credit_guarantee", UserData: mdtrtID, Flags: ledger.Pending}
}

// Guarantee returns a stay's guarantee, grown first if the stay's fees
// outgrew it. The caller must see the visit.
func (s *Service) Guarantee(ctx context.Context, mdtrtID string) (*Guarantee, error) {
	if _, err := s.settle.GetVisit(ctx, mdtrtID); err != nil {
		return nil, err
	}
	g, err := s.guarantee(ctx, s.db, mdtrtID)
	if err != nil {
		return nil, err
	}
	if g.Status == GuaranteeOpen {
		if g, err = s.grow(ctx, g); err != nil {
			return nil, err
		}
	}
	if b, err := s.BankByCode(ctx, g.BankCode); err == nil {
		g.BankName = b.Name
	}
	if acc, err := s.led.Account(ctx, line(g.AgreementNo).ID); err == nil {
		g.Available = acc.Available()
	}
	return g, nil
}

// grow holds more on the line when the stay's estimated out-of-pocket part
// (a pre-settlement of every fee line so far) is above what is held,
// rounded up to the step. A line without room leaves a shortfall the
// hospital sees.
func (s *Service) grow(ctx context.Context, g *Guarantee) (*Guarantee, error) {
	est, err := s.estimate(ctx, g.MdtrtID)
	if err != nil {
		return g, nil // nothing to estimate yet (no fee lines): keep what is held
	}
	g.Estimate = est
	if est <= g.Held {
		return g, nil
	}
	need := est - g.Held
	if step := s.cfg.GuaranteeStep; need%step != 0 {
		need += step - need%step
	}
	ag, err := s.loadAgreement(ctx, s.db, g.AgreementNo)
	if err != nil {
		return nil, err
	}
	acc, err := s.led.Account(ctx, line(g.AgreementNo).ID)
	if err != nil {
		return nil, err
	}
	if ag.Status != StatusActive {
		g.Shortfall = est - g.Held
		return g, nil
	}
	need = min(need, acc.Available())
	if need <= 0 {
		g.Shortfall = est - g.Held
		return g, nil
	}
	n := g.Holds + 1
	now := s.now()
	unit := engine.Unit{Accounts: []ledger.Account{line(g.AgreementNo), ledger.ChannelClearing(ag.BankCode)},
		Transfers: []ledger.Transfer{guaranteeHold(g.MdtrtID, n, ag, need)}}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE credit_guarantees SET held = held + ?, holds = ?, updated_at = ? WHERE mdtrt_id = ? AND holds = ? AND status = 'open'`,
			int64(need), n, micros(now), g.MdtrtID, g.Holds)
		if err != nil {
			return err
		}
		if c, _ := res.RowsAffected(); c != 1 {
			return errRetry
		}
		return s.record(ctx, tx, fmt.Sprintf("guarantee:%s:%d", g.MdtrtID, n), g.AgreementNo, map[string]any{"event": "guarantee_grown",
			"agreement_no": g.AgreementNo, "mdtrt_id": g.MdtrtID, "added": need.String(), "held": (g.Held + need).String()})
	}
	if _, err := s.led.Submit(ctx, unit); err != nil {
		if err == errRetry || ledger.ReasonOf(err) == ledger.ReasonExceedsCredits || ledger.ReasonOf(err) == ledger.ReasonExistsDifferent {
			cur, gerr := s.guarantee(ctx, s.db, g.MdtrtID) // another reader grew it, or the line moved: show what is there
			if gerr != nil {
				return nil, gerr
			}
			cur.Estimate = est
			cur.Shortfall = max(0, est-cur.Held)
			return cur, nil
		}
		return nil, err
	}
	g.Held += need
	g.Holds = n
	g.Shortfall = max(0, est-g.Held)
	return g, nil
}

// estimate is the stay's out-of-pocket part if it were settled now,
// without the personal account.
func (s *Service) estimate(ctx context.Context, mdtrtID string) (money.Fen, error) {
	v, err := s.settle.GetVisit(sys(ctx), mdtrtID)
	if err != nil {
		return 0, err
	}
	kind := settlement.KindMidStay
	if v.Status == settlement.VisitDischarged {
		kind = settlement.KindDischarge
	}
	// The worst case: the personal account may not be used at discharge,
	// so estimate without it.
	no := false
	p, err := s.settle.PreSettle(sys(ctx), mdtrtID, settlement.SettleRequest{Kind: kind, KeepBlocked: true, UseAccount: &no})
	if err != nil {
		return 0, err
	}
	return p.Result.SetlInfo.PsnCashPay, nil
}

// ReleaseGuarantee gives an open guarantee back to the line (the stay was
// cancelled, or is paid another way).
func (s *Service) ReleaseGuarantee(ctx context.Context, mdtrtID string) (*Guarantee, error) {
	if _, err := s.settle.GetVisit(ctx, mdtrtID); err != nil {
		return nil, err
	}
	g, err := s.guarantee(ctx, s.db, mdtrtID)
	if err != nil {
		return nil, err
	}
	if g.Status != GuaranteeOpen {
		return g, nil
	}
	now := s.now()
	unit := engine.Unit{Accounts: []ledger.Account{line(g.AgreementNo)}}
	for i := 1; i <= g.Holds; i++ {
		id := guaranteeHoldID(mdtrtID, i)
		unit.Transfers = append(unit.Transfers, ledger.Transfer{ID: id + ":release", PendingID: id, Flags: ledger.VoidPending, Code: "guarantee_release", UserData: mdtrtID})
	}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE credit_guarantees SET status = 'released', updated_at = ? WHERE mdtrt_id = ? AND status = 'open' AND holds = ?`,
			micros(now), mdtrtID, g.Holds)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errRetry
		}
		return s.record(ctx, tx, "guarantee:"+mdtrtID+":released", g.AgreementNo, map[string]any{"event": "guarantee_released",
			"agreement_no": g.AgreementNo, "mdtrt_id": mdtrtID, "released": g.Held.String()})
	}
	if _, err := s.led.Submit(ctx, unit); err != nil {
		return nil, err
	}
	return s.Guarantee(ctx, mdtrtID)
}

// GrowOpen refreshes every open guarantee (the daily fees of the stays):
// it returns how many it looked at.
func (s *Service) GrowOpen(ctx context.Context) (int, error) {
	ids, err := s.db.Strings(ctx, `SELECT mdtrt_id FROM credit_guarantees WHERE status = 'open' ORDER BY updated_at LIMIT 200`)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		g, err := s.guarantee(ctx, s.db, id)
		if err != nil {
			return 0, err
		}
		if _, err := s.grow(sys(ctx), g); err != nil {
			s.log.Warn("growing a credit guarantee", "mdtrt_id", id, "err", err)
		}
	}
	return len(ids), nil
}
