package engine

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"yibao/ledger"
	"yibao/sqlstore"
)

// BenchConfig sizes a ledger benchmark run.
type BenchConfig struct {
	Transfers      int           // transfers per scenario for the engine scenarios
	Clients        int           // concurrent in-process clients
	UnitSize       int           // transfers per unit in the batch scenario
	NaiveTransfers int           // transfers for the naive baseline (it is slow)
	Rate           int           // offered load of the fixed-rate scenario, transfers/s
	RateFor        time.Duration // how long the fixed-rate scenario runs
}

// DefaultBenchConfig is sized for a 2-core machine and a few seconds per scenario.
func DefaultBenchConfig() BenchConfig {
	return BenchConfig{Transfers: 200_000, Clients: 256, UnitSize: 100, NaiveTransfers: 10_000, Rate: 1000, RateFor: 5 * time.Second}
}

// BenchRow is one scenario's result.
type BenchRow struct {
	Scenario  string        `json:"scenario"`
	Transfers int           `json:"transfers"`
	Elapsed   time.Duration `json:"elapsed"`
	PerSecond float64       `json:"per_second"`
	P50       time.Duration `json:"p50"` // per call (a unit of UnitSize in the batch scenario)
	P99       time.Duration `json:"p99"`
	Commits   int64         `json:"commits,omitempty"`
}

// Bench measures the ledger on db (fresh, migrated): every transfer debits
// one hot fund account. It runs the engine with single-transfer units from
// many clients, with multi-transfer units, at a fixed offered rate, and the
// naive baseline (one SQL transaction per transfer, locking the hot
// account's row). progress receives a line per phase.
func Bench(ctx context.Context, db *sqlstore.DB, cfg BenchConfig, progress io.Writer) ([]BenchRow, error) {
	e, err := Open(ctx, db, Options{ExpiryInterval: -1})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	const receivers = 16
	accs := []ledger.Account{
		{ID: "bench:income", Ledger: ledger.CNY, Kind: ledger.KindFundIncome},
		{ID: "bench:fund", Ledger: ledger.CNY, Kind: ledger.KindFundPool, Flags: ledger.DebitsMustNotExceedCredits},
	}
	for i := range receivers {
		accs = append(accs, ledger.Account{ID: fmt.Sprintf("bench:recv:%d", i), Ledger: ledger.CNY, Kind: ledger.KindHospitalReceivable})
	}
	if err := e.CreateAccounts(ctx, accs...); err != nil {
		return nil, err
	}
	if _, err := e.Transfer(ctx, ledger.Transfer{ID: "bench:seed", DebitAccountID: "bench:income", CreditAccountID: "bench:fund", Amount: 1 << 50}); err != nil {
		return nil, err
	}
	var rows []BenchRow
	var seq atomic.Int64
	newTransfer := func() ledger.Transfer {
		n := seq.Add(1)
		return ledger.Transfer{ID: fmt.Sprint("bench:", n), DebitAccountID: "bench:fund",
			CreditAccountID: fmt.Sprint("bench:recv:", n%receivers), Amount: 100, Code: "bench"}
	}

	// 1. Single transfers from many concurrent clients.
	fmt.Fprintf(progress, "  engine, single transfers, %d clients, %d transfers…\n", cfg.Clients, cfg.Transfers)
	before := e.Stats().Batches
	row, err := closedLoop(cfg.Clients, cfg.Transfers, 1, func() error {
		_, err := e.Transfer(ctx, newTransfer())
		return err
	})
	if err != nil {
		return nil, err
	}
	row.Scenario = fmt.Sprintf("engine: single transfers, %d clients", cfg.Clients)
	row.Commits = e.Stats().Batches - before
	rows = append(rows, row)

	// 2. Units of UnitSize transfers.
	fmt.Fprintf(progress, "  engine, units of %d transfers, %d clients…\n", cfg.UnitSize, cfg.Clients/8)
	before = e.Stats().Batches
	row, err = closedLoop(max(1, cfg.Clients/8), cfg.Transfers, cfg.UnitSize, func() error {
		u := Unit{Transfers: make([]ledger.Transfer, cfg.UnitSize)}
		for i := range u.Transfers {
			u.Transfers[i] = newTransfer()
		}
		_, err := e.Submit(ctx, u)
		return err
	})
	if err != nil {
		return nil, err
	}
	row.Scenario = fmt.Sprintf("engine: units of %d transfers, %d clients", cfg.UnitSize, max(1, cfg.Clients/8))
	row.Commits = e.Stats().Batches - before
	rows = append(rows, row)

	// 3. Fixed offered load: latency of a single transfer at Rate/s.
	fmt.Fprintf(progress, "  engine, single transfers at %d/s for %s…\n", cfg.Rate, cfg.RateFor)
	row, err = openLoop(cfg.Rate, cfg.RateFor, func() error {
		_, err := e.Transfer(ctx, newTransfer())
		return err
	})
	if err != nil {
		return nil, err
	}
	row.Scenario = fmt.Sprintf("engine: single transfers at %d/s offered", cfg.Rate)
	rows = append(rows, row)
	e.Close()

	// 4. The naive baseline.
	fmt.Fprintf(progress, "  naive baseline, one transaction per transfer, %d clients, %d transfers…\n", cfg.Clients, cfg.NaiveTransfers)
	row, err = naive(ctx, db, cfg.Clients, cfg.NaiveTransfers)
	if err != nil {
		return nil, err
	}
	rows = append(rows, row)
	return rows, nil
}

