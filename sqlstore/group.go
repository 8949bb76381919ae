package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// Group commit for SQLite.
//
// SQLite has one writer and, with synchronous=FULL, every commit waits for
// an fsync. Run one small write transaction per request (a nonce, an
// idempotency record, a visit) and the fsync rate is the throughput. So
// WriteTx calls on SQLite do not commit one by one: a single goroutine
// takes every call that is waiting, runs each inside its own SAVEPOINT of
// one transaction and commits once. A call whose function fails is rolled
// back to its savepoint and fails alone; the others still commit. Every
// caller gets its answer only after the shared commit is durable.
//
// If the shared transaction itself breaks (the commit fails, or a savepoint
// cannot be rolled back), each call is run again alone, which is why
// WriteTx documents that fn may run more than once. WriteTxOnce never joins
// a group.

// groupMax bounds how many calls share one commit.
const groupMax = 512

type groupReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan groupResult
}

type groupResult struct {
	err   error
	panic any
}

type grouper struct {
	db   *DB
	reqs chan *groupReq
	quit chan struct{}
	done chan struct{}
	once sync.Once

	statsMu sync.Mutex
	stats   GroupStats
}

// GroupStats count the group committer's work (SQLite only).
type GroupStats struct {
	Commits, Calls, Reruns int64
}

func newGrouper(db *DB) *grouper {
	g := &grouper{db: db, reqs: make(chan *groupReq, 4*groupMax), quit: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

func (g *grouper) close() {
	g.once.Do(func() {
		close(g.quit)
		<-g.done
	})
}

// submit queues fn and waits for the shared commit. Once queued, the call
// waits for its answer even if ctx ends, so a committed write is never
// reported as failed.
func (g *grouper) submit(ctx context.Context, fn func(*Tx) error) error {
	r := &groupReq{ctx: ctx, fn: fn, done: make(chan groupResult, 1)}
	select {
	case g.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.quit:
		return fmt.Errorf("sqlstore: database is closed")
	}
	res := <-r.done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

func (g *grouper) run() {
	defer close(g.done)
	for {
		var first *groupReq
		select {
		case first = <-g.reqs:
		case <-g.quit:
			for {
				select {
				case r := <-g.reqs:
					g.commit([]*groupReq{r})
				default:
					return
				}
			}
		}
		batch := []*groupReq{first}
	drain:
		for len(batch) < groupMax {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		g.commit(batch)
	}
}

// commit runs a batch in one transaction; if the transaction breaks, it
// runs each call again alone.
func (g *grouper) commit(batch []*groupReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- groupResult{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	g.db.wstmts.preparePending()
	results, err := g.try(live)
	g.statsMu.Lock()
	g.stats.Commits++
	g.stats.Calls += int64(len(live))
	if err != nil && len(live) > 1 {
		g.stats.Reruns += int64(len(live))
	}
	g.statsMu.Unlock()
	if err == nil {
		for i, r := range live {
			r.done <- results[i]
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- groupResult{err: err}
		return
	}
	for _, r := range live {
		g.commit([]*groupReq{r})
	}
}

// try runs the batch in one transaction. A non-nil error means nothing
// committed; results are then meaningless. A call that runs alone needs no
// savepoint: if it fails, its transaction is rolled back and its own
// result returned.
func (g *grouper) try(batch []*groupReq) (results []groupResult, err error) {
	// The shared transaction must not die with one caller's context: an
	// interrupted statement can roll back the whole SQLite transaction.
	stx, err := g.db.write.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: begin: %w", err)
	}
	defer func() {
		if err != nil {
			stx.Rollback()
		}
	}()
	results = make([]groupResult, len(batch))
	single := len(batch) == 1
	for i, r := range batch {
		tx := &Tx{Tx: stx, db: g.db, detached: true}
		if single {
			results[i] = call(r.fn, tx)
			if results[i].err != nil || results[i].panic != nil {
				stx.Rollback()
				return results, nil
			}
			continue
		}
		if _, err := stx.Exec("SAVEPOINT yibao_group"); err != nil {
			return nil, err
		}
		results[i] = call(r.fn, tx)
		if results[i].err != nil || results[i].panic != nil {
			if _, err := stx.Exec("ROLLBACK TO SAVEPOINT yibao_group"); err != nil {
				return nil, fmt.Errorf("sqlstore: roll back one call of a group: %w", err)
			}
		}
		if _, err := stx.Exec("RELEASE SAVEPOINT yibao_group"); err != nil {
			return nil, fmt.Errorf("sqlstore: release savepoint: %w", err)
		}
	}
	if err := stx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlstore: commit: %w", err)
	}
	return results, nil
}

func call(fn func(*Tx) error, tx *Tx) (res groupResult) {
	defer func() {
		if p := recover(); p != nil {
			res = groupResult{panic: p}
		}
	}()
	return groupResult{err: fn(tx)}
}

// GroupStats returns the group committer's counters (zero on PostgreSQL).
func (db *DB) GroupStats() GroupStats {
	if db.group == nil {
		return GroupStats{}
	}
	db.group.statsMu.Lock()
	defer db.group.statsMu.Unlock()
	return db.group.stats
}

// execTx runs one statement as a WriteTx (so it joins the group commit on
// SQLite and carries the context's effect mark).
func (db *DB) execTx(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := db.WriteTx(ctx, func(tx *Tx) error {
		var err error
		res, err = tx.Exec(ctx, query, args...)
		return err
	})
	return res, err
}
