package alipaysim

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"yibao/sim"
)

// Trade statuses, Alipay's.
const (
	waitBuyerPay = "WAIT_BUYER_PAY"
	tradeSuccess = "TRADE_SUCCESS"
	tradeClosed  = "TRADE_CLOSED"
)

// Product codes the simulator knows.
const (
	productWithholding = "GENERAL_WITHHOLDING" // trade.pay under an agreement
	productJSAPI       = "JSAPI_PAY"           // trade.create, paid by the payer
)

type trade struct {
	outTradeNo  string
	tradeNo     string
	product     string
	buyerID     string
	agreementNo string
	subject     string
	amount      int64 // fen
	status      string
	// pending: a PayingNext charge answered 10003; the payment is made at
	// the next query (or the same charge sent again).
	pending   bool
	notifyURL string
	created   time.Time
	paid      time.Time // zero until paid
	closed    time.Time
	expire    time.Time // zero: no expiry
	refunded  int64     // fen, Σ refunds
}

type refundKey struct{ outTradeNo, outRequestNo string }

type refund struct {
	outTradeNo   string
	outRequestNo string
	amount       int64
	reason       string
	at           time.Time
}

// tradeRef is how the trade methods name a trade.
type tradeRef struct {
	OutTradeNo string `json:"out_trade_no"`
	TradeNo    string `json:"trade_no"`
}

// find looks a trade up (s.mu held): by trade_no if given, else
// out_trade_no. It settles what time or a pending charge has decided.
func (s *Sim) find(ref tradeRef) (*trade, []*notice) {
	t := s.trades[ref.OutTradeNo]
	if ref.TradeNo != "" {
		t = s.byTradeNo[ref.TradeNo]
	}
	if t == nil {
		return nil, nil
	}
	now := s.now()
	if t.status == waitBuyerPay && !t.pending && !t.expire.IsZero() && !now.Before(t.expire) {
		t.status, t.closed = tradeClosed, now
	}
	if t.pending {
		return t, s.settlePending(t)
	}
	return t, nil
}

// settlePending makes a PayingNext charge (s.mu held): paid if the payer
// still has the money, else closed.
func (s *Sim) settlePending(t *trade) []*notice {
	t.pending = false
	if p := s.payers[t.buyerID]; p == nil || p.balance < t.amount {
		t.status, t.closed = tradeClosed, s.now()
		return nil
	}
	return s.pay(t)
}

// pay debits the payer and marks the trade paid (s.mu held).
func (s *Sim) pay(t *trade) []*notice {
	now := s.now()
	s.payers[t.buyerID].balance -= t.amount
	s.ledger = append(s.ledger, Entry{BuyerID: t.buyerID, OutTradeNo: t.outTradeNo, Amount: -t.amount, At: now})
	t.status, t.paid = tradeSuccess, now
	return []*notice{s.tradeNotice(t, nil)}
}

func (s *Sim) newTradeNo(now time.Time) string {
	s.seq++
	return fmt.Sprintf("%s22001%015d", now.In(chinaTime).Format("20060102"), s.seq)
}

// paidFields are the answer fields of a paid trade.
func paidFields(t *trade) obj {
	return obj{
		"trade_no":         t.tradeNo,
		"out_trade_no":     t.outTradeNo,
		"buyer_logon_id":   mask(t.buyerID),
		"buyer_user_id":    t.buyerID,
		"total_amount":     yuan(t.amount),
		"receipt_amount":   yuan(t.amount),
		"buyer_pay_amount": yuan(t.amount),
		"invoice_amount":   yuan(t.amount),
		"point_amount":     "0.00",
		"gmt_payment":      fmtTime(t.paid),
		"fund_bill_list":   []obj{{"fund_channel": "ALIPAYACCOUNT", "amount": yuan(t.amount)}},
	}
}

