// Package ledger holds the pure rules of yibao's double-entry ledger:
// accounts with balance constraints, transfers (single-phase, pending,
// post, void), linked chains that succeed or fail together, idempotency by
// transfer id, and the chart of accounts. It is the model of TigerBeetle's
// transfer semantics, applied to an in-memory Book; the storage-backed
// writer (ledger/engine) loads a Book, applies batches and persists the
// result. Nothing here touches a database, a clock or the network.
package ledger

import (
	"yibao/money"
)

// AccountFlags constrain an account's balance.
type AccountFlags uint16

const (
	// DebitsMustNotExceedCredits: debits (pending + posted) never exceed
	// posted credits — a fund or personal account cannot be overdrawn.
	DebitsMustNotExceedCredits AccountFlags = 1 << iota
	// CreditsMustNotExceedDebits: the mirror, for accounts that hold what
	// others owe (e.g. a credit line's drawn amount).
	CreditsMustNotExceedDebits
)

// AccountKind names what an account is for.
type AccountKind string

// Account kinds of the chart of accounts.
const (
	KindFundPool           AccountKind = "fund_pool"           // basic pooling fund of a region × scheme
	KindLargeAmountFund    AccountKind = "large_amount_fund"   // employee large-amount / civil-servant layers
	KindCriticalIllness    AccountKind = "critical_illness"    // resident critical-illness insurance fund
	KindAssistanceFund     AccountKind = "assistance_fund"     // medical assistance of a region
	KindFundIncome         AccountKind = "fund_income"         // contributions and allocations flowing into a fund (outside world)
	KindPersonalAccount    AccountKind = "personal_account"    // an employee's personal account (个人账户)
	KindHospitalReceivable AccountKind = "hospital_receivable" // what the funds owe an institution
	KindHospitalBank       AccountKind = "hospital_bank"       // money paid out to an institution (outside world)
	KindPatientCash        AccountKind = "patient_cash"        // out-of-pocket money collected at an institution (outside world)
	KindChannelClearing    AccountKind = "channel_clearing"    // a wallet provider's clearing account
	KindCreditLine         AccountKind = "credit_line"         // a bank credit agreement
	KindCreditLimits       AccountKind = "credit_limits"       // a bank's granted limits: lines are funded from here (outside world)
	KindBankRepayments     AccountKind = "bank_repayments"     // repayments patients made to a bank directly (outside world)
	KindInterRegion        AccountKind = "inter_region"        // position with another region's node: debit = they owe us, credit = we owe them
	KindClearingHouse      AccountKind = "clearing_house"      // the national hub's settlement account (outside world)
	KindSystem             AccountKind = "system"              // tests and benchmarks
)

// Account is a ledger account. Amounts only ever grow; balances are
// differences of them.
type Account struct {
	ID             string       `json:"id"`
	Ledger         string       `json:"ledger"` // the currency/book: "CNY" for every account today
	Kind           AccountKind  `json:"kind"`
	Flags          AccountFlags `json:"flags"`
	DebitsPending  money.Fen    `json:"debits_pending"`
	DebitsPosted   money.Fen    `json:"debits_posted"`
	CreditsPending money.Fen    `json:"credits_pending"`
	CreditsPosted  money.Fen    `json:"credits_posted"`
	CreatedAt      int64        `json:"created_at"` // unix µs, set by the engine
}

// CreditBalance is posted credits minus posted debits: the money held by a
// credit-normal account (funds, personal accounts, receivables).
func (a *Account) CreditBalance() money.Fen { return a.CreditsPosted - a.DebitsPosted }

// Available is what a credit-normal account can still pay: posted credits
// minus posted and pending debits.
func (a *Account) Available() money.Fen { return a.CreditsPosted - a.DebitsPosted - a.DebitsPending }

// TransferFlags select a transfer's behaviour.
type TransferFlags uint16

