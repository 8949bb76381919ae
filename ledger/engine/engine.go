// Package engine is the storage-backed ledger: one writer goroutine that
// takes units of work (transfers plus the caller's own SQL statements),
// groups whatever units are waiting into one database transaction, applies
// them to an in-memory ledger.Book that caches account balances, and
// commits — so a thousand transfers on one hot fund account cost one
// commit and one balance update, not a thousand row locks.
//
// There is exactly one writer per database. On PostgreSQL the engine holds
// an advisory lock for its lifetime; a second engine on the same schema
// refuses to start. Reads (balances, statements) go straight to the
// database and see committed state.
package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/sqlstore"
)

// Options tune the engine.
type Options struct {
	MaxBatch       int              // most transfers per commit (default 8192)
	MaxCached      int              // accounts kept in memory before the cache is dropped (default 1,000,000)
	ExpiryInterval time.Duration    // how often expired pendings are voided (default 1 s; < 0 disables)
	Clock          func() time.Time // default time.Now
	Log            *slog.Logger
}

// Unit is one all-or-nothing piece of work: accounts to create, transfers
// to apply and, optionally, the caller's own statements (a settlement row,
// accumulator updates, outbox entries) that must commit with them. A unit
// is never split across commits, and one failing unit never fails others
// in its batch.
type Unit struct {
	Accounts  []ledger.Account
	Transfers []ledger.Transfer
	// Statements runs inside the batch transaction after the unit's
	// transfers have been validated. Its error fails the unit (and is
	// returned as is) without touching the rest of the batch.
	Statements func(ctx context.Context, tx *sqlstore.Tx) error
}

// UnitResult reports a committed unit.
type UnitResult struct {
	Transfers []*ledger.Transfer // stored transfers, in the unit's order
	Replayed  bool               // every transfer already existed: nothing was applied again
}

// Engine is the ledger writer and reader. It is safe for concurrent use.
type Engine struct {
	db    *sqlstore.DB
	opts  Options
	reqs  chan *request
	book  *ledger.Book
	lock  *sqlstore.HeldLock // PostgreSQL: the one-writer advisory lock
	stmts *stmtCache
	// resync: a commit failed, and its outcome may be unknown (the
	// connection or the server died during COMMIT; after a failover the
	// new primary may hold it). The next batch reads the sequence from
	// the database instead of reusing the failed batch's numbers.
	resync bool

	closeOnce sync.Once
	quit      chan struct{}
	done      chan struct{}
	sweepDone chan struct{}

	statsMu sync.Mutex
	stats   Stats
}

// Stats count the writer's work.
type Stats struct {
	Batches, Units, Transfers, FailedUnits, Retries int64
}

type request struct {
	ctx   context.Context
	unit  Unit
	reply chan reply
}

type reply struct {
	res *UnitResult
	err error
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("ledger engine is closed")

// Open starts the engine on a migrated database.
func Open(ctx context.Context, db *sqlstore.DB, opts Options) (*Engine, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 8192
	}
	if opts.MaxCached <= 0 {
		opts.MaxCached = 1_000_000
	}
	if opts.ExpiryInterval == 0 {
		opts.ExpiryInterval = time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{db: db, opts: opts, reqs: make(chan *request, 4*opts.MaxBatch), quit: make(chan struct{}),
		done: make(chan struct{}), sweepDone: make(chan struct{})}
	if db.Dialect == sqlstore.Postgres {
		var schema string
		if err := db.Write().QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return nil, err
		}
		h := fnv.New64a()
		h.Write([]byte("yibao-ledger-writer/" + schema))
		lock, err := db.TryHoldLock(ctx, int64(h.Sum64()>>1))
		if err != nil {
			return nil, err
		}
		if lock == nil {
			return nil, yibao.Errorf(yibao.CodeUnavailable, "another ledger writer holds schema %s", schema)
		}
		e.lock = lock
	}
	var maxSeq int64
	if err := db.Write().QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM ledger_transfers`).Scan(&maxSeq); err != nil {
		e.releaseLock()
		return nil, fmt.Errorf("ledger: read sequence: %w", err)
	}
	e.book = ledger.NewBook(maxSeq + 1)
	// The fixed-shape statements serve SQLite; PostgreSQL writes a batch
	// with array parameters (persistPostgres) and needs none.
	if db.Dialect == sqlstore.SQLite {
		stmts, err := prepareStmts(ctx, db)
		if err != nil {
			e.releaseLock()
			return nil, err
		}
		e.stmts = stmts
	}
	go e.run()
	if opts.ExpiryInterval > 0 {
		go e.sweep()
	} else {
		close(e.sweepDone)
	}
	return e, nil
}

func (e *Engine) releaseLock() {
	if e.lock != nil {
		// A crashed process loses its connection, and the lock with it.
		e.lock.Release()
		e.lock = nil
	}
}

// Close stops the writer after the units already submitted.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		close(e.quit)
		<-e.sweepDone
		<-e.done
		e.stmts.close()
		e.releaseLock()
	})
	return nil
}

// Stats returns the writer's counters.
func (e *Engine) Stats() Stats {
	e.statsMu.Lock()
	defer e.statsMu.Unlock()
	return e.stats
}

// Submit applies a unit and returns once it is durably committed, or
// refused. Errors: the first refused transfer as a *ledger.TransferError
// (codes invalid_argument, not_found, insufficient_funds, conflict,
// failed_precondition), the unit's own statement error, unavailable when
// the database fails, or the context's error if it ends before the unit
// was taken (the unit was then not applied).
func (e *Engine) Submit(ctx context.Context, u Unit) (*UnitResult, error) {
	if len(u.Transfers) == 0 && len(u.Accounts) == 0 {
		return nil, yibao.Errorf(yibao.CodeInvalid, "a unit needs at least one account or transfer")
	}
	r := &request{ctx: ctx, unit: u, reply: make(chan reply, 1)}
	select {
	case <-e.quit:
		return nil, ErrClosed
	case e.reqs <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once taken, the unit may commit; wait for the answer even if ctx ends,
	// so the caller never mistakes a committed unit for a failed one.
	rep := <-r.reply
	return rep.res, rep.err
}

// Transfer applies one transfer; a shorthand for Submit.
func (e *Engine) Transfer(ctx context.Context, t ledger.Transfer) (*ledger.Transfer, error) {
	res, err := e.Submit(ctx, Unit{Transfers: []ledger.Transfer{t}})
	if err != nil {
		return nil, err
	}
	return res.Transfers[0], nil
}

// CreateAccounts creates accounts idempotently (an existing account with
// the same ledger, kind and flags is fine).
func (e *Engine) CreateAccounts(ctx context.Context, accs ...ledger.Account) error {
	_, err := e.Submit(ctx, Unit{Accounts: accs})
	return err
}

func (e *Engine) run() {
	defer close(e.done)
	for {
		var first *request
		select {
		case first = <-e.reqs:
		case <-e.quit:
			// Drain what was submitted before Close.
			for {
				select {
				case r := <-e.reqs:
					e.process([]*request{r})
				default:
					return
				}
			}
		}
		batch := []*request{first}
		n := len(first.unit.Transfers) + len(first.unit.Accounts)
	drain:
		for n < e.opts.MaxBatch {
			select {
			case r := <-e.reqs:
				batch = append(batch, r)
				n += len(r.unit.Transfers) + len(r.unit.Accounts)
			default:
				break drain
			}
		}
		e.process(batch)
	}
}

// process commits a batch; if the commit fails it retries each unit alone,
// so that a unit whose statements break the transaction cannot take the
// others down with it.
func (e *Engine) process(batch []*request) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- reply{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	replies, err := e.commit(live)
	if err == nil {
		for i, r := range live {
			r.reply <- replies[i]
		}
		return
	}
	if len(live) == 1 {
		e.opts.Log.Error("ledger commit failed", "err", err)
		live[0].reply <- reply{err: yibao.Wrap(yibao.CodeUnavailable, err, "the ledger could not commit; retry with the same ids")}
		return
	}
	e.count(func(s *Stats) { s.Retries++ })
	for _, r := range live {
		e.process([]*request{r})
	}
}

func (e *Engine) count(f func(*Stats)) {
	e.statsMu.Lock()
	f(&e.stats)
	e.statsMu.Unlock()
}

// commit runs one batch in one transaction. On any database error it
// rolls back, drops the in-memory cache and returns the error.
func (e *Engine) commit(batch []*request) (replies []reply, err error) {
	ctx := context.Background()
	now := e.opts.Clock().UnixMicro()
	seqBefore := e.book.NextSeq()
	defer func() {
		if err != nil {
			e.book = ledger.NewBook(seqBefore) // the cache may hold uncommitted state
			e.resync = true
		}
	}()
	err = e.db.WriteTxOnce(ctx, func(tx *sqlstore.Tx) error {
		replies = make([]reply, len(batch))
		if e.resync {
			var maxSeq int64
			if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM ledger_transfers`).Scan(&maxSeq); err != nil {
				return err
			}
			e.book = ledger.NewBook(maxSeq + 1)
		}
		// Load everything the batch refers to in as few queries as possible.
		var allAcc []ledger.Account
		var allTr []ledger.Transfer
		for _, r := range batch {
			allAcc = append(allAcc, r.unit.Accounts...)
			allTr = append(allTr, r.unit.Transfers...)
		}
		if err := e.load(ctx, tx, allAcc, allTr); err != nil {
			return err
		}
		okUnits, okTransfers, failed := 0, 0, 0
		for i, r := range batch {
			replies[i] = e.applyUnit(ctx, tx, r, now)
			if replies[i].err != nil {
				failed++
			} else {
				okUnits++
				okTransfers += len(r.unit.Transfers)
			}
		}
		if err := e.persist(ctx, tx, e.book.TakeChanges()); err != nil {
			return err
		}
		e.count(func(s *Stats) {
			s.Batches++
			s.Units += int64(okUnits)
			s.Transfers += int64(okTransfers)
			s.FailedUnits += int64(failed)
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.resync = false
	if a, _ := e.book.Size(); a > e.opts.MaxCached {
		e.book.Forget(true)
	} else {
		e.book.Forget(false)
	}
	return replies, nil
}

// applyUnit applies one unit inside the batch, all or nothing.
func (e *Engine) applyUnit(ctx context.Context, tx *sqlstore.Tx, r *request, now int64) reply {
	u := r.unit
	e.book.Checkpoint()
	for _, a := range u.Accounts {
		if err := e.book.CreateAccount(a, now); err != nil {
			e.book.Rollback()
			return reply{err: err}
		}
	}
	results := e.book.Apply(u.Transfers, now)
	res := &UnitResult{Transfers: make([]*ledger.Transfer, len(results)), Replayed: len(results) > 0}
	for i, x := range results {
		if x.Err != nil {
			e.book.Rollback()
			return reply{err: x.Err}
		}
		res.Transfers[i] = x.Transfer
		res.Replayed = res.Replayed && x.Existed
	}
	stmts := u.Statements
	if sqlstore.HasEffect(r.ctx) {
		// The caller's effect mark commits with the unit (sqlstore/effect.go).
		own := stmts
		stmts = func(ctx context.Context, tx *sqlstore.Tx) error {
			if own != nil {
				if err := own(ctx, tx); err != nil {
					return err
				}
			}
			return sqlstore.RunEffect(ctx, tx)
		}
	}
	if stmts != nil && !res.Replayed {
		if _, err := tx.Exec(ctx, "SAVEPOINT unit"); err != nil {
			e.book.Rollback()
			return reply{err: err}
		}
		if err := stmts(r.ctx, tx); err != nil {
			if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT unit"); rerr != nil {
				// The transaction itself is broken; fail the batch so each
				// unit is retried alone.
				e.book.Rollback()
				return reply{err: rerr}
			}
			tx.Exec(ctx, "RELEASE SAVEPOINT unit")
			e.book.Rollback()
			return reply{err: err}
		}
		if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT unit"); err != nil {
			e.book.Rollback()
			return reply{err: err}
		}
	}
	e.book.Release()
	// Copy the stored transfers: the book may change them later (a pending
	// one gets resolved) while the caller reads its result.
	for i, t := range res.Transfers {
		c := *t
		res.Transfers[i] = &c
	}
	return reply{res: res}
}