// tradePay is alipay.trade.pay. The simulator serves only 商户代扣:
// product_code GENERAL_WITHHOLDING with agreement_params.agreement_no.
//
// The same out_trade_no sent again is the same trade: same amount → the
// first outcome again (a paid trade answers 10000 with the same trade_no
// and nothing is debited again), another amount → ACQ.CONTEXT_INCONSISTENT.
// A refused charge leaves no trade behind (at Alipay a failed deduction
// may leave a closed trade), so the same out_trade_no can be tried again.
func (s *Sim) tradePay(c *call) result {
	var b struct {
		OutTradeNo      string `json:"out_trade_no"`
		TotalAmount     string `json:"total_amount"`
		Subject         string `json:"subject"`
		ProductCode     string `json:"product_code"`
		BuyerID         string `json:"buyer_id"`
		AuthCode        string `json:"auth_code"`
		AgreementParams *struct {
			AgreementNo string `json:"agreement_no"`
		} `json:"agreement_params"`
	}
	if err := c.decode(&b); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	amount, ok := parseAmount(b.TotalAmount)
	switch {
	case b.OutTradeNo == "":
		return result{body: invalidParam("out_trade_no 不能为空")}
	case !ok:
		return result{body: invalidParam("total_amount %q", b.TotalAmount)}
	case b.Subject == "":
		return result{body: invalidParam("subject 不能为空")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, notes := s.find(tradeRef{OutTradeNo: b.OutTradeNo}); t != nil {
		switch {
		case t.amount != amount || t.product != productWithholding:
			return result{body: bizFail("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")}
		case t.status == tradeSuccess || !t.paid.IsZero():
			return result{body: success(paidFields(t)), notes: notes}
		default:
			return result{body: bizFail("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")}
		}
	}
	if s.faults.Take(func(f *sim.Faults) *int { return &f.DeclineNext }) {
		code := s.faults.Get().DeclineCode
		if code == "" {
			code = "ACQ.BUYER_BALANCE_NOT_ENOUGH"
		}
		return result{body: bizFail(code, "模拟器注入的拒绝 (injected decline)")}
	}
	if b.ProductCode != productWithholding || b.AgreementParams == nil || b.AgreementParams.AgreementNo == "" {
		return result{body: invalidParam("the simulator's trade.pay serves 商户代扣 only: product_code GENERAL_WITHHOLDING with agreement_params.agreement_no")}
	}
	ag := s.agreements[b.AgreementParams.AgreementNo]
	switch {
	case ag == nil:
		return result{body: bizFail("ACQ.AGREEMENT_NOT_EXIST", "用户协议不存在")}
	case ag.status != agreementNormal:
		return result{body: bizFail("ACQ.AGREEMENT_STATUS_NOT_NORMAL", "用户协议状态非NORMAL")}
	case b.BuyerID != "" && b.BuyerID != ag.userID:
		return result{body: bizFail("ACQ.TRADE_BUYER_NOT_MATCH", "交易买家不匹配")}
	case ag.limit > 0 && amount > ag.limit:
		return result{body: bizFail("ACQ.PRODUCT_AMOUNT_LIMIT_ERROR", "超出协议约定的单笔扣款额度")}
	}
	p := s.payers[ag.userID]
	if p == nil || p.balance < amount {
		return result{body: bizFail("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")}
	}
	now := s.now()
	t := &trade{outTradeNo: b.OutTradeNo, tradeNo: s.newTradeNo(now), product: productWithholding, buyerID: ag.userID,
		agreementNo: ag.agreementNo, subject: b.Subject, amount: amount, status: waitBuyerPay,
		notifyURL: c.params.Get("notify_url"), created: now}
	s.trades[t.outTradeNo], s.byTradeNo[t.tradeNo] = t, t
	if s.faults.Take(func(f *sim.Faults) *int { return &f.PayingNext }) {
		// 10003: created, the payer's side still deciding. Paid at the
		// next query.
		t.pending = true
		return result{body: obj{"code": "10003", "msg": "Order success pay inprocess", "trade_no": t.tradeNo,
			"out_trade_no": t.outTradeNo, "buyer_logon_id": mask(t.buyerID), "buyer_user_id": t.buyerID, "total_amount": yuan(amount)}}
	}
	notes := s.pay(t)
	return result{body: success(paidFields(t)), notes: notes}
}

// tradeCreate is alipay.trade.create (JSAPI_PAY): a trade waiting for the
// payer (buyer_id) to confirm it, at /pay/{out_trade_no} or with
// ConfirmPayment. Same out_trade_no and amount again → the same trade_no.
func (s *Sim) tradeCreate(c *call) result {
	var b struct {
		OutTradeNo  string `json:"out_trade_no"`
		TotalAmount string `json:"total_amount"`
		Subject     string `json:"subject"`
		ProductCode string `json:"product_code"`
		BuyerID     string `json:"buyer_id"`
		TimeExpire  string `json:"time_expire"`
	}
	if err := c.decode(&b); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	amount, ok := parseAmount(b.TotalAmount)
	switch {
	case b.OutTradeNo == "":
		return result{body: invalidParam("out_trade_no 不能为空")}
	case !ok:
		return result{body: invalidParam("total_amount %q", b.TotalAmount)}
	case b.Subject == "":
		return result{body: invalidParam("subject 不能为空")}
	case b.BuyerID == "":
		return result{body: invalidParam("buyer_id 不能为空")}
	}
	var expire time.Time
	if b.TimeExpire != "" {
		var err error
		if expire, err = time.ParseInLocation(timeLayout, b.TimeExpire, chinaTime); err != nil {
			return result{body: invalidParam("time_expire %q", b.TimeExpire)}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, notes := s.find(tradeRef{OutTradeNo: b.OutTradeNo}); t != nil {
		switch {
		case t.amount != amount || t.product != productJSAPI || t.buyerID != b.BuyerID:
			return result{body: bizFail("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")}
		case !t.paid.IsZero():
			return result{body: bizFail("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"), notes: notes}
		case t.status == tradeClosed:
			return result{body: bizFail("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")}
		}
		return result{body: success(obj{"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo})}
	}
	if s.payers[b.BuyerID] == nil {
		return result{body: invalidParam("buyer_id %s 不存在", b.BuyerID)}
	}
	now := s.now()
	t := &trade{outTradeNo: b.OutTradeNo, tradeNo: s.newTradeNo(now), product: productJSAPI, buyerID: b.BuyerID,
		subject: b.Subject, amount: amount, status: waitBuyerPay, notifyURL: c.params.Get("notify_url"), created: now, expire: expire}
	s.trades[t.outTradeNo], s.byTradeNo[t.tradeNo] = t, t
	return result{body: success(obj{"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo})}
}

// tradeQuery is alipay.trade.query.
func (s *Sim) tradeQuery(c *call) result {
	var ref tradeRef
	if err := c.decode(&ref); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, notes := s.find(ref)
	if t == nil {
		return result{body: bizFail("ACQ.TRADE_NOT_EXIST", "交易不存在")}
	}
	body := obj{
		"trade_no":       t.tradeNo,
		"out_trade_no":   t.outTradeNo,
		"buyer_logon_id": mask(t.buyerID),
		"buyer_user_id":  t.buyerID,
		"trade_status":   t.status,
		"total_amount":   yuan(t.amount),
		"subject":        t.subject,
	}
	if !t.paid.IsZero() {
		body["buyer_pay_amount"] = yuan(t.amount)
		body["receipt_amount"] = yuan(t.amount)
		body["invoice_amount"] = yuan(t.amount)
		body["point_amount"] = "0.00"
		body["send_pay_date"] = fmtTime(t.paid)
	}
	return result{body: success(body), notes: notes}
}

// tradeClose is alipay.trade.close: an unpaid trade closes (again: still
// 10000); a paid one cannot (ACQ.TRADE_STATUS_ERROR).
func (s *Sim) tradeClose(c *call) result {
	var ref tradeRef
	if err := c.decode(&ref); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.trades[ref.OutTradeNo]
	if ref.TradeNo != "" {
		t = s.byTradeNo[ref.TradeNo]
	}
	switch {
	case t == nil:
		return result{body: bizFail("ACQ.TRADE_NOT_EXIST", "交易不存在")}
	case !t.paid.IsZero():
		return result{body: bizFail("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")}
	}
	if t.status != tradeClosed {
		t.status, t.pending, t.closed = tradeClosed, false, s.now()
	}
	return result{body: success(obj{"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo})}
}

// tradeRefund is alipay.trade.refund. out_request_no (default: the
// out_trade_no) makes it idempotent: the same number and amount again →
// 10000 with fund_change=N, nothing moves. Σ refunds ≤ the paid amount,
// else ACQ.REFUND_AMT_NOT_EQUAL_TOTAL. The last yuan refunded closes the
// trade (TRADE_CLOSED). The refund is announced on the trade's notify_url.
func (s *Sim) tradeRefund(c *call) result {
	var b struct {
		tradeRef
		RefundAmount string `json:"refund_amount"`
		OutRequestNo string `json:"out_request_no"`
		RefundReason string `json:"refund_reason"`
	}
	if err := c.decode(&b); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	amount, ok := parseAmount(b.RefundAmount)
	if !ok {
		return result{body: invalidParam("refund_amount %q", b.RefundAmount)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, notes := s.find(b.tradeRef)
	if t == nil {
		return result{body: bizFail("ACQ.TRADE_NOT_EXIST", "交易不存在")}
	}
	if t.paid.IsZero() {
		return result{body: bizFail("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"), notes: notes}
	}
	reqNo := b.OutRequestNo
	if reqNo == "" {
		reqNo = t.outTradeNo
	}
	answer := func(fundChange string, rf *refund) obj {
		return success(obj{"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo, "buyer_logon_id": mask(t.buyerID),
			"buyer_user_id": t.buyerID, "fund_change": fundChange, "refund_fee": yuan(t.refunded),
			"gmt_refund_pay": fmtTime(rf.at), "send_back_fee": yuan(rf.amount)})
	}
	key := refundKey{t.outTradeNo, reqNo}
	if rf := s.refunds[key]; rf != nil {
		if rf.amount != amount {
			return result{body: bizFail("ACQ.CONTEXT_INCONSISTENT", "同一退款请求号的退款金额不一致"), notes: notes}
		}
		return result{body: answer("N", rf), notes: notes}
	}
	if t.refunded+amount > t.amount {
		return result{body: bizFail("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"), notes: notes}
	}
	now := s.now()
	rf := &refund{outTradeNo: t.outTradeNo, outRequestNo: reqNo, amount: amount, reason: b.RefundReason, at: now}
	s.refunds[key] = rf
	t.refunded += amount
	if t.refunded == t.amount {
		t.status, t.closed = tradeClosed, now
	}
	if p := s.payers[t.buyerID]; p != nil {
		p.balance += amount
	}
	s.ledger = append(s.ledger, Entry{BuyerID: t.buyerID, OutTradeNo: t.outTradeNo, OutRequestNo: reqNo, Amount: amount, At: now})
	notes = append(notes, s.tradeNotice(t, rf))
	return result{body: answer("Y", rf), notes: notes}
}

// refundQuery is alipay.trade.fastpay.refund.query. As at Alipay, a known
// trade answers 10000 whether or not the refund exists; only a refund
// that was made carries refund_status=REFUND_SUCCESS and the amounts.
func (s *Sim) refundQuery(c *call) result {
	var b struct {
		tradeRef
		OutRequestNo string `json:"out_request_no"`
	}
	if err := c.decode(&b); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	if b.OutRequestNo == "" {
		return result{body: invalidParam("out_request_no 不能为空")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, notes := s.find(b.tradeRef)
	if t == nil {
		return result{body: bizFail("ACQ.TRADE_NOT_EXIST", "交易不存在")}
	}
	body := obj{"trade_no": t.tradeNo, "out_trade_no": t.outTradeNo, "out_request_no": b.OutRequestNo}
	if rf := s.refunds[refundKey{t.outTradeNo, b.OutRequestNo}]; rf != nil {
		body["total_amount"] = yuan(t.amount)
		body["refund_amount"] = yuan(rf.amount)
		body["refund_status"] = "REFUND_SUCCESS"
		body["gmt_refund_pay"] = fmtTime(rf.at)
		body["send_back_fee"] = yuan(rf.amount)
	}
	return result{body: success(body), notes: notes}
}

// Errors of ConfirmPayment.
var (
	ErrNoTrade     = errors.New("alipaysim: no such trade")
	ErrNotPayable  = errors.New("alipaysim: the trade is not waiting for the payer")
	ErrNoBalance   = errors.New("alipaysim: the payer's balance is not enough")
	ErrNotPrepared = errors.New("alipaysim: not a trade the payer confirms (trade.create)")
)

// ConfirmPayment is the simulated payer confirming a trade.create trade
// in the Alipay app: the payer is debited, the trade is TRADE_SUCCESS and
// the notification goes out.
func (s *Sim) ConfirmPayment(outTradeNo string) error {
	s.mu.Lock()
	t, notes := s.find(tradeRef{OutTradeNo: outTradeNo})
	var err error
	switch {
	case t == nil:
		err = ErrNoTrade
	case t.product != productJSAPI:
		err = ErrNotPrepared
	case t.status != waitBuyerPay:
		err = fmt.Errorf("%w (%s)", ErrNotPayable, t.status)
	case s.payers[t.buyerID] == nil || s.payers[t.buyerID].balance < t.amount:
		err = ErrNoBalance
	default:
		notes = append(notes, s.pay(t)...)
	}
	s.mu.Unlock()
	for _, n := range notes {
		s.dispatch(n, false)
	}
	return err
}

var payTmpl = template.Must(template.New("pay").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>支付宝（模拟器）</title>
<style>body{font-family:sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem}.amt{font-size:2rem;margin:1rem 0}
button{font-size:1.1rem;padding:.6rem 1.6rem;background:#1677ff;color:#fff;border:0;border-radius:6px}.note{color:#888;font-size:.85rem}</style>
</head><body>
<h1>支付宝（模拟器）</h1>
<p class="note">This is the yibao Alipay simulator standing in for the Alipay app. No real money moves.</p>
{{if .Err}}<p><strong>{{.Err}}</strong></p>{{end}}
{{if .Found}}
<p>{{.Subject}}</p>
<p class="amt">¥ {{.Amount}}</p>
<p>订单号 {{.OutTradeNo}} · 交易号 {{.TradeNo}} · 付款人 {{.Buyer}}</p>
<p>状态 {{.Status}}</p>
{{if .Payable}}<form method="post"><button type="submit">确认付款</button></form>{{end}}
{{end}}
</body></html>
`))

// payPage is the simulated payer's confirmation page: GET shows the
// trade, POST pays it.
func (s *Sim) payPage(w http.ResponseWriter, r *http.Request) {
	no := r.PathValue("no")
	var msg string
	if r.Method == http.MethodPost {
		if err := s.ConfirmPayment(no); err != nil {
			msg = err.Error()
		} else {
			msg = "付款成功 (paid)"
		}
	}
	s.mu.Lock()
	t, notes := s.find(tradeRef{OutTradeNo: no})
	data := struct {
		Found, Payable                                           bool
		Err, Subject, Amount, OutTradeNo, TradeNo, Buyer, Status string
	}{Err: msg}
	if t != nil {
		data.Found, data.Payable = true, t.status == waitBuyerPay && t.product == productJSAPI
		data.Subject, data.Amount, data.OutTradeNo, data.TradeNo = t.subject, yuan(t.amount), t.outTradeNo, t.tradeNo
		data.Buyer, data.Status = mask(t.buyerID), t.status
	} else if msg == "" {
		data.Err = ErrNoTrade.Error()
	}
	s.mu.Unlock()
	for _, n := range notes {
		s.dispatch(n, false)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if t == nil {
		w.WriteHeader(http.StatusNotFound)
	}
	payTmpl.Execute(w, data)
}
