package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"yibao"
)

// Monthly partitions (PostgreSQL only). Migration 0022 turns the tables
// below into tables partitioned by RANGE on their creation instant, with a
// DEFAULT partition that takes any row no month partition covers.
// EnsurePartitions keeps the coming months' partitions in place ahead of
// time; docs/operations.md, "Monthly partitions", says which tables are
// partitioned and why the others are not.
//
// A running server only ever attaches partitions that no row belongs to
// yet. Moving rows out of DEFAULT into a new partition (MoveDefaultRows)
// is for a maintenance window: a query planned just before the move, with
// the partitions it knew of then, waits for the move's lock and then reads
// a DEFAULT partition the rows have left, and an insert routed to DEFAULT
// the same way fails its partition check.

// PartitionedTable is a table partitioned by month.
type PartitionedTable struct {
	Name string // the partitioned table
	Key  string // its partition key: an instant in unix microseconds
}

// PartitionedTables are the tables migration 0022 partitions.
var PartitionedTables = []PartitionedTable{
	{"settlements", "created_at"},
	{"outbox", "created_at"},
	{"ecert_reads", "at"},
	{"face_verifications", "at"},
}

// PartitionMonthsAhead is how many months after the current one the server
// keeps partitions for: a maintenance run that fails for weeks still
// leaves every insert a month partition.
const PartitionMonthsAhead = 3

// partitionLock serialises partition maintenance between servers.
const partitionLock = 7302102

// MonthStart returns the first instant of t's month in China time, where
// partition months begin, like every calendar date of the platform.
func MonthStart(t time.Time) time.Time {
	t = t.In(yibao.ChinaTime)
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, yibao.ChinaTime)
}

// PartitionName is the name of table's partition for month's month, e.g.
// settlements_p202503.
func PartitionName(table string, month time.Time) string {
	m := MonthStart(month)
	return fmt.Sprintf("%s_p%04d%02d", table, m.Year(), int(m.Month()))
}

// ErrRowsInDefault reports rows waiting in a DEFAULT partition for a month
// without a partition of its own; MoveDefaultRows moves them.
var ErrRowsInDefault = errors.New("rows wait in a DEFAULT partition")

// EnsurePartitions creates, for every partitioned table, the partitions of
// now's month and of the monthsAhead months after it that are missing,
// and returns their names; it does nothing on SQLite. It is safe while
// servers run: it skips a month that already has rows in the DEFAULT
// partition (making its partition would move them) and then returns, with
// the partitions it did create, an error wrapping ErrRowsInDefault that
// names them. Each partition is made in a transaction of its own under a
// one-second lock timeout: attaching waits for queries still reading the
// DEFAULT partition, and every new query on the table queues behind that
// wait, so a long query makes it give up (to be retried) rather than hold
// the table up.
func EnsurePartitions(ctx context.Context, db *DB, now time.Time, monthsAhead int) ([]string, error) {
	if db.Dialect != Postgres {
		return nil, nil
	}
	var created, waitingAll []string
	for _, t := range PartitionedTables {
		def, err := defaultPartition(ctx, db, t.Name)
		if err != nil {
			return created, err
		}
		waiting, err := defaultMonths(ctx, db, def, t.Key)
		if err != nil {
			return created, err
		}
		first := MonthStart(now)
		for i := 0; i <= monthsAhead; i++ {
			m := first.AddDate(0, i, 0)
			if waiting[m.UnixMicro()] > 0 {
				continue
			}
			made, err := createPartition(ctx, db, t, def, m, false)
			if err != nil {
				return created, err
			}
			if made {
				created = append(created, PartitionName(t.Name, m))
			}
		}
		if months := sortedMonths(waiting); len(months) > 0 {
			var n int64
			for _, m := range months {
				n += waiting[m]
			}
			span := monthLabel(months[0])
			if len(months) > 1 {
				span = fmt.Sprintf("%d months, %s to %s", len(months), span, monthLabel(months[len(months)-1]))
			}
			waitingAll = append(waitingAll, fmt.Sprintf("%d rows of %s in %s", n, span, def))
		}
	}
	if len(waitingAll) > 0 {
		return created, fmt.Errorf("sqlstore: %w: %s; move them at a quiet moment with `yibao pg partitions --move`", ErrRowsInDefault, strings.Join(waitingAll, ", "))
	}
	return created, nil
}

// MoveDefaultRows moves the rows waiting in the DEFAULT partitions into
// partitions of their months, made for them, and returns those. Run it in
// a maintenance window (see above): queries on a month being moved can miss
// its rows, inserts into it can fail, and the DEFAULT partition is locked
// while its rows are copied.
func MoveDefaultRows(ctx context.Context, db *DB) ([]string, error) {
	if db.Dialect != Postgres {
		return nil, nil
	}
	var created []string
	for _, t := range PartitionedTables {
		def, err := defaultPartition(ctx, db, t.Name)
		if err != nil {
			return created, err
		}
		waiting, err := defaultMonths(ctx, db, def, t.Key)
		if err != nil {
			return created, err
		}
		for _, m := range sortedMonths(waiting) {
			made, err := createPartition(ctx, db, t, def, time.UnixMicro(m), true)
			if err != nil {
				return created, err
			}
			if made {
				created = append(created, PartitionName(t.Name, time.UnixMicro(m)))
			}
		}
	}
	return created, nil
}

func monthLabel(m int64) string { return time.UnixMicro(m).In(yibao.ChinaTime).Format("2006-01") }

func sortedMonths(months map[int64]int64) []int64 {
	out := make([]int64, 0, len(months))
	for m := range months {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// defaultPartition returns the name of table's DEFAULT partition, and an
// error if table is not partitioned (migration 0022 not applied).
func defaultPartition(ctx context.Context, db *DB, table string) (string, error) {
	var def sql.NullString
	err := db.write.QueryRowContext(ctx, `SELECT d.relname FROM pg_partitioned_table p LEFT JOIN pg_class d ON d.oid = p.partdefid
		WHERE p.partrelid = to_regclass($1)`, table).Scan(&def)
	if err == sql.ErrNoRows {
		return "", fmt.Errorf("sqlstore: %s is not partitioned (is migration 0022 applied?)", table)
	}
	if err != nil {
		return "", fmt.Errorf("sqlstore: partitions of %s: %w", table, err)
	}
	if !def.Valid {
		return "", fmt.Errorf("sqlstore: %s has no DEFAULT partition", table)
	}
	return def.String, nil
}

// defaultMonths counts the rows of a DEFAULT partition (normally none) by
// month, keyed by the month's first instant.
func defaultMonths(ctx context.Context, db *DB, def, key string) (map[int64]int64, error) {
	// The instant's wall-clock time in China (UTC+8), truncated to its month.
	rows, err := db.write.QueryContext(ctx, `SELECT to_char((to_timestamp(`+ident(key)+` / 1000000.0) AT TIME ZONE 'UTC') + INTERVAL '8 hours', 'YYYY-MM') AS m, COUNT(*)
		FROM `+ident(def)+` GROUP BY m`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: rows in %s: %w", def, err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		m, err := time.ParseInLocation("2006-01", s, yibao.ChinaTime)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: month %q in %s: %w", s, def, err)
		}
		out[m.UnixMicro()] = n
	}
	return out, rows.Err()
}

// createPartition makes t's partition for month unless it exists: a plain
// table like t, attached. Attaching locks only the DEFAULT partition
// exclusively (to check that none of its rows belongs to the new month),
// where CREATE TABLE … PARTITION OF would lock the whole table. With move,
// the month's rows are first taken out of the DEFAULT partition into it.
func createPartition(ctx context.Context, db *DB, t PartitionedTable, def string, month time.Time, move bool) (made bool, err error) {
	name := PartitionName(t.Name, month)
	from, to := MonthStart(month).UnixMicro(), MonthStart(month).AddDate(0, 1, 0).UnixMicro()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	defer func() {
		if err != nil {
			err = fmt.Errorf("sqlstore: partition %s: %w", name, err)
		}
	}()
	for _, q := range []string{`SELECT pg_advisory_xact_lock(` + strconv.Itoa(partitionLock) + `)`, `SET LOCAL lock_timeout = '1s'`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return false, err
		}
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	stmts := []string{`CREATE TABLE ` + ident(name) + ` (LIKE ` + ident(t.Name) + ` INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`}
	if move {
		rng := fmt.Sprintf("%s >= %d AND %s < %d", ident(t.Key), from, ident(t.Key), to)
		stmts = append([]string{`LOCK TABLE ` + ident(def) + ` IN ACCESS EXCLUSIVE MODE`}, stmts...)
		stmts = append(stmts,
			`INSERT INTO `+ident(name)+` SELECT * FROM `+ident(def)+` WHERE `+rng,
			`DELETE FROM `+ident(def)+` WHERE `+rng)
	}
	stmts = append(stmts, fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)`, ident(t.Name), ident(name), from, to))
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// Partition is one partition of a partitioned table.
type Partition struct {
	Table string `json:"table"`
	Name  string `json:"name"`
	Bound string `json:"bound"` // FOR VALUES FROM (…) TO (…), or DEFAULT
	Rows  int64  `json:"rows"`  // the planner's estimate (-1: never analysed)
}

// Partitions lists the partitions of every partitioned table, by table
// and name (nil on SQLite).
func Partitions(ctx context.Context, db *DB) ([]Partition, error) {
	if db.Dialect != Postgres {
		return nil, nil
	}
	var out []Partition
	for _, t := range PartitionedTables {
		rows, err := db.read.QueryContext(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint
			FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1) ORDER BY c.relname`, t.Name)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			p := Partition{Table: t.Name}
			if err := rows.Scan(&p.Name, &p.Bound, &p.Rows); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// KeepPartitions runs EnsurePartitions for the current month and the
// PartitionMonthsAhead after it now and then daily (after a failure, again
// in ten minutes) until ctx ends. The server runs it; on SQLite it
// returns at once.
func KeepPartitions(ctx context.Context, db *DB, log *slog.Logger) {
	if db.Dialect != Postgres {
		return
	}
	for {
		wait := 24 * time.Hour
		created, err := EnsurePartitions(ctx, db, time.Now(), PartitionMonthsAhead)
		if len(created) > 0 {
			log.Info("created monthly partitions", "partitions", created)
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrRowsInDefault):
			log.Warn("partition maintenance", "err", err)
		case err != nil:
			log.Warn("partition maintenance failed; it runs again in 10 minutes (rows without a month partition go to DEFAULT meanwhile)", "err", err)
			wait = 10 * time.Minute
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }
