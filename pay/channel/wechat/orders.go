package wechat

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
	"github.com/wechatpay-apiv3/wechatpay-go/services/refunddomestic"

	"yibao/pay/channel"
)

// papayApply is the body of POST /v3/papay/pay-transactions/apply
// (委托代扣申请扣款). The SDK has no service for it.
type papayApply struct {
	AppID       string      `json:"appid"`
	MchID       string      `json:"mchid"`
	Description string      `json:"description"`
	OutTradeNo  string      `json:"out_trade_no"`
	NotifyURL   string      `json:"notify_url"`
	ContractID  string      `json:"contract_id"`
	Amount      papayAmount `json:"amount"`
}

type papayAmount struct {
	Total    int64  `json:"total"` // fen
	Currency string `json:"currency"`
}

// Charge takes money under a withholding agreement. WeChat answers the
// apply with 204 (accepted, the deduction runs asynchronously); the
// adapter then queries the order once and returns what it finds:
// SUCCESS, or USERPAYING (also for ACCEPT/NOTPAY: still deciding) to be
// queried again. PAYERROR or CLOSED at that query is a decline. Sending
// the same OutTradeNo again is safe: WeChat charges an out_trade_no once
// and the query returns the first outcome.
func (c *Channel) Charge(ctx context.Context, r channel.ChargeRequest) (*channel.Order, error) {
	what := "charge " + r.OutTradeNo
	body := papayApply{
		AppID: c.cfg.AppID, MchID: c.cfg.MchID,
		Description: r.Description, OutTradeNo: r.OutTradeNo, NotifyURL: r.NotifyURL,
		ContractID: r.AgreementID,
		Amount:     papayAmount{Total: r.Amount, Currency: "CNY"},
	}
	if _, err := c.client.Post(ctx, host+"/v3/papay/pay-transactions/apply", body); err != nil {
		return nil, classify(asCharge, what, err)
	}
	o, err := c.Query(ctx, r.OutTradeNo)
	if err != nil {
		// Accepted, but we cannot see the result: the caller must query.
		if errors.Is(err, channel.ErrUnknown) {
			return nil, err
		}
		return nil, fmt.Errorf("wechat: %s: accepted, then %w: %v", what, channel.ErrUnknown, err)
	}
	switch o.State {
	case channel.StateSuccess, channel.StateRefund, channel.StatePaying:
		return o, nil
	case channel.StateNotPay:
		o.State = channel.StatePaying
		return o, nil
	case channel.StatePayError:
		return nil, fmt.Errorf("wechat: %s: %w", what, &channel.DeclineError{Code: "PAYERROR", Message: "the deduction failed"})
	case channel.StateClosed:
		return nil, fmt.Errorf("wechat: %s: %w", what, &channel.DeclineError{Code: "ORDER_CLOSED", Message: "the order is closed"})
	}
	return nil, fmt.Errorf("wechat: %s: %w: trade_state %s", what, channel.ErrUnknown, o.State)
}

// Prepay creates a JSAPI order (POST /v3/pay/transactions/jsapi).
func (c *Channel) Prepay(ctx context.Context, r channel.PrepayRequest) (*channel.Prepay, error) {
	req := jsapi.PrepayRequest{
		Appid:       core.String(c.cfg.AppID),
		Mchid:       core.String(c.cfg.MchID),
		Description: core.String(r.Description),
		OutTradeNo:  core.String(r.OutTradeNo),
		NotifyUrl:   core.String(r.NotifyURL),
		Amount:      &jsapi.Amount{Total: core.Int64(r.Amount), Currency: core.String("CNY")},
		Payer:       &jsapi.Payer{Openid: core.String(r.PayerRef)},
	}
	if !r.ExpireAt.IsZero() {
		// WeChat wants yyyy-MM-DDTHH:mm:ss+TIMEZONE (the SDK formats
		// RFC 3339); China time reads best in WeChat's own tools.
		t := r.ExpireAt.In(chinaTime)
		req.TimeExpire = &t
	}
	resp, _, err := c.jsapi.Prepay(ctx, req)
	if err != nil {
		return nil, classify(asAction, "prepay "+r.OutTradeNo, err)
	}
	if resp.PrepayId == nil || *resp.PrepayId == "" {
		return nil, fmt.Errorf("wechat: prepay %s: %w: no prepay_id in the answer", r.OutTradeNo, channel.ErrUnknown)
	}
	p := &channel.Prepay{OutTradeNo: r.OutTradeNo, PrepayID: *resp.PrepayId}
	if c.base != nil {
		p.PayURL = c.base.String() + "/pay/" + url.PathEscape(p.PrepayID)
	}
	return p, nil
}

