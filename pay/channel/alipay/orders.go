package alipay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"yibao/pay/channel"
)

// Charge takes money under a withholding agreement (商户代扣):
// alipay.trade.pay with product_code GENERAL_WITHHOLDING and
// agreement_params.agreement_no, no auth_code (the agreement replaces the
// payer's barcode).
//
// Answers: 10000 → SUCCESS; 10003 (the payer's side is still deciding) →
// USERPAYING, to be queried; refusals (ACQ.BUYER_BALANCE_NOT_ENOUGH,
// ACQ.AGREEMENT_NOT_EXIST, ACQ.AGREEMENT_STATUS_NOT_NORMAL, …) →
// *DeclineError; 20000 / ACQ.SYSTEM_ERROR / no answer → ErrUnknown.
//
// Alipay treats the same out_trade_no sent again as the same trade: it
// answers with the first outcome, or ACQ.TRADE_HAS_SUCCESS ("already
// paid"), which is turned back into the paid order after a query.
func (c *Channel) Charge(ctx context.Context, r channel.ChargeRequest) (*channel.Order, error) {
	if r.OutTradeNo == "" || r.Amount <= 0 || r.AgreementID == "" {
		return nil, errors.New("alipay: charge: OutTradeNo, a positive Amount and AgreementID are required")
	}
	p := sdk.TradePay{
		Trade: sdk.Trade{
			NotifyURL:   r.NotifyURL,
			Subject:     subject(r.Description, r.OutTradeNo),
			OutTradeNo:  r.OutTradeNo,
			TotalAmount: yuan(r.Amount),
			ProductCode: productWithholding,
		},
		BuyerId:         r.PayerRef,
		AgreementParams: &sdk.AgreementParams{AgreementNo: r.AgreementID},
	}
	rsp, err := c.client.TradePay(ctx, p)
	if err == nil && rsp != nil {
		switch rsp.Code {
		case sdk.CodeSuccess, sdk.CodeOrderSuccessPayInProcess:
			o := &channel.Order{
				OutTradeNo:    r.OutTradeNo,
				TransactionID: rsp.TradeNo,
				State:         channel.StateSuccess,
				Amount:        r.Amount,
				PayerRef:      first(rsp.BuyerUserId, r.PayerRef),
				PaidAt:        parseTime(rsp.GmtPayment),
			}
			if rsp.Code == sdk.CodeOrderSuccessPayInProcess {
				o.State, o.PaidAt = channel.StatePaying, time.Time{}
			}
			if rsp.TotalAmount != "" {
				a, err := fen(rsp.TotalAmount)
				if err != nil {
					return nil, fmt.Errorf("alipay: charge: %w: %w", channel.ErrUnknown, err)
				}
				o.Amount = a
			}
			return o, nil
		}
		if rsp.SubCode == "ACQ.TRADE_HAS_SUCCESS" {
			// Already paid under this out_trade_no: the same charge sent
			// again. The order itself says whether it is this charge.
			o, qerr := c.Query(ctx, r.OutTradeNo)
			if qerr != nil {
				return nil, fmt.Errorf("alipay: charge: %w: already paid, and the query failed: %w", channel.ErrUnknown, qerr)
			}
			if o.State == channel.StateSuccess && o.Amount == r.Amount {
				return o, nil
			}
		}
	}
	return nil, classify(asCharge, "charge "+r.OutTradeNo, codes(rsp), err)
}

