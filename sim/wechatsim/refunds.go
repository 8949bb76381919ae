package wechatsim

import (
	"fmt"
	"net/http"
	"time"

	"yibao/sim"
)

type refund struct {
	OutRefundNo string
	RefundID    string
	OutTradeNo  string
	Status      string // SUCCESS (the simulator refunds at once)
	Reason      string
	NotifyURL   string
	Amount      int64 // fen refunded
	Total       int64 // fen, the order total
	CreatedAt   time.Time
	SuccessAt   time.Time
}

// refundJSON is a refund as the refund APIs answer it.
type refundJSON struct {
	RefundID            string       `json:"refund_id"`
	OutRefundNo         string       `json:"out_refund_no"`
	TransactionID       string       `json:"transaction_id"`
	OutTradeNo          string       `json:"out_trade_no"`
	Channel             string       `json:"channel"`
	UserReceivedAccount string       `json:"user_received_account"`
	SuccessTime         string       `json:"success_time,omitempty"`
	CreateTime          string       `json:"create_time"`
	Status              string       `json:"status"`
	FundsAccount        string       `json:"funds_account"`
	Amount              refundAmount `json:"amount"`
	PromotionDetail     []struct{}   `json:"promotion_detail"`
}

type refundAmount struct {
	Total            int64      `json:"total"`
	Refund           int64      `json:"refund"`
	From             []struct{} `json:"from"`
	PayerTotal       int64      `json:"payer_total"`
	PayerRefund      int64      `json:"payer_refund"`
	SettlementRefund int64      `json:"settlement_refund"`
	SettlementTotal  int64      `json:"settlement_total"`
	DiscountRefund   int64      `json:"discount_refund"`
	Currency         string     `json:"currency"`
}

// refundNotice is the resource of REFUND.* callbacks.
type refundNotice struct {
	MchID               string `json:"mchid"`
	OutTradeNo          string `json:"out_trade_no"`
	TransactionID       string `json:"transaction_id"`
	OutRefundNo         string `json:"out_refund_no"`
	RefundID            string `json:"refund_id"`
	RefundStatus        string `json:"refund_status"`
	SuccessTime         string `json:"success_time,omitempty"`
	UserReceivedAccount string `json:"user_received_account"`
	Amount              struct {
		Total       int64 `json:"total"`
		Refund      int64 `json:"refund"`
		PayerTotal  int64 `json:"payer_total"`
		PayerRefund int64 `json:"payer_refund"`
	} `json:"amount"`
}

// refundOf renders a refund. Callers hold s.mu.
func (s *Sim) refundOf(rf *refund) refundJSON {
	o := s.orders[rf.OutTradeNo]
	j := refundJSON{
		RefundID: rf.RefundID, OutRefundNo: rf.OutRefundNo, TransactionID: o.TransactionID, OutTradeNo: rf.OutTradeNo,
		Channel: "ORIGINAL", UserReceivedAccount: "支付用户零钱", CreateTime: wxTime(rf.CreatedAt),
		Status: rf.Status, FundsAccount: "AVAILABLE", PromotionDetail: []struct{}{},
		Amount: refundAmount{
			Total: rf.Total, Refund: rf.Amount, From: []struct{}{}, PayerTotal: rf.Total, PayerRefund: rf.Amount,
			SettlementRefund: rf.Amount, SettlementTotal: rf.Total, Currency: "CNY",
		},
	}
	if !rf.SuccessAt.IsZero() {
		j.SuccessTime = wxTime(rf.SuccessAt)
	}
	return j
}