// load reads the accounts and transfers a batch refers to that the book
// does not hold yet.
func (e *Engine) load(ctx context.Context, tx *sqlstore.Tx, accs []ledger.Account, ts []ledger.Transfer) error {
	accIDs, trIDs := e.book.Missing(accs, ts)
	loadedA, err := loadByID(ctx, tx, e.db.Dialect, accountCols, "ledger_accounts", accIDs, scanAccounts)
	if err != nil {
		return err
	}
	loadedT, err := loadByID(ctx, tx, e.db.Dialect, transferCols, "ledger_transfers", trIDs, scanTransfers)
	if err != nil {
		return err
	}
	e.book.Load(loadedA, loadedT, accIDs, trIDs)
	// A post or void names only its pending transfer: the accounts it
	// moves are the pending's, which a cold book (after a restart or a
	// failed commit) has not loaded yet.
	if more, _ := e.book.Missing(nil, loadedT); len(more) > 0 {
		loadedA, err := loadByID(ctx, tx, e.db.Dialect, accountCols, "ledger_accounts", more, scanAccounts)
		if err != nil {
			return err
		}
		e.book.Load(loadedA, nil, more, nil)
	}
	return nil
}

// loadByID reads the rows of table whose id is in ids, 500 at a time: an IN
// list on SQLite, one array parameter on PostgreSQL.
func loadByID[T any](ctx context.Context, tx *sqlstore.Tx, d sqlstore.Dialect, cols, table string, ids []string, scan func(*sql.Rows) ([]T, error)) ([]T, error) {
	var out []T
	for _, chunk := range chunks(ids, 500) {
		q, args := `SELECT `+cols+` FROM `+table+` WHERE id IN (`+placeholders(len(chunk))+`)`, anys(chunk)
		if d == sqlstore.Postgres {
			q, args = `SELECT `+cols+` FROM `+table+` WHERE id = ANY(?::text[])`, []any{chunk}
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		list, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, list...)
	}
	return out, nil
}