// Prepay creates a trade the payer confirms in the Alipay app:
// alipay.trade.create (product JSAPI_PAY, buyer_id = PayerRef).
//
// trade.create rather than trade.wap.pay: trade.create is a server-side
// call that answers with the trade_no, so the trade exists at Alipay
// (queryable, closable) before the payer acts, like a WeChat JSAPI
// prepay. trade.wap.pay only builds a redirect URL; the trade would not
// exist until the payer opens it, and there is no trade_no to hand the
// app.
func (c *Channel) Prepay(ctx context.Context, r channel.PrepayRequest) (*channel.Prepay, error) {
	if r.OutTradeNo == "" || r.Amount <= 0 {
		return nil, errors.New("alipay: prepay: OutTradeNo and a positive Amount are required")
	}
	p := sdk.TradeCreate{
		Trade: sdk.Trade{
			NotifyURL:   r.NotifyURL,
			Subject:     subject(r.Description, r.OutTradeNo),
			OutTradeNo:  r.OutTradeNo,
			TotalAmount: yuan(r.Amount),
			ProductCode: productJSAPI,
		},
		BuyerId: r.PayerRef,
	}
	if !r.ExpireAt.IsZero() {
		p.TimeExpire = r.ExpireAt.In(chinaTime).Format(timeLayout)
	}
	rsp, err := c.client.TradeCreate(ctx, p)
	if err == nil && rsp != nil && rsp.Code == sdk.CodeSuccess {
		if rsp.TradeNo == "" {
			return nil, fmt.Errorf("alipay: prepay %s: %w: no trade_no in the answer", r.OutTradeNo, channel.ErrUnknown)
		}
		pp := &channel.Prepay{OutTradeNo: r.OutTradeNo, PrepayID: rsp.TradeNo}
		if c.base != "" {
			pp.PayURL = c.base + "/pay/" + url.PathEscape(r.OutTradeNo)
		}
		return pp, nil
	}
	return nil, classify(asAction, "prepay "+r.OutTradeNo, codes(rsp), err)
}

// Query returns the trade: alipay.trade.query by out_trade_no.
//
// States: WAIT_BUYER_PAY → NOTPAY; TRADE_SUCCESS and TRADE_FINISHED (paid,
// no longer refundable) → SUCCESS; TRADE_CLOSED → CLOSED if it was never
// paid, REFUND if it was paid and then fully refunded (Alipay closes a
// trade when its last yuan is refunded; send_pay_date tells the two
// apart). A partly refunded trade stays TRADE_SUCCESS at Alipay and is
// SUCCESS here; refunds are followed with QueryRefund.
func (c *Channel) Query(ctx context.Context, outTradeNo string) (*channel.Order, error) {
	rsp, err := c.client.TradeQuery(ctx, sdk.TradeQuery{OutTradeNo: outTradeNo})
	if err != nil || rsp == nil || rsp.Code != sdk.CodeSuccess {
		return nil, classify(asQuery, "query "+outTradeNo, codes(rsp), err)
	}
	o := &channel.Order{
		OutTradeNo:    first(rsp.OutTradeNo, outTradeNo),
		TransactionID: rsp.TradeNo,
		PayerRef:      rsp.BuyerUserId,
	}
	if o.Amount, err = fen(rsp.TotalAmount); err != nil {
		return nil, fmt.Errorf("alipay: query %s: %w", outTradeNo, err)
	}
	paid := parseTime(rsp.SendPayDate)
	switch rsp.TradeStatus {
	case sdk.TradeStatusWaitBuyerPay:
		o.State = channel.StateNotPay
	case sdk.TradeStatusSuccess, sdk.TradeStatusFinished:
		o.State, o.PaidAt = channel.StateSuccess, paid
	case sdk.TradeStatusClosed:
		o.State = channel.StateClosed
		if !paid.IsZero() {
			o.State, o.PaidAt = channel.StateRefund, paid
		}
	default:
		return nil, fmt.Errorf("alipay: query %s: unknown trade_status %q", outTradeNo, rsp.TradeStatus)
	}
	return o, nil
}

// Close closes an unpaid trade: alipay.trade.close. A paid trade cannot be
// closed (ACQ.TRADE_STATUS_ERROR, a *DeclineError); an unknown one is
// ErrNotFound.
func (c *Channel) Close(ctx context.Context, outTradeNo string) error {
	rsp, err := c.client.TradeClose(ctx, sdk.TradeClose{OutTradeNo: outTradeNo})
	if err == nil && rsp != nil && rsp.Code == sdk.CodeSuccess {
		return nil
	}
	return classify(asAction, "close "+outTradeNo, codes(rsp), err)
}

