package pay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"

	"yibao"
	"yibao/money"
	"yibao/pay/channel"
	"yibao/settlement"
	"yibao/sqlstore"
)

// MobileRequest is a bill the HIS pushes to the patient's phone (the
// mobile-payment upload, 6201): fee lines on an open visit, pre-settled
// for the patient to see and confirm.
type MobileRequest struct {
	MdtrtID      string                    `json:"mdtrt_id"`
	MedOrgOrd    string                    `json:"med_org_ord"` // the HIS's order number; the same number again is the same bill
	Lines        []settlement.FeeLineInput `json:"fee_lines,omitempty"`
	MedfeeSumamt money.Fen                 `json:"medfee_sumamt"` // must equal the lines' total
	Kind         string                    `json:"kind,omitempty"`
	UseAccount   *bool                     `json:"acct_used_flag,omitempty"`
}

var medOrgOrdRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

// CreateMobile records a bill for the patient's phone. Nothing is
// settled: the order waits for the patient, showing the pre-settlement.
func (s *Service) CreateMobile(ctx context.Context, r MobileRequest) (*Order, error) {
	who, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !medOrgOrdRe.MatchString(r.MedOrgOrd) {
		return nil, yibao.FieldError("med_org_ord", "the HIS order number: 1–40 letters, digits, _ or -")
	}
	v, err := s.settle.GetVisit(ctx, r.MdtrtID)
	if err != nil {
		return nil, err
	}
	var existing string
	err = s.db.QueryRow(ctx, `SELECT pay_ord_id FROM payment_orders WHERE fixmedins_code = ? AND med_org_ord = ? AND med_org_ord <> ''`, v.FixmedinsCode, r.MedOrgOrd).Scan(&existing)
	if err == nil {
		o, err := s.Get(ctx, existing)
		if err == nil && o.MdtrtID != r.MdtrtID {
			return nil, yibao.Errorf(yibao.CodeConflict, "HIS order %s belongs to another visit", r.MedOrgOrd)
		}
		return o, err
	}
	if !notFound(err) {
		return nil, err
	}
	if len(r.Lines) > 0 {
		if _, err := s.settle.AddFeeLines(ctx, r.MdtrtID, r.Lines); err != nil {
			return nil, err
		}
	}
	acct := r.UseAccount == nil || *r.UseAccount
	pv, err := s.settle.PreSettle(ctx, r.MdtrtID, settlement.SettleRequest{Kind: r.Kind, PayMode: settlement.PayLater, UseAccount: &acct})
	if err != nil {
		return nil, err
	}
	si := pv.Result.SetlInfo
	if r.MedfeeSumamt != si.MedfeeSumamt {
		return nil, yibao.Errorf(yibao.CodeInvalid, "medfee_sumamt_mismatch: the bill says %s yuan, its unsettled fee lines add up to %s yuan", r.MedfeeSumamt, si.MedfeeSumamt)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	o := &Order{PayOrdID: newID("PO"), Mode: ModeMobile, MdtrtID: v.MdtrtID, PsnNo: v.PsnNo, FixmedinsCode: v.FixmedinsCode, Status: StatusAwaiting,
		MedfeeSumamt: si.MedfeeSumamt, FundPay: si.FundPaySumamt, AcctPay: si.AcctPay, SelfPay: si.PsnCashPay, MedOrgOrd: r.MedOrgOrd,
		Preview: pv, CreatedBy: who.ID(), payToken: hex.EncodeToString(tok), acctUsed: acct,
		fundState: legState(si.FundPaySumamt, LegPlanned), acctState: legState(si.AcctPay, LegPlanned), selfState: legState(si.PsnCashPay, LegPlanned)}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if err := s.insert(ctx, tx, o, "uploaded", "bill "+r.MedOrgOrd+" sent to the patient's phone"); err != nil {
			return err
		}
		return s.outbox(ctx, tx, "payment.awaiting_patient", o, s.now())
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, o.PayOrdID)
}

// PayToken returns the token the HIS got with the order (6201 payToken):
// 6202 must present it.
func (s *Service) PayToken(ctx context.Context, id string) (string, error) {
	o, err := s.Get(ctx, id)
	if err != nil {
		return "", err
	}
	return o.payToken, nil
}

// Bills lists a person's own orders for the patient app, newest first.
// The caller has authenticated the person (the app session).
func (s *Service) Bills(ctx context.Context, psnNo string) ([]Order, error) {
	return s.list(ctx, OrderFilter{PsnNo: psnNo, Limit: 30})
}

// Bill returns one of the person's own orders.
func (s *Service) Bill(ctx context.Context, psnNo, id string) (*Order, error) {
	o, err := s.load(ctx, s.db, id)
	if err != nil || o.PsnNo != psnNo {
		return nil, yibao.Errorf(yibao.CodeNotFound, "bill %s not found", id)
	}
	return s.withDetail(ctx, o)
}

// ConfirmRequest is the patient's "pay this bill".
type ConfirmRequest struct {
	// Channel pays the out-of-pocket part: "auto" uses the person's
	// withholding agreement; a wallet name uses its agreement if there is
	// one and otherwise opens an order the patient confirms in the wallet.
	Channel string `json:"channel"`
}

// Confirm settles a mobile bill the patient approved (the caller checked
// a fresh e-certificate code of the patient's own device) and collects
// the out-of-pocket part.
func (s *Service) Confirm(ctx context.Context, psnNo, id string, r ConfirmRequest) (*Order, error) {
	o, err := s.Bill(ctx, psnNo, id)
	if err != nil {
		return nil, err
	}
	switch o.Status {
	case StatusAwaiting:
	case StatusPaying, StatusPaid:
		return o, nil // confirmed before
	default:
		return nil, yibao.Errorf(yibao.CodePrecondition, "bill %s is %s", id, o.Status)
	}
	if r.Channel == "" {
		r.Channel = "auto"
	}
	if r.Channel == ChannelCredit {
		return s.confirmOnCredit(ctx, psnNo, o)
	}
	ag, agErr := s.activeAgreement(ctx, psnNo, r.Channel)
	chName := r.Channel
	if agErr == nil {
		chName = ag.Channel
	} else if r.Channel == "auto" {
		return nil, agErr
	}
	ch, err := s.channel(chName)
	if err != nil {
		return nil, err
	}
	useAgreement := false
	var st *settlement.Settlement
	req := settlement.SettleRequest{PayMode: settlement.PayLater, UseAccount: &o.acctUsed}
	if o.Preview != nil {
		req.Kind = o.Preview.Kind
	}
	req.Also = func(ctx context.Context, tx *sqlstore.Tx, got *settlement.Settlement) error {
		st = got
		cur, err := s.load(ctx, tx, id)
		if err != nil {
			return err
		}
		self := LegNone
		extra := "setl_id = ?, medfee_sumamt = ?, fund_pay = ?, acct_pay = ?, self_pay = ?, channel = ?"
		args := []any{st.SetlID, int64(st.MedfeeSumamt), int64(st.FundPaySumamt), int64(st.AcctPay), int64(st.PsnCashPay), chName}
		cur.SelfPay, cur.Channel = st.PsnCashPay, chName
		if st.PsnCashPay > 0 {
			useAgreement = ag != nil && st.PsnCashPay <= ag.Limit
			self = LegAwaiting
			cur.OutTradeNo = attemptNo(id, 1)
			extra += ", attempt = 1, out_trade_no = ?"
			args = append(args, cur.OutTradeNo)
			if useAgreement {
				self = LegPaying
				extra += ", agreement_no = ?"
				args = append(args, ag.AgreementNo)
			}
		}
		ok, err := s.transition(ctx, tx, cur, change{from: []string{StatusAwaiting}, status: StatusPaying, fund: legState(st.FundPaySumamt, LegReserved),
			acct: legState(st.AcctPay, LegReserved), self: self, checkAt: ptr(s.now().Add(s.cfg.CheckAfter)),
			event: "confirmed", detail: "the patient confirmed with a fresh e-certificate code; settlement " + st.SetlID + " pending",
			extraSQL: extra, extraArgs: args})
		if err != nil || !ok {
			return errOr(err, yibao.Errorf(yibao.CodeConflict, "bill %s changed meanwhile", id))
		}
		if cur.OutTradeNo != "" {
			return insertAttempt(ctx, tx, cur, s.now())
		}
		return nil
	}
	if _, err := s.settle.Settle(sys(ctx), o.MdtrtID, req); err != nil {
		return nil, err
	}
	o, err = s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	switch {
	case o.SelfPay == 0:
		if _, err := s.finishInsured(sys(ctx), id); err != nil {
			return nil, err
		}
	case useAgreement:
		s.charge(ctx, o, ag)
	default:
		exp := st.ExpiresAt
		pr := channel.PrepayRequest{OutTradeNo: o.OutTradeNo, Amount: int64(o.SelfPay), Description: "医保移动支付 " + o.MedOrgOrd,
			PayerRef: PayerRef(chName, psnNo), NotifyURL: s.notifyURL(chName)}
		if exp != nil {
			pr.ExpireAt = *exp
		}
		p, err := ch.Prepay(ctx, pr)
		if err != nil {
			reason := "prepay_failed: " + err.Error()
			if !errors.Is(err, channel.ErrUnknown) {
				if derr := s.decline(ctx, id, o.OutTradeNo, reason); derr != nil {
					return nil, derr
				}
			} else {
				s.note(ctx, id, "prepay_unknown", reason)
			}
		} else if _, err := s.db.Exec(ctx, `UPDATE payment_orders SET pay_url = ? WHERE pay_ord_id = ?`, p.PayURL, id); err != nil {
			return nil, err
		}
	}
	return s.Bill(ctx, psnNo, id)
}

// PayByAgreement settles an uploaded bill at the hospital's request
// (6202) when the patient has a withholding agreement: the agreement is
// the patient's standing consent. Without one the bill waits for the
// patient to confirm in the app and the call returns it unchanged.
func (s *Service) PayByAgreement(ctx context.Context, id string) (*Order, error) {
	o, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if o.Status != StatusAwaiting {
		return o, nil
	}
	if _, err := s.activeAgreement(ctx, o.PsnNo, "auto"); err != nil {
		return o, nil // the patient confirms in the app
	}
	if _, err := s.Confirm(ctx, o.PsnNo, id, ConfirmRequest{Channel: "auto"}); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}
