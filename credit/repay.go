package credit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"yibao"
	"yibao/credit/bankapi"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
)

// Repayment is one repayment of a credit agreement.
type Repayment struct {
	RepayID     string    `json:"repay_id"`
	AgreementNo string    `json:"agreement_no"`
	Channel     string    `json:"channel"`
	Source      string    `json:"source"` // bank (its counter or app) | platform (a wallet we charged)
	Amount      money.Fen `json:"amount"`
	Applied     money.Fen `json:"applied"`
	Excess      money.Fen `json:"excess,omitempty"`
	Status      string    `json:"status"` // paying | applied | declined
	PaidAt      time.Time `json:"paid_at"`
}

// Repayment outcomes for a bank's callback.
const (
	OutcomeApplied   = "applied"
	OutcomeDuplicate = "duplicate"
)

// applyRepayment books a repayment once (idempotent by repay id): the
// debt falls by at most what is owed, the rest is recorded as excess for
// the bank to return, statements are paid oldest first, and the line gets
// the applied amount back, unless it is suspended or closed (then the
// amount is moved on to the bank's limits in the same unit, so the line
// stays empty). from is where the money came from in the ledger.
func (s *Service) applyRepayment(ctx context.Context, rp Repayment, source, bankCode string, from ledger.Account) (string, *Repayment, error) {
	for attempt := 0; ; attempt++ {
		if prev, err := s.repayment(ctx, rp.RepayID); err == nil && prev.Status == "applied" {
			if prev.Amount != rp.Amount || prev.AgreementNo != rp.AgreementNo {
				return "", prev, yibao.Errorf(yibao.CodeConflict, "repayment %s was recorded with other figures (%s yuan on %s)", rp.RepayID, prev.Amount, prev.AgreementNo)
			}
			return OutcomeDuplicate, prev, nil
		}
		a, err := s.loadAgreement(ctx, s.db, rp.AgreementNo)
		if err != nil {
			return "", nil, err
		}
		if a.BankCode != bankCode {
			return "", nil, yibao.Errorf(yibao.CodeNotFound, "credit agreement %s not found", rp.AgreementNo)
		}
		applied := min(rp.Amount, a.Outstanding)
		excess := rp.Amount - applied
		now := s.now()
		unit := engine.Unit{Accounts: []ledger.Account{line(a.AgreementNo), from, ledger.CreditLimits(a.BankCode)}}
		if applied > 0 {
			unit.Transfers = append(unit.Transfers, ledger.Transfer{ID: "RP:" + rp.RepayID, DebitAccountID: from.ID, CreditAccountID: line(a.AgreementNo).ID,
				Amount: applied, Ledger: ledger.CNY, Code: "credit_repayment", UserData: a.AgreementNo})
			if a.Status != StatusActive {
				unit.Transfers = append(unit.Transfers, limitTransfer(a.AgreementNo, a.BankCode, a.version+1, -applied))
			}
		}
		unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
			res, err := tx.Exec(ctx, `UPDATE credit_agreements SET outstanding = outstanding - ?, version = version + 1, updated_at = ? WHERE agreement_no = ? AND version = ?`,
				int64(applied), micros(now), a.AgreementNo, a.version)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return errRetry
			}
			res, err = tx.Exec(ctx, `UPDATE credit_repayments SET applied = ?, excess = ?, status = 'applied', paid_at = ?, day = ? WHERE repay_id = ? AND status = 'paying'`,
				int64(applied), int64(excess), micros(rp.PaidAt), yibao.DateOf(rp.PaidAt), rp.RepayID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				if _, err := tx.Exec(ctx, `INSERT INTO credit_repayments (repay_id, agreement_no, channel, source, amount, applied, excess, status, day, paid_at, created_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, 'applied', ?, ?, ?)`, rp.RepayID, a.AgreementNo, rp.Channel, source, int64(rp.Amount), int64(applied), int64(excess),
					yibao.DateOf(rp.PaidAt), micros(rp.PaidAt), micros(now)); err != nil {
					if sqlstore.IsUniqueViolation(err) {
						return errRetry // a duplicate won the race: read it again
					}
					return err
				}
			}
			if err := s.payStatements(ctx, tx, a.AgreementNo, applied, now); err != nil {
				return err
			}
			msg := fmt.Sprintf("已还款 %s 元，剩余欠款 %s 元 / repaid ¥%s, ¥%s still owed", applied, a.Outstanding-applied, applied, a.Outstanding-applied)
			if err := notice(ctx, tx, a.AgreementNo, "repaid", msg, now); err != nil {
				return err
			}
			if excess > 0 {
				if err := notice(ctx, tx, a.AgreementNo, "excess", fmt.Sprintf("多还 %s 元，银行将退回 / ¥%s paid beyond the debt; the bank returns it", excess, excess), now); err != nil {
					return err
				}
			}
			return s.record(ctx, tx, "repayment:"+rp.RepayID, a.AgreementNo, map[string]any{"event": "repayment", "agreement_no": a.AgreementNo,
				"repay_id": rp.RepayID, "channel": rp.Channel, "source": source, "amount": rp.Amount.String(), "applied": applied.String(), "excess": excess.String()})
		}
		_, err = s.led.Submit(ctx, unit)
		if err == nil {
			out, err := s.repayment(ctx, rp.RepayID)
			return OutcomeApplied, out, err
		}
		if (errors.Is(err, errRetry) || ledger.ReasonOf(err) == ledger.ReasonExistsDifferent) && attempt < 20 {
			time.Sleep(time.Duration(attempt+1) * time.Millisecond)
			continue
		}
		return "", nil, err
	}
}

// payStatements spreads amount over the agreement's unpaid statements,
// oldest first.
func (s *Service) payStatements(ctx context.Context, tx *sqlstore.Tx, no string, amount money.Fen, now time.Time) error {
	if amount <= 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT statement_no, amount - repaid FROM credit_statements WHERE agreement_no = ? AND status <> 'paid' ORDER BY issued_at, statement_no`, no)
	if err != nil {
		return err
	}
	type due struct {
		no   string
		left money.Fen
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.no, &d.left); err != nil {
			rows.Close()
			return err
		}
		list = append(list, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range list {
		if amount <= 0 {
			break
		}
		pay := min(amount, d.left)
		amount -= pay
		if pay == d.left {
			_, err = tx.Exec(ctx, `UPDATE credit_statements SET repaid = repaid + ?, status = 'paid', paid_at = ? WHERE statement_no = ?`, int64(pay), micros(now), d.no)
		} else {
			_, err = tx.Exec(ctx, `UPDATE credit_statements SET repaid = repaid + ? WHERE statement_no = ?`, int64(pay), d.no)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) repayment(ctx context.Context, id string) (*Repayment, error) {
	var r Repayment
	var p int64
	err := s.db.QueryRow(ctx, `SELECT repay_id, agreement_no, channel, source, amount, applied, excess, status, paid_at FROM credit_repayments WHERE repay_id = ?`, id).
		Scan(&r.RepayID, &r.AgreementNo, &r.Channel, &r.Source, &r.Amount, &r.Applied, &r.Excess, &r.Status, &p)
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "repayment %s not found", id)
	}
	r.PaidAt = fromMicros(p)
	return &r, err
}

// RepayRequest is a patient's repayment through a wallet.
type RepayRequest struct {
	Amount money.Fen `json:"amount"` // 0: everything owed
	Wallet string    `json:"wallet"` // wechat | alipay: the wallet whose withholding agreement pays
}

// Repay charges the person's wallet and applies the repayment. The amount
// may not exceed the debt. A wallet whose answer was lost leaves the
// repayment paying until the recovery asks the wallet again.
func (s *Service) Repay(ctx context.Context, psnNo, no string, r RepayRequest) (*Repayment, error) {
	if s.Wallet == nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "no wallet is connected; repay at the bank")
	}
	a, err := s.Agreement(ctx, psnNo, no)
	if err != nil {
		return nil, err
	}
	if r.Amount == 0 {
		r.Amount = a.Outstanding
	}
	switch {
	case a.Outstanding == 0:
		return nil, yibao.Errorf(yibao.CodePrecondition, "nothing is owed on %s", no)
	case r.Amount < 0:
		return nil, yibao.FieldError("amount", "must be positive")
	case r.Amount > a.Outstanding:
		return nil, yibao.FieldError("amount", "%s yuan is more than the %s yuan owed", r.Amount, a.Outstanding)
	case r.Wallet != "wechat" && r.Wallet != "alipay":
		return nil, yibao.FieldError("wallet", "want wechat or alipay")
	}
	rp := Repayment{RepayID: newID("RP"), AgreementNo: no, Channel: r.Wallet, Source: "platform", Amount: r.Amount, Status: "paying"}
	if _, err := s.db.Exec(ctx, `INSERT INTO credit_repayments (repay_id, agreement_no, channel, source, amount, applied, status, out_trade_no, created_at)
		VALUES (?, ?, ?, 'platform', ?, 0, 'paying', ?, ?)`, rp.RepayID, no, r.Wallet, int64(r.Amount), rp.RepayID, micros(s.now())); err != nil {
		return nil, err
	}
	paid, err := s.Wallet.ChargeAgreement(ctx, psnNo, r.Wallet, rp.RepayID, r.Amount, "信用就医还款 "+no)
	return s.afterWallet(ctx, a, rp, paid, err)
}

func (s *Service) afterWallet(ctx context.Context, a *Agreement, rp Repayment, paid bool, err error) (*Repayment, error) {
	switch {
	case err == nil && paid:
		rp.PaidAt = s.now().UTC()
		if _, _, err := s.applyRepayment(ctx, rp, "platform", a.BankCode, ledger.ChannelClearing(rp.Channel)); err != nil {
			return nil, err
		}
		s.tellBank(ctx, a, rp)
		return s.repayment(ctx, rp.RepayID)
	case yibao.IsCode(err, yibao.CodePrecondition):
		if err2 := s.declineRepayment(ctx, rp.RepayID); err2 != nil {
			return nil, err2
		}
		return nil, err
	}
	return s.repayment(ctx, rp.RepayID) // unknown: paying until the recovery knows
}

// declineRepayment marks a repayment the wallet refused (or never took).
func (s *Service) declineRepayment(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, `UPDATE credit_repayments SET status = 'declined' WHERE repay_id = ? AND status = 'paying'`, id)
	return err
}

// tellBank reports a repayment we collected (the bank also finds it in
// the day's settlement file).
func (s *Service) tellBank(ctx context.Context, a *Agreement, rp Repayment) {
	bk, err := s.bank(a.BankCode)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BankTimeout)
	defer cancel()
	if err := bk.Repaid(cctx, bankapi.Repayment{RepayID: rp.RepayID, AgreementNo: a.AgreementNo, BankAgreementID: a.BankAgreementID,
		Channel: rp.Channel, AmountFen: int64(rp.Amount), PaidAt: rp.PaidAt}); err != nil {
		s.log.Warn("telling the bank of a repayment", "repayment", rp.RepayID, "err", err)
	}
}

// RecoverRepayments asks the wallets about repayments whose answer was
// lost.
func (s *Service) RecoverRepayments(ctx context.Context) (int, error) {
	if s.Wallet == nil {
		return 0, nil
	}
	rows, err := s.db.Query(ctx, `SELECT repay_id, agreement_no, channel, amount FROM credit_repayments WHERE status = 'paying' AND created_at <= ? LIMIT 100`,
		micros(s.now().Add(-5*time.Second)))
	if err != nil {
		return 0, err
	}
	var list []Repayment
	for rows.Next() {
		var r Repayment
		if err := rows.Scan(&r.RepayID, &r.AgreementNo, &r.Channel, &r.Amount); err != nil {
			rows.Close()
			return 0, err
		}
		list = append(list, r)
	}
	rows.Close()
	for _, rp := range list {
		a, err := s.loadAgreement(ctx, s.db, rp.AgreementNo)
		if err != nil {
			return 0, err
		}
		state, err := s.Wallet.QueryCharge(ctx, rp.Channel, rp.RepayID)
		switch {
		case err != nil:
			continue
		case state == ChargePaid:
			if _, err := s.afterWallet(ctx, a, rp, true, nil); err != nil {
				s.log.Error("applying a recovered repayment", "repayment", rp.RepayID, "err", err)
			}
		case state == ChargeDeclined || state == ChargeNotFound:
			if err := s.declineRepayment(ctx, rp.RepayID); err != nil {
				return 0, err
			}
		}
	}
	return len(list), nil
}

// Callback applies one bank-initiated event, once per event id: a
// repayment at the bank, a limit change, a suspension, a reinstatement or
// a closure. It returns what it did.
func (s *Service) Callback(ctx context.Context, bankCode string, cb *bankapi.Callback) (string, error) {
	ctx = sys(ctx)
	if cb.EventID == "" || cb.AgreementNo == "" {
		return "", yibao.FieldError("event_id", "a callback names its event and agreement")
	}
	var seen string
	err := s.db.QueryRow(ctx, `SELECT outcome FROM credit_callbacks WHERE event_id = ? AND bank_code = ?`, cb.EventID, bankCode).Scan(&seen)
	if err == nil {
		return OutcomeDuplicate, nil
	}
	if !notFound(err) {
		return "", err
	}
	a, err := s.loadAgreement(ctx, s.db, cb.AgreementNo)
	if err != nil || a.BankCode != bankCode || a.BankAgreementID != cb.BankAgreementID {
		return "", yibao.Errorf(yibao.CodeNotFound, "credit agreement %s not found", cb.AgreementNo)
	}
	outcome := OutcomeApplied
	switch cb.Type {
	case "repayment":
		if cb.Repayment == nil || cb.Repayment.AmountFen <= 0 {
			return "", yibao.FieldError("repayment", "a repayment callback carries a positive amount")
		}
		rp := Repayment{RepayID: cb.Repayment.RepayID, AgreementNo: a.AgreementNo, Channel: orDefault(cb.Repayment.Channel, "counter"),
			Amount: money.Fen(cb.Repayment.AmountFen), PaidAt: cb.Repayment.PaidAt}
		if rp.RepayID == "" {
			rp.RepayID = cb.EventID
		}
		if rp.PaidAt.IsZero() {
			rp.PaidAt = s.now().UTC()
		}
		outcome, _, err = s.applyRepayment(ctx, rp, "bank", bankCode, ledger.BankRepayments(bankCode))
	case "limit_changed":
		if cb.LimitFen < 0 {
			return "", yibao.FieldError("limit_fen", "must not be negative")
		}
		err = s.setLimit(ctx, a.AgreementNo, a.Status, money.Fen(cb.LimitFen), orDefault(cb.Reason, "limit changed by the bank"), func(ctx context.Context, tx *sqlstore.Tx, _ *Agreement) error {
			return notice(ctx, tx, a.AgreementNo, "limit", fmt.Sprintf("银行调整额度为 %s 元 / the bank set the limit to ¥%s", money.Fen(cb.LimitFen), money.Fen(cb.LimitFen)), s.now())
		})
	case "suspended":
		err = s.setLimit(ctx, a.AgreementNo, StatusSuspended, a.Limit, orDefault(cb.Reason, "suspended by the bank"), func(ctx context.Context, tx *sqlstore.Tx, _ *Agreement) error {
			return notice(ctx, tx, a.AgreementNo, "suspended", "银行暂停了信用就医 / the bank suspended credit payment: "+cb.Reason, s.now())
		})
	case "reinstated":
		limit := a.Limit
		if cb.LimitFen > 0 {
			limit = money.Fen(cb.LimitFen)
		}
		err = s.setLimit(ctx, a.AgreementNo, StatusActive, limit, "", func(ctx context.Context, tx *sqlstore.Tx, _ *Agreement) error {
			_, err := tx.Exec(ctx, `UPDATE credit_agreements SET overdue_since = 0 WHERE agreement_no = ?`, a.AgreementNo)
			if err != nil {
				return err
			}
			return notice(ctx, tx, a.AgreementNo, "reinstated", "信用就医已恢复 / credit payment is available again", s.now())
		})
	case "closed":
		err = s.setLimit(ctx, a.AgreementNo, StatusClosed, 0, orDefault(cb.Reason, "closed by the bank"), func(ctx context.Context, tx *sqlstore.Tx, _ *Agreement) error {
			return notice(ctx, tx, a.AgreementNo, "closed", "银行关闭了信用就医 / the bank closed credit payment", s.now())
		})
	default:
		return "", yibao.FieldError("type", "want repayment, limit_changed, suspended, reinstated or closed")
	}
	if err != nil {
		return "", err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO credit_callbacks (event_id, bank_code, type, outcome, received_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		cb.EventID, bankCode, cb.Type, outcome, micros(s.now())); err != nil {
		return "", err
	}
	return outcome, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