// Refund returns money: alipay.trade.refund with out_request_no =
// OutRefundNo, which makes it idempotent at Alipay (the same number is the
// same refund; Σ refunds ≤ the paid amount, else
// ACQ.REFUND_AMT_NOT_EQUAL_TOTAL, a *DeclineError).
//
// Alipay refunds synchronously. Its documented success test is
// code 10000 with fund_change=Y; fund_change=N means this call moved no
// money, either because the refund had already been made by an earlier
// call with the same out_request_no, or because it did not happen. The
// refund query decides which (REFUND_SUCCESS, or PROCESSING to be asked
// again).
//
// Alipay has no refund number of its own: RefundID is the trade_no, which
// with OutRefundNo identifies the refund at Alipay. RefundRequest.NotifyURL
// is not sent: trade.refund has no notify_url, and Alipay announces
// refunds on the payment's notify_url.
func (c *Channel) Refund(ctx context.Context, r channel.RefundRequest) (*channel.Refund, error) {
	if r.OutTradeNo == "" || r.OutRefundNo == "" || r.Amount <= 0 {
		return nil, errors.New("alipay: refund: OutTradeNo, OutRefundNo and a positive Amount are required")
	}
	rsp, err := c.client.TradeRefund(ctx, sdk.TradeRefund{
		OutTradeNo:   r.OutTradeNo,
		RefundAmount: yuan(r.Amount),
		OutRequestNo: r.OutRefundNo,
		RefundReason: r.Reason,
	})
	if err != nil || rsp == nil || rsp.Code != sdk.CodeSuccess {
		return nil, classify(asAction, "refund "+r.OutRefundNo, codes(rsp), err)
	}
	rf := &channel.Refund{OutTradeNo: r.OutTradeNo, OutRefundNo: r.OutRefundNo, RefundID: rsp.TradeNo, Status: channel.RefundSuccess, Amount: r.Amount}
	if strings.EqualFold(rsp.FundChange, "Y") {
		return rf, nil
	}
	q, err := c.QueryRefund(ctx, r.OutTradeNo, r.OutRefundNo)
	switch {
	case err == nil:
		return q, nil
	case errors.Is(err, channel.ErrNotFound), errors.Is(err, channel.ErrUnknown):
		rf.Status = channel.RefundProcessing
		return rf, nil
	default:
		return nil, err
	}
}

// QueryRefund returns a refund: alipay.trade.fastpay.refund.query with
// out_request_no = OutRefundNo.
//
// Alipay answers 10000 for a known trade whether or not the refund exists;
// refund_status=REFUND_SUCCESS means it was made. Without refund_status,
// Alipay documents that the refund request was not received or failed,
// and that the same out_request_no may be sent again: that is ErrNotFound
// here (re-sending the refund is safe). An unknown trade is ErrNotFound
// too.
func (c *Channel) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (*channel.Refund, error) {
	rsp, err := c.client.TradeFastPayRefundQuery(ctx, sdk.TradeFastPayRefundQuery{
		OutTradeNo:   outTradeNo,
		OutRequestNo: outRefundNo,
		QueryOptions: []string{"gmt_refund_pay"},
	})
	if err != nil || rsp == nil || rsp.Code != sdk.CodeSuccess {
		return nil, classify(asQuery, "refund query "+outRefundNo, codes(rsp), err)
	}
	rf := &channel.Refund{OutTradeNo: first(rsp.OutTradeNo, outTradeNo), OutRefundNo: first(rsp.OutRequestNo, outRefundNo), RefundID: rsp.TradeNo}
	switch rsp.RefundStatus {
	case "":
		return nil, fmt.Errorf("alipay: refund query %s: %w: no refund_status (not received or failed)", outRefundNo, channel.ErrNotFound)
	case "REFUND_SUCCESS":
		rf.Status = channel.RefundSuccess
	default:
		rf.Status = channel.RefundProcessing
	}
	if rf.Amount, err = fen(rsp.RefundAmount); err != nil {
		return nil, fmt.Errorf("alipay: refund query %s: %w", outRefundNo, err)
	}
	return rf, nil
}

