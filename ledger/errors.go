package ledger

import (
	"fmt"

	"yibao"
)

// Reason says why a transfer or account was refused. Reasons are stable
// strings; each maps to one platform error code.
type Reason string

// Refusal reasons.
const (
	ReasonAmountNotPositive    Reason = "amount_must_be_positive"
	ReasonSameAccount          Reason = "accounts_must_be_different"
	ReasonMissingID            Reason = "id_required"
	ReasonAccountNotFound      Reason = "account_not_found"
	ReasonLedgerMismatch       Reason = "ledger_mismatch"
	ReasonExceedsCredits       Reason = "exceeds_credits"
	ReasonExceedsDebits        Reason = "exceeds_debits"
	ReasonExistsDifferent      Reason = "exists_with_different_fields"
	ReasonPendingNotFound      Reason = "pending_transfer_not_found"
	ReasonNotPending           Reason = "pending_id_is_not_pending"
	ReasonPendingPosted        Reason = "pending_transfer_already_posted"
	ReasonPendingVoided        Reason = "pending_transfer_already_voided"
	ReasonPendingExpired       Reason = "pending_transfer_expired"
	ReasonExceedsPendingAmount Reason = "exceeds_pending_amount"
	ReasonPendingMismatch      Reason = "pending_accounts_mismatch"
	ReasonFlagsConflict        Reason = "flags_are_mutually_exclusive"
	ReasonBadTimeout           Reason = "timeout_only_for_pending"
	ReasonLinkedEventFailed    Reason = "linked_event_failed"
	ReasonLinkedChainOpen      Reason = "linked_event_chain_open"
	ReasonAccountExists        Reason = "account_exists_with_different_fields"
	ReasonBadAccount           Reason = "invalid_account"
	ReasonUnitFailed           Reason = "unit_statement_failed"
)

// Code maps a reason to the platform's error code.
func (r Reason) Code() yibao.Code {
	switch r {
	case ReasonExceedsCredits, ReasonExceedsDebits:
		return yibao.CodeInsufficientFunds
	case ReasonAccountNotFound, ReasonPendingNotFound:
		return yibao.CodeNotFound
	case ReasonExistsDifferent, ReasonAccountExists:
		return yibao.CodeConflict
	case ReasonPendingPosted, ReasonPendingVoided, ReasonPendingExpired, ReasonNotPending, ReasonLinkedEventFailed, ReasonUnitFailed:
		return yibao.CodePrecondition
	}
	return yibao.CodeInvalid
}

// TransferError is the refusal of one transfer (or account) of a batch.
type TransferError struct {
	Index  int    // position in the batch
	ID     string // transfer or account id
	Reason Reason
	Detail string
}

func (e *TransferError) Error() string {
	s := fmt.Sprintf("transfer %s: %s", e.ID, e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap exposes the platform error, so yibao.ErrorCode works.
func (e *TransferError) Unwrap() error {
	return &yibao.Error{Code: e.Reason.Code(), Message: e.Error()}
}

// ReasonOf returns the reason of a ledger error, "" otherwise.
func ReasonOf(err error) Reason {
	for err != nil {
		if te, ok := err.(*TransferError); ok {
			return te.Reason
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return ""
		}
		err = u.Unwrap()
	}
	return ""
}
