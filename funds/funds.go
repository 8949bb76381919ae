// Package funds is fund operations: contributions into the pooling funds
// and personal accounts, the monthly crediting of personal accounts
// (划入), payouts of what the funds owe institutions (拨付) with their
// withholdings and the bank's confirmation, and manual ledger corrections
// (调账). Every run that moves money is prepared by one administrator
// (nothing moves) and approved by another; approval executes it line by
// line, each line one idempotent ledger transfer, so a run interrupted
// midway is resumed by approving again and never pays twice. Crediting
// and payout runs are unique per region and period.
package funds

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
)

// Run kinds.
const (
	KindContributions = "contributions"
	KindCrediting     = "crediting"
	KindPayout        = "payout"
	KindCorrection    = "correction"
)

// Run states.
const (
	StatusPrepared = "prepared"
	StatusApproved = "approved" // executing, or interrupted: approve again to resume
	StatusDone     = "done"
	StatusRejected = "rejected"
)

// Service runs fund operations.
type Service struct {
	db  *sqlstore.DB
	led *engine.Engine
	now func() time.Time
	log *slog.Logger

	// Audit records every prepared, approved and rejected run.
	Audit *audit.Writer
	// CrashAfter, for fault tests only: when it returns true after a
	// batch of n posted lines, execution stops as if the process died.
	CrashAfter func(runID string, posted int) bool

	jobsMu sync.Mutex
	jobs   map[string]*Job
}

