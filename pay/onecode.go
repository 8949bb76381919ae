package pay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"yibao"
	"yibao/money"
	"yibao/pay/channel"
	"yibao/settlement"
	"yibao/sqlstore"
)

// PayRequest is the cashier's one-code payment of a visit: settle every
// unsettled fee line and collect the out-of-pocket part in one step.
type PayRequest struct {
	// Channel collects the out-of-pocket part: "auto" (the patient's
	// active withholding agreement), "wechat", "alipay", "credit" (the
	// patient's bank credit line) or "counter" (cash or card at the
	// counter).
	Channel     string `json:"channel"`
	Kind        string `json:"kind,omitempty"` // inpatients: mid_stay or discharge
	UseAccount  *bool  `json:"acct_used_flag,omitempty"`
	FamilyPsnNo string `json:"family_psn_no,omitempty"`
}

func sys(ctx context.Context) context.Context {
	return yibao.WithPrincipal(ctx, yibao.System("pay"))
}

// PayVisit settles a visit and collects its out-of-pocket part. The fund
// and personal-account legs are reserved with the settlement, the wallet
// is charged, and only a successful charge posts them: all or nothing. A
// wallet whose answer is lost leaves the order paying until a query
// settles it. A refusal leaves the settlement pending for the cashier to
// collect at the counter, try another wallet, or cancel.
func (s *Service) PayVisit(ctx context.Context, mdtrtID string, r PayRequest) (*Order, error) {
	v, err := s.settle.GetVisit(ctx, mdtrtID)
	if err != nil {
		return nil, err
	}
	if err := s.faceCap(ctx, v); err != nil {
		return nil, err
	}
	who, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if r.Channel == "" {
		r.Channel = "auto"
	}
	req := settlement.SettleRequest{Kind: r.Kind, UseAccount: r.UseAccount, FamilyPsnNo: r.FamilyPsnNo}
	o := &Order{PayOrdID: newID("PO"), Mode: ModeOneCode, MdtrtID: v.MdtrtID, PsnNo: v.PsnNo, FixmedinsCode: v.FixmedinsCode,
		CreatedBy: who.ID(), acctUsed: r.UseAccount == nil || *r.UseAccount}
	if r.Channel == ChannelCounter {
		req.PayMode = settlement.PayCash
		o.Channel = ChannelCounter
		req.Also = func(ctx context.Context, tx *sqlstore.Tx, st *settlement.Settlement) error {
			o.fill(st)
			o.Status, o.fundState, o.acctState, o.selfState = StatusPaid, legState(o.FundPay, LegPaid), legState(o.AcctPay, LegPaid), legState(o.SelfPay, LegPaid)
			o.PaidAt = &st.CreatedAt
			return s.insert(ctx, tx, o, "paid", "collected at the counter")
		}
		if _, err := s.settle.Settle(ctx, mdtrtID, req); err != nil {
			return nil, err
		}
		return s.Get(ctx, o.PayOrdID)
	}
	if r.Channel == ChannelCredit {
		return s.payOnCredit(ctx, v, req, o)
	}
	ag, err := s.activeAgreement(ctx, v.PsnNo, r.Channel)
	if err != nil {
		return nil, err
	}
	o.Channel, o.AgreementNo = ag.Channel, ag.AgreementNo
	if _, err := s.channel(ag.Channel); err != nil {
		return nil, err
	}
	req.PayMode = settlement.PayLater
	req.Also = func(ctx context.Context, tx *sqlstore.Tx, st *settlement.Settlement) error {
		o.fill(st)
		o.Status, o.fundState, o.acctState = StatusPaying, legState(o.FundPay, LegReserved), legState(o.AcctPay, LegReserved)
		switch {
		case o.SelfPay == 0:
			o.selfState = LegNone
		case o.SelfPay > ag.Limit:
			o.Status, o.selfState = StatusDeclined, LegDeclined
			o.Reason = fmt.Sprintf("exceeds_agreement_limit: out-of-pocket %s yuan is above the agreement's %s yuan per payment", o.SelfPay, ag.Limit)
		default:
			o.selfState = LegPaying
			o.Attempt, o.OutTradeNo = 1, attemptNo(o.PayOrdID, 1)
		}
		return s.insert(ctx, tx, o, "settled", "settlement "+st.SetlID+" pending; legs reserved")
	}
	if _, err := s.settle.Settle(ctx, mdtrtID, req); err != nil {
		return nil, err
	}
	switch {
	case o.SelfPay == 0:
		return s.finishInsured(ctx, o.PayOrdID)
	case o.Status == StatusDeclined:
		return s.Get(ctx, o.PayOrdID)
	}
	s.charge(ctx, o, ag)
	return s.Get(ctx, o.PayOrdID)
}

