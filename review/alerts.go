package review

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"yibao"
	"yibao/money"
	"yibao/sqlstore"
)

// Alert kinds raised after settlement.
const (
	AlertMultiInstitution = "multi_institution" // one person settled at many institutions in one day
	AlertAverageJump      = "average_jump"      // an institution's average bill today far above its usual
)

// Alert states.
const (
	AlertOpen      = "open"
	AlertConfirmed = "confirmed"
	AlertDismissed = "dismissed"
)

// Alert is one entry of the review queue.
type Alert struct {
	ID            string          `json:"id"`
	Kind          string          `json:"kind"`
	Subject       string          `json:"subject"`
	FixmedinsCode string          `json:"fixmedins_code,omitempty"`
	Day           string          `json:"day"`
	Detail        json.RawMessage `json:"detail"`
	Status        string          `json:"status"`
	CreatedAt     time.Time       `json:"created_at"`
	DecidedBy     string          `json:"decided_by,omitempty"`
	Note          string          `json:"note,omitempty"`
}

// Thresholds of the alerts.
type Thresholds struct {
	Institutions int     // distinct institutions of one person in a day (default 3)
	JumpFactor   float64 // today's average bill over the 30-day average (default 2)
	JumpMinBills int     // bills today before the average counts (default 3)
}