// persist writes a batch's changes: new accounts, new transfers (many rows
// per statement), resolved pendings and changed balances.
func (e *Engine) persist(ctx context.Context, tx *sqlstore.Tx, ch ledger.Changes) error {
	if e.db.Dialect == sqlstore.Postgres {
		return persistPostgres(ctx, tx, ch)
	}
	st := &txStmts{ctx: ctx, tx: tx, bound: map[*sql.Stmt]*sql.Stmt{}}
	defer st.close()
	isNew := map[string]bool{}
	accs := ch.Accounts
	for _, n := range splitSizes(len(accs), accountChunkSizes) {
		chunk := accs[:n]
		accs = accs[n:]
		args := make([]any, 0, n*9)
		for _, a := range chunk {
			args = append(args, a.ID, a.Ledger, string(a.Kind), int64(a.Flags), int64(a.DebitsPending), int64(a.DebitsPosted),
				int64(a.CreditsPending), int64(a.CreditsPosted), a.CreatedAt)
			isNew[a.ID] = true
		}
		if err := st.exec(e.stmts.insertAccounts[n], args...); err != nil {
			return fmt.Errorf("insert accounts: %w", err)
		}
	}
	trs := ch.Transfers
	for _, n := range splitSizes(len(trs), transferChunkSizes) {
		chunk := trs[:n]
		trs = trs[n:]
		args := make([]any, 0, n*17)
		for _, t := range chunk {
			var pid, status any
			if t.PendingID != "" {
				pid = t.PendingID
			}
			if t.Status != "" {
				status = string(t.Status)
			}
			args = append(args, t.Seq, t.ID, t.DebitAccountID, t.CreditAccountID, int64(t.Amount), pid, t.Timeout, t.Ledger,
				t.Code, int64(t.Flags), t.UserData, t.Leg, t.Timestamp, int64(t.DebitBalance), int64(t.CreditBalance), status, t.ExpiresAt)
		}
		if err := st.exec(e.stmts.insertTransfers[n], args...); err != nil {
			return fmt.Errorf("insert transfers: %w", err)
		}
	}
	newTr := map[string]bool{}
	for _, t := range ch.Transfers {
		newTr[t.ID] = true
	}
	for _, t := range ch.Resolved {
		if newTr[t.ID] { // created and resolved in the same batch: inserted with its final status
			continue
		}
		if err := st.exec(e.stmts.resolve, string(t.Status), t.ID); err != nil {
			return fmt.Errorf("resolve pending: %w", err)
		}
	}
	for _, a := range ch.Dirty {
		if isNew[a.ID] {
			continue
		}
		if err := st.exec(e.stmts.updateBalance, int64(a.DebitsPending), int64(a.DebitsPosted), int64(a.CreditsPending), int64(a.CreditsPosted), a.ID); err != nil {
			return fmt.Errorf("update balance: %w", err)
		}
	}
	return nil
}

// sweep voids expired pending transfers, each exactly once.
func (e *Engine) sweep() {
	defer close(e.sweepDone)
	t := time.NewTicker(e.opts.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-e.quit:
			return
		case <-t.C:
			if _, err := e.ExpirePending(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
				e.opts.Log.Error("ledger expiry sweep", "err", err)
			}
		}
	}
}

// ExpirePending voids every pending transfer whose timeout has passed and
// returns how many it voided. Each expiry is a transfer with the id
// "expiry:<pending id>", so running it twice (or on two nodes) voids once.
func (e *Engine) ExpirePending(ctx context.Context) (int, error) {
	now := e.opts.Clock().UnixMicro()
	rows, err := e.db.Query(ctx, `SELECT id FROM ledger_transfers WHERE pending_status = 'pending' AND expires_at > 0 AND expires_at <= ? ORDER BY expires_at LIMIT 1000`, now)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		res, err := e.Submit(ctx, Unit{Transfers: []ledger.Transfer{ledger.ExpiryTransfer(id)}})
		switch r := ledger.ReasonOf(err); {
		case err == nil && res.Replayed:
			// Another sweep (or node) expired it first: not ours to count.
		case err == nil:
			n++
		case r == ledger.ReasonPendingPosted || r == ledger.ReasonPendingVoided || r == ledger.ReasonPendingExpired:
			// Resolved meanwhile: nothing to do.
		default:
			return n, err
		}
	}
	return n, nil
}

func chunks[T any](xs []T, n int) [][]T {
	var out [][]T
	for len(xs) > n {
		out = append(out, xs[:n])
		xs = xs[n:]
	}
	if len(xs) > 0 {
		out = append(out, xs)
	}
	return out
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
