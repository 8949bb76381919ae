// Package bankapi is yibao's own signed protocol between the platform (the
// scheme operator of credit payment, 信用就医) and the banks that grant
// patients credit lines. No national standard for this exchange exists, so
// the platform defines it; every participating bank implements the bank
// side (sim/banksim is a simulator of it, not a real bank).
//
// Transport: JSON over HTTPS. Money is integer fen (fields ending in _fen),
// instants are RFC 3339, dates are YYYY-MM-DD (China time, UTC+8).
//
// Signatures (SM2 with the default user ID, SM3 digests) cover both
// directions. A request carries
//
//	X-Bank-Key        the signer's key id
//	X-Bank-Timestamp  unix seconds
//	X-Bank-Nonce      32 random hex characters
//	X-Bank-Signature  base64 SM2 signature over
//	                  METHOD\nREQUEST-URI\nTIMESTAMP\nNONCE\nhex(SM3(body))
//
// and is refused (401 BAD_SIGNATURE, STALE_TIMESTAMP, REPLAYED) unless the
// key id is the expected one, the timestamp is within five minutes, the
// nonce is new and the signature verifies. The answer is signed by the
// answering side with the same four headers over
//
//	RESPONSE\nREQUEST-URI\nSTATUS-CODE\nTIMESTAMP\nREQUEST-NONCE\nhex(SM3(body))
//
// where X-Bank-Nonce echoes the request's nonce, binding the answer to the
// question. Refusals are JSON {"code": "...", "message": "..."} with a 4xx
// status.
//
// Endpoints at the bank (relative to its base URL):
//
//	POST /credit/applications               ApplyRequest → Decision (idempotent by apply_id; 409 DUPLICATE_APPLY_ID)
//	GET  /credit/applications/{apply_id}    Decision, or 404 NOT_FOUND
//	POST /credit/draws                      DrawNotice → {"draw_id", "status":"accepted"} (idempotent; 422 AGREEMENT_NOT_ACTIVE)
//	POST /credit/repayments                 Repayment → {"repay_id", "status":"accepted"} (idempotent)
//	POST /credit/status                     StatusReport → {"status":"recorded"}
//	GET  /credit/agreements/{bank_agreement_id}  AgreementState
//	POST /credit/settlement-files           DayFile → DayReply
//
// The bank calls the platform back (signed the same way) with a Callback
// at the platform's notify URL; the platform answers 2xx
// {"code":"SUCCESS"} once it has recorded the event.
package bankapi

import (
	"errors"
	"fmt"
	"time"
)

// Application scenes, decision, agreement and callback values.
const (
	SceneOutpatient = "outpatient"
	SceneInpatient  = "inpatient"
	SceneAll        = "all"

	DecisionApproved = "approved"
	DecisionDeclined = "declined"

	StatusActive    = "active"
	StatusOverdue   = "overdue"
	StatusSuspended = "suspended"
	StatusClosed    = "closed"

	ChannelWechat  = "wechat"
	ChannelAlipay  = "alipay"
	ChannelCounter = "counter"
	ChannelBankApp = "bank_app"

	RowDraw      = "draw"
	RowRepayment = "repayment"

	CallbackRepayment    = "repayment"
	CallbackLimitChanged = "limit_changed"
	CallbackSuspended    = "suspended"
	CallbackReinstated   = "reinstated"
	CallbackClosed       = "closed"
)

// Refusal codes.
const (
	CodeBadSignature       = "BAD_SIGNATURE"
	CodeReplayed           = "REPLAYED"
	CodeStaleTimestamp     = "STALE_TIMESTAMP"
	CodeInvalidRequest     = "INVALID_REQUEST"
	CodeNotFound           = "NOT_FOUND"
	CodeDuplicateApplyID   = "DUPLICATE_APPLY_ID"
	CodeDuplicateDrawID    = "DUPLICATE_DRAW_ID"
	CodeDuplicateRepayID   = "DUPLICATE_REPAY_ID"
	CodeAgreementNotActive = "AGREEMENT_NOT_ACTIVE"
	CodeLimitExceeded      = "LIMIT_EXCEEDED"
)

// ApplyRequest asks the bank for a credit line for one insured person,
// after the person consented to the credit agreement.
type ApplyRequest struct {
	ApplyID           string    `json:"apply_id"`
	AgreementNo       string    `json:"agreement_no"` // the platform's agreement number
	BankCode          string    `json:"bank_code"`
	PsnRef            string    `json:"psn_ref"` // the platform's pseudonymous person reference
	RequestedLimitFen int64     `json:"requested_limit_fen"`
	Scene             string    `json:"scene"` // outpatient|inpatient|all
	ConsentVersion    string    `json:"consent_version"`
	ConsentAt         time.Time `json:"consent_at"`
}

// Decision is the bank's answer to an application.
type Decision struct {
	ApplyID          string    `json:"apply_id"`
	Status           string    `json:"status"` // approved|declined
	BankAgreementID  string    `json:"bank_agreement_id,omitempty"`
	LimitFen         int64     `json:"limit_fen"`
	InterestFreeDays int       `json:"interest_free_days"`
	Score            int       `json:"score"`
	Reason           string    `json:"reason,omitempty"`
	DecidedAt        time.Time `json:"decided_at"`
}

// DrawNotice tells the bank that a settlement drew on a credit line: the
// bank owes the hospital AmountFen and the patient owes the bank.
type DrawNotice struct {
	DrawID          string    `json:"draw_id"`
	AgreementNo     string    `json:"agreement_no"`
	BankAgreementID string    `json:"bank_agreement_id"`
	FixmedinsCode   string    `json:"fixmedins_code"`
	SetlID          string    `json:"setl_id"`
	AmountFen       int64     `json:"amount_fen"`
	At              time.Time `json:"at"`
	DueDate         string    `json:"due_date"` // YYYY-MM-DD
}

// Repayment is money repaid on a credit line: collected by the platform
// through a wallet (reported with POST /credit/repayments) or by the bank
// itself (reported in a repayment Callback).
type Repayment struct {
	RepayID         string    `json:"repay_id"`
	AgreementNo     string    `json:"agreement_no"`
	BankAgreementID string    `json:"bank_agreement_id"`
	Channel         string    `json:"channel"` // wechat|alipay|counter|bank_app
	AmountFen       int64     `json:"amount_fen"`
	PaidAt          time.Time `json:"paid_at"`
}

// StatusReport is the platform's view of an agreement, sent when it
// changes (for example when it falls overdue).
type StatusReport struct {
	AgreementNo     string    `json:"agreement_no"`
	BankAgreementID string    `json:"bank_agreement_id"`
	Status          string    `json:"status"` // active|overdue|suspended|closed
	OutstandingFen  int64     `json:"outstanding_fen"`
	OverdueFen      int64     `json:"overdue_fen"`
	DaysOverdue     int       `json:"days_overdue"`
	At              time.Time `json:"at"`
}

// DayRow is one movement in a daily settlement file.
type DayRow struct {
	Kind          string `json:"kind"` // draw|repayment
	ID            string `json:"id"`   // draw_id or repay_id
	AgreementNo   string `json:"agreement_no"`
	FixmedinsCode string `json:"fixmedins_code,omitempty"` // draws only
	AmountFen     int64  `json:"amount_fen"`
}

// DayFile is the platform's record of one day (China time) with one bank:
// the draws it notified and the repayments it collected.
type DayFile struct {
	BankCode      string   `json:"bank_code"`
	Date          string   `json:"date"`
	Rows          []DayRow `json:"rows"`
	DrawsFen      int64    `json:"draws_fen"`
	RepaymentsFen int64    `json:"repayments_fen"`
	Count         int      `json:"count"`
}

// Payout is the bank's payment to one hospital for one day's draws.
type Payout struct {
	PayoutID      string `json:"payout_id"`
	FixmedinsCode string `json:"fixmedins_code"`
	AmountFen     int64  `json:"amount_fen"`
}

// DayReply is the bank's answer to a DayFile: its own records of the day,
// the payouts it makes (per hospital, the sum of the draws it knows) and
// the net (its draws − the repayments collected by the platform).
type DayReply struct {
	Date    string   `json:"date"`
	Rows    []DayRow `json:"rows"`
	Payouts []Payout `json:"payouts"`
	NetFen  int64    `json:"net_fen"`
}

// AgreementState is the bank's view of one agreement.
type AgreementState struct {
	BankAgreementID string `json:"bank_agreement_id"`
	AgreementNo     string `json:"agreement_no"`
	Status          string `json:"status"`
	LimitFen        int64  `json:"limit_fen"`
	OutstandingFen  int64  `json:"outstanding_fen"`
}

// Callback is an event the bank reports to the platform.
type Callback struct {
	Type            string     `json:"type"`     // repayment|limit_changed|suspended|reinstated|closed
	EventID         string     `json:"event_id"` // unique per event; a repayment's is its RepayID
	AgreementNo     string     `json:"agreement_no"`
	BankAgreementID string     `json:"bank_agreement_id"`
	Repayment       *Repayment `json:"repayment,omitempty"` // type repayment
	LimitFen        int64      `json:"limit_fen,omitempty"` // type limit_changed: the new limit
	Reason          string     `json:"reason,omitempty"`
	At              time.Time  `json:"at"`
}

// Accepted is the answer to a draw or repayment notice.
type Accepted struct {
	DrawID  string `json:"draw_id,omitempty"`
	RepayID string `json:"repay_id,omitempty"`
	Status  string `json:"status"` // accepted (recorded for status reports)
}

// Error is a definite refusal by the other side: a signed answer with a
// non-2xx status and a JSON {"code", "message"} body. With a 4xx status
// the request was not carried out.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("bankapi: %d %s: %s", e.Status, e.Code, e.Message)
}

var (
	// ErrBadSignature: a message's signature headers are missing, name
	// the wrong key or do not verify. Client errors for answers that fail
	// verification wrap it.
	ErrBadSignature = errors.New("bankapi: bad signature")
	// ErrStaleTimestamp: a request's timestamp is outside the window.
	ErrStaleTimestamp = errors.New("bankapi: timestamp outside the window")
	// ErrReplayed: a request's nonce was seen before.
	ErrReplayed = errors.New("bankapi: nonce replayed")
	// ErrMalformed: a signed message's body is not what the endpoint
	// expects.
	ErrMalformed = errors.New("bankapi: malformed message")
	// ErrNotSent: the client could not build the request; nothing was
	// sent.
	ErrNotSent = errors.New("bankapi: request not sent")
)

// Unknown reports whether err leaves the outcome of a request unknown —
// a transport error or timeout, a 5xx, an answer that fails verification
// or cannot be read — so the caller must query (or retry idempotently)
// before concluding. It is false for nil, for a definite 4xx refusal
// (*Error) and for ErrNotSent.
func Unknown(err error) bool {
	if err == nil || errors.Is(err, ErrNotSent) {
		return false
	}
	var e *Error
	if errors.As(err, &e) && e.Status >= 400 && e.Status < 500 {
		return false
	}
	return true
}

// Refusal is the answer a server gives for a verification or parsing
// error from VerifyRequest or ParseCallback: 401 with BAD_SIGNATURE,
// STALE_TIMESTAMP or REPLAYED, 400 INVALID_REQUEST for a malformed body.
// An *Error is returned as it is.
func Refusal(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrReplayed):
		return &Error{Status: 401, Code: CodeReplayed, Message: err.Error()}
	case errors.Is(err, ErrStaleTimestamp):
		return &Error{Status: 401, Code: CodeStaleTimestamp, Message: err.Error()}
	case errors.Is(err, ErrBadSignature):
		return &Error{Status: 401, Code: CodeBadSignature, Message: err.Error()}
	default:
		return &Error{Status: 400, Code: CodeInvalidRequest, Message: err.Error()}
	}
}
