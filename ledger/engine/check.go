package engine

import (
	"context"
	"fmt"

	"yibao/sqlstore"
)

// Report is the outcome of an invariant check.
type Report struct {
	Accounts   int64    `json:"accounts"`
	Transfers  int64    `json:"transfers"`
	Pending    int64    `json:"pending"`
	Violations []string `json:"violations"`
	Warnings   []string `json:"warnings"`
}

// OK reports whether no invariant is broken.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Check verifies the ledger's invariants on a live database, reading only:
//
//  1. Σ debits = Σ credits, posted and pending;
//  2. no account breaks its balance flag;
//  3. every account's amounts equal the sum of the transfers that touched it;
//  4. every pending transfer is resolved at most once, and its status agrees
//     with its resolution; no post exceeds its pending amount;
//  5. every transfer names existing accounts.
//
// Pending transfers past their expiry by more than a minute are warnings
// (the sweeper is behind), not violations.
func Check(ctx context.Context, db *sqlstore.DB, nowMicros int64) (*Report, error) {
	r := &Report{Violations: []string{}, Warnings: []string{}}
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM ledger_accounts`).Scan(&r.Accounts); err != nil {
		return nil, err
	}
	if err := db.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN pending_status = 'pending' THEN 1 ELSE 0 END), 0) FROM ledger_transfers`).Scan(&r.Transfers, &r.Pending); err != nil {
		return nil, err
	}
	var dp, dpo, cp, cpo int64
	if err := db.QueryRow(ctx, `SELECT COALESCE(SUM(debits_pending), 0), COALESCE(SUM(debits_posted), 0), COALESCE(SUM(credits_pending), 0),
		COALESCE(SUM(credits_posted), 0) FROM ledger_accounts`).Scan(&dp, &dpo, &cp, &cpo); err != nil {
		return nil, err
	}
	if dpo != cpo {
		r.Violations = append(r.Violations, fmt.Sprintf("posted debits %d ≠ posted credits %d (fen)", dpo, cpo))
	}
	if dp != cp {
		r.Violations = append(r.Violations, fmt.Sprintf("pending debits %d ≠ pending credits %d (fen)", dp, cp))
	}
	queries := []struct {
		what, sql string
		args      []any
	}{
		{"breaks debits_must_not_exceed_credits", `SELECT id FROM ledger_accounts WHERE (flags & 1) <> 0 AND debits_pending + debits_posted > credits_posted`, nil},
		{"breaks credits_must_not_exceed_debits", `SELECT id FROM ledger_accounts WHERE (flags & 2) <> 0 AND credits_pending + credits_posted > debits_posted`, nil},
		{"has amounts that differ from its transfers", `
			WITH eff AS (
				SELECT debit_account_id AS acc,
					CASE WHEN (flags & 10) = 0 THEN amount ELSE 0 END AS dpo,
					CASE WHEN (flags & 2) <> 0 AND pending_status = 'pending' THEN amount ELSE 0 END AS dp,
					0 AS cpo, 0 AS cp
				FROM ledger_transfers
				UNION ALL
				SELECT credit_account_id, 0, 0,
					CASE WHEN (flags & 10) = 0 THEN amount ELSE 0 END,
					CASE WHEN (flags & 2) <> 0 AND pending_status = 'pending' THEN amount ELSE 0 END
				FROM ledger_transfers),
			sums AS (SELECT acc, SUM(dpo) AS dpo, SUM(dp) AS dp, SUM(cpo) AS cpo, SUM(cp) AS cp FROM eff GROUP BY acc)
			SELECT a.id FROM ledger_accounts a LEFT JOIN sums s ON s.acc = a.id
			WHERE COALESCE(s.dpo, 0) <> a.debits_posted OR COALESCE(s.dp, 0) <> a.debits_pending
			   OR COALESCE(s.cpo, 0) <> a.credits_posted OR COALESCE(s.cp, 0) <> a.credits_pending`, nil},
		{"is resolved more than once", `SELECT pending_id FROM ledger_transfers WHERE (flags & 12) <> 0 GROUP BY pending_id HAVING COUNT(*) > 1`, nil},
		{"has a status that disagrees with its resolution", `
			SELECT p.id FROM ledger_transfers p LEFT JOIN ledger_transfers x ON x.pending_id = p.id
			WHERE (p.flags & 2) <> 0 AND (
				(p.pending_status = 'pending' AND x.id IS NOT NULL) OR
				(p.pending_status <> 'pending' AND x.id IS NULL) OR
				(p.pending_status = 'posted' AND (x.flags & 4) = 0) OR
				(p.pending_status IN ('voided', 'expired') AND (x.flags & 8) = 0) OR
				x.amount > p.amount)`, nil},
		{"names an unknown account", `SELECT t.id FROM ledger_transfers t WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = t.debit_account_id)
			OR NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = t.credit_account_id)`, nil},
	}
	for _, q := range queries {
		ids, err := column(ctx, db, q.sql+" LIMIT 20", q.args...)
		if err != nil {
			return nil, fmt.Errorf("check %q: %w", q.what, err)
		}
		for _, id := range ids {
			r.Violations = append(r.Violations, id+" "+q.what)
		}
	}
	late, err := column(ctx, db, `SELECT id FROM ledger_transfers WHERE pending_status = 'pending' AND expires_at > 0 AND expires_at < ? LIMIT 20`, nowMicros-60_000_000)
	if err != nil {
		return nil, err
	}
	for _, id := range late {
		r.Warnings = append(r.Warnings, id+" expired over a minute ago and is still pending")
	}
	return r, nil
}

func column(ctx context.Context, db *sqlstore.DB, q string, args ...any) ([]string, error) {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