// Scan raises the alerts of day (YYYY-MM-DD, China time) from its
// completed settlements. Raising an alert again changes nothing.
func (s *Service) Scan(ctx context.Context, day string) (int, error) {
	t := s.Thresholds
	from, err := time.ParseInLocation(time.DateOnly, day, yibao.ChinaTime)
	if err != nil {
		return 0, yibao.FieldError("day", "YYYY-MM-DD")
	}
	lo, hi := from.UnixMicro(), from.AddDate(0, 0, 1).UnixMicro()
	n := 0
	rows, err := s.db.Query(ctx, `SELECT psn_no, COUNT(DISTINCT fixmedins_code), COUNT(*), SUM(medfee_sumamt) FROM settlements
		WHERE status = 'completed' AND created_at >= ? AND created_at < ? GROUP BY psn_no HAVING COUNT(DISTINCT fixmedins_code) >= ?`, lo, hi, t.Institutions)
	if err != nil {
		return 0, err
	}
	type multi struct {
		psn          string
		insts, bills int
		sum          int64
	}
	var ms []multi
	for rows.Next() {
		var m multi
		if err := rows.Scan(&m.psn, &m.insts, &m.bills, &m.sum); err != nil {
			rows.Close()
			return 0, err
		}
		ms = append(ms, m)
	}
	rows.Close()
	for _, m := range ms {
		ok, err := s.raise(ctx, Alert{ID: AlertMultiInstitution + ":" + m.psn + ":" + day, Kind: AlertMultiInstitution, Subject: m.psn, Day: day},
			map[string]any{"institutions": m.insts, "bills": m.bills, "medfee_sumamt_fen": m.sum,
				"why": fmt.Sprintf("一日内在 %d 家机构结算 settled at %d institutions in one day", m.insts, m.insts)})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	// Institutions whose average bill today is far above their 30 days before.
	rows, err = s.db.Query(ctx, `SELECT t.fixmedins_code, t.bills, t.avg_fee, b.avg_fee FROM
		(SELECT fixmedins_code, COUNT(*) AS bills, AVG(medfee_sumamt) AS avg_fee FROM settlements WHERE status = 'completed' AND created_at >= ? AND created_at < ? GROUP BY fixmedins_code) t
		JOIN (SELECT fixmedins_code, AVG(medfee_sumamt) AS avg_fee FROM settlements WHERE status = 'completed' AND created_at >= ? AND created_at < ? GROUP BY fixmedins_code) b
		ON b.fixmedins_code = t.fixmedins_code WHERE t.bills >= ?`, lo, hi, from.AddDate(0, 0, -30).UnixMicro(), lo, t.JumpMinBills)
	if err != nil {
		return n, err
	}
	type jump struct {
		inst       string
		bills      int
		today, avg float64
	}
	var js []jump
	for rows.Next() {
		var j jump
		if err := rows.Scan(&j.inst, &j.bills, &j.today, &j.avg); err != nil {
			rows.Close()
			return n, err
		}
		if j.avg > 0 && j.today >= t.JumpFactor*j.avg {
			js = append(js, j)
		}
	}
	rows.Close()
	for _, j := range js {
		ok, err := s.raise(ctx, Alert{ID: AlertAverageJump + ":" + j.inst + ":" + day, Kind: AlertAverageJump, Subject: j.inst, FixmedinsCode: j.inst, Day: day},
			map[string]any{"bills_today": j.bills, "average_today_fen": int64(j.today), "average_30d_fen": int64(j.avg),
				"why": fmt.Sprintf("今日次均 %.2f 元，为近30日 %.2f 元的 %.1f 倍 today's average bill is %.1f× the 30-day average", j.today/100, j.avg/100, j.today/j.avg, j.today/j.avg)})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func (s *Service) raise(ctx context.Context, a Alert, detail map[string]any) (bool, error) {
	b, _ := json.Marshal(detail)
	res, err := s.db.Exec(ctx, `INSERT INTO review_alerts (id, kind, subject, fixmedins_code, day, detail, status, created_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)
		ON CONFLICT (id) DO NOTHING`, a.ID, a.Kind, a.Subject, a.FixmedinsCode, a.Day, string(b), s.now().UnixMicro())
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Alerts lists the review queue, newest first (administrators).
func (s *Service) Alerts(ctx context.Context, status string, limit int) ([]Alert, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	q, args := `SELECT id, kind, subject, fixmedins_code, day, detail, status, created_at, decided_by, note FROM review_alerts`, []any{}
	if status != "" {
		q, args = q+` WHERE status = ?`, append(args, status)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY created_at DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Alert{}
	for rows.Next() {
		var a Alert
		var detail string
		var at int64
		if err := rows.Scan(&a.ID, &a.Kind, &a.Subject, &a.FixmedinsCode, &a.Day, &detail, &a.Status, &at, &a.DecidedBy, &a.Note); err != nil {
			return nil, err
		}
		a.Detail, a.CreatedAt = json.RawMessage(detail), time.UnixMicro(at).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}

// Decide confirms or dismisses an open alert (administrators).
func (s *Service) Decide(ctx context.Context, id, status, note string) error {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	if status != AlertConfirmed && status != AlertDismissed {
		return yibao.FieldError("status", "confirmed or dismissed")
	}
	who := yibao.PrincipalFrom(ctx).ID()
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE review_alerts SET status = ?, decided_by = ?, decided_at = ?, note = ? WHERE id = ? AND status = 'open'`,
			status, who, s.now().UnixMicro(), note, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return yibao.Errorf(yibao.CodePrecondition, "alert %s is not open (or does not exist)", id)
		}
		return nil
	})
}

// Run scans today (and, just after midnight, yesterday) every interval.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	yibao.Every(ctx, interval, func(ctx context.Context) {
		now := s.now()
		for _, d := range []time.Time{now, now.Add(-time.Hour)} {
			if _, err := s.Scan(ctx, yibao.DateOf(d)); err != nil && ctx.Err() == nil {
				s.log.Error("review scan", "err", err)
			}
		}
	})
}

// ReportRow is one kind of finding in an institution's month.
type ReportRow struct {
	Kind     string    `json:"kind"`
	Action   string    `json:"action"`
	Hits     int       `json:"hits"`
	Affected money.Fen `json:"amount_affected"` // the amount of the lines hit
}

// Report is an institution's smart-review findings in a month, with the
// trend of the months before.
type Report struct {
	FixmedinsCode string         `json:"fixmedins_code"`
	Month         string         `json:"month"`
	Rows          []ReportRow    `json:"rows"`
	Trend         map[string]int `json:"trend"` // hits per month, the last six
}

// MonthlyReport reports an institution's findings of month (YYYY-MM);
// administrators, or the institution itself.
func (s *Service) MonthlyReport(ctx context.Context, fixmedinsCode, month string) (*Report, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.ActsFor(fixmedinsCode) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "you may read only your own institution's report")
	}
	m, err := time.Parse("2006-01", month)
	if err != nil {
		return nil, yibao.FieldError("month", "YYYY-MM")
	}
	rep := &Report{FixmedinsCode: fixmedinsCode, Month: month, Rows: []ReportRow{}, Trend: map[string]int{}}
	rows, err := s.db.Query(ctx, `SELECT kind, action, COUNT(*), SUM(amount) FROM review_hits WHERE fixmedins_code = ? AND month = ?
		GROUP BY kind, action ORDER BY COUNT(*) DESC`, fixmedinsCode, month)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r ReportRow
		if err := rows.Scan(&r.Kind, &r.Action, &r.Hits, &r.Affected); err != nil {
			rows.Close()
			return nil, err
		}
		rep.Rows = append(rep.Rows, r)
	}
	rows.Close()
	first := m.AddDate(0, -5, 0).Format("2006-01")
	for i := 0; i < 6; i++ {
		rep.Trend[m.AddDate(0, -i, 0).Format("2006-01")] = 0
	}
	rows, err = s.db.Query(ctx, `SELECT month, COUNT(*) FROM review_hits WHERE fixmedins_code = ? AND month >= ? AND month <= ? GROUP BY month`,
		fixmedinsCode, first, month)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var mo string
		var n int
		if err := rows.Scan(&mo, &n); err != nil {
			return nil, err
		}
		rep.Trend[mo] = n
	}
	return rep, rows.Err()
}
