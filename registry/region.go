package registry

import (
	"context"
	"database/sql"
	"errors"

	"yibao"
	"yibao/sqlstore"
)

// CreateRegion registers a pooling region. Errors: invalid_argument,
// conflict (code taken), permission_denied.
func (s *Service) CreateRegion(ctx context.Context, r yibao.Region) (*yibao.Region, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	r.CreatedAt = s.now().UTC().Truncate(1e3)
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO regions (admdvs, name, parent, created_at) VALUES (?, ?, ?, ?)`,
			r.Admdvs, r.Name, nullable(r.Parent), micros(r.CreatedAt))
		return err
	})
	if sqlstore.IsUniqueViolation(err) {
		return nil, yibao.Errorf(yibao.CodeConflict, "region %s is already registered", r.Admdvs)
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Region returns one region. Errors: not_found.
func (s *Service) Region(ctx context.Context, admdvs string) (*yibao.Region, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT admdvs, name, COALESCE(parent, ''), created_at FROM regions WHERE admdvs = ?`, admdvs)
	if err != nil {
		return nil, err
	}
	list, err := scanRegions(rows)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, yibao.Errorf(yibao.CodeNotFound, "region %s not found", admdvs)
	}
	return &list[0], nil
}

// Regions lists every region in code order.
func (s *Service) Regions(ctx context.Context) ([]yibao.Region, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT admdvs, name, COALESCE(parent, ''), created_at FROM regions ORDER BY admdvs`)
	if err != nil {
		return nil, err
	}
	return scanRegions(rows)
}

func scanRegions(rows *sql.Rows) ([]yibao.Region, error) {
	defer rows.Close()
	list := []yibao.Region{}
	for rows.Next() {
		var r yibao.Region
		var at int64
		if err := rows.Scan(&r.Admdvs, &r.Name, &r.Parent, &at); err != nil {
			return nil, err
		}
		r.CreatedAt = fromMicros(at)
		list = append(list, r)
	}
	return list, rows.Err()
}

// CreateScheme registers an insurance scheme. Errors: invalid_argument,
// conflict, permission_denied.
func (s *Service) CreateScheme(ctx context.Context, sc yibao.Scheme) (*yibao.Scheme, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	sc.CreatedAt = s.now().UTC().Truncate(1e3)
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO schemes (insutype, name, kind, created_at) VALUES (?, ?, ?, ?)`,
			sc.Insutype, sc.Name, string(sc.Kind), micros(sc.CreatedAt))
		return err
	})
	if sqlstore.IsUniqueViolation(err) {
		return nil, yibao.Errorf(yibao.CodeConflict, "scheme %s is already registered", sc.Insutype)
	}
	if err != nil {
		return nil, err
	}
	return &sc, nil
}

// Schemes lists every scheme in code order.
func (s *Service) Schemes(ctx context.Context) ([]yibao.Scheme, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `SELECT insutype, name, kind, created_at FROM schemes ORDER BY insutype`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []yibao.Scheme{}
	for rows.Next() {
		var sc yibao.Scheme
		var at int64
		if err := rows.Scan(&sc.Insutype, &sc.Name, &sc.Kind, &at); err != nil {
			return nil, err
		}
		sc.CreatedAt = fromMicros(at)
		list = append(list, sc)
	}
	return list, rows.Err()
}

func (s *Service) schemeExists(ctx context.Context, q querier, insutype string) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM schemes WHERE insutype = ?`, insutype).Scan(&n)
	return n > 0, err
}

func (s *Service) regionExists(ctx context.Context, q querier, admdvs string) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM regions WHERE admdvs = ?`, admdvs).Scan(&n)
	return n > 0, err
}

// querier is satisfied by *sqlstore.DB and *sqlstore.Tx.
type querier interface {
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func notFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }
