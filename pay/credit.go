package pay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"yibao"
	"yibao/credit"
	"yibao/money"
	"yibao/pay/channel"
	"yibao/settlement"
	"yibao/sqlstore"
)

// ChannelCredit pays the out-of-pocket part on the patient's bank credit
// line (信用就医).
const ChannelCredit = "credit"

// SetCredit connects the credit service: one-code payments may then use
// channel "credit", and the credit service may collect repayments
// through the wallets.
func (s *Service) SetCredit(c *credit.Service) {
	s.credit = c
	c.Wallet = s
}

// payOnCredit settles the visit with its out-of-pocket part held on the
// credit line in the same ledger unit (a line without enough left fails
// the whole settlement with credit_limit_exceeded; at discharge the
// stay's guarantee is released into it), tells the bank of the draw and,
// once the bank has taken it, completes the settlement: the hold is
// posted and the bank's clearing pays the hospital's receivable. A bank
// refusal voids the settlement; a lost answer leaves the order paying for
// the recovery loop, which tells the bank again (idempotent by draw id).
func (s *Service) payOnCredit(ctx context.Context, v *settlement.Visit, req settlement.SettleRequest, o *Order) (*Order, error) {
	if s.credit == nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "credit payment is not connected")
	}
	cp, err := s.credit.ForPayment(ctx, v)
	if err != nil {
		return nil, err
	}
	o.Channel, o.AgreementNo = ChannelCredit, cp.Agreement.AgreementNo
	req.PayMode, req.Hold, req.Release = settlement.PayLater, cp.Hold, cp.Release
	req.Also = func(ctx context.Context, tx *sqlstore.Tx, st *settlement.Settlement) error {
		o.fill(st)
		o.Status, o.fundState, o.acctState = StatusPaying, legState(o.FundPay, LegReserved), legState(o.AcctPay, LegReserved)
		o.selfState = LegNone
		if o.SelfPay > 0 {
			o.selfState = LegPaying
			o.Attempt, o.OutTradeNo = 1, attemptNo(o.PayOrdID, 1)
		}
		if err := s.credit.Held(ctx, tx, cp, st, o.PayOrdID, o.OutTradeNo); err != nil {
			return err
		}
		return s.insert(ctx, tx, o, "settled", fmt.Sprintf("settlement %s pending; %s yuan held on credit agreement %s", st.SetlID, o.SelfPay, cp.Agreement.AgreementNo))
	}
	if _, err := s.settle.Settle(ctx, v.MdtrtID, req); err != nil {
		return nil, err
	}
	if o.SelfPay == 0 {
		return s.finishInsured(ctx, o.PayOrdID)
	}
	s.drawCredit(ctx, o.PayOrdID)
	return s.Get(ctx, o.PayOrdID)
}

// confirmOnCredit settles a mobile bill the patient confirmed with credit
// as the payer: the settlement holds the out-of-pocket part on the line in
// its own unit, then the draw goes to the bank as for a one-code payment.
func (s *Service) confirmOnCredit(ctx context.Context, psnNo string, o *Order) (*Order, error) {
	if s.credit == nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "credit payment is not connected")
	}
	v, err := s.settle.GetVisit(sys(ctx), o.MdtrtID)
	if err != nil {
		return nil, err
	}
	cp, err := s.credit.ForPayment(ctx, v)
	if err != nil {
		return nil, err
	}
	id := o.PayOrdID
	req := settlement.SettleRequest{PayMode: settlement.PayLater, UseAccount: &o.acctUsed, Hold: cp.Hold, Release: cp.Release}
	if o.Preview != nil {
		req.Kind = o.Preview.Kind
	}
	req.Also = func(ctx context.Context, tx *sqlstore.Tx, st *settlement.Settlement) error {
		cur, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		self := LegNone
		extra := "setl_id = ?, medfee_sumamt = ?, fund_pay = ?, acct_pay = ?, self_pay = ?, channel = ?, agreement_no = ?"
		args := []any{st.SetlID, int64(st.MedfeeSumamt), int64(st.FundPaySumamt), int64(st.AcctPay), int64(st.PsnCashPay), ChannelCredit, cp.Agreement.AgreementNo}
		draw := ""
		if st.PsnCashPay > 0 {
			self, draw = LegPaying, attemptNo(id, 1)
			extra += ", attempt = 1, out_trade_no = ?"
			args = append(args, draw)
		}
		ok, err := s.transition(ctx, tx, cur, change{from: []string{StatusAwaiting}, status: StatusPaying, fund: legState(st.FundPaySumamt, LegReserved),
			acct: legState(st.AcctPay, LegReserved), self: self, checkAt: ptr(s.now().Add(s.cfg.CheckAfter)),
			event: "confirmed", detail: fmt.Sprintf("the patient confirmed on credit (agreement %s); settlement %s pending", cp.Agreement.AgreementNo, st.SetlID),
			extraSQL: extra, extraArgs: args})
		if err != nil || !ok {
			return errOr(err, yibao.Errorf(yibao.CodeConflict, "bill %s changed meanwhile", id))
		}
		return s.credit.Held(ctx, tx, cp, st, id, draw)
	}
	if _, err := s.settle.Settle(sys(ctx), o.MdtrtID, req); err != nil {
		return nil, err
	}
	cur, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if cur.SelfPay == 0 {
		if _, err := s.finishInsured(sys(ctx), id); err != nil {
			return nil, err
		}
	} else {
		s.drawCredit(ctx, id)
	}
	return s.Bill(ctx, psnNo, id)
}

// drawCredit tells the bank of the order's draw and acts on the answer.
func (s *Service) drawCredit(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	o, err := s.load(ctx, s.db, id)
	if err != nil || o.Status != StatusPaying || o.selfState != LegPaying {
		return
	}
	if s.cfg.CrashAfterCharge != nil && s.cfg.CrashAfterCharge(id) {
		return // fault tests: the process "dies" with the hold in place
	}
	outcome, detail := s.credit.NotifyDraw(ctx, o.OutTradeNo)
	switch outcome {
	case credit.DrawAccepted:
		if _, err := s.finishCredit(ctx, id); err != nil {
			s.log.Error("finishing a credit payment", "order", id, "err", err)
		}
	case credit.DrawRefused:
		if _, err := s.settle.Void(sys(ctx), o.SetlID); err != nil {
			s.log.Error("voiding a settlement the bank refused", "order", id, "err", err)
			return
		}
		if err := s.credit.Voided(ctx, o.OutTradeNo); err != nil {
			s.log.Error("recording a refused credit draw", "order", id, "err", err)
		}
		if err := s.markVoided(ctx, o, "bank_refused: "+detail+"; settle again and pay another way"); err != nil {
			s.log.Error("recording a bank refusal", "order", id, "err", err)
		}
	default:
		s.note(ctx, id, "draw_unknown", detail+"; will tell the bank again")
		wait := max(s.cfg.CheckAfter, min(s.now().Sub(o.CreatedAt)/4, s.cfg.CheckMax))
		if _, err := s.db.Exec(ctx, `UPDATE payment_orders SET check_at = ? WHERE pay_ord_id = ? AND status = 'paying'`, micros(s.now().Add(wait)), id); err != nil {
			s.log.Error("scheduling a credit check", "order", id, "err", err)
		}
	}
}

// finishCredit completes a credit order whose draw the bank took: the
// settlement's legs and hold are posted and the draw becomes the
// patient's statement, in one unit; then the order is paid. Running it
// again (recovery after a crash) changes nothing.
func (s *Service) finishCredit(ctx context.Context, id string) (*Order, error) {
	o, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if o.Status != StatusPaying {
		return o, nil
	}
	ag, err := s.credit.AgreementByNo(ctx, o.AgreementNo)
	if err != nil {
		return nil, err
	}
	if _, err := s.settle.CompleteAlso(sys(ctx), o.SetlID, ag.BankCode, s.credit.Posted(o.OutTradeNo)); err != nil {
		return nil, err
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		cur, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		_, err = s.transition(ctx, tx, cur, change{from: []string{StatusPaying}, status: StatusPaid,
			fund: legState(cur.FundPay, LegPaid), acct: legState(cur.AcctPay, LegPaid), self: legState(cur.SelfPay, LegPaid),
			txnID: cur.OutTradeNo, paidAt: s.now(), checkAt: &time.Time{}, reason: ptr(""),
			event: "paid", detail: fmt.Sprintf("%s yuan on credit agreement %s (bank %s)", cur.SelfPay, cur.AgreementNo, ag.BankCode), topic: "payment.paid"})
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.load(ctx, s.db, id)
}

// ChargeAgreement charges a person's wallet agreement for a credit
// repayment (credit.Wallet). A refusal is failed_precondition; an
// unknown outcome any other error.
func (s *Service) ChargeAgreement(ctx context.Context, psnNo, wallet, outTradeNo string, amount money.Fen, description string) (bool, error) {
	ag, err := s.activeAgreement(ctx, psnNo, wallet)
	if err != nil {
		return false, err
	}
	if amount > ag.Limit {
		return false, yibao.Errorf(yibao.CodePrecondition, "exceeds_agreement_limit: %s yuan is above the wallet agreement's %s yuan per payment", amount, ag.Limit)
	}
	ch, err := s.channel(ag.Channel)
	if err != nil {
		return false, err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ChargeTimeout)
	defer cancel()
	w, err := ch.Charge(cctx, channel.ChargeRequest{OutTradeNo: outTradeNo, Amount: int64(amount), Description: description,
		AgreementID: ag.WalletID, PayerRef: ag.PayerRef})
	var d *channel.DeclineError
	switch {
	case err == nil && w.State == channel.StateSuccess:
		return true, nil
	case errors.As(err, &d):
		return false, yibao.Errorf(yibao.CodePrecondition, "wallet_declined: %s: %s", d.Code, d.Message)
	case err == nil && (w.State == channel.StateClosed || w.State == channel.StatePayError):
		return false, yibao.Errorf(yibao.CodePrecondition, "wallet_declined: %s", w.State)
	case err == nil:
		return false, fmt.Errorf("the wallet says %s", w.State)
	}
	return false, err
}

// QueryCharge asks a wallet about a repayment charge (credit.Wallet).
func (s *Service) QueryCharge(ctx context.Context, wallet, outTradeNo string) (string, error) {
	ch, err := s.channel(wallet)
	if err != nil {
		return "", err
	}
	w, err := ch.Query(ctx, outTradeNo)
	switch {
	case errors.Is(err, channel.ErrNotFound):
		return credit.ChargeNotFound, nil
	case err != nil:
		return "", err
	case w.State == channel.StateSuccess:
		return credit.ChargePaid, nil
	case w.State == channel.StateClosed || w.State == channel.StatePayError:
		return credit.ChargeDeclined, nil
	}
	return credit.ChargePending, nil
}