const (
	// Linked chains this transfer to the next one in the batch: the chain
	// (up to and including the first transfer without the flag) succeeds
	// or fails as a whole.
	Linked TransferFlags = 1 << iota
	// Pending reserves the amount (two-phase, first phase).
	Pending
	// PostPending posts a pending transfer, fully or partly.
	PostPending
	// VoidPending releases a pending transfer.
	VoidPending
)

// PendingStatus is the state of a pending transfer.
type PendingStatus string

// Pending states; every pending transfer leaves "pending" exactly once.
const (
	StatusPending PendingStatus = "pending"
	StatusPosted  PendingStatus = "posted"
	StatusVoided  PendingStatus = "voided"
	StatusExpired PendingStatus = "expired"
)

// Transfer moves Amount from the debit account to the credit account.
type Transfer struct {
	ID              string        `json:"id"` // client-supplied; the idempotency key
	DebitAccountID  string        `json:"debit_account_id"`
	CreditAccountID string        `json:"credit_account_id"`
	Amount          money.Fen     `json:"amount"`
	PendingID       string        `json:"pending_id,omitempty"` // for PostPending / VoidPending
	Timeout         int64         `json:"timeout,omitempty"`    // seconds, Pending only; 0 = never expires
	Ledger          string        `json:"ledger"`
	Code            string        `json:"code"` // what the movement is: "settlement", "reversal", "contribution", …
	Flags           TransferFlags `json:"flags"`
	UserData        string        `json:"user_data,omitempty"` // e.g. the settlement id: all legs of one settlement share it
	Leg             string        `json:"leg,omitempty"`       // e.g. "hifp_pay", "acct_pay"
	Seq             int64         `json:"seq"`                 // position in the ledger, set by the engine
	Timestamp       int64         `json:"timestamp"`           // unix µs, set by the engine
	// Posted credit balances (credits − debits) of the two accounts just
	// after this transfer, for statements with a running balance.
	DebitBalance  money.Fen `json:"debit_balance"`
	CreditBalance money.Fen `json:"credit_balance"`
	// For pending transfers, their current state (set by the book).
	Status    PendingStatus `json:"pending_status,omitempty"`
	ExpiresAt int64         `json:"expires_at,omitempty"` // unix µs; 0 = never
}

// sameRequest reports whether a stored transfer and a new request with the
// same id ask for the same thing (the client-supplied fields). A post or
// void may leave accounts and amount empty; the stored one has them filled.
func sameRequest(stored, req *Transfer) bool {
	a, b := stored, req
	if b.Flags&(PostPending|VoidPending) != 0 {
		return a.ID == b.ID && a.PendingID == b.PendingID && a.Flags&^Linked == b.Flags&^Linked && a.Code == b.Code &&
			a.UserData == b.UserData && a.Leg == b.Leg && (b.Amount == a.Amount || (b.Amount == 0 && b.Flags&VoidPending != 0)) &&
			(b.DebitAccountID == "" || b.DebitAccountID == a.DebitAccountID) &&
			(b.CreditAccountID == "" || b.CreditAccountID == a.CreditAccountID) && (b.Ledger == "" || b.Ledger == a.Ledger)
	}
	if b.Ledger == "" {
		b2 := *b
		b2.Ledger = a.Ledger
		b = &b2
	}
	return a.ID == b.ID && a.DebitAccountID == b.DebitAccountID && a.CreditAccountID == b.CreditAccountID &&
		a.Amount == b.Amount && a.PendingID == b.PendingID && a.Timeout == b.Timeout && a.Ledger == b.Ledger &&
		a.Code == b.Code && a.Flags&^Linked == b.Flags&^Linked && a.UserData == b.UserData && a.Leg == b.Leg
}

// Reversal returns the transfer that undoes t: a new transfer with debit
// and credit swapped. Reversals are new entries; nothing is ever edited.
func Reversal(t Transfer, id, code string) Transfer {
	return Transfer{ID: id, DebitAccountID: t.CreditAccountID, CreditAccountID: t.DebitAccountID, Amount: t.Amount,
		Ledger: t.Ledger, Code: code, UserData: t.UserData, Leg: t.Leg}
}
