package registry

import (
	"context"

	"yibao"
	"yibao/sqlstore"
)

// CreateCoverage insures a person under a scheme in a region for a period.
// Errors: invalid_argument (unknown person, scheme or region), conflict
// (overlaps an existing period of the same scheme), permission_denied.
func (s *Service) CreateCoverage(ctx context.Context, c yibao.Coverage) (*yibao.Coverage, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error { return s.insertCoverage(ctx, tx, &c) })
	if err != nil {
		return nil, err
	}
	return &c, nil
}

func (s *Service) insertCoverage(ctx context.Context, tx *sqlstore.Tx, c *yibao.Coverage) error {
	// Lock the person row (PostgreSQL) so two concurrent inserts cannot both
	// pass the overlap check; SQLite has one writer already.
	lock := `SELECT psn_no FROM persons WHERE psn_no = ?`
	if tx.Dialect() == sqlstore.Postgres {
		lock += " FOR UPDATE"
	}
	var psn string
	if err := tx.QueryRow(ctx, lock, c.PsnNo).Scan(&psn); notFound(err) {
		return yibao.FieldError("psn_no", "person %s is not registered", c.PsnNo)
	} else if err != nil {
		return err
	}
	if ok, err := s.schemeExists(ctx, tx, c.Insutype); err != nil {
		return err
	} else if !ok {
		return yibao.FieldError("insutype", "scheme %s is not registered", c.Insutype)
	}
	if ok, err := s.regionExists(ctx, tx, c.Admdvs); err != nil {
		return err
	} else if !ok {
		return yibao.FieldError("admdvs", "region %s is not registered", c.Admdvs)
	}
	existing, err := s.coverages(ctx, tx, c.PsnNo, "")
	if err != nil {
		return err
	}
	for _, e := range existing {
		if e.Insutype == c.Insutype && yibao.Overlaps(e.StartDate, e.EndDate, c.StartDate, c.EndDate) {
			end := e.EndDate
			if end == "" {
				end = "open"
			}
			return yibao.Errorf(yibao.CodeConflict, "coverage %s–%s overlaps existing coverage %s (%s–%s) of scheme %s",
				c.StartDate, orOpen(c.EndDate), e.ID, e.StartDate, end, c.Insutype)
		}
	}
	if c.ID == "" {
		c.ID = newID("cov_")
	}
	c.CreatedAt = s.now().UTC().Truncate(1e3)
	_, err = tx.Exec(ctx, `INSERT INTO coverages (id, psn_no, insutype, admdvs, start_date, end_date, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.PsnNo, c.Insutype, c.Admdvs, c.StartDate, nullable(c.EndDate), string(c.Status), micros(c.CreatedAt))
	return err
}

func orOpen(s string) string {
	if s == "" {
		return "open"
	}
	return s
}

// Coverages lists a person's coverage periods, newest first.
// Administrators only; institutions see coverage through LookupPerson.
func (s *Service) Coverages(ctx context.Context, psnNo string) ([]yibao.Coverage, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM persons WHERE psn_no = ?`, psnNo).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, yibao.Errorf(yibao.CodeNotFound, "person %s not found", psnNo)
	}
	return s.coverages(ctx, s.db, psnNo, "")
}

// coverages lists a person's coverage; with onDate set, only periods in
// force on that date with status active.
func (s *Service) coverages(ctx context.Context, q querier, psnNo, onDate string) ([]yibao.Coverage, error) {
	query := `SELECT id, psn_no, insutype, admdvs, start_date, COALESCE(end_date, ''), status, created_at FROM coverages WHERE psn_no = ?`
	args := []any{psnNo}
	if onDate != "" {
		query += ` AND status = 'active' AND start_date <= ? AND (end_date IS NULL OR end_date >= ?)`
		args = append(args, onDate, onDate)
	}
	rows, err := q.Query(ctx, query+` ORDER BY start_date DESC, insutype`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []yibao.Coverage{}
	for rows.Next() {
		var c yibao.Coverage
		var at int64
		if err := rows.Scan(&c.ID, &c.PsnNo, &c.Insutype, &c.Admdvs, &c.StartDate, &c.EndDate, &c.Status, &at); err != nil {
			return nil, err
		}
		c.CreatedAt = fromMicros(at)
		list = append(list, c)
	}
	return list, rows.Err()
}

// CoverageOn returns the person's active coverage of a scheme on a date,
// for services deciding who pays. Errors: failed_precondition if none.
func (s *Service) CoverageOn(ctx context.Context, psnNo, insutype, date string) (*yibao.Coverage, error) {
	list, err := s.coverages(ctx, s.db, psnNo, date)
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		if c.Insutype == insutype {
			return &c, nil
		}
	}
	return nil, yibao.Errorf(yibao.CodePrecondition, "person %s has no active coverage of scheme %s on %s", psnNo, insutype, date)
}

// CoveragesOn returns the person's coverages in force on date (active),
// for services deciding who pays; it does no authorisation of its own.
func (s *Service) CoveragesOn(ctx context.Context, psnNo, date string) ([]yibao.Coverage, error) {
	return s.coverages(ctx, s.db, psnNo, date)
}