// New returns the service.
func New(db *sqlstore.DB, led *engine.Engine, log *slog.Logger) *Service {
	return &Service{db: db, led: led, now: time.Now, log: log}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Run is a fund run.
type Run struct {
	RunID      string         `json:"run_id"`
	Kind       string         `json:"kind"`
	Admdvs     string         `json:"admdvs,omitempty"`
	Period     string         `json:"period,omitempty"`
	Status     string         `json:"status"`
	Lines      int            `json:"lines"`
	Total      money.Fen      `json:"total"`
	Posted     int            `json:"posted"`
	Summary    map[string]any `json:"summary,omitempty"`
	Note       string         `json:"note,omitempty"`
	PreparedBy string         `json:"prepared_by"`
	PreparedAt time.Time      `json:"prepared_at"`
	DecidedBy  string         `json:"decided_by,omitempty"`
	DecidedAt  *time.Time     `json:"decided_at,omitempty"`
	DoneAt     *time.Time     `json:"done_at,omitempty"`
}

// Line is one line of a run.
type Line struct {
	Seq           int            `json:"seq"`
	PsnNo         string         `json:"psn_no,omitempty"`
	FixmedinsCode string         `json:"fixmedins_code,omitempty"`
	Kind          string         `json:"kind,omitempty"`
	Period        string         `json:"period,omitempty"`
	Debit         string         `json:"debit"`
	Credit        string         `json:"credit"`
	Amount        money.Fen      `json:"amount"`
	Status        string         `json:"status"`
	Detail        map[string]any `json:"detail,omitempty"`
}

const runCols = `run_id, kind, admdvs, period, status, lines, total, posted, summary, note, prepared_by, prepared_at, decided_by, decided_at, done_at`

func scanRun(sc interface{ Scan(...any) error }) (*Run, error) {
	var r Run
	var summary string
	var p, d, done int64
	if err := sc.Scan(&r.RunID, &r.Kind, &r.Admdvs, &r.Period, &r.Status, &r.Lines, &r.Total, &r.Posted, &summary, &r.Note, &r.PreparedBy, &p,
		&r.DecidedBy, &d, &done); err != nil {
		return nil, err
	}
	if summary != "" {
		json.Unmarshal([]byte(summary), &r.Summary)
	}
	r.PreparedAt = fromMicros(p)
	if d != 0 {
		t := fromMicros(d)
		r.DecidedAt = &t
	}
	if done != 0 {
		t := fromMicros(done)
		r.DoneAt = &t
	}
	return &r, nil
}

// Get returns a run (administrators).
func (s *Service) Get(ctx context.Context, id string) (*Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	return s.load(ctx, s.db, id)
}

func (s *Service) load(ctx context.Context, q querier, id string) (*Run, error) {
	r, err := scanRun(q.QueryRow(ctx, `SELECT `+runCols+` FROM fund_runs WHERE run_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "fund run %s not found", id)
	}
	return r, err
}

// Runs lists recent runs, newest first (administrators).
func (s *Service) Runs(ctx context.Context, kind string, limit int) ([]Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	q, args := `SELECT `+runCols+` FROM fund_runs`, []any{}
	if kind != "" {
		q, args = q+` WHERE kind = ?`, append(args, kind)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY prepared_at DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

// Lines lists a run's lines (administrators).
func (s *Service) Lines(ctx context.Context, id string, limit int) ([]Line, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 5000 {
		limit = 500
	}
	return s.lines(ctx, s.db, id, "", limit)
}

func (s *Service) lines(ctx context.Context, q querier, id, status string, limit int) ([]Line, error) {
	query, args := `SELECT seq, psn_no, fixmedins_code, kind, period, debit, credit, amount, status, detail FROM fund_run_lines WHERE run_id = ?`, []any{id}
	if status != "" {
		query, args = query+` AND status = ?`, append(args, status)
	}
	rows, err := q.Query(ctx, query+` ORDER BY seq LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Line{}
	for rows.Next() {
		var l Line
		var detail string
		if err := rows.Scan(&l.Seq, &l.PsnNo, &l.FixmedinsCode, &l.Kind, &l.Period, &l.Debit, &l.Credit, &l.Amount, &l.Status, &detail); err != nil {
			return nil, err
		}
		if detail != "" {
			json.Unmarshal([]byte(detail), &l.Detail)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// prepared stores a new run and its lines in one transaction.
func (s *Service) prepared(ctx context.Context, r *Run, fileSM3 string, lines []Line, extra func(ctx context.Context, tx *sqlstore.Tx) error) (*Run, error) {
	who, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	r.RunID, r.Status, r.PreparedBy, r.PreparedAt, r.Lines = newID("FR"), StatusPrepared, who.ID(), now.UTC(), len(lines)
	for _, l := range lines {
		r.Total += l.Amount
	}
	summary, _ := json.Marshal(r.Summary)
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO fund_runs (run_id, kind, admdvs, period, status, lines, total, summary, note, file_sm3, prepared_by, prepared_at)
			VALUES (?, ?, ?, ?, 'prepared', ?, ?, ?, ?, ?, ?, ?)`, r.RunID, r.Kind, r.Admdvs, r.Period, r.Lines, int64(r.Total), string(summary), r.Note, fileSM3,
			r.PreparedBy, micros(now)); err != nil {
			if sqlstore.IsUniqueViolation(err) {
				return errExists
			}
			return err
		}
		for i, l := range lines {
			detail, _ := json.Marshal(l.Detail)
			status := l.Status
			if status == "" {
				status = "pending"
			}
			if _, err := tx.Exec(ctx, `INSERT INTO fund_run_lines (run_id, seq, psn_no, fixmedins_code, kind, period, debit, credit, amount, status, detail)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.RunID, i+1, l.PsnNo, l.FixmedinsCode, l.Kind, l.Period, l.Debit, l.Credit, int64(l.Amount), status,
				string(detail)); err != nil {
				return err
			}
		}
		if extra != nil {
			if err := extra(ctx, tx); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, r, "prepared")
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

var errExists = errors.New("funds: a run for this period or file exists")

// existing returns the live run of a kind, region and period, if any.
func (s *Service) existing(ctx context.Context, kind, admdvs, period string) (*Run, error) {
	r, err := scanRun(s.db.QueryRow(ctx, `SELECT `+runCols+` FROM fund_runs WHERE kind = ? AND admdvs = ? AND period = ? AND status <> 'rejected'`, kind, admdvs, period))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return r, err
}

func (s *Service) record(ctx context.Context, tx *sqlstore.Tx, r *Run, event string) error {
	actor := ""
	if p := yibao.PrincipalFrom(ctx); p != nil {
		actor = p.ID()
	}
	return s.Audit.Record(ctx, tx, audit.Entry{ID: "fund:" + r.RunID + ":" + event, Kind: audit.KindFund, At: audit.Stamp(s.now()), Actor: actor,
		Subject: r.RunID, Data: map[string]any{"event": event, "run_id": r.RunID, "kind": r.Kind, "admdvs": r.Admdvs, "period": r.Period,
			"lines": r.Lines, "total": r.Total.String(), "prepared_by": r.PreparedBy, "note": r.Note}})
}

// Approve is the second administrator's decision: the run is executed
// (or resumed, if an earlier execution was interrupted). The one who
// prepared a run cannot approve it.
func (s *Service) Approve(ctx context.Context, id string) (*Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	who := yibao.PrincipalFrom(ctx)
	r, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	switch r.Status {
	case StatusDone, StatusRejected:
		return r, nil
	case StatusPrepared:
		if r.PreparedBy == who.ID() && who.Kind != yibao.PrincipalSystem {
			return nil, yibao.Errorf(yibao.CodeForbidden, "dual_control: %s prepared run %s; another administrator approves it", who.ID(), id)
		}
		err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			res, err := tx.Exec(ctx, `UPDATE fund_runs SET status = 'approved', decided_by = ?, decided_at = ? WHERE run_id = ? AND status = 'prepared'`,
				who.ID(), micros(s.now()), id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return yibao.Errorf(yibao.CodeConflict, "run %s changed meanwhile", id)
			}
			r.DecidedBy = who.ID()
			return s.record(ctx, tx, r, "approved")
		})
		if err != nil {
			return nil, err
		}
	case StatusApproved:
		// resume an interrupted execution
	}
	if err := s.execute(ctx, r); err != nil {
		return nil, err
	}
	return s.load(ctx, s.db, id)
}

// Reject drops a prepared run; nothing moved. Its period can be
// prepared again.
func (s *Service) Reject(ctx context.Context, id, note string) (*Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	who := yibao.PrincipalFrom(ctx)
	r, err := s.load(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if r.Status != StatusPrepared {
		return nil, yibao.Errorf(yibao.CodePrecondition, "run %s is %s; only a prepared run is rejected", id, r.Status)
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE fund_runs SET status = 'rejected', decided_by = ?, decided_at = ?, note = ? WHERE run_id = ? AND status = 'prepared'`,
			who.ID(), micros(s.now()), note, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "run %s changed meanwhile", id)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM contributions WHERE run_id = ?`, id); err != nil {
			return err
		}
		r.Note = note
		return s.record(ctx, tx, r, "rejected")
	})
	if err != nil {
		return nil, err
	}
	return s.load(ctx, s.db, id)
}

// errCrash stops an execution in fault tests.
var errCrash = errors.New("funds: simulated crash")

// execute posts a run's pending lines in batches, each batch one ledger
// unit that also marks its lines posted; transfer ids are the run's and
// the line's, so a resumed execution never moves money twice. Payout runs
// post nothing here: their lines become instructions to the bank.
func (s *Service) execute(ctx context.Context, r *Run) error {
	if r.Kind == KindPayout {
		return s.instruct(ctx, r)
	}
	for {
		batch, err := s.lines(ctx, s.db, r.RunID, "pending", 500)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		unit := engine.Unit{}
		for _, l := range batch {
			for _, id := range []string{l.Debit, l.Credit} {
				if a, ok := accountFor(id); ok {
					unit.Accounts = append(unit.Accounts, a)
				}
			}
			unit.Transfers = append(unit.Transfers, ledger.Transfer{ID: fmt.Sprintf("%s:%d", r.RunID, l.Seq), DebitAccountID: l.Debit, CreditAccountID: l.Credit,
				Amount: l.Amount, Ledger: ledger.CNY, Code: codeFor(r.Kind), UserData: r.RunID, Leg: l.Kind})
		}
		first, last := batch[0].Seq, batch[len(batch)-1].Seq
		unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
			res, err := tx.Exec(ctx, `UPDATE fund_run_lines SET status = 'posted' WHERE run_id = ? AND seq >= ? AND seq <= ? AND status = 'pending'`, r.RunID, first, last)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			_, err = tx.Exec(ctx, `UPDATE fund_runs SET posted = posted + ? WHERE run_id = ?`, n, r.RunID)
			return err
		}
		if _, err := s.led.Submit(ctx, unit); err != nil {
			return fmt.Errorf("run %s, lines %d–%d: %w", r.RunID, first, last, err)
		}
		if s.CrashAfter != nil && s.CrashAfter(r.RunID, last) {
			return errCrash
		}
	}
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE fund_runs SET status = 'done', done_at = ? WHERE run_id = ? AND status = 'approved'`, micros(s.now()), r.RunID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return s.record(ctx, tx, r, "done")
		}
		return nil
	})
}

// accountFor rebuilds the definition of an account a run creates on
// first use (a new person's personal account, a fund's income account);
// other accounts must exist already.
func accountFor(id string) (ledger.Account, bool) {
	switch {
	case strings.HasPrefix(id, "acct:"):
		return ledger.PersonalAccount(strings.TrimPrefix(id, "acct:")), true
	case strings.HasPrefix(id, "income:"):
		return ledger.FundIncome(strings.TrimPrefix(id, "income:")), true
	case strings.HasPrefix(id, "recv:"):
		return ledger.HospitalReceivable(strings.TrimPrefix(id, "recv:")), true
	case strings.HasPrefix(id, "bank:"):
		return ledger.HospitalBank(strings.TrimPrefix(id, "bank:")), true
	}
	return ledger.Account{}, false
}

func codeFor(kind string) string {
	switch kind {
	case KindContributions:
		return "contribution"
	case KindCrediting:
		return "account_crediting"
	case KindCorrection:
		return "correction"
	}
	return kind
}

func newID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + time.Now().UTC().Format("060102") + strings.ToUpper(hex.EncodeToString(b))
}

func micros(t time.Time) int64 { return t.UnixMicro() }
func fromMicros(v int64) time.Time {
	return time.UnixMicro(v).UTC()
}

type querier interface {
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// periodRange is the [start, end) of a YYYY-MM month in China time, as
// unix microseconds.
func periodRange(period string) (int64, int64, error) {
	t, err := time.ParseInLocation("2006-01", period, yibao.ChinaTime)
	if err != nil {
		return 0, 0, yibao.FieldError("period", "want YYYY-MM")
	}
	return t.UnixMicro(), t.AddDate(0, 1, 0).UnixMicro(), nil
}

var errNoRows = sql.ErrNoRows