// createRefund: POST /v3/refund/domestic/refunds
//
//	{out_trade_no | transaction_id, out_refund_no, reason?, notify_url?,
//	 amount{refund, total, currency}} → 200 refund
//
// The simulator refunds at once: the answer is SUCCESS (WeChat usually
// answers PROCESSING and finishes later) and REFUND.SUCCESS is sent to
// notify_url. The same out_refund_no for the same order and amount is
// the same refund; the refunds of an order never exceed what was paid.
func (s *Sim) createRefund(_ *http.Request, body []byte) reply {
	var in struct {
		TransactionID string `json:"transaction_id"`
		OutTradeNo    string `json:"out_trade_no"`
		OutRefundNo   string `json:"out_refund_no"`
		Reason        string `json:"reason"`
		NotifyURL     string `json:"notify_url"`
		Amount        struct {
			Refund   int64  `json:"refund"`
			Total    int64  `json:"total"`
			Currency string `json:"currency"`
		} `json:"amount"`
	}
	if err := decode(body, &in); err != nil {
		return paramError(err.Error())
	}
	switch {
	case !validNo(in.OutRefundNo, 64):
		return paramError("out_refund_no must be 1-64 letters, digits or _-|*@")
	case in.OutTradeNo == "" && in.TransactionID == "":
		return paramError("out_trade_no or transaction_id is required")
	case in.Amount.Refund <= 0 || in.Amount.Total <= 0:
		return paramError("amount.refund and amount.total must be > 0 fen")
	case in.Amount.Currency != "CNY":
		return paramError("amount.currency must be CNY")
	}
	f := s.faults.Get()
	s.mu.Lock()
	o := s.orders[in.OutTradeNo]
	if in.OutTradeNo == "" {
		o = s.byTx[in.TransactionID]
	}
	if rf := s.refunds[in.OutRefundNo]; rf != nil {
		defer s.mu.Unlock()
		if o == nil || rf.OutTradeNo != o.OutTradeNo || rf.Amount != in.Amount.Refund {
			return fail(http.StatusBadRequest, "INVALID_REQUEST", "out_refund_no already used with other parameters")
		}
		return ok(s.refundOf(rf)) // the same refund
	}
	switch {
	case o == nil:
		s.mu.Unlock()
		return fail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "订单不存在")
	case o.State != stSuccess && o.State != stRefund:
		s.mu.Unlock()
		return fail(http.StatusBadRequest, "INVALID_REQUEST", "the order is not paid")
	case in.Amount.Total != o.Amount:
		s.mu.Unlock()
		return paramError(fmt.Sprintf("amount.total %d is not the order's %d fen", in.Amount.Total, o.Amount))
	case o.Refunded+in.Amount.Refund > o.Amount:
		s.mu.Unlock()
		return fail(http.StatusBadRequest, "INVALID_REQUEST",
			fmt.Sprintf("申请退款金额超过订单可退金额: %d fen refundable", o.Amount-o.Refunded))
	}
	now := s.now()
	rf := &refund{
		OutRefundNo: in.OutRefundNo, OutTradeNo: o.OutTradeNo, Status: "SUCCESS", Reason: in.Reason,
		NotifyURL: in.NotifyURL, Amount: in.Amount.Refund, Total: o.Amount, CreatedAt: now, SuccessAt: now,
		RefundID: fmt.Sprintf("50300%s%016d", now.In(chinaTime).Format("20060102"), s.nextSeq()),
	}
	s.refunds[rf.OutRefundNo] = rf
	o.Refunded += rf.Amount
	o.State, o.StateDesc = stRefund, "转入退款"
	if p := s.payers[o.OpenID]; p != nil {
		p.balance += rf.Amount
	}
	s.ledger = append(s.ledger, Entry{OpenID: o.OpenID, OutTradeNo: o.OutTradeNo, OutRefundNo: rf.OutRefundNo, Amount: rf.Amount, At: now})
	out := s.refundOf(rf)
	n := refundNotice{
		MchID: s.cfg.MchID, OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID,
		OutRefundNo: rf.OutRefundNo, RefundID: rf.RefundID, RefundStatus: rf.Status,
		SuccessTime: wxTime(rf.SuccessAt), UserReceivedAccount: "支付用户零钱",
	}
	n.Amount.Total, n.Amount.Refund, n.Amount.PayerTotal, n.Amount.PayerRefund = o.Amount, rf.Amount, o.Amount, rf.Amount
	if f.NotifyWrongAmount {
		n.Amount.Refund++
		n.Amount.PayerRefund++
	}
	ev := s.newEvent(rf.NotifyURL, "REFUND.SUCCESS", "退款成功", "refund", n)
	s.mu.Unlock()
	hang := s.faults.Take(func(f *sim.Faults) *int { return &f.TimeoutNext })
	s.notify(ev, f.NotifyEarly)
	return reply{status: http.StatusOK, body: out, hang: hang}
}

// queryRefund: GET /v3/refund/domestic/refunds/{out_refund_no} → 200
// refund, or 404 RESOURCE_NOT_EXISTS.
func (s *Sim) queryRefund(r *http.Request, _ []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf := s.refunds[r.PathValue("no")]
	if rf == nil {
		return fail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "退款单不存在")
	}
	return ok(s.refundOf(rf))
}
