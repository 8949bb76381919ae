package funds

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/ledger"
	"yibao/money"
	"yibao/sqlstore"
)

// Rules are a region's funding rules (versioned by the day they take
// effect, like policies).
type Rules struct {
	// IndividualToAccount is the share of an employee's own contribution
	// credited to the personal account (1 since the 2021 reform).
	IndividualToAccount money.Ratio `json:"individual_to_account"`
	// EmployerToAccount is the share of the employer's contribution
	// credited to active employees' accounts (0 since the 2021 reform).
	EmployerToAccount money.Ratio `json:"employer_to_account"`
	// RetireeMonthly is credited to each retiree's account from the
	// pool every month.
	RetireeMonthly money.Fen `json:"retiree_monthly"`
	// QualityDeposit is the share of what the funds owe an institution
	// withheld until the annual assessment (质量保证金).
	QualityDeposit money.Ratio `json:"quality_deposit"`
	// MaxContribution refuses a contribution line above it (a typo).
	MaxContribution money.Fen `json:"max_contribution"`
}

// DefaultRules are the rules a region gets when it has none: the national
// shape after 国办发〔2021〕14号 (employee's 2% to the account, the
// employer's part to the pool), a retiree credit, a 5% quality deposit.
func DefaultRules() Rules {
	return Rules{IndividualToAccount: money.MustRatio(1, 1), EmployerToAccount: money.MustRatio(0, 1), RetireeMonthly: money.Yuan(120),
		QualityDeposit: money.Percent(5), MaxContribution: money.Yuan(100_000)}
}

// SetRules stores rules for a region from a day on (administrators).
func (s *Service) SetRules(ctx context.Context, admdvs, from string, r Rules) error {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return err
	}
	if _, err := time.Parse(yibao.DateLayout, from); err != nil {
		return yibao.FieldError("effective_from", "want YYYY-MM-DD")
	}
	one := money.MustRatio(1, 1)
	if r.IndividualToAccount.Cmp(one) > 0 || r.EmployerToAccount.Cmp(one) > 0 || r.QualityDeposit.Cmp(money.Percent(50)) > 0 ||
		r.RetireeMonthly < 0 || r.MaxContribution <= 0 {
		return yibao.FieldError("rules", "shares are 0–1, the deposit at most 0.5, amounts positive")
	}
	b, _ := json.Marshal(r)
	_, err := s.db.Exec(ctx, `INSERT INTO fund_rules (admdvs, effective_from, rules, created_by, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (admdvs, effective_from) DO UPDATE SET rules = excluded.rules, created_by = excluded.created_by, created_at = excluded.created_at`,
		admdvs, from, string(b), yibao.PrincipalFrom(ctx).ID(), micros(s.now()))
	return err
}

// RulesOn returns the region's rules in force on a day.
func (s *Service) RulesOn(ctx context.Context, admdvs, day string) (Rules, error) {
	var b string
	err := s.db.QueryRow(ctx, `SELECT rules FROM fund_rules WHERE admdvs = ? AND effective_from <= ? ORDER BY effective_from DESC LIMIT 1`, admdvs, day).Scan(&b)
	if err != nil {
		if errors.Is(err, errNoRows) {
			return DefaultRules(), nil
		}
		return Rules{}, err
	}
	r := DefaultRules()
	if err := json.Unmarshal([]byte(b), &r); err != nil {
		return Rules{}, fmt.Errorf("fund rules of %s: %w", admdvs, err)
	}
	return r, nil
}

// ContributionsCSVHeader is the header of a contribution file.
var ContributionsCSVHeader = []string{"psn_no", "insutype", "period", "kind", "amount"}

// Contribution kinds: employees (310) pay employer and individual parts;
// residents (390) pay an annual individual part, and the government adds
// a subsidy per insured resident.
var contributionKinds = map[string]string{"employer": "310", "individual": "310", "resident": "390", "subsidy": "390"}

// Progress receives a long job's progress.
type Progress func(phase string, done, total int)

