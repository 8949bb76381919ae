// Package channel is the contract between yibao's payment service and the
// wallets that collect out-of-pocket money (WeChat Pay, Alipay). Each
// wallet has an adapter built on its provider's Go SDK; the payment
// service sees only this interface. Amounts are integer fen everywhere:
// an adapter whose wire format is yuan converts exactly, never via float.
package channel

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Trade states, named after WeChat Pay's trade_state (Alipay's are mapped).
const (
	StateNotPay   = "NOTPAY"     // created (prepay), the payer has not paid yet
	StatePaying   = "USERPAYING" // the wallet is still deciding (password, risk check)
	StateSuccess  = "SUCCESS"    // money taken from the payer
	StateClosed   = "CLOSED"     // closed unpaid; can never succeed
	StatePayError = "PAYERROR"   // the wallet refused it (declined)
	StateRefund   = "REFUND"     // paid, then (partly) refunded
)

// Refund states.
const (
	RefundSuccess    = "SUCCESS"
	RefundProcessing = "PROCESSING"
	RefundAbnormal   = "ABNORMAL" // the wallet could not return the money
	RefundClosed     = "CLOSED"
)

// Agreement states (免密代扣 withholding agreements).
const (
	AgreementActive     = "ACTIVE"
	AgreementTerminated = "TERMINATED"
)

// ErrNotFound: the wallet has no order (or refund, agreement) with that
// number. After a timeout this is what makes re-sending the same request
// safe.
var ErrNotFound = errors.New("channel: not found at the wallet")

// ErrUnknown: the call's outcome is unknown (timeout, connection reset,
// 5xx, SYSTEMERROR). The caller must query before doing anything else and
// must never charge again under a new order number.
var ErrUnknown = errors.New("channel: outcome unknown")

// ErrForged: a notification whose signature does not verify, or whose
// payload cannot be decrypted. It is never acted on.
var ErrForged = errors.New("channel: notification signature invalid")

// DeclineError is a definite refusal by the wallet: nothing was taken.
type DeclineError struct {
	Code    string // the wallet's code, e.g. NOTENOUGH, ACQ.SELLER_BALANCE_NOT_ENOUGH
	Message string
}

func (e *DeclineError) Error() string {
	return fmt.Sprintf("channel: declined: %s %s", e.Code, e.Message)
}

// IsDeclined reports whether err is a definite refusal.
func IsDeclined(err error) bool {
	var d *DeclineError
	return errors.As(err, &d)
}

// Order is the wallet's view of one payment.
type Order struct {
	OutTradeNo    string    // our order number (unique per merchant)
	TransactionID string    // the wallet's number; empty until paid
	State         string    // one of the State* constants
	Amount        int64     // fen: the order total
	PayerRef      string    // the payer at the wallet (WeChat openid, Alipay buyer id)
	PaidAt        time.Time // zero until paid
}

// ChargeRequest takes money without the payer present, under a
// withholding agreement (委托代扣 / 商户代扣). The same OutTradeNo sent
// again is the same charge: the wallet answers with the first outcome.
type ChargeRequest struct {
	OutTradeNo  string
	Amount      int64 // fen, > 0
	Description string
	AgreementID string // the wallet's agreement number
	PayerRef    string
	NotifyURL   string
}

// PrepayRequest creates an order the payer confirms in the wallet app
// (JSAPI / in-app pay). The order stays NOTPAY until the payer acts.
type PrepayRequest struct {
	OutTradeNo  string
	Amount      int64 // fen, > 0
	Description string
	PayerRef    string
	NotifyURL   string
	ExpireAt    time.Time
}

// Prepay is what the payer's app needs to confirm the order.
type Prepay struct {
	OutTradeNo string
	PrepayID   string // WeChat prepay_id, Alipay trade_no
	PayURL     string // where the payer confirms (the wallet app; the simulator's page)
}

// RefundRequest returns money from a paid order. OutRefundNo makes it
// idempotent: the same number sent again is the same refund.
type RefundRequest struct {
	OutTradeNo  string
	OutRefundNo string
	Amount      int64 // fen to refund, > 0
	Total       int64 // fen: the order total
	Reason      string
	NotifyURL   string
}

// Refund is the wallet's view of one refund.
type Refund struct {
	OutTradeNo  string
	OutRefundNo string
	RefundID    string
	Status      string // one of the Refund* constants
	Amount      int64  // fen
}

// AgreementRequest asks the wallet for a withholding agreement
// (免密代扣): the payer lets the merchant take up to Limit fen per payment
// without confirming each one.
type AgreementRequest struct {
	ExternalNo string // our agreement number
	PayerRef   string
	Limit      int64 // fen per payment
	NotifyURL  string
}

// Agreement is the wallet's view of one withholding agreement.
type Agreement struct {
	ExternalNo  string
	AgreementID string // the wallet's number (WeChat contract_id, Alipay agreement_no)
	PayerRef    string
	State       string // AgreementActive or AgreementTerminated
	Limit       int64  // fen per payment
}

// Notification kinds.
const (
	NotifyPayment   = "payment"
	NotifyRefund    = "refund"
	NotifyAgreement = "agreement"
)

// Notification is a verified, decrypted callback from the wallet.
type Notification struct {
	ID        string // the wallet's notification id (deduplicated by the receiver)
	Kind      string // NotifyPayment, NotifyRefund or NotifyAgreement
	Order     *Order
	Refund    *Refund
	Agreement *Agreement
}

// Bill row kinds.
const (
	BillPayment = "payment"
	BillRefund  = "refund"
)

// BillRow is one line of the wallet's daily bill (trade bill) file.
type BillRow struct {
	Kind          string // BillPayment or BillRefund
	OutTradeNo    string
	TransactionID string
	OutRefundNo   string // refund rows
	RefundID      string // refund rows
	Amount        int64  // fen: paid amount, or refunded amount for refund rows
	State         string
	Time          time.Time
}

// Channel is one wallet as the payment service uses it.
type Channel interface {
	// Name is the channel's name in yibao: "wechat" or "alipay".
	Name() string
	// Charge takes money under a withholding agreement. Outcomes: the
	// order (SUCCESS, or USERPAYING to be queried), a *DeclineError,
	// or an error wrapping ErrUnknown.
	Charge(ctx context.Context, r ChargeRequest) (*Order, error)
	// Prepay creates an order the payer confirms in the wallet app.
	Prepay(ctx context.Context, r PrepayRequest) (*Prepay, error)
	// Query returns the wallet's order, or ErrNotFound.
	Query(ctx context.Context, outTradeNo string) (*Order, error)
	// Close closes an unpaid order so it can never be paid.
	Close(ctx context.Context, outTradeNo string) error
	// Refund returns money; the same OutRefundNo is the same refund.
	Refund(ctx context.Context, r RefundRequest) (*Refund, error)
	// QueryRefund returns the wallet's refund, or ErrNotFound.
	QueryRefund(ctx context.Context, outTradeNo, outRefundNo string) (*Refund, error)
	// SignAgreement creates a withholding agreement the payer consented to.
	SignAgreement(ctx context.Context, r AgreementRequest) (*Agreement, error)
	// TerminateAgreement ends an agreement at the wallet.
	TerminateAgreement(ctx context.Context, agreementID string) error
	// ParseNotification verifies (and decrypts) a callback request. A
	// bad signature is ErrForged.
	ParseNotification(r *http.Request) (*Notification, error)
	// AckNotification writes the answer the wallet expects: success when
	// err is nil, otherwise a failure that makes the wallet send again.
	AckNotification(w http.ResponseWriter, err error)
	// Bill downloads and parses the daily bill for date (YYYY-MM-DD,
	// China time).
	Bill(ctx context.Context, date string) ([]BillRow, error)
}
