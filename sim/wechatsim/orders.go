package wechatsim

import (
	"fmt"
	"net/http"
	"time"

	"yibao/sim"
)

// Trade states (trade_state).
const (
	stNotPay   = "NOTPAY"
	stPaying   = "USERPAYING"
	stSuccess  = "SUCCESS"
	stRefund   = "REFUND"
	stClosed   = "CLOSED"
	stPayError = "PAYERROR"
)

type order struct {
	OutTradeNo    string
	TransactionID string
	TradeType     string // JSAPI or PAP (withholding)
	State         string
	StateDesc     string
	Description   string
	OpenID        string
	ContractID    string
	NotifyURL     string
	PrepayID      string
	Amount        int64 // fen
	Refunded      int64 // fen, successful refunds
	CreatedAt     time.Time
	PaidAt        time.Time
	ExpireAt      time.Time
	DeclineCode   string // PAYERROR orders: the answer re-sent charges get
	DeclineMsg    string
	payingQueries int // USERPAYING: queries still answered USERPAYING before the deduction completes
}

// Error is a refusal by the simulator, with WeChat's code.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return "wechatsim: " + e.Code + ": " + e.Message }

// transaction is the JSON of an order, as queries answer and TRANSACTION
// callbacks carry it.
type transaction struct {
	AppID          string   `json:"appid"`
	MchID          string   `json:"mchid"`
	OutTradeNo     string   `json:"out_trade_no"`
	TransactionID  string   `json:"transaction_id,omitempty"`
	TradeType      string   `json:"trade_type"`
	TradeState     string   `json:"trade_state"`
	TradeStateDesc string   `json:"trade_state_desc"`
	BankType       string   `json:"bank_type,omitempty"`
	Attach         string   `json:"attach"`
	SuccessTime    string   `json:"success_time,omitempty"`
	Payer          txPayer  `json:"payer"`
	Amount         txAmount `json:"amount"`
	ContractID     string   `json:"contract_id,omitempty"`
}

type txPayer struct {
	OpenID string `json:"openid"`
}

type txAmount struct {
	Total         int64  `json:"total"`
	PayerTotal    int64  `json:"payer_total"`
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency"`
}

// txOf renders an order. Callers hold s.mu.
func (s *Sim) txOf(o *order) transaction {
	t := transaction{
		AppID: s.cfg.AppID, MchID: s.cfg.MchID,
		OutTradeNo: o.OutTradeNo, TransactionID: o.TransactionID,
		TradeType: o.TradeType, TradeState: o.State, TradeStateDesc: o.StateDesc,
		Payer:      txPayer{OpenID: o.OpenID},
		Amount:     txAmount{Total: o.Amount, Currency: "CNY", PayerCurrency: "CNY"},
		ContractID: o.ContractID,
	}
	if !o.PaidAt.IsZero() {
		t.SuccessTime = wxTime(o.PaidAt)
		t.BankType = "OTHERS"
		t.Amount.PayerTotal = o.Amount
	}
	return t
}

// settle takes the order's amount from its payer and marks it paid; it
// returns the TRANSACTION.SUCCESS callback to send. Callers hold s.mu and
// have checked the balance.
func (s *Sim) settle(o *order) *event {
	now := s.now()
	s.payers[o.OpenID].balance -= o.Amount
	s.ledger = append(s.ledger, Entry{OpenID: o.OpenID, OutTradeNo: o.OutTradeNo, Amount: -o.Amount, At: now})
	o.State, o.StateDesc, o.PaidAt = stSuccess, "支付成功", now
	o.TransactionID = fmt.Sprintf("4200%s%016d", now.In(chinaTime).Format("20060102"), s.nextSeq())
	s.byTx[o.TransactionID] = o
	tx := s.txOf(o)
	if s.faults.Get().NotifyWrongAmount {
		tx.Amount.Total++
		tx.Amount.PayerTotal++
	}
	return s.newEvent(o.NotifyURL, "TRANSACTION.SUCCESS", "支付成功", "transaction", tx)
}

func (s *Sim) balanceOf(openid string) (int64, bool) {
	p := s.payers[openid]
	if p == nil {
		return 0, false
	}
	return p.balance, true
}

// prepay: POST /v3/pay/transactions/jsapi
//
//	{appid, mchid, description, out_trade_no, time_expire?, notify_url,
//	 amount{total, currency}, payer{openid}} → 200 {prepay_id}
//
// The same out_trade_no with the same amount and payer answers the same
// prepay_id; with anything different it is OUT_TRADE_NO_USED.
func (s *Sim) prepay(_ *http.Request, body []byte) reply {
	var in struct {
		AppID       string `json:"appid"`
		MchID       string `json:"mchid"`
		Description string `json:"description"`
		OutTradeNo  string `json:"out_trade_no"`
		TimeExpire  string `json:"time_expire"`
		NotifyURL   string `json:"notify_url"`
		Amount      struct {
			Total    int64  `json:"total"`
			Currency string `json:"currency"`
		} `json:"amount"`
		Payer struct {
			OpenID string `json:"openid"`
		} `json:"payer"`
	}
	if err := decode(body, &in); err != nil {
		return paramError(err.Error())
	}
	if rep, good := s.checkMerchant(in.AppID, in.MchID); !good {
		return rep
	}
	var expire time.Time
	switch {
	case !validNo(in.OutTradeNo, 32):
		return paramError("out_trade_no must be 1-32 letters, digits or _-|*@")
	case in.Description == "":
		return paramError("description is required")
	case in.NotifyURL == "":
		return paramError("notify_url is required")
	case in.Amount.Total <= 0:
		return paramError("amount.total must be > 0 fen")
	case in.Amount.Currency != "" && in.Amount.Currency != "CNY":
		return paramError("currency must be CNY")
	case in.Payer.OpenID == "":
		return paramError("payer.openid is required")
	case in.TimeExpire != "":
		t, err := time.Parse(time.RFC3339, in.TimeExpire)
		if err != nil {
			return paramError("time_expire must be yyyy-MM-DDTHH:mm:ss+TIMEZONE")
		}
		if !t.After(s.now()) {
			return paramError("time_expire is in the past")
		}
		expire = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.balanceOf(in.Payer.OpenID); !known {
		return paramError("openid is not a user of this appid")
	}
	if o := s.orders[in.OutTradeNo]; o != nil {
		switch {
		case o.TradeType != "JSAPI" || o.Amount != in.Amount.Total || o.OpenID != in.Payer.OpenID:
			return fail(http.StatusForbidden, "OUT_TRADE_NO_USED", "out_trade_no already used with other parameters")
		case o.State == stSuccess || o.State == stRefund:
			return fail(http.StatusBadRequest, "ORDERPAID", "the order is already paid")
		case o.State == stClosed:
			return fail(http.StatusBadRequest, "ORDER_CLOSED", "the order is closed")
		}
		return ok(map[string]string{"prepay_id": o.PrepayID})
	}
	now := s.now()
	o := &order{
		OutTradeNo: in.OutTradeNo, TradeType: "JSAPI", State: stNotPay, StateDesc: "未支付",
		Description: in.Description, OpenID: in.Payer.OpenID, NotifyURL: in.NotifyURL,
		Amount: in.Amount.Total, CreatedAt: now, ExpireAt: expire,
		PrepayID: "wx" + now.In(chinaTime).Format("20060102150405") + randHex(10),
	}
	s.orders[o.OutTradeNo] = o
	s.byPrepay[o.PrepayID] = o
	return ok(map[string]string{"prepay_id": o.PrepayID})
}

// ConfirmPrepay is the payer confirming a JSAPI order in the wallet app:
// the payer is debited, the order becomes SUCCESS and the callback is
// sent. Confirming a paid order again is a no-op. An unknown prepay_id,
// a closed or expired order, or a short balance is an *Error.
func (s *Sim) ConfirmPrepay(prepayID string) error {
	s.mu.Lock()
	o := s.byPrepay[prepayID]
	var (
		ev  *event
		err error
	)
	switch bal, _ := s.balanceOf(orderPayer(o)); {
	case o == nil:
		err = &Error{"RESOURCE_NOT_EXISTS", "no such prepay_id"}
	case o.State == stSuccess || o.State == stRefund:
	case o.State == stClosed:
		err = &Error{"ORDER_CLOSED", "the order is closed"}
	case !o.ExpireAt.IsZero() && !s.now().Before(o.ExpireAt):
		err = &Error{"ORDER_EXPIRED", "the order has expired"}
	case bal < o.Amount:
		err = &Error{"NOTENOUGH", "the payer's balance is not enough"}
	default:
		ev = s.settle(o)
	}
	s.mu.Unlock()
	s.notify(ev, false)
	return err
}

func orderPayer(o *order) string {
	if o == nil {
		return ""
	}
	return o.OpenID
}

// apply: POST /v3/papay/pay-transactions/apply, the withholding charge
//
//	{appid, mchid, description, out_trade_no, notify_url, contract_id,
//	 amount{total, currency}} → 204 (accepted; query for the result)
//
// The deduction is done before the answer. Refusals are 403 with
// CONTRACT_NOT_EXIST, RULE_LIMIT (over the contract's per-charge limit),
// NOTENOUGH, or the injected DeclineCode; a refused order is kept as
// PAYERROR and a re-sent out_trade_no gets the same refusal. The same
// out_trade_no with the same amount and contract is accepted again
// without a second debit; with different ones it is OUT_TRADE_NO_USED.
func (s *Sim) apply(_ *http.Request, body []byte) reply {
	var in struct {
		AppID       string `json:"appid"`
		MchID       string `json:"mchid"`
		Description string `json:"description"`
		OutTradeNo  string `json:"out_trade_no"`
		NotifyURL   string `json:"notify_url"`
		ContractID  string `json:"contract_id"`
		Amount      struct {
			Total    int64  `json:"total"`
			Currency string `json:"currency"`
		} `json:"amount"`
	}
	if err := decode(body, &in); err != nil {
		return paramError(err.Error())
	}
	if rep, good := s.checkMerchant(in.AppID, in.MchID); !good {
		return rep
	}
	switch {
	case !validNo(in.OutTradeNo, 32):
		return paramError("out_trade_no must be 1-32 letters, digits or _-|*@")
	case in.Description == "":
		return paramError("description is required")
	case in.ContractID == "":
		return paramError("contract_id is required")
	case in.Amount.Total <= 0:
		return paramError("amount.total must be > 0 fen")
	case in.Amount.Currency != "" && in.Amount.Currency != "CNY":
		return paramError("currency must be CNY")
	}
	f := s.faults.Get()
	s.mu.Lock()
	if o := s.orders[in.OutTradeNo]; o != nil {
		defer s.mu.Unlock()
		switch {
		case o.TradeType != "PAP" || o.Amount != in.Amount.Total || o.ContractID != in.ContractID:
			return fail(http.StatusForbidden, "OUT_TRADE_NO_USED", "out_trade_no already used with other parameters")
		case o.State == stPayError:
			return fail(http.StatusForbidden, o.DeclineCode, o.DeclineMsg)
		case o.State == stClosed:
			return fail(http.StatusBadRequest, "ORDER_CLOSED", "the order is closed")
		}
		return noContent() // the same charge: already done (or under way)
	}
	o := &order{
		OutTradeNo: in.OutTradeNo, TradeType: "PAP", Description: in.Description,
		ContractID: in.ContractID, NotifyURL: in.NotifyURL, Amount: in.Amount.Total, CreatedAt: s.now(),
	}
	s.orders[o.OutTradeNo] = o
	k := s.contracts[in.ContractID]
	if k != nil {
		o.OpenID = k.OpenID
	}
	bal, _ := s.balanceOf(o.OpenID)
	var (
		rep = noContent()
		ev  *event
	)
	switch {
	case k == nil || k.State != ctSigned || k.AppID != in.AppID:
		rep = s.decline(o, "CONTRACT_NOT_EXIST", "the contract does not exist or is terminated")
	case in.Amount.Total > k.Limit:
		rep = s.decline(o, "RULE_LIMIT", fmt.Sprintf("over the contract's limit of %d fen per charge", k.Limit))
	case s.faults.Take(func(f *sim.Faults) *int { return &f.DeclineNext }):
		code := f.DeclineCode
		if code == "" {
			code = "NOTENOUGH"
		}
		rep = s.decline(o, code, "refused (injected by the simulator)")
	case bal < in.Amount.Total:
		rep = s.decline(o, "NOTENOUGH", "the payer's balance is not enough")
	case s.faults.Take(func(f *sim.Faults) *int { return &f.PayingNext }):
		// The wallet is still deciding: the next query answers
		// USERPAYING, the one after completes the deduction.
		o.State, o.StateDesc, o.payingQueries = stPaying, "用户支付中", 1
	default:
		ev = s.settle(o)
	}
	s.mu.Unlock()
	rep.hang = s.faults.Take(func(f *sim.Faults) *int { return &f.TimeoutNext })
	s.notify(ev, f.NotifyEarly)
	return rep
}

// decline records a refused charge. Callers hold s.mu.
func (s *Sim) decline(o *order, code, msg string) reply {
	o.State, o.StateDesc, o.DeclineCode, o.DeclineMsg = stPayError, "支付失败: "+msg, code, msg
	return fail(http.StatusForbidden, code, msg)
}

// queryOrder: GET /v3/pay/transactions/out-trade-no/{no}?mchid= (or
// /id/{transaction_id}) → 200 transaction, or 404 ORDER_NOT_EXIST.
// A USERPAYING withholding order completes (or fails) here, after
// answering USERPAYING once.
func (s *Sim) queryOrder(r *http.Request, _ []byte) reply {
	if r.URL.Query().Get("mchid") != s.cfg.MchID {
		return fail(http.StatusBadRequest, "MCH_NOT_EXISTS", "mchid is not the simulator's merchant")
	}
	s.mu.Lock()
	var o *order
	if no := r.PathValue("no"); no != "" {
		o = s.orders[no]
	} else {
		o = s.byTx[r.PathValue("id")]
	}
	if o == nil {
		s.mu.Unlock()
		return fail(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
	}
	var ev *event
	if o.State == stPaying {
		if o.payingQueries > 0 {
			o.payingQueries--
		} else if bal, _ := s.balanceOf(o.OpenID); bal < o.Amount {
			s.decline(o, "NOTENOUGH", "the payer's balance is not enough")
		} else {
			ev = s.settle(o)
		}
	}
	tx := s.txOf(o)
	s.mu.Unlock()
	s.notify(ev, s.faults.Get().NotifyEarly)
	return ok(tx)
}

// closeOrder: POST /v3/pay/transactions/out-trade-no/{no}/close {mchid}
// → 204. Closing a closed order is fine; a paid one is 400 ORDERPAID.
func (s *Sim) closeOrder(r *http.Request, body []byte) reply {
	var in struct {
		MchID string `json:"mchid"`
	}
	if err := decode(body, &in); err != nil {
		return paramError(err.Error())
	}
	if in.MchID != s.cfg.MchID {
		return fail(http.StatusBadRequest, "MCH_NOT_EXISTS", "mchid is not the simulator's merchant")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.orders[r.PathValue("no")]
	switch {
	case o == nil:
		return fail(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
	case o.State == stSuccess || o.State == stRefund:
		return fail(http.StatusBadRequest, "ORDERPAID", "the order is paid")
	case o.State == stPaying:
		return fail(http.StatusBadRequest, "USERPAYING", "the payer is paying")
	}
	o.State, o.StateDesc = stClosed, "已关闭"
	return noContent()
}
