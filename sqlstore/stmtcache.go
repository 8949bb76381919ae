package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"sync/atomic"
)

// Prepared-statement cache for SQLite.
//
// The SQLite driver compiles a statement's text on every call; profiles of
// whole settlements showed a quarter of the CPU in SQLite's parser. Each
// pool here keeps one *sql.Stmt per query text, which database/sql prepares
// once per connection and reuses (also inside transactions, through
// Tx.StmtContext). PostgreSQL needs none: pgx caches prepared statements
// per connection itself.

// stmtCacheMax bounds the distinct texts cached per pool, so that code
// building SQL with varying shapes cannot grow it without end; texts past
// the bound simply run unprepared.
const stmtCacheMax = 4096

type stmtCache struct {
	pool *sql.DB
	// deferred: the pool has a single connection that a transaction may
	// be holding, so a miss cannot prepare on the spot (it would wait for
	// itself). Misses are noted and prepared by preparePending, which the
	// writers call between transactions.
	deferred bool

	mu      sync.Mutex
	m       sync.Map // query → *sql.Stmt
	n       atomic.Int64
	pending map[string]bool
}

// get returns the cached statement for query, preparing it on first use,
// or nil when the text is not (or not yet) cached.
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if v, ok := c.m.Load(query); ok {
		return v.(*sql.Stmt)
	}
	// Only single statements: prepare compiles the first statement of a
	// script and would silently drop the rest.
	if strings.Contains(strings.TrimRight(strings.TrimSpace(query), ";"), ";") || c.n.Load() >= stmtCacheMax {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if c.deferred {
		if c.pending == nil {
			c.pending = map[string]bool{}
		}
		if len(c.pending) < 256 {
			c.pending[query] = true
		}
		return nil
	}
	c.prepareLocked(ctx, query)
	v, _ := c.m.Load(query)
	st, _ := v.(*sql.Stmt)
	return st
}

func (c *stmtCache) prepareLocked(ctx context.Context, query string) {
	st, err := c.pool.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return // the caller runs it unprepared and sees the error there
	}
	c.m.Store(query, st)
	c.n.Add(1)
}

// preparePending prepares the texts that missed since the last call. The
// caller must not be inside a transaction of the pool. The lock is not
// held while preparing: preparing waits for the connection, and the
// transaction holding it may be looking up statements meanwhile.
func (c *stmtCache) preparePending() {
	if c == nil || !c.deferred {
		return
	}
	c.mu.Lock()
	var todo []string
	for q := range c.pending {
		todo = append(todo, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range todo {
		if _, ok := c.m.Load(q); ok || c.n.Load() >= stmtCacheMax {
			continue
		}
		st, err := c.pool.Prepare(q)
		if err != nil {
			continue
		}
		if _, loaded := c.m.LoadOrStore(q, st); loaded {
			st.Close()
		} else {
			c.n.Add(1)
		}
	}
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.m.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
}

// ChunkSize picks how many of n rows the next multi-row statement takes:
// 32, 8 or 1, so that statements over any number of rows have at most
// three shapes, each prepared once.
func ChunkSize(n int) int {
	switch {
	case n >= 32:
		return 32
	case n >= 8:
		return 8
	}
	return 1
}

// Marks is n '?' placeholders separated by commas.
func Marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }
