package engine

import (
	"context"
	"database/sql"

	"yibao"
	"yibao/ledger"
	"yibao/money"
)

const accountCols = `id, ledger, kind, flags, debits_pending, debits_posted, credits_pending, credits_posted, created_at`

const transferCols = `seq, id, debit_account_id, credit_account_id, amount, pending_id, timeout, ledger, code, flags,
	user_data, leg, created_at, debit_balance, credit_balance, pending_status, expires_at`

func scanAccounts(rows *sql.Rows) ([]ledger.Account, error) {
	defer rows.Close()
	var out []ledger.Account
	for rows.Next() {
		var a ledger.Account
		var flags, dp, dpo, cp, cpo int64
		if err := rows.Scan(&a.ID, &a.Ledger, &a.Kind, &flags, &dp, &dpo, &cp, &cpo, &a.CreatedAt); err != nil {
			return nil, err
		}
		a.Flags = ledger.AccountFlags(flags)
		a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted = money.Fen(dp), money.Fen(dpo), money.Fen(cp), money.Fen(cpo)
		out = append(out, a)
	}
	return out, rows.Err()
}

func scanTransfers(rows *sql.Rows) ([]ledger.Transfer, error) {
	defer rows.Close()
	var out []ledger.Transfer
	for rows.Next() {
		var t ledger.Transfer
		var pid, status sql.NullString
		var amount, flags, db, cb int64
		if err := rows.Scan(&t.Seq, &t.ID, &t.DebitAccountID, &t.CreditAccountID, &amount, &pid, &t.Timeout, &t.Ledger, &t.Code,
			&flags, &t.UserData, &t.Leg, &t.Timestamp, &db, &cb, &status, &t.ExpiresAt); err != nil {
			return nil, err
		}
		t.Amount, t.Flags, t.DebitBalance, t.CreditBalance = money.Fen(amount), ledger.TransferFlags(flags), money.Fen(db), money.Fen(cb)
		t.PendingID, t.Status = pid.String, ledger.PendingStatus(status.String)
		out = append(out, t)
	}
	return out, rows.Err()
}

// Account returns an account's committed balances. Errors: not_found.
func (e *Engine) Account(ctx context.Context, id string) (*ledger.Account, error) {
	rows, err := e.db.Query(ctx, `SELECT `+accountCols+` FROM ledger_accounts WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	list, err := scanAccounts(rows)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, yibao.Errorf(yibao.CodeNotFound, "ledger account %s not found", id)
	}
	return &list[0], nil
}

// Balance is an account's balances as a statement shows them.
type Balance struct {
	AccountID string    `json:"account_id"`
	Posted    money.Fen `json:"posted"`    // credits posted − debits posted
	Pending   money.Fen `json:"pending"`   // credits pending − debits pending
	Available money.Fen `json:"available"` // posted − debits pending: what can still be paid out
}

// Balance returns posted, pending and available balances of an account.
func (e *Engine) Balance(ctx context.Context, id string) (*Balance, error) {
	a, err := e.Account(ctx, id)
	if err != nil {
		return nil, err
	}
	b := BalanceOf(a)
	return &b, nil
}

// BalanceOf derives an account's balances.
func BalanceOf(a *ledger.Account) Balance {
	return Balance{AccountID: a.ID, Posted: a.CreditBalance(), Pending: a.CreditsPending - a.DebitsPending, Available: a.Available()}
}

// StatementLine is one transfer as seen from one account.
type StatementLine struct {
	Transfer ledger.Transfer `json:"transfer"`
	Side     string          `json:"side"`    // debit | credit
	Amount   money.Fen       `json:"amount"`  // signed effect on the posted balance (0 for pending)
	Balance  money.Fen       `json:"balance"` // posted balance after the transfer
}

// Statement lists an account's transfers in order after seq `after`, with
// the running posted balance, at most limit lines; next is the cursor for
// the following page (0 on the last).
func (e *Engine) Statement(ctx context.Context, accountID string, after int64, limit int) (lines []StatementLine, next int64, err error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := e.db.Query(ctx, `SELECT `+transferCols+` FROM ledger_transfers
		WHERE seq > ? AND (debit_account_id = ? OR credit_account_id = ?) ORDER BY seq LIMIT ?`, after, accountID, accountID, limit+1)
	if err != nil {
		return nil, 0, err
	}
	ts, err := scanTransfers(rows)
	if err != nil {
		return nil, 0, err
	}
	for _, t := range ts {
		l := StatementLine{Transfer: t}
		posts := t.Flags&ledger.Pending == 0 && t.Flags&ledger.VoidPending == 0 && t.Code != ledger.CodeExpiry
		if t.DebitAccountID == accountID {
			l.Side, l.Balance = "debit", t.DebitBalance
			if posts {
				l.Amount = -t.Amount
			}
		} else {
			l.Side, l.Balance = "credit", t.CreditBalance
			if posts {
				l.Amount = t.Amount
			}
		}
		lines = append(lines, l)
	}
	if len(lines) > limit {
		lines = lines[:limit]
		next = lines[limit-1].Transfer.Seq
	}
	return lines, next, nil
}

// TransfersByUserData returns every transfer carrying userData (e.g. all
// legs of one settlement), in order.
func (e *Engine) TransfersByUserData(ctx context.Context, userData string) ([]ledger.Transfer, error) {
	rows, err := e.db.Query(ctx, `SELECT `+transferCols+` FROM ledger_transfers WHERE user_data = ? ORDER BY seq`, userData)
	if err != nil {
		return nil, err
	}
	return scanTransfers(rows)
}

// GetTransfer returns one transfer by id. Errors: not_found.
func (e *Engine) GetTransfer(ctx context.Context, id string) (*ledger.Transfer, error) {
	rows, err := e.db.Query(ctx, `SELECT `+transferCols+` FROM ledger_transfers WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	list, err := scanTransfers(rows)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, yibao.Errorf(yibao.CodeNotFound, "transfer %s not found", id)
	}
	return &list[0], nil
}
