package funds

import (
	"context"
	"strings"
	"unicode/utf8"

	"yibao"
	"yibao/ledger"
	"yibao/money"
)

// CorrectionRequest asks for a manual ledger correction (调账): a posted
// transfer is undone by a new mirrored transfer (never edited), in full
// or in part, and optionally the right transfer is made in its place.
type CorrectionRequest struct {
	TransferID string    `json:"transfer_id"`
	Amount     money.Fen `json:"amount,omitempty"` // 0: all of it
	Reason     string    `json:"reason"`
	// Replacement, if set, is booked in the same run: the movement that
	// should have happened.
	Replacement *struct {
		Debit  string    `json:"debit"`
		Credit string    `json:"credit"`
		Amount money.Fen `json:"amount"`
	} `json:"replacement,omitempty"`
}

// PrepareCorrection prepares a correction; another administrator
// approves it, and only then does money move (with the reason in the
// audit log). The ledger's own rules still hold: a correction that would
// overdraw a fund or a personal account fails at approval, and nothing
// moves.
func (s *Service) PrepareCorrection(ctx context.Context, r CorrectionRequest) (*Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(strings.TrimSpace(r.Reason)) < 4 {
		return nil, yibao.FieldError("reason", "say why (at least 4 characters); it is kept in the audit log")
	}
	t, err := s.led.GetTransfer(ctx, r.TransferID)
	if err != nil {
		return nil, err
	}
	if t.Flags&(ledger.Pending|ledger.VoidPending) != 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "transfer %s is a pending or void transfer; correct only posted money", t.ID)
	}
	amount := r.Amount
	if amount == 0 {
		amount = t.Amount
	}
	if amount < 0 || amount > t.Amount {
		return nil, yibao.FieldError("amount", "between 0.01 and the transfer's %s yuan", t.Amount)
	}
	lines := []Line{{Kind: "mirror", Debit: t.CreditAccountID, Credit: t.DebitAccountID, Amount: amount,
		Detail: map[string]any{"corrects": t.ID, "reason": r.Reason}}}
	if rep := r.Replacement; rep != nil {
		if rep.Amount <= 0 || rep.Debit == "" || rep.Credit == "" || rep.Debit == rep.Credit {
			return nil, yibao.FieldError("replacement", "two different accounts and a positive amount")
		}
		for _, id := range []string{rep.Debit, rep.Credit} {
			if _, err := s.led.Account(ctx, id); err != nil {
				return nil, yibao.FieldError("replacement", "account %s does not exist", id)
			}
		}
		lines = append(lines, Line{Kind: "replacement", Debit: rep.Debit, Credit: rep.Credit, Amount: rep.Amount,
			Detail: map[string]any{"corrects": t.ID, "reason": r.Reason}})
	}
	run := &Run{Kind: KindCorrection, Note: r.Reason, Summary: map[string]any{"corrects": t.ID, "original": map[string]any{"debit": t.DebitAccountID,
		"credit": t.CreditAccountID, "amount": t.Amount, "code": t.Code}}}
	return s.prepared(ctx, run, "", lines, nil)
}