// SignAgreement creates a withholding agreement (商户代扣 协议).
//
// At Alipay signing is a page flow: alipay.user.agreement.page.sign builds
// a URL the payer opens in the Alipay app, and the agreement_no arrives by
// the dut_user_sign notification. In yibao the payer consents in our app
// and the simulator plays the wallet app, so this adapter sends
// alipay.user.agreement.page.sign as a signed server-side call (the SDK's
// generic Request), naming the payer in identity_params.sign_user_id and
// the per-payment limit in period_rule_params.single_amount; the
// simulator answers at once with {agreement_no, status: "NORMAL"}. That
// synchronous answer is the stand-in; the agreement is then confirmed
// with alipay.user.agreement.query, which is the real API.
func (c *Channel) SignAgreement(ctx context.Context, r channel.AgreementRequest) (*channel.Agreement, error) {
	if r.ExternalNo == "" || r.PayerRef == "" {
		return nil, errors.New("alipay: sign agreement: ExternalNo and PayerRef are required")
	}
	p := sdk.AgreementPageSign{
		NotifyURL:           r.NotifyURL,
		ProductCode:         productWithholding,
		PersonalProductCode: personalWithholding,
		SignScene:           signScene,
		ExternalAgreementNo: r.ExternalNo,
		AccessParams:        &sdk.AccessParams{Channel: "ALIPAYAPP"},
		IdentityParams:      &sdk.IdentityParams{SignUserId: r.PayerRef},
	}
	if r.Limit > 0 {
		p.PeriodRuleParams = &sdk.PeriodRuleParams{SingleAmount: yuan(r.Limit)}
	}
	var rsp *sdk.AgreementPageSignRsp
	err := c.client.Request(ctx, p, &rsp)
	if err != nil || rsp == nil || rsp.Code != sdk.CodeSuccess {
		return nil, classify(asAction, "sign agreement "+r.ExternalNo, codes(rsp), err)
	}
	if rsp.AgreementNo == "" {
		return nil, fmt.Errorf("alipay: sign agreement %s: no agreement_no in the answer (status %q)", r.ExternalNo, rsp.Status)
	}
	q, err := c.client.AgreementQuery(ctx, sdk.AgreementQuery{AgreementNo: rsp.AgreementNo})
	if err != nil || q == nil || q.Code != sdk.CodeSuccess {
		return nil, classify(asQuery, "agreement query "+rsp.AgreementNo, codes(q), err)
	}
	if q.Status != "NORMAL" {
		return nil, fmt.Errorf("alipay: sign agreement %s: %w", r.ExternalNo,
			&channel.DeclineError{Code: "AGREEMENT_" + q.Status, Message: "the agreement is not in force (status " + q.Status + ")"})
	}
	a := &channel.Agreement{
		ExternalNo:  first(q.ExternalAgreementNo, r.ExternalNo),
		AgreementID: q.AgreementNo,
		PayerRef:    first(q.PrincipalId, rsp.AlipayUserId, r.PayerRef),
		State:       channel.AgreementActive,
		Limit:       r.Limit,
	}
	if q.SingleQuota != "" {
		if a.Limit, err = fen(q.SingleQuota); err != nil {
			return nil, fmt.Errorf("alipay: agreement query %s: %w", q.AgreementNo, err)
		}
	}
	return a, nil
}

// TerminateAgreement ends an agreement: alipay.user.agreement.unsign by
// agreement_no. An unknown agreement is ErrNotFound.
func (c *Channel) TerminateAgreement(ctx context.Context, agreementID string) error {
	rsp, err := c.client.AgreementUnsign(ctx, sdk.AgreementUnsign{AgreementNo: agreementID})
	if err == nil && rsp != nil && rsp.Code == sdk.CodeSuccess {
		return nil
	}
	return classify(asAction, "unsign agreement "+agreementID, codes(rsp), err)
}

// first returns the first non-empty string.
func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// codes returns the code fields (code, msg, sub_code, sub_msg) that every
// SDK answer embeds as sdk.Error, or nil when there is no answer.
func codes(rsp any) *sdk.Error {
	switch r := rsp.(type) {
	case *sdk.TradePayRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.TradeCreateRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.TradeQueryRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.TradeCloseRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.TradeRefundRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.TradeFastPayRefundQueryRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.AgreementPageSignRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.AgreementQueryRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.AgreementUnsignRsp:
		if r != nil {
			return &r.Error
		}
	case *sdk.BillDownloadURLQueryRsp:
		if r != nil {
			return &r.Error
		}
	}
	return nil
}
