package review

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
)

// Recovery states.
const (
	RecoveryProposed = "proposed"
	RecoveryApproved = "approved"
	RecoveryRejected = "rejected"
)

// Recovery takes improperly paid money back from an institution into a
// fund, once two administrators agree.
type Recovery struct {
	ID            string    `json:"id"`
	AlertID       string    `json:"alert_id"`
	FixmedinsCode string    `json:"fixmedins_code"`
	FundAccount   string    `json:"fund_account"`
	Amount        money.Fen `json:"amount"`
	Reason        string    `json:"reason"`
	Status        string    `json:"status"`
	ProposedBy    string    `json:"proposed_by"`
	DecidedBy     string    `json:"decided_by,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

var fundRe = regexp.MustCompile(`^fund:[0-9]{6}:[0-9]{3}$`)

// ProposeRecovery proposes taking amount back from an institution for a
// confirmed alert into a fund account (fund:<admdvs>:<insutype>).
func (s *Service) ProposeRecovery(ctx context.Context, alertID, fixmedinsCode, fundAccount string, amount money.Fen, reason string) (*Recovery, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	var status string
	if err := s.db.QueryRow(ctx, `SELECT status FROM review_alerts WHERE id = ?`, alertID).Scan(&status); err != nil {
		return nil, yibao.Errorf(yibao.CodeNotFound, "alert %s not found", alertID)
	}
	if status != AlertConfirmed {
		return nil, yibao.Errorf(yibao.CodePrecondition, "alert %s is %s; only a confirmed alert leads to a recovery", alertID, status)
	}
	if amount <= 0 {
		return nil, yibao.FieldError("amount", "a positive amount")
	}
	if !fundRe.MatchString(fundAccount) {
		return nil, yibao.FieldError("fund_account", "a fund pool account, fund:<admdvs>:<insutype>")
	}
	if reason == "" {
		return nil, yibao.FieldError("reason", "why the money is taken back")
	}
	b := make([]byte, 6)
	rand.Read(b)
	r := &Recovery{ID: "RC" + hex.EncodeToString(b), AlertID: alertID, FixmedinsCode: fixmedinsCode, FundAccount: fundAccount, Amount: amount,
		Reason: reason, Status: RecoveryProposed, ProposedBy: yibao.PrincipalFrom(ctx).ID(), CreatedAt: s.now().UTC()}
	_, err := s.db.Exec(ctx, `INSERT INTO review_recoveries (id, alert_id, fixmedins_code, fund_account, amount, reason, status, proposed_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, alertID, fixmedinsCode, fundAccount, int64(amount), reason, r.Status, r.ProposedBy, r.CreatedAt.UnixMicro())
	return r, err
}

// DecideRecovery approves or rejects a proposed recovery. The approver
// must not be the proposer; an approval moves the money in the ledger
// (institution receivable → fund) in the same unit as the state change.
func (s *Service) DecideRecovery(ctx context.Context, id string, approve bool) (*Recovery, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	who := yibao.PrincipalFrom(ctx).ID()
	var r Recovery
	var at int64
	err := s.db.QueryRow(ctx, `SELECT id, alert_id, fixmedins_code, fund_account, amount, reason, status, proposed_by, created_at FROM review_recoveries WHERE id = ?`, id).
		Scan(&r.ID, &r.AlertID, &r.FixmedinsCode, &r.FundAccount, &r.Amount, &r.Reason, &r.Status, &r.ProposedBy, &at)
	if err != nil {
		return nil, yibao.Errorf(yibao.CodeNotFound, "recovery %s not found", id)
	}
	r.CreatedAt = time.UnixMicro(at).UTC()
	if r.Status != RecoveryProposed {
		return nil, yibao.Errorf(yibao.CodePrecondition, "recovery %s is %s", id, r.Status)
	}
	if who == r.ProposedBy {
		return nil, yibao.Errorf(yibao.CodeForbidden, "dual control: %s proposed this recovery; another administrator decides", who)
	}
	to := RecoveryRejected
	if approve {
		to = RecoveryApproved
	}
	update := func(ctx context.Context, tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE review_recoveries SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'proposed'`,
			to, who, s.now().UnixMicro(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "recovery %s changed meanwhile", id)
		}
		return nil
	}
	if !approve || s.Ledger == nil {
		if err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return update(ctx, tx) }); err != nil {
			return nil, err
		}
	} else {
		recv := ledger.HospitalReceivable(r.FixmedinsCode)
		_, err := s.Ledger.Submit(ctx, engine.Unit{Accounts: []ledger.Account{recv},
			Transfers:  []ledger.Transfer{{ID: "recovery:" + id, DebitAccountID: recv.ID, CreditAccountID: r.FundAccount, Amount: r.Amount, Ledger: ledger.CNY, Code: "recovery", UserData: r.AlertID}},
			Statements: update})
		if err != nil {
			return nil, err
		}
	}
	r.Status, r.DecidedBy = to, who
	return &r, nil
}

// Recoveries lists recoveries, newest first (administrators).
func (s *Service) Recoveries(ctx context.Context) ([]Recovery, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT id, alert_id, fixmedins_code, fund_account, amount, reason, status, proposed_by, decided_by, created_at FROM review_recoveries ORDER BY created_at DESC LIMIT 100`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Recovery{}
	for rows.Next() {
		var r Recovery
		var at int64
		if err := rows.Scan(&r.ID, &r.AlertID, &r.FixmedinsCode, &r.FundAccount, &r.Amount, &r.Reason, &r.Status, &r.ProposedBy, &r.DecidedBy, &at); err != nil {
			return nil, err
		}
		r.CreatedAt = time.UnixMicro(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}
