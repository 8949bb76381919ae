package keystore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"yibao/gmcrypto"
)

// Target is a table with columns sealed by the data keyring.
type Target struct {
	Table  string   // e.g. persons
	Key    string   // its primary key: the job's cursor
	IntKey bool     // the key column is an integer
	Extra  []string // more columns the associated data is made of
	// Columns are the sealed columns (NULL allowed).
	Columns []Column
	// KeyIDColumn, if set, names a column that records the sealing key's
	// id; it is kept in step.
	KeyIDColumn string
}

// Column is a sealed column and how its associated data is made from the
// row's key and Extra columns (exactly as the owning service makes it).
type Column struct {
	Name string
	AAD  func(key string, extra []string) []byte
}

func (t Target) selectSQL(after bool, limit int) string {
	cols := append(append([]string{t.Key}, t.Extra...), t.columnNames()...)
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + t.Table
	if after {
		q += " WHERE " + t.Key + " > ?"
	}
	q += " ORDER BY " + t.Key
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	return q
}

func (t Target) columnNames() []string {
	var out []string
	for _, c := range t.Columns {
		out = append(out, c.Name)
	}
	return out
}

func (t Target) keyArg(k string) (any, error) {
	if t.IntKey {
		n, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("keystore: %s.%s cursor %q: %w", t.Table, t.Key, k, err)
		}
		return n, nil
	}
	return k, nil
}

// row is one row read from a target.
type row struct {
	key    string
	extra  []string
	values [][]byte
}

func readRows(ctx context.Context, db DB, t Target, cursor string, limit int) ([]row, error) {
	var args []any
	if cursor != "" {
		a, err := t.keyArg(cursor)
		if err != nil {
			return nil, err
		}
		args = append(args, a)
	}
	rs, err := db.Query(ctx, t.selectSQL(cursor != "", limit), args...)
	if err != nil {
		return nil, fmt.Errorf("keystore: reading %s: %w", t.Table, err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		r := row{extra: make([]string, len(t.Extra)), values: make([][]byte, len(t.Columns))}
		dst := []any{&r.key}
		for i := range r.extra {
			dst = append(dst, &r.extra[i])
		}
		for i := range r.values {
			dst = append(dst, &r.values[i])
		}
		if err := rs.Scan(dst...); err != nil {
			return nil, fmt.Errorf("keystore: reading %s: %w", t.Table, err)
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// ScanReport counts the sealed values of the targets by the key that
// sealed them.
type ScanReport struct {
	Rows       int64
	Values     int64
	ByKey      map[string]int64 // values per key id ("?" for a value that is not a sealed value)
	Unreadable int64            // values that did not open (when a keyring was given)
	Problems   []string         // the first few unreadable values: table, key, column, why
}

// Scan reads every sealed value of targets. With a keyring it also opens
// each one, with the associated data its service binds, and counts those
// that do not open.
func (c *Catalog) Scan(ctx context.Context, targets []Target, kr *gmcrypto.Keyring) (*ScanReport, error) {
	rep := &ScanReport{ByKey: map[string]int64{}}
	for _, t := range targets {
		cursor := ""
		for {
			rows, err := readRows(ctx, c.DB, t, cursor, 1000)
			if err != nil {
				return nil, err
			}
			for _, r := range rows {
				rep.Rows++
				for i, v := range r.values {
					if v == nil {
						continue
					}
					rep.Values++
					id, ok := gmcrypto.SealedKeyID(v)
					if !ok {
						id = "?"
					}
					rep.ByKey[id]++
					if kr == nil {
						continue
					}
					if _, err := kr.Open(v, t.Columns[i].AAD(r.key, r.extra)); err != nil {
						rep.Unreadable++
						if len(rep.Problems) < 10 {
							rep.Problems = append(rep.Problems, fmt.Sprintf("%s %s=%s %s: %v", t.Table, t.Key, r.key, t.Columns[i].Name, err))
						}
					}
				}
			}
			if len(rows) < 1000 {
				break
			}
			cursor = rows[len(rows)-1].key
		}
	}
	return rep, nil
}

// Progress is reported after every batch of a re-encryption.
type Progress struct {
	KeyID    string // the key values are re-sealed under
	Pass     int
	Table    string
	Done     int64 // rows of all tables done in this pass
	Total    int64 // rows of all tables
	Resealed int64 // values re-sealed so far in this pass
}

// ReencryptReport is the outcome of Reencrypt.
type ReencryptReport struct {
	KeyID      string
	Resumed    bool  // an interrupted job was continued
	Passes     int   // a pass is repeated while values written meanwhile under an old key remain
	Rows       int64 // rows read
	Resealed   int64 // values re-sealed
	Unreadable int64 // values that did not open (left as they were)
	Remaining  map[string]int64
}

// ReencryptBatch is how many rows one transaction re-seals.
const ReencryptBatch = 256

// Reencrypt re-seals every value of targets that is not under the active
// data key, batch by batch, each batch one transaction that also moves the
// job's cursor: an interrupted run resumes where it stopped. A value is
// replaced only if it is still the one read (a concurrent write wins).
// Afterwards the values are counted by key; if some were written under an
// old key meanwhile (a server that had not refreshed yet), another pass
// follows, up to three. progress, if not nil, is called after each batch.
func (c *Catalog) Reencrypt(ctx context.Context, actor string, targets []Target, progress func(Progress)) (*ReencryptReport, error) {
	kr, err := c.Keyring(ctx)
	if err != nil {
		return nil, err
	}
	active := kr.ActiveKeyID()
	rep := &ReencryptReport{KeyID: active}
	cursors := map[string]string{}
	done := map[string]int64{}
	rows, err := c.DB.Query(ctx, `SELECT target, cursor_key, done FROM crypto_reencrypt_jobs WHERE key_id = ?`, active)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	for rows.Next() {
		var t, cur string
		var n int64
		if err := rows.Scan(&t, &cur, &n); err != nil {
			rows.Close()
			return nil, err
		}
		cursors[t], done[t] = cur, n
		rep.Resumed = true
	}
	rows.Close()
	for pass := 1; pass <= 3; pass++ {
		rep.Passes = pass
		var total, doneAll, resealed int64
		totals := map[string]int64{}
		for _, t := range targets {
			var n int64
			if err := c.DB.QueryRow(ctx, `SELECT COUNT(*) FROM `+t.Table).Scan(&n); err != nil {
				return nil, fmt.Errorf("keystore: counting %s: %w", t.Table, err)
			}
			totals[t.Table] = n
			total += n
			doneAll += min(done[t.Table], n)
		}
		for _, t := range targets {
			for {
				var batch []row
				var n, unread int64
				cursor := cursors[t.Table]
				err := c.WriteTx(ctx, func(tx DB) error {
					n, unread = 0, 0
					var err error
					if batch, err = readRows(ctx, tx, t, cursor, ReencryptBatch); err != nil {
						return err
					}
					for _, r := range batch {
						m, bad, err := resealRow(ctx, tx, kr, t, r)
						if err != nil {
							return err
						}
						n, unread = n+m, unread+bad
					}
					if len(batch) == 0 {
						return nil
					}
					_, err = tx.Exec(ctx, `INSERT INTO crypto_reencrypt_jobs (key_id, target, cursor_key, done, total, updated_at) VALUES (?, ?, ?, ?, ?, ?)
						ON CONFLICT (key_id, target) DO UPDATE SET cursor_key = excluded.cursor_key, done = excluded.done, total = excluded.total, updated_at = excluded.updated_at`,
						active, t.Table, batch[len(batch)-1].key, done[t.Table]+int64(len(batch)), totals[t.Table], c.now().UnixMicro())
					return err
				})
				if err != nil {
					return rep, fmt.Errorf("keystore: re-encrypting %s: %w", t.Table, err)
				}
				if len(batch) > 0 {
					cursors[t.Table] = batch[len(batch)-1].key
					done[t.Table] += int64(len(batch))
					doneAll += int64(len(batch))
				}
				rep.Rows += int64(len(batch))
				rep.Resealed += n
				rep.Unreadable += unread
				resealed += n
				if progress != nil && len(batch) > 0 {
					progress(Progress{KeyID: active, Pass: pass, Table: t.Table, Done: min(doneAll, total), Total: total, Resealed: resealed})
				}
				if len(batch) < ReencryptBatch {
					break
				}
			}
		}
		scan, err := c.Scan(ctx, targets, nil)
		if err != nil {
			return rep, err
		}
		rep.Remaining = map[string]int64{}
		var left int64
		for id, n := range scan.ByKey {
			if id != active {
				rep.Remaining[id] = n
				left += n
			}
		}
		// Start the next pass (or the next run) from the beginning.
		if _, err := c.DB.Exec(ctx, `DELETE FROM crypto_reencrypt_jobs WHERE key_id = ?`, active); err != nil {
			return rep, err
		}
		clear(cursors)
		clear(done)
		if left == 0 || left <= rep.Unreadable {
			break
		}
	}
	if c.Event != nil {
		err := c.WriteTx(ctx, func(tx DB) error {
			r, err := activeIn(ctx, tx, PurposePII)
			if err != nil {
				return err
			}
			r.Wrapped = nil
			return c.Event(ctx, tx, Event{ID: fmt.Sprintf("key:%s:reencrypted:%d", active, c.now().UnixMicro()), Action: "reencrypted", Actor: actor, Key: r,
				Data: map[string]any{"key": active, "rows": rep.Rows, "resealed": rep.Resealed, "unreadable": rep.Unreadable, "passes": rep.Passes, "remaining": rep.Remaining}})
		})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// resealRow re-seals the values of one row not under the keyring's active
// key; it returns how many it re-sealed and how many did not open.
func resealRow(ctx context.Context, tx DB, kr *gmcrypto.Keyring, t Target, r row) (n, unreadable int64, err error) {
	active := kr.ActiveKeyID()
	var sets, conds []string
	var setArgs, condArgs []any
	for i, v := range r.values {
		if v == nil {
			continue
		}
		if id, ok := gmcrypto.SealedKeyID(v); ok && id == active {
			continue
		}
		out, changed, err := kr.Reseal(v, t.Columns[i].AAD(r.key, r.extra))
		if err != nil {
			unreadable++
			continue
		}
		if !changed {
			continue
		}
		sets = append(sets, t.Columns[i].Name+" = ?")
		setArgs = append(setArgs, out)
		conds = append(conds, t.Columns[i].Name+" = ?")
		condArgs = append(condArgs, v)
		n++
	}
	if n == 0 {
		return 0, unreadable, nil
	}
	if t.KeyIDColumn != "" {
		sets = append(sets, t.KeyIDColumn+" = ?")
		setArgs = append(setArgs, active)
	}
	key, err := t.keyArg(r.key)
	if err != nil {
		return 0, 0, err
	}
	args := append(append(setArgs, key), condArgs...)
	res, err := tx.Exec(ctx, "UPDATE "+t.Table+" SET "+strings.Join(sets, ", ")+" WHERE "+t.Key+" = ? AND "+strings.Join(conds, " AND "), args...)
	if err != nil {
		return 0, 0, err
	}
	if m, _ := res.RowsAffected(); m == 0 {
		return 0, unreadable, nil // changed meanwhile: its new value is its writer's
	}
	return n, unreadable, nil
}
