package settlement

import (
	"context"
	"fmt"
	"strings"

	"yibao"
	"yibao/money"
	"yibao/sqlstore"
)

// FeeLineInput is one fee line as the HIS uploads it (2204 feedetail).
type FeeLineInput struct {
	FeedetlSn   string      `json:"feedetl_sn"`
	CatalogCode string      `json:"catalog_code"`
	UnitPrice   money.Fen   `json:"unit_price"`
	Quantity    money.Ratio `json:"quantity"`
	Amount      *money.Fen  `json:"amount,omitempty"` // if given, must equal unit_price × quantity rounded half-up
	FeeDate     string      `json:"fee_date,omitempty"`
}

const feeLineCols = `feedetl_sn, catalog_code, name, class, self_pay_ratio, price_cap, unit_price, quantity, amount, fee_date, status, setl_id`

func scanFeeLine(sc interface{ Scan(...any) error }) (*FeeLine, error) {
	var l FeeLine
	var ratio, qty string
	var cap *int64
	if err := sc.Scan(&l.FeedetlSn, &l.CatalogCode, &l.Name, &l.Class, &ratio, &cap, &l.UnitPrice, &qty, &l.Amount, &l.FeeDate,
		&l.Status, &l.SetlID); err != nil {
		return nil, err
	}
	var err error
	if l.SelfPayRatio, err = money.ParseRatio(ratio); err != nil {
		return nil, err
	}
	if l.Quantity, err = money.ParseRatio(qty); err != nil {
		return nil, err
	}
	if cap != nil {
		c := money.Fen(*cap)
		l.PriceCap = &c
	}
	return &l, nil
}

// feeLines lists a visit's lines in upload order; unsettled only on request.
func (s *Service) feeLines(ctx context.Context, q querier, id string, unsettledOnly bool) ([]FeeLine, error) {
	query := `SELECT ` + feeLineCols + ` FROM fee_lines WHERE mdtrt_id = ?`
	if unsettledOnly {
		query += ` AND status = 'active' AND setl_id = ''`
	}
	rows, err := q.Query(ctx, query+` ORDER BY created_at, feedetl_sn`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []FeeLine{}
	for rows.Next() {
		l, err := scanFeeLine(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *l)
	}
	return out, rows.Err()
}

const maxLinesPerUpload = 2000

// AddFeeLines uploads fee lines to an open (or discharged, unsettled)
// visit. Each line is resolved against the catalog as of its fee date:
// class, 乙 self-pay share and price cap come from the catalog, never from
// the HIS. All or nothing: any bad line rejects the upload with every
// problem listed by line. Re-sending a line with the same serial number
// and content is a no-op; different content is a conflict.
func (s *Service) AddFeeLines(ctx context.Context, id string, in []FeeLineInput) (*Visit, error) {
	if len(in) == 0 || len(in) > maxLinesPerUpload {
		return nil, yibao.FieldError("lines", "send 1–%d lines", maxLinesPerUpload)
	}
	v, err := s.loadVisit(ctx, s.db, id)
	if err != nil {
		return nil, err
	}
	if v.Status != VisitOpen && v.Status != VisitDischarged {
		return nil, yibao.Errorf(yibao.CodePrecondition, "visit %s is %s: no more fee lines", id, v.Status)
	}
	today := s.today()
	codes := make([]string, len(in))
	for i, l := range in {
		codes[i] = l.CatalogCode
	}
	items, err := s.reg.CatalogItems(ctx, codes)
	if err != nil {
		return nil, err
	}
	var issues []yibao.Issue
	lines := make([]FeeLine, len(in))
	seen := map[string]bool{}
	for i, l := range in {
		field := func(f string) string { return fmt.Sprintf("lines[%d].%s", i, f) }
		bad := func(f, msg string) { issues = append(issues, yibao.Issue{Field: field(f), Message: msg}) }
		if !snRe.MatchString(l.FeedetlSn) {
			bad("feedetl_sn", "1–30 letters, digits, '.', '_' or '-'")
			continue
		}
		if seen[l.FeedetlSn] {
			bad("feedetl_sn", "repeated in this upload")
			continue
		}
		seen[l.FeedetlSn] = true
		if l.FeeDate == "" {
			l.FeeDate = today
		}
		if !validDate(l.FeeDate) || l.FeeDate < v.BeginDate || l.FeeDate > today {
			bad("fee_date", "must be a date between the visit's start and today")
			continue
		}
		if l.UnitPrice <= 0 || l.UnitPrice > 1e10 {
			bad("unit_price", "must be more than 0 and at most 100,000,000.00")
			continue
		}
		if l.Quantity.Cmp(money.Ratio{}) <= 0 || l.Quantity.Cmp(money.MustRatio(1_000_000, 1)) > 0 {
			bad("quantity", "must be more than 0 and at most 1,000,000")
			continue
		}
		amount := l.UnitPrice.Mul(l.Quantity, money.HalfUp)
		if l.Amount != nil && *l.Amount != amount {
			bad("amount", fmt.Sprintf("%s × %s is %s, not %s", l.UnitPrice, l.Quantity, amount, *l.Amount))
			continue
		}
		it := items[l.CatalogCode]
		if it == nil {
			bad("catalog_code", fmt.Sprintf("%q is not in the catalog", l.CatalogCode))
			continue
		}
		if l.FeeDate < it.ValidFrom || (it.ValidTo != "" && l.FeeDate > it.ValidTo) {
			bad("catalog_code", fmt.Sprintf("%s is valid %s…%s, not on %s", it.Code, it.ValidFrom, it.ValidTo, l.FeeDate))
			continue
		}
		lines[i] = FeeLine{FeedetlSn: l.FeedetlSn, CatalogCode: it.Code, Name: it.Name, Class: string(it.Class),
			SelfPayRatio: it.SelfPayRatio, PriceCap: it.PriceCap, UnitPrice: l.UnitPrice, Quantity: l.Quantity, Amount: amount,
			FeeDate: l.FeeDate, Status: "active"}
	}
	if len(issues) > 0 {
		return nil, &yibao.Error{Code: yibao.CodeInvalid, Message: fmt.Sprintf("%d of %d fee lines are invalid; nothing was stored", len(issues), len(in)), Issues: issues}
	}
	now := micros(s.now())
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, `SELECT status FROM visits WHERE mdtrt_id = ?`, id).Scan(&status); err != nil {
			return err
		}
		if status != VisitOpen && status != VisitDischarged {
			return yibao.Errorf(yibao.CodePrecondition, "visit %s is %s: no more fee lines", id, status)
		}
		// Lines already stored (a retried upload) must match; the rest are
		// inserted many to a statement. Chunks have fixed sizes so that
		// the statements stay few and prepared.
		existing := map[string]*FeeLine{}
		for rest := lines; len(rest) > 0; {
			n := sqlstore.ChunkSize(len(rest))
			args := []any{id}
			for _, l := range rest[:n] {
				args = append(args, l.FeedetlSn)
			}
			rows, err := tx.Query(ctx, `SELECT `+feeLineCols+` FROM fee_lines WHERE mdtrt_id = ? AND feedetl_sn IN (`+sqlstore.Marks(n)+`)`, args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				old, err := scanFeeLine(rows)
				if err != nil {
					rows.Close()
					return err
				}
				existing[old.FeedetlSn] = old
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			rest = rest[n:]
		}
		var fresh []any
		for i, l := range lines {
			if old := existing[l.FeedetlSn]; old != nil {
				if old.CatalogCode != l.CatalogCode || old.UnitPrice != l.UnitPrice || old.Quantity.Cmp(l.Quantity) != 0 || old.FeeDate != l.FeeDate || old.Status != "active" {
					return &yibao.Error{Code: yibao.CodeConflict, Message: "a fee line with this serial number exists with other content",
						Field: fmt.Sprintf("lines[%d].feedetl_sn", i)}
				}
				continue
			}
			var cap any
			if l.PriceCap != nil {
				cap = int64(*l.PriceCap)
			}
			fresh = append(fresh, id, l.FeedetlSn, l.CatalogCode, l.Name, l.Class, l.SelfPayRatio.String(), cap, int64(l.UnitPrice), l.Quantity.String(),
				int64(l.Amount), l.FeeDate, now+int64(i))
		}
		const cols = 12
		for len(fresh) > 0 {
			n := sqlstore.ChunkSize(len(fresh) / cols)
			if _, err := tx.Exec(ctx, `INSERT INTO fee_lines (mdtrt_id, `+feeLineCols+`, created_at) VALUES `+
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', '', ?), ", n), ", "), fresh[:n*cols]...); err != nil {
				return err
			}
			fresh = fresh[n*cols:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetVisit(ctx, id)
}

// CancelFeeLines withdraws unsettled lines (a settled line is corrected by
// reversing its settlement first).
func (s *Service) CancelFeeLines(ctx context.Context, id string, sns []string) (*Visit, error) {
	if len(sns) == 0 || len(sns) > maxLinesPerUpload {
		return nil, yibao.FieldError("feedetl_sns", "name 1–2000 lines")
	}
	if _, err := s.loadVisit(ctx, s.db, id); err != nil {
		return nil, err
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var bad []string
		for _, sn := range sns {
			res, err := tx.Exec(ctx, `UPDATE fee_lines SET status = 'cancelled' WHERE mdtrt_id = ? AND feedetl_sn = ? AND setl_id = ''`, id, sn)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				bad = append(bad, sn)
			}
		}
		if len(bad) > 0 {
			return &yibao.Error{Code: yibao.CodePrecondition, Field: "feedetl_sns",
				Message: "not found or already settled: " + strings.Join(bad, ", ") + "; nothing was cancelled"}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetVisit(ctx, id)
}
