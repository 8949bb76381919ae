package engine

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"yibao/ledger"
	"yibao/sqlstore"
)

// The writer's statements have fixed shapes so that each is parsed once:
// a multi-row insert of n rows is split into inserts of the sizes below
// (n = 400 → 256 + 128 + 16), each prepared when the engine opens.
// Preparing inside a batch would deadlock SQLite's single write connection,
// and re-parsing variable-length SQL was a fifth of the writer's CPU.
var (
	transferChunkSizes = []int{256, 128, 64, 16, 4, 1}
	accountChunkSizes  = []int{64, 16, 4, 1}
)

const (
	sqlUpdateBalance = `UPDATE ledger_accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?, credits_posted = ? WHERE id = ?`
	sqlResolve       = `UPDATE ledger_transfers SET pending_status = ? WHERE id = ?`
)

type stmtCache struct {
	insertTransfers map[int]*sql.Stmt
	insertAccounts  map[int]*sql.Stmt
	updateBalance   *sql.Stmt
	resolve         *sql.Stmt
	all             []*sql.Stmt
}

func insertSQL(table, cols string, ncols, rows int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", ncols), ", ") + ")"
	return `INSERT INTO ` + table + ` (` + cols + `) VALUES ` + strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}

func prepareStmts(ctx context.Context, db *sqlstore.DB) (*stmtCache, error) {
	c := &stmtCache{insertTransfers: map[int]*sql.Stmt{}, insertAccounts: map[int]*sql.Stmt{}}
	prep := func(q string) (*sql.Stmt, error) {
		s, err := db.Write().PrepareContext(ctx, db.Rebind(q))
		if err != nil {
			return nil, fmt.Errorf("ledger: prepare: %w", err)
		}
		c.all = append(c.all, s)
		return s, nil
	}
	var err error
	for _, n := range transferChunkSizes {
		if c.insertTransfers[n], err = prep(insertSQL("ledger_transfers", transferCols, 17, n)); err != nil {
			c.close()
			return nil, err
		}
	}
	for _, n := range accountChunkSizes {
		if c.insertAccounts[n], err = prep(insertSQL("ledger_accounts", accountCols, 9, n)); err != nil {
			c.close()
			return nil, err
		}
	}
	if c.updateBalance, err = prep(sqlUpdateBalance); err != nil {
		c.close()
		return nil, err
	}
	if c.resolve, err = prep(sqlResolve); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	for _, s := range c.all {
		s.Close()
	}
}

// splitSizes cuts n into the fixed sizes, largest first.
func splitSizes(n int, sizes []int) []int {
	var out []int
	for _, s := range sizes {
		for n >= s {
			out = append(out, s)
			n -= s
		}
	}
	return out
}

// txStmts binds the cached statements to one batch transaction, once each.
type txStmts struct {
	ctx   context.Context
	tx    *sqlstore.Tx
	bound map[*sql.Stmt]*sql.Stmt
}

func (t *txStmts) exec(s *sql.Stmt, args ...any) error {
	b := t.bound[s]
	if b == nil {
		b = t.tx.Tx.StmtContext(t.ctx, s)
		t.bound[s] = b
	}
	_, err := b.ExecContext(t.ctx, args...)
	return err
}

func (t *txStmts) close() {
	for _, b := range t.bound {
		b.Close()
	}
}

// On PostgreSQL a batch is written with one statement per table whatever
// its size: the rows travel as arrays (pgx sends them in binary) and
// unnest() turns them back into rows. That is one round trip for the
// transfers and one for all changed balances, instead of one per account.
const (
	pgInsertTransfers = `INSERT INTO ledger_transfers (` + transferCols + `)
SELECT seq, id, dr, cr, amount, NULLIF(pid, ''), timeout, ledger, code, flags, ud, leg, created_at, db, cb, NULLIF(st, ''), exp
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::text[], $9::text[],
            $10::smallint[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $16::text[], $17::bigint[])
  AS v(seq, id, dr, cr, amount, pid, timeout, ledger, code, flags, ud, leg, created_at, db, cb, st, exp)`
	pgInsertAccounts = `INSERT INTO ledger_accounts (` + accountCols + `)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])`
	pgUpdateBalances = `UPDATE ledger_accounts a SET debits_pending = v.dp, debits_posted = v.dpo, credits_pending = v.cp, credits_posted = v.cpo
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS v(id, dp, dpo, cp, cpo) WHERE a.id = v.id`
	pgResolve = `UPDATE ledger_transfers t SET pending_status = v.st FROM unnest($1::text[], $2::text[]) AS v(id, st) WHERE t.id = v.id`
)

