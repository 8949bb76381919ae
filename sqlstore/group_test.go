package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"yibao/sqlstore"
)

// Concurrent WriteTx calls on SQLite share commits; each call still
// commits or fails alone.
func TestGroupCommitKeepsCallsApart(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ctx, `CREATE TABLE g (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO g (k, v) VALUES ('dup', 0)`); err != nil {
		t.Fatal(err)
	}
	const n = 400
	errBusiness := errors.New("refused by the caller")
	var wg sync.WaitGroup
	errs := make([]error, n)
	panics := make([]any, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
				// Two rows per call; the second of every fifth call is a
				// duplicate key, every seventh call fails after writing,
				// every 97th panics after writing.
				if _, err := tx.Exec(ctx, `INSERT INTO g (k, v) VALUES (?, ?)`, fmt.Sprintf("a%d", i), i); err != nil {
					return err
				}
				k := fmt.Sprintf("b%d", i)
				if i%5 == 0 {
					k = "dup"
				}
				if _, err := tx.Exec(ctx, `INSERT INTO g (k, v) VALUES (?, ?)`, k, i); err != nil {
					return err
				}
				switch {
				case i%97 == 1:
					panic("boom")
				case i%7 == 1:
					return errBusiness
				}
				return nil
			})
		}()
	}
	wg.Wait()
	want := 1 // dup
	for i := range n {
		var got int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM g WHERE k IN (?, ?)`, fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%5 == 0:
			if !sqlstore.IsUniqueViolation(errs[i]) || got != 0 {
				t.Errorf("call %d: err %v, rows %d; want a unique violation and no rows", i, errs[i], got)
			}
		case i%97 == 1:
			if panics[i] != "boom" || got != 0 {
				t.Errorf("call %d: panic %v, rows %d; want the panic back and no rows", i, panics[i], got)
			}
		case i%7 == 1:
			if !errors.Is(errs[i], errBusiness) || got != 0 {
				t.Errorf("call %d: err %v, rows %d; want its own error and no rows", i, errs[i], got)
			}
		default:
			want += 2
			if errs[i] != nil || got != 2 {
				t.Errorf("call %d: err %v, rows %d; want both rows", i, errs[i], got)
			}
		}
	}
	var total int
	db.QueryRow(ctx, `SELECT COUNT(*) FROM g`).Scan(&total)
	if total != want {
		t.Errorf("table holds %d rows, want %d", total, want)
	}
	st := db.GroupStats()
	t.Logf("%d calls in %d commits (%d rerun alone)", st.Calls, st.Commits, st.Reruns)
	if st.Commits >= st.Calls {
		t.Errorf("%d commits for %d calls: nothing was grouped", st.Commits, st.Calls)
	}
}

// A caller whose context ends while its call is queued or running never
// breaks the others' shared transaction.
func TestGroupCommitSurvivesCancelledCallers(t *testing.T) {
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ctx, `CREATE TABLE g (k INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var wg sync.WaitGroup
	ok := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithCancel(ctx)
			if i%3 == 0 {
				cancel()
			}
			err := db.WriteTx(cctx, func(tx *sqlstore.Tx) error {
				_, err := tx.Exec(cctx, `INSERT INTO g (k) VALUES (?)`, i)
				cancel() // the caller gives up mid-call
				return err
			})
			cancel()
			ok[i] = err == nil
		}()
	}
	wg.Wait()
	for i := range n {
		var got int
		db.QueryRow(ctx, `SELECT COUNT(*) FROM g WHERE k = ?`, i).Scan(&got)
		if ok[i] != (got == 1) {
			t.Errorf("call %d: reported ok=%v but %d rows stored", i, ok[i], got)
		}
		if i%3 != 0 && !ok[i] {
			t.Errorf("call %d with a live context failed", i)
		}
	}
}