// closedLoop runs clients that each call f back to back until total
// transfers (per transfers per call) are done.
func closedLoop(clients, total, per int, f func() error) (BenchRow, error) {
	calls := total / per
	var next atomic.Int64
	lat := make([]time.Duration, calls)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(calls) {
					return
				}
				t0 := time.Now()
				if err := f(); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return BenchRow{}, firstErr
	}
	p50, p99 := percentiles(lat)
	return BenchRow{Transfers: calls * per, Elapsed: el, PerSecond: float64(calls*per) / el.Seconds(), P50: p50, P99: p99}, nil
}

// openLoop starts a call every 1/rate seconds regardless of how long calls
// take, so queueing shows in the latency.
func openLoop(rate int, d time.Duration, f func() error) (BenchRow, error) {
	n := int(float64(rate) * d.Seconds())
	lat := make([]time.Duration, n)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if err := f(); err != nil {
				once.Do(func() { firstErr = err })
			}
			lat[i] = time.Since(t0)
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return BenchRow{}, firstErr
	}
	p50, p99 := percentiles(lat)
	return BenchRow{Transfers: n, Elapsed: el, PerSecond: float64(n) / el.Seconds(), P50: p50, P99: p99}, nil
}

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}

// naive is the baseline every ledger is measured against: each transfer is
// its own SQL transaction that locks the hot account's row, checks the
// balance, updates both accounts and inserts the transfer.
func naive(ctx context.Context, db *sqlstore.DB, clients, total int) (BenchRow, error) {
	setup := []string{
		`CREATE TABLE IF NOT EXISTS bench_naive_accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS bench_naive_transfers (id TEXT PRIMARY KEY, debit TEXT NOT NULL, credit TEXT NOT NULL, amount BIGINT NOT NULL, created_at BIGINT NOT NULL)`,
		`DELETE FROM bench_naive_transfers`,
		`DELETE FROM bench_naive_accounts`,
		`INSERT INTO bench_naive_accounts (id, balance) VALUES ('fund', 1125899906842624)`,
	}
	for i := range 16 {
		setup = append(setup, fmt.Sprintf(`INSERT INTO bench_naive_accounts (id, balance) VALUES ('recv:%d', 0)`, i))
	}
	for _, q := range setup {
		if _, err := db.Exec(ctx, q); err != nil {
			return BenchRow{}, err
		}
	}
	lock := `SELECT balance FROM bench_naive_accounts WHERE id = 'fund'`
	if db.Dialect == sqlstore.Postgres {
		lock += " FOR UPDATE"
	}
	var n atomic.Int64
	row, err := closedLoop(clients, total, 1, func() error {
		i := n.Add(1)
		return db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			var bal int64
			if err := tx.QueryRow(ctx, lock).Scan(&bal); err != nil {
				return err
			}
			if bal < 100 {
				return fmt.Errorf("naive: overdraft")
			}
			if _, err := tx.Exec(ctx, `UPDATE bench_naive_accounts SET balance = balance - 100 WHERE id = 'fund'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE bench_naive_accounts SET balance = balance + 100 WHERE id = ?`, fmt.Sprint("recv:", i%16)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO bench_naive_transfers (id, debit, credit, amount, created_at) VALUES (?, 'fund', ?, 100, ?)`,
				fmt.Sprint("n", i), fmt.Sprint("recv:", i%16), time.Now().UnixMicro())
			return err
		})
	})
	row.Scenario = fmt.Sprintf("naive: 1 SQL transaction per transfer, row lock, %d clients", clients)
	return row, err
}