// PrepareContributions reads a contribution file, checks every line
// (known person, coverage of the scheme in the month, kind for the
// scheme, positive amount within the region's maximum, no duplicate in
// the file or with what was imported before), and prepares a run whose
// lines credit each fund pool from its income account. A file with any
// bad line prepares nothing and lists every bad line (up to 100). The
// same file (by SM3) cannot be prepared twice while a run of it is live.
func (s *Service) PrepareContributions(ctx context.Context, r io.Reader, progress Progress) (*Run, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(string, int, int) {}
	}
	data, err := io.ReadAll(io.LimitReader(r, 64<<20+1))
	if err != nil {
		return nil, err
	}
	if len(data) > 64<<20 {
		return nil, yibao.Errorf(yibao.CodeTooLarge, "a contribution file is at most 64 MiB; split it")
	}
	sum := gmcrypto.SM3(data)
	fileSM3 := hex.EncodeToString(sum[:])
	recs, err := yibao.ReadCSV(strings.NewReader(string(data)), ContributionsCSVHeader, 500_000)
	if err != nil {
		return nil, err
	}
	progress("validating", 0, len(recs))
	type key struct{ psn, insutype, period, kind string }
	seen := map[key]int{}
	var issues []yibao.Issue
	bad := func(line int, field, msg string) {
		if len(issues) < 100 {
			issues = append(issues, yibao.Issue{Line: line, Field: field, Message: msg})
		}
	}
	var lines []Line
	regions := map[string]bool{}
	byKind := map[string]money.Fen{}
	rulesCache := map[string]Rules{}
	for i, rec := range recs {
		if i%200 == 0 {
			progress("validating", i, len(recs))
		}
		psn, insutype, period, kind, amt := rec.Fields[0], rec.Fields[1], rec.Fields[2], rec.Fields[3], rec.Fields[4]
		if want, ok := contributionKinds[kind]; !ok {
			bad(rec.Line, "kind", fmt.Sprintf("kind %q: want employer, individual (scheme 310), resident or subsidy (scheme 390)", kind))
			continue
		} else if insutype != want {
			bad(rec.Line, "insutype", fmt.Sprintf("a %s contribution is for scheme %s, not %q", kind, want, insutype))
			continue
		}
		start, _, perr := periodRange(period)
		if perr != nil {
			bad(rec.Line, "period", fmt.Sprintf("period %q: want YYYY-MM", period))
			continue
		}
		amount, aerr := money.ParseYuan(amt)
		if aerr != nil || amount <= 0 {
			bad(rec.Line, "amount", fmt.Sprintf("amount %q: want a positive amount in yuan with at most 2 decimals", amt))
			continue
		}
		k := key{psn, insutype, period, kind}
		if first, dup := seen[k]; dup {
			bad(rec.Line, "psn_no", fmt.Sprintf("duplicate of line %d (%s %s %s)", first, psn, period, kind))
			continue
		}
		seen[k] = rec.Line
		day := yibao.DateOf(time.UnixMicro(start))
		var admdvs string
		err := s.db.QueryRow(ctx, `SELECT admdvs FROM coverages WHERE psn_no = ? AND insutype = ? AND start_date <= ? AND (end_date IS NULL OR end_date >= ?)
			ORDER BY start_date DESC LIMIT 1`, psn, insutype, day, day).Scan(&admdvs)
		if errors.Is(err, errNoRows) {
			var n int
			s.db.QueryRow(ctx, `SELECT COUNT(*) FROM persons WHERE psn_no = ?`, psn).Scan(&n)
			if n == 0 {
				bad(rec.Line, "psn_no", fmt.Sprintf("unknown person %q", psn))
			} else {
				bad(rec.Line, "insutype", fmt.Sprintf("%s has no scheme %s coverage in %s", psn, insutype, period))
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		var prev string
		err = s.db.QueryRow(ctx, `SELECT run_id FROM contributions WHERE psn_no = ? AND insutype = ? AND period = ? AND kind = ?`, psn, insutype, period, kind).Scan(&prev)
		if err == nil {
			bad(rec.Line, "psn_no", fmt.Sprintf("%s's %s contribution for %s was imported already (run %s)", psn, kind, period, prev))
			continue
		} else if !errors.Is(err, errNoRows) {
			return nil, err
		}
		rules, ok := rulesCache[admdvs]
		if !ok {
			if rules, err = s.RulesOn(ctx, admdvs, day); err != nil {
				return nil, err
			}
			rulesCache[admdvs] = rules
		}
		if amount > rules.MaxContribution {
			bad(rec.Line, "amount", fmt.Sprintf("%s yuan is above the region's %s yuan per line", amount, rules.MaxContribution))
			continue
		}
		fund := ledger.FundPool(admdvs, insutype)
		lines = append(lines, Line{PsnNo: psn, Kind: kind, Period: period, Debit: ledger.FundIncome(fund.ID).ID, Credit: fund.ID, Amount: amount,
			Detail: map[string]any{"line": rec.Line, "insutype": insutype, "admdvs": admdvs}})
		regions[admdvs] = true
		byKind[kind] += amount
	}
	progress("validating", len(recs), len(recs))
	if len(issues) > 0 {
		return nil, &yibao.Error{Code: yibao.CodeInvalid, Issues: issues,
			Message: fmt.Sprintf("%d bad line(s), nothing imported; first: line %d: %s", len(issues), issues[0].Line, issues[0].Message)}
	}
	run := &Run{Kind: KindContributions, Summary: map[string]any{"rows": len(lines), "by_kind": byKind, "regions": keys(regions), "file_sm3": fileSM3}}
	out, err := s.prepared(ctx, run, fileSM3, lines, func(ctx context.Context, tx *sqlstore.Tx) error {
		// Reserve the contribution keys now, so a second file with the
		// same lines is refused even before this one is approved.
		for _, l := range lines {
			if _, err := tx.Exec(ctx, `INSERT INTO contributions (psn_no, insutype, period, kind, amount, admdvs, run_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				l.PsnNo, l.Detail["insutype"], l.Period, l.Kind, int64(l.Amount), l.Detail["admdvs"], run.RunID); err != nil {
				if sqlstore.IsUniqueViolation(err) {
					return yibao.Errorf(yibao.CodeConflict, "line %v: %s's %s contribution for %s is being imported by another run", l.Detail["line"], l.PsnNo, l.Kind, l.Period)
				}
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errExists) {
		return nil, yibao.Errorf(yibao.CodeConflict, "this file (SM3 %s…) was imported already", fileSM3[:12])
	}
	progress("prepared", len(recs), len(recs))
	return out, err
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Job is a contribution file being checked in the background.
type Job struct {
	ID        string        `json:"id"`
	Status    string        `json:"status"` // running | succeeded | failed
	Phase     string        `json:"phase"`
	Done      int           `json:"done"`
	Total     int           `json:"total"`
	Run       *Run          `json:"run,omitempty"`
	Error     string        `json:"error,omitempty"`
	Code      yibao.Code    `json:"code,omitempty"`
	Errors    []yibao.Issue `json:"errors"`
	CreatedAt time.Time     `json:"created_at"`
}

// StartContributions checks a contribution file in the background and
// prepares its run; poll the job for progress and the line errors.
func (s *Service) StartContributions(ctx context.Context, data []byte) (*Job, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	j := &Job{ID: newID("FJ"), Status: "running", Phase: "reading", Errors: []yibao.Issue{}, CreatedAt: s.now().UTC()}
	s.jobsMu.Lock()
	if s.jobs == nil {
		s.jobs = map[string]*Job{}
	}
	s.jobs[j.ID] = j
	snapshot := *j
	s.jobsMu.Unlock()
	bg := yibao.WithPrincipal(context.WithoutCancel(ctx), yibao.PrincipalFrom(ctx))
	go func() {
		run, err := s.PrepareContributions(bg, strings.NewReader(string(data)), func(phase string, done, total int) {
			s.jobsMu.Lock()
			j.Phase, j.Done, j.Total = phase, done, total
			s.jobsMu.Unlock()
		})
		s.jobsMu.Lock()
		defer s.jobsMu.Unlock()
		if err != nil {
			j.Status, j.Error, j.Code = "failed", yibao.ErrorMessage(err), yibao.ErrorCode(err)
			var ye *yibao.Error
			if errors.As(err, &ye) && len(ye.Issues) > 0 {
				j.Errors = ye.Issues
			}
			return
		}
		j.Status, j.Run, j.Phase = "succeeded", run, "prepared"
	}()
	return &snapshot, nil
}

// JobByID returns a contribution job's state.
func (s *Service) JobByID(ctx context.Context, id string) (*Job, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	s.jobsMu.Lock()
	defer s.jobsMu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, yibao.Errorf(yibao.CodeNotFound, "job %s not found", id)
	}
	c := *j
	c.Errors = append([]yibao.Issue{}, j.Errors...)
	return &c, nil
}