func attemptNo(id string, n int) string { return fmt.Sprintf("%s-%02d", id, n) }

// fill copies a settlement's figures into a new order.
func (o *Order) fill(st *settlement.Settlement) {
	o.SetlID = st.SetlID
	o.MedfeeSumamt, o.FundPay, o.AcctPay, o.SelfPay = st.MedfeeSumamt, st.FundPaySumamt, st.AcctPay, st.PsnCashPay
}

// insert writes a new order (and its first wallet attempt) inside tx.
func (s *Service) insert(ctx context.Context, tx *sqlstore.Tx, o *Order, what, detail string) error {
	now := s.now()
	o.CreatedAt, o.UpdatedAt = now.UTC(), now.UTC()
	var preview string
	if o.Preview != nil {
		b, _ := json.Marshal(o.Preview)
		preview = string(b)
	}
	var setl any
	if o.SetlID != "" {
		setl = o.SetlID
	}
	var paid, check int64
	if o.PaidAt != nil {
		paid = micros(*o.PaidAt)
	}
	if o.Status == StatusPaying {
		check = micros(now.Add(s.cfg.CheckAfter))
	}
	acct := 0
	if o.acctUsed {
		acct = 1
	}
	_, err := tx.Exec(ctx, `INSERT INTO payment_orders (pay_ord_id, mode, setl_id, mdtrt_id, psn_no, fixmedins_code, status, channel, medfee_sumamt,
		fund_pay, acct_pay, self_pay, fund_status, acct_status, self_status, attempt, out_trade_no, agreement_no, pay_token, med_org_ord, acct_used,
		preview, reason, created_by, created_at, updated_at, paid_at, check_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.PayOrdID, o.Mode, setl, o.MdtrtID, o.PsnNo, o.FixmedinsCode, o.Status, o.Channel, int64(o.MedfeeSumamt), int64(o.FundPay), int64(o.AcctPay),
		int64(o.SelfPay), o.fundState, o.acctState, o.selfState, o.Attempt, o.OutTradeNo, o.AgreementNo, o.payToken, o.MedOrgOrd, acct, preview,
		o.Reason, o.CreatedBy, micros(now), micros(now), paid, check)
	if sqlstore.IsUniqueViolation(err) {
		return yibao.Errorf(yibao.CodeConflict, "a payment order for this settlement or HIS order number exists already")
	}
	if err != nil {
		return err
	}
	if o.OutTradeNo != "" {
		if err := insertAttempt(ctx, tx, o, now); err != nil {
			return err
		}
	}
	if err := event(ctx, tx, o.PayOrdID, now, what, detail); err != nil {
		return err
	}
	if o.Status == StatusPaid {
		return s.outbox(ctx, tx, "payment.paid", o, now)
	}
	return nil
}

func insertAttempt(ctx context.Context, tx *sqlstore.Tx, o *Order, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO payment_attempts (out_trade_no, pay_ord_id, channel, amount, status, created_at) VALUES (?, ?, ?, ?, 'paying', ?)`,
		o.OutTradeNo, o.PayOrdID, o.Channel, int64(o.SelfPay), micros(now))
	return err
}

// charge sends the wallet charge of the order's current attempt and acts
// on a definite answer; an unknown one is queried once at once and
// otherwise left to the recovery loop.
func (s *Service) charge(ctx context.Context, o *Order, ag *Agreement) {
	ch, err := s.channel(o.Channel)
	if err != nil {
		s.log.Error("payment channel vanished", "order", o.PayOrdID, "err", err)
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ChargeTimeout)
	w, err := ch.Charge(cctx, channel.ChargeRequest{OutTradeNo: o.OutTradeNo, Amount: int64(o.SelfPay), Description: "医保自付 " + o.SetlID,
		AgreementID: ag.WalletID, PayerRef: ag.PayerRef, NotifyURL: s.notifyURL(o.Channel)})
	cancel()
	if s.cfg.CrashAfterCharge != nil && s.cfg.CrashAfterCharge(o.PayOrdID) {
		return
	}
	s.afterCharge(context.WithoutCancel(ctx), o, w, err)
}

// afterCharge acts on the answer to a charge (or a query).
func (s *Service) afterCharge(ctx context.Context, o *Order, w *channel.Order, err error) {
	var d *channel.DeclineError
	switch {
	case err == nil && w.State == channel.StateSuccess:
		if _, err := s.finish(ctx, o.PayOrdID, w, "charge answer"); err != nil {
			s.log.Error("finishing a paid order", "order", o.PayOrdID, "err", err)
		}
	case errors.As(err, &d):
		if err := s.decline(ctx, o.PayOrdID, o.OutTradeNo, d.Code+": "+d.Message); err != nil {
			s.log.Error("recording a decline", "order", o.PayOrdID, "err", err)
		}
	case err == nil && (w.State == channel.StateClosed || w.State == channel.StatePayError):
		if err := s.decline(ctx, o.PayOrdID, o.OutTradeNo, "wallet_"+w.State); err != nil {
			s.log.Error("recording a decline", "order", o.PayOrdID, "err", err)
		}
	default:
		detail := "outcome unknown; will query"
		if err != nil {
			detail = err.Error()
		} else {
			detail = "wallet says " + w.State + "; will query"
		}
		s.note(ctx, o.PayOrdID, "charge_unknown", detail)
		s.check(ctx, o.PayOrdID) // one query now; the recovery loop carries on
	}
}

// note appends a timeline event outside a state change.
func (s *Service) note(ctx context.Context, id, what, detail string) {
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return event(ctx, tx, id, s.now(), what, detail) })
	if err != nil {
		s.log.Error("payment event", "order", id, "err", err)
	}
}