// Query returns the order (GET /v3/pay/transactions/out-trade-no/{no}).
func (c *Channel) Query(ctx context.Context, outTradeNo string) (*channel.Order, error) {
	tx, _, err := c.jsapi.QueryOrderByOutTradeNo(ctx, jsapi.QueryOrderByOutTradeNoRequest{
		OutTradeNo: core.String(outTradeNo),
		Mchid:      core.String(c.cfg.MchID),
	})
	if err != nil {
		return nil, classify(asQuery, "query "+outTradeNo, err)
	}
	o, err := orderOf(tx)
	if err != nil {
		return nil, fmt.Errorf("wechat: query %s: %w", outTradeNo, err)
	}
	if o.OutTradeNo != outTradeNo {
		return nil, fmt.Errorf("wechat: query %s: the answer is about order %q", outTradeNo, o.OutTradeNo)
	}
	return o, nil
}

// orderOf converts WeChat's transaction (query answer or callback resource).
func orderOf(tx *payments.Transaction) (*channel.Order, error) {
	o := &channel.Order{
		OutTradeNo:    deref(tx.OutTradeNo),
		TransactionID: deref(tx.TransactionId),
		State:         tradeState(deref(tx.TradeState)),
	}
	if tx.Amount != nil && tx.Amount.Total != nil {
		o.Amount = *tx.Amount.Total
	}
	if tx.Payer != nil {
		o.PayerRef = deref(tx.Payer.Openid)
	}
	if s := deref(tx.SuccessTime); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, fmt.Errorf("bad success_time %q", s)
		}
		o.PaidAt = t
	}
	return o, nil
}

// tradeState maps WeChat's trade_state onto channel.State*.
func tradeState(s string) string {
	switch s {
	case "SUCCESS":
		return channel.StateSuccess
	case "REFUND":
		return channel.StateRefund
	case "NOTPAY":
		return channel.StateNotPay
	case "CLOSED", "REVOKED":
		return channel.StateClosed
	case "USERPAYING", "ACCEPT": // ACCEPT: a withholding deduction accepted, not yet done
		return channel.StatePaying
	case "PAYERROR":
		return channel.StatePayError
	}
	return s
}

// Close closes an unpaid order (POST .../out-trade-no/{no}/close). An
// order already closed is fine; a paid one is a *DeclineError (ORDERPAID).
func (c *Channel) Close(ctx context.Context, outTradeNo string) error {
	_, err := c.jsapi.CloseOrder(ctx, jsapi.CloseOrderRequest{
		OutTradeNo: core.String(outTradeNo),
		Mchid:      core.String(c.cfg.MchID),
	})
	if err != nil {
		if apiCode(err) == "ORDER_CLOSED" {
			return nil
		}
		return classify(asAction, "close "+outTradeNo, err)
	}
	return nil
}

// Refund creates a refund (POST /v3/refund/domestic/refunds). The same
// out_refund_no sent again returns the same refund. A refusal (more than
// is left to refund, the order not paid...) is a *DeclineError; an
// unknown order is ErrNotFound; no answer is ErrUnknown.
func (c *Channel) Refund(ctx context.Context, r channel.RefundRequest) (*channel.Refund, error) {
	req := refunddomestic.CreateRequest{
		OutTradeNo:  core.String(r.OutTradeNo),
		OutRefundNo: core.String(r.OutRefundNo),
		Amount: &refunddomestic.AmountReq{
			Refund:   core.Int64(r.Amount),
			Total:    core.Int64(r.Total),
			Currency: core.String("CNY"),
		},
	}
	if r.Reason != "" {
		req.Reason = core.String(r.Reason)
	}
	if r.NotifyURL != "" {
		req.NotifyUrl = core.String(r.NotifyURL)
	}
	resp, _, err := c.refunds.Create(ctx, req)
	if err != nil {
		return nil, classify(asAction, "refund "+r.OutRefundNo, err)
	}
	return refundOf(resp), nil
}