func persistPostgres(ctx context.Context, tx *sqlstore.Tx, ch ledger.Changes) error {
	isNew := map[string]bool{}
	if n := len(ch.Accounts); n > 0 {
		var ids, ledgers, kinds []string
		var flags []int16
		var dp, dpo, cp, cpo, at []int64
		for _, a := range ch.Accounts {
			isNew[a.ID] = true
			ids, ledgers, kinds = append(ids, a.ID), append(ledgers, a.Ledger), append(kinds, string(a.Kind))
			flags = append(flags, int16(a.Flags))
			dp, dpo = append(dp, int64(a.DebitsPending)), append(dpo, int64(a.DebitsPosted))
			cp, cpo = append(cp, int64(a.CreditsPending)), append(cpo, int64(a.CreditsPosted))
			at = append(at, a.CreatedAt)
		}
		if _, err := tx.Tx.ExecContext(ctx, pgInsertAccounts, ids, ledgers, kinds, flags, dp, dpo, cp, cpo, at); err != nil {
			return fmt.Errorf("insert accounts: %w", err)
		}
	}
	if n := len(ch.Transfers); n > 0 {
		seq, amount, timeout, createdAt, dbal, cbal, exp := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		id, dr, cr, pid, led, code, ud, leg, st := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		flags := make([]int16, n)
		for i, t := range ch.Transfers {
			seq[i], id[i], dr[i], cr[i], amount[i], pid[i], timeout[i] = t.Seq, t.ID, t.DebitAccountID, t.CreditAccountID, int64(t.Amount), t.PendingID, t.Timeout
			led[i], code[i], flags[i], ud[i], leg[i], createdAt[i] = t.Ledger, t.Code, int16(t.Flags), t.UserData, t.Leg, t.Timestamp
			dbal[i], cbal[i], st[i], exp[i] = int64(t.DebitBalance), int64(t.CreditBalance), string(t.Status), t.ExpiresAt
		}
		if _, err := tx.Tx.ExecContext(ctx, pgInsertTransfers, seq, id, dr, cr, amount, pid, timeout, led, code, flags, ud, leg, createdAt, dbal, cbal, st, exp); err != nil {
			return fmt.Errorf("insert transfers: %w", err)
		}
	}
	newTr := map[string]bool{}
	for _, t := range ch.Transfers {
		newTr[t.ID] = true
	}
	var rid, rst []string
	for _, t := range ch.Resolved {
		if !newTr[t.ID] {
			rid, rst = append(rid, t.ID), append(rst, string(t.Status))
		}
	}
	if len(rid) > 0 {
		if _, err := tx.Tx.ExecContext(ctx, pgResolve, rid, rst); err != nil {
			return fmt.Errorf("resolve pending: %w", err)
		}
	}
	var ids []string
	var dp, dpo, cp, cpo []int64
	for _, a := range ch.Dirty {
		if isNew[a.ID] {
			continue
		}
		ids = append(ids, a.ID)
		dp, dpo = append(dp, int64(a.DebitsPending)), append(dpo, int64(a.DebitsPosted))
		cp, cpo = append(cp, int64(a.CreditsPending)), append(cpo, int64(a.CreditsPosted))
	}
	if len(ids) > 0 {
		if _, err := tx.Tx.ExecContext(ctx, pgUpdateBalances, ids, dp, dpo, cp, cpo); err != nil {
			return fmt.Errorf("update balances: %w", err)
		}
	}
	return nil
}