// finish completes the order whose wallet attempt w succeeded: the amount
// must match, the settlement's reserved legs are posted with the
// out-of-pocket transfer, and the order becomes paid. Every path that
// learns of a success (the charge answer, a notification, a query) ends
// here; the second and later arrivals change nothing.
func (s *Service) finish(ctx context.Context, id string, w *channel.Order, via string) (*Order, error) {
	o, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	switch o.Status {
	case StatusPaid, StatusPartiallyRefunded, StatusRefunded:
		return o, nil // already known
	case StatusVoided, StatusRevoked:
		return o, s.refundLate(ctx, o, w)
	case StatusReview:
		return o, nil // a person decides
	case StatusDeclined:
		if w.OutTradeNo == o.OutTradeNo { // declined, then reported paid: the wallet contradicts itself
			return o, s.hold(ctx, o, "contradiction: the wallet reported attempt "+w.OutTradeNo+" paid after declining it")
		}
	}
	if w.OutTradeNo != o.OutTradeNo {
		s.note(ctx, id, "stray_payment", fmt.Sprintf("attempt %s reported paid after the order moved on; refunding it", w.OutTradeNo))
		return o, s.refundLate(ctx, o, w)
	}
	if money.Fen(w.Amount) != o.SelfPay {
		return o, s.hold(ctx, o, fmt.Sprintf("amount_mismatch: the wallet reports %s yuan paid for a %s yuan order (%s)", money.Fen(w.Amount), o.SelfPay, via))
	}
	if _, err := s.settle.Complete(sys(ctx), o.SetlID, o.Channel); err != nil {
		if yibao.IsCode(err, yibao.CodePrecondition) { // the settlement was voided meanwhile
			if err := s.markVoided(ctx, o, "settlement voided before the payment arrived"); err != nil {
				return nil, err
			}
			o, _ = s.load(ctx, s.db, id)
			return o, s.refundLate(ctx, o, w)
		}
		return nil, err
	}
	paidAt := w.PaidAt
	if paidAt.IsZero() {
		paidAt = s.now()
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		cur, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE payment_attempts SET status = 'paid', paid_at = ? WHERE out_trade_no = ?`, micros(paidAt), w.OutTradeNo); err != nil {
			return err
		}
		_, err = s.transition(ctx, tx, cur, change{from: []string{StatusPaying}, status: StatusPaid,
			fund: legState(cur.FundPay, LegPaid), acct: legState(cur.AcctPay, LegPaid), self: legState(cur.SelfPay, LegPaid),
			txnID: w.TransactionID, paidAt: paidAt, checkAt: &time.Time{}, reason: ptr(""),
			event: "paid", detail: fmt.Sprintf("%s yuan via %s (%s), transaction %s", o.SelfPay, o.Channel, via, w.TransactionID), topic: "payment.paid"})
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.load(ctx, s.db, id)
}

// finishInsured completes an order with nothing out of pocket.
func (s *Service) finishInsured(ctx context.Context, id string) (*Order, error) {
	o, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.settle.Complete(sys(ctx), o.SetlID, o.Channel); err != nil {
		return nil, err
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := s.transition(ctx, tx, o, change{from: []string{StatusPaying}, status: StatusPaid, fund: legState(o.FundPay, LegPaid),
			acct: legState(o.AcctPay, LegPaid), paidAt: s.now(), checkAt: &time.Time{}, event: "paid", detail: "nothing out of pocket", topic: "payment.paid"})
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// decline records a definite refusal of an attempt. The settlement stays
// pending: the cashier collects at the counter, tries another wallet or
// cancels; untouched, it expires and releases its legs.
func (s *Service) decline(ctx context.Context, id, outTradeNo, reason string) error {
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		o, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		if o.OutTradeNo != outTradeNo {
			return nil // an old attempt
		}
		if _, err := tx.Exec(ctx, `UPDATE payment_attempts SET status = 'declined' WHERE out_trade_no = ? AND status = 'paying'`, outTradeNo); err != nil {
			return err
		}
		_, err = s.transition(ctx, tx, o, change{from: []string{StatusPaying}, status: StatusDeclined, self: LegDeclined, reason: &reason,
			checkAt: &time.Time{}, event: "declined", detail: reason})
		return err
	})
}

// hold parks an order for a person: a wallet said something that does
// not match it. Nothing is posted; the bureau looks at it.
func (s *Service) hold(ctx context.Context, o *Order, reason string) error {
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		cur, err := s.load(ctx, tx, o.PayOrdID)
		if err != nil {
			return err
		}
		_, err = s.transition(ctx, tx, cur, change{from: []string{StatusPaying, StatusDeclined}, status: StatusReview, self: LegReview, reason: &reason,
			checkAt: &time.Time{}, event: "held_for_review", detail: reason, topic: "payment.review"})
		return err
	})
}

func (s *Service) markVoided(ctx context.Context, o *Order, why string) error {
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		cur, err := s.load(ctx, tx, o.PayOrdID)
		if err != nil {
			return err
		}
		self := legState(cur.SelfPay, LegReleased)
		_, err = s.transition(ctx, tx, cur, change{from: []string{StatusPaying, StatusDeclined, StatusAwaiting, StatusReview}, status: StatusVoided,
			fund: legState(cur.FundPay, LegReleased), acct: legState(cur.AcctPay, LegReleased), self: self, checkAt: &time.Time{},
			event: "voided", detail: why, topic: "payment.voided"})
		return err
	})
}

// CollectRequest is what the cashier does with a declined order.
type CollectRequest struct {
	Channel string `json:"channel"` // counter, or another wallet with an agreement
}

// Collect takes the out-of-pocket part of a declined order another way:
// at the counter, or through another wallet agreement (a new attempt with
// a new order number; the declined one can never succeed).
func (s *Service) Collect(ctx context.Context, id string, r CollectRequest) (*Order, error) {
	o, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if o.Status != StatusDeclined {
		return nil, yibao.Errorf(yibao.CodePrecondition, "order %s is %s; only a declined order is collected another way", id, o.Status)
	}
	if r.Channel == ChannelCounter {
		if _, err := s.settle.Complete(sys(ctx), o.SetlID, settlement.PayCounter); err != nil {
			return nil, err
		}
		err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			cur, err := s.load(ctx, tx, id)
			if err != nil {
				return err
			}
			_, err = s.transition(ctx, tx, cur, change{from: []string{StatusDeclined}, status: StatusPaid, fund: legState(cur.FundPay, LegPaid),
				acct: legState(cur.AcctPay, LegPaid), self: legState(cur.SelfPay, LegPaid), paidAt: s.now(), reason: ptr(""),
				event: "paid", detail: fmt.Sprintf("%s yuan collected at the counter", cur.SelfPay), topic: "payment.paid",
				extraSQL: "channel = ?", extraArgs: []any{ChannelCounter}})
			return err
		})
		if err != nil {
			return nil, err
		}
		return s.Get(ctx, id)
	}
	ag, err := s.activeAgreement(ctx, o.PsnNo, r.Channel)
	if err != nil {
		return nil, err
	}
	if o.SelfPay > ag.Limit {
		return nil, yibao.Errorf(yibao.CodePrecondition, "exceeds_agreement_limit: %s yuan is above this agreement's %s yuan per payment", o.SelfPay, ag.Limit)
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		cur, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		n := cur.Attempt + 1
		next := attemptNo(id, n)
		ok, err := s.transition(ctx, tx, cur, change{from: []string{StatusDeclined}, status: StatusPaying, self: LegPaying, reason: ptr(""),
			checkAt: ptr(s.now().Add(s.cfg.CheckAfter)), event: "retry", detail: "attempt " + next + " through " + ag.Channel,
			extraSQL: "attempt = ?, out_trade_no = ?, channel = ?, agreement_no = ?", extraArgs: []any{n, next, ag.Channel, ag.AgreementNo}})
		if err != nil || !ok {
			return errOr(err, yibao.Errorf(yibao.CodeConflict, "order %s changed meanwhile", id))
		}
		cur.OutTradeNo, cur.Channel = next, ag.Channel
		return insertAttempt(ctx, tx, cur, s.now())
	})
	if err != nil {
		return nil, err
	}
	o, err = s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	s.charge(ctx, o, ag)
	return s.Get(ctx, id)
}

func errOr(err, other error) error {
	if err != nil {
		return err
	}
	return other
}

// Cancel gives up an unpaid order: an open wallet order is closed first
// (so it can never be paid), then the settlement is voided and its legs
// released. A paid order is refunded instead.
func (s *Service) Cancel(ctx context.Context, id string) (*Order, error) {
	o, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch o.Status {
	case StatusVoided, StatusRevoked:
		return o, nil
	case StatusDeclined, StatusAwaiting, StatusReview:
	case StatusPaying:
		if o.selfState == LegPaying {
			return nil, yibao.Errorf(yibao.CodePrecondition, "order %s has a charge whose outcome is not known yet; wait for it", id)
		}
		if o.selfState == LegAwaiting {
			ch, err := s.channel(o.Channel)
			if err != nil {
				return nil, err
			}
			if err := ch.Close(ctx, o.OutTradeNo); err != nil && !errors.Is(err, channel.ErrNotFound) {
				return nil, yibao.Errorf(yibao.CodeUnavailable, "the wallet did not close order %s: %v", o.OutTradeNo, err)
			}
			if w, err := ch.Query(ctx, o.OutTradeNo); err == nil && w.State == channel.StateSuccess {
				return s.finish(ctx, id, w, "paid before the close")
			}
		}
	default:
		return nil, yibao.Errorf(yibao.CodePrecondition, "order %s is %s; refund it instead", id, o.Status)
	}
	if o.SetlID != "" {
		if _, err := s.settle.Void(sys(ctx), o.SetlID); err != nil {
			return nil, err
		}
	}
	if o.Status == StatusAwaiting {
		err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			cur, err := s.load(ctx, tx, id)
			if err != nil {
				return err
			}
			_, err = s.transition(ctx, tx, cur, change{from: []string{StatusAwaiting}, status: StatusRevoked, event: "revoked", detail: "withdrawn before payment", topic: "payment.revoked"})
			return err
		})
	} else {
		err = s.markVoided(ctx, o, "cancelled")
	}
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// Resolve settles an order held for review, by the wallet's own answer
// to a query (the authority on what it took): paid for exactly the
// order's amount → the order is finished; paid another amount → that
// money goes back and the settlement is voided; not paid → declined.
// Administrators only.
func (s *Service) Resolve(ctx context.Context, id string) (*Order, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	o, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if o.Status != StatusReview {
		return nil, yibao.Errorf(yibao.CodePrecondition, "order %s is %s; only an order held for review is resolved", id, o.Status)
	}
	ch, err := s.channel(o.Channel)
	if err != nil {
		return nil, err
	}
	w, err := ch.Query(ctx, o.OutTradeNo)
	if err != nil && !errors.Is(err, channel.ErrNotFound) {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "the wallet did not answer the query: %v", err)
	}
	state, amount := "NOT_FOUND", money.Fen(0)
	if w != nil {
		state, amount = w.State, money.Fen(w.Amount)
	}
	who, _ := yibao.RequirePrincipal(ctx)
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		cur, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		ok, err := s.transition(ctx, tx, cur, change{from: []string{StatusReview}, status: StatusPaying, self: LegPaying, reason: ptr(""),
			event: "review_resolved", detail: fmt.Sprintf("by %s: the wallet says %s, %s yuan", who.ID(), state, amount)})
		if err != nil || !ok {
			return errOr(err, yibao.Errorf(yibao.CodeConflict, "order %s changed meanwhile", id))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case state == channel.StateSuccess && amount == o.SelfPay:
		return s.finish(ctx, id, w, "review")
	case state == channel.StateSuccess:
		if _, err := s.settle.Void(sys(ctx), o.SetlID); err != nil {
			return nil, err
		}
		if err := s.markVoided(ctx, o, "the wallet took another amount than the order's"); err != nil {
			return nil, err
		}
		cur, err := s.load(ctx, s.db, id)
		if err != nil {
			return nil, err
		}
		if err := s.refundLate(ctx, cur, w); err != nil {
			return nil, err
		}
	default:
		if err := s.decline(ctx, id, o.OutTradeNo, "the wallet says "+state); err != nil {
			return nil, err
		}
	}
	return s.Get(ctx, id)
}

// faceCap refuses a face-only settlement above the institution's cap,
// whatever pays the out-of-pocket part: the insured person was identified
// by a face terminal alone, and a larger bill needs a second factor (the
// e-certificate code) or a visit registered with the ID card.
func (s *Service) faceCap(ctx context.Context, v *settlement.Visit) error {
	if s.cfg.FaceCapHospital == 0 || v.Totals == nil {
		return nil
	}
	via, err := s.ecert.VisitIdentifiedBy(ctx, v.MdtrtID)
	if err != nil || !strings.HasPrefix(via, "face:") {
		return err
	}
	var kind string
	if err := s.db.QueryRow(ctx, `SELECT kind FROM institutions WHERE fixmedins_code = ?`, v.FixmedinsCode).Scan(&kind); err != nil {
		return err
	}
	limit := s.cfg.FaceCapHospital
	if yibao.InstitutionKind(kind) == yibao.KindPharmacy {
		limit = s.cfg.FaceCapPharmacy
	}
	if v.Totals.Amount > limit {
		return yibao.Errorf(yibao.CodePrecondition, "face_limit_exceeded: %s yuan is above the %s yuan a face alone may settle here; scan the patient's e-certificate code (the second factor), or register the visit with the ID card at a staffed counter", v.Totals.Amount, limit)
	}
	return nil
}