// QueryRefund returns a refund (GET /v3/refund/domestic/refunds/{no}).
func (c *Channel) QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (*channel.Refund, error) {
	resp, _, err := c.refunds.QueryByOutRefundNo(ctx, refunddomestic.QueryByOutRefundNoRequest{
		OutRefundNo: core.String(outRefundNo),
	})
	if err != nil {
		return nil, classify(asQuery, "query refund "+outRefundNo, err)
	}
	rf := refundOf(resp)
	if outTradeNo != "" && rf.OutTradeNo != outTradeNo {
		return nil, fmt.Errorf("wechat: query refund %s: %w: it belongs to order %q, not %q",
			outRefundNo, channel.ErrNotFound, rf.OutTradeNo, outTradeNo)
	}
	return rf, nil
}

func refundOf(r *refunddomestic.Refund) *channel.Refund {
	rf := &channel.Refund{
		OutTradeNo:  deref(r.OutTradeNo),
		OutRefundNo: deref(r.OutRefundNo),
		RefundID:    deref(r.RefundId),
	}
	if r.Status != nil {
		rf.Status = string(*r.Status) // SUCCESS, PROCESSING, ABNORMAL, CLOSED: the channel's names
	}
	if r.Amount != nil && r.Amount.Refund != nil {
		rf.Amount = *r.Amount.Refund
	}
	return rf
}

// contractRequest is the body of POST /v3/papay/contracts.
type contractRequest struct {
	AppID           string `json:"appid"`
	MchID           string `json:"mchid"`
	OutContractCode string `json:"out_contract_code"`
	OpenID          string `json:"openid"`
	Limit           int64  `json:"limit"` // fen per deduction
	NotifyURL       string `json:"notify_url,omitempty"`
}

// contract is WeChat's view of a withholding contract: the answer of
// POST /v3/papay/contracts and the resource of PAPAY.* callbacks.
type contract struct {
	MchID           string `json:"mchid"`
	AppID           string `json:"appid"`
	ContractID      string `json:"contract_id"`
	OutContractCode string `json:"out_contract_code"`
	OpenID          string `json:"openid"`
	ContractState   string `json:"contract_state"` // SIGNED or TERMINATED
	Limit           int64  `json:"limit"`
}

func (k *contract) agreement() *channel.Agreement {
	a := &channel.Agreement{
		ExternalNo:  k.OutContractCode,
		AgreementID: k.ContractID,
		PayerRef:    k.OpenID,
		State:       k.ContractState,
		Limit:       k.Limit,
	}
	switch k.ContractState {
	case "SIGNED", "ACTIVE":
		a.State = channel.AgreementActive
	case "TERMINATED", "UNSIGNED":
		a.State = channel.AgreementTerminated
	}
	return a
}

// SignAgreement creates a withholding contract for a payer who consented
// in our app.
//
// In reality signing is a page flow: POST /v3/papay/sign/contracts/pre-entrust-sign
// returns a link the payer opens in the WeChat app, and the contract_id
// arrives later in a callback. That needs the payer's WeChat app, so this
// adapter uses a server-side stand-in, POST /v3/papay/contracts, which the
// simulator (playing the wallet app that already consented) answers with
// {contract_id, contract_state}. Likewise TerminateAgreement uses
// POST /v3/papay/contracts/{contract_id}/terminate. Both paths are the
// simulator's and do not exist at the real WeChat Pay.
func (c *Channel) SignAgreement(ctx context.Context, r channel.AgreementRequest) (*channel.Agreement, error) {
	what := "sign agreement " + r.ExternalNo
	res, err := c.client.Post(ctx, host+"/v3/papay/contracts", contractRequest{
		AppID: c.cfg.AppID, MchID: c.cfg.MchID,
		OutContractCode: r.ExternalNo, OpenID: r.PayerRef, Limit: r.Limit, NotifyURL: r.NotifyURL,
	})
	if err != nil {
		return nil, classify(asAction, what, err)
	}
	var k contract
	if err := core.UnMarshalResponse(res.Response, &k); err != nil {
		return nil, fmt.Errorf("wechat: %s: %w: bad answer: %w", what, channel.ErrUnknown, err)
	}
	if k.ContractID == "" {
		return nil, fmt.Errorf("wechat: %s: %w: no contract_id in the answer", what, channel.ErrUnknown)
	}
	return k.agreement(), nil
}

// TerminateAgreement ends a contract (see SignAgreement for the path).
func (c *Channel) TerminateAgreement(ctx context.Context, agreementID string) error {
	_, err := c.client.Post(ctx, host+"/v3/papay/contracts/"+url.PathEscape(agreementID)+"/terminate", map[string]string{
		"appid": c.cfg.AppID, "mchid": c.cfg.MchID, "contract_termination_remark": "terminated by the merchant",
	})
	if err != nil {
		return classify(asAction, "terminate agreement "+agreementID, err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
