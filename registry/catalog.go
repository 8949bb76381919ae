package registry

import (
	"context"
	"database/sql"
	"strings"

	"yibao"
	"yibao/money"
	"yibao/sqlstore"
)

// CreateCatalogItem adds an item to the catalog. Errors: invalid_argument,
// conflict (code taken), permission_denied.
func (s *Service) CreateCatalogItem(ctx context.Context, it yibao.CatalogItem) (*yibao.CatalogItem, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := it.Validate(); err != nil {
		return nil, err
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := s.writeCatalogItem(ctx, tx, &it, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &it, nil
}

// UpdateCatalogItem replaces an existing item (class, price cap, validity…).
// Errors: invalid_argument, not_found, permission_denied.
func (s *Service) UpdateCatalogItem(ctx context.Context, it yibao.CatalogItem) (*yibao.CatalogItem, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := it.Validate(); err != nil {
		return nil, err
	}
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var created int64
		if err := tx.QueryRow(ctx, `SELECT created_at FROM catalog_items WHERE code = ?`, it.Code).Scan(&created); err == sql.ErrNoRows {
			return yibao.Errorf(yibao.CodeNotFound, "catalog item %s not found", it.Code)
		} else if err != nil {
			return err
		}
		_, err := s.writeCatalogItem(ctx, tx, &it, true)
		it.CreatedAt = fromMicros(created)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &it, nil
}

// writeCatalogItem inserts it, or with upsert replaces an existing row; it
// reports whether a row was inserted.
func (s *Service) writeCatalogItem(ctx context.Context, tx *sqlstore.Tx, it *yibao.CatalogItem, upsert bool) (inserted bool, err error) {
	now := s.now().UTC().Truncate(1e3)
	it.CreatedAt, it.UpdatedAt = now, now
	var cap any
	if it.PriceCap != nil {
		cap = int64(*it.PriceCap)
	}
	args := []any{it.Code, it.Name, string(it.Kind), string(it.Class), it.SelfPayRatio.String(), cap, it.Unit, it.Spec,
		it.Category, it.Restriction, it.ValidFrom, nullable(it.ValidTo), micros(now), micros(now)}
	q := `INSERT INTO catalog_items (code, name, kind, class, self_pay_ratio, price_cap, unit, spec, category, restriction,
		valid_from, valid_to, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	if upsert {
		q += ` ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind, class = excluded.class,
			self_pay_ratio = excluded.self_pay_ratio, price_cap = excluded.price_cap, unit = excluded.unit, spec = excluded.spec,
			category = excluded.category, restriction = excluded.restriction, valid_from = excluded.valid_from,
			valid_to = excluded.valid_to, updated_at = excluded.updated_at
			RETURNING created_at = updated_at`
		err = tx.QueryRow(ctx, q, args...).Scan(&inserted)
		return inserted, err
	}
	_, err = tx.Exec(ctx, q, args...)
	if sqlstore.IsUniqueViolation(err) {
		return false, yibao.Errorf(yibao.CodeConflict, "catalog item %s already exists", it.Code)
	}
	return err == nil, err
}

const catalogCols = `code, name, kind, class, self_pay_ratio, price_cap, unit, spec, category, restriction, valid_from,
	COALESCE(valid_to, ''), created_at, updated_at`

func scanCatalogItem(sc interface{ Scan(...any) error }) (*yibao.CatalogItem, error) {
	var it yibao.CatalogItem
	var ratio string
	var cap sql.NullInt64
	var created, updated int64
	if err := sc.Scan(&it.Code, &it.Name, &it.Kind, &it.Class, &ratio, &cap, &it.Unit, &it.Spec, &it.Category,
		&it.Restriction, &it.ValidFrom, &it.ValidTo, &created, &updated); err != nil {
		return nil, err
	}
	r, err := money.ParseRatio(ratio)
	if err != nil {
		return nil, err
	}
	it.SelfPayRatio = r
	if cap.Valid {
		f := money.Fen(cap.Int64)
		it.PriceCap = &f
	}
	it.CreatedAt, it.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &it, nil
}

// CatalogItem returns one item by code. Any authenticated caller may read
// the catalog. Errors: not_found.
func (s *Service) CatalogItem(ctx context.Context, code string) (*yibao.CatalogItem, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	it, err := scanCatalogItem(s.db.QueryRow(ctx, `SELECT `+catalogCols+` FROM catalog_items WHERE code = ?`, code))
	if err == sql.ErrNoRows {
		return nil, yibao.Errorf(yibao.CodeNotFound, "catalog item %s not found", code)
	}
	return it, err
}

// CatalogItems looks up many codes at once (a fee-line upload's): the
// items found, by code; codes not in the catalog are simply absent.
func (s *Service) CatalogItems(ctx context.Context, codes []string) (map[string]*yibao.CatalogItem, error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]*yibao.CatalogItem, len(codes))
	var want []string
	for _, c := range codes {
		if _, dup := out[c]; !dup {
			out[c] = nil
			want = append(want, c)
		}
	}
	clear(out)
	for len(want) > 0 {
		n := sqlstore.ChunkSize(len(want))
		args := make([]any, n)
		for i, c := range want[:n] {
			args[i] = c
		}
		rows, err := s.db.Query(ctx, `SELECT `+catalogCols+` FROM catalog_items WHERE code IN (`+sqlstore.Marks(n)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			it, err := scanCatalogItem(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[it.Code] = it
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		want = want[n:]
	}
	return out, nil
}

// CatalogFilter narrows a catalog search.
type CatalogFilter struct {
	Query string // substring of the name, or prefix of the code
	Class yibao.ItemClass
	Kind  yibao.ItemKind
	After string
	Limit int
}

// Catalog searches the catalog in code order.
func (s *Service) Catalog(ctx context.Context, f CatalogFilter) (*Page[yibao.CatalogItem], error) {
	if _, err := yibao.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	limit := clampLimit(f.Limit)
	q := `SELECT ` + catalogCols + ` FROM catalog_items WHERE code > ?`
	args := []any{f.After}
	if f.Query != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Query)
		q += ` AND (name LIKE ? ESCAPE '\' OR code LIKE ? ESCAPE '\')`
		args = append(args, "%"+esc+"%", esc+"%")
	}
	if f.Class != "" {
		q += ` AND class = ?`
		args = append(args, string(f.Class))
	}
	if f.Kind != "" {
		q += ` AND kind = ?`
		args = append(args, string(f.Kind))
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY code LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, err
	}
	return readPage(rows, limit, scanCatalogItem, func(x *yibao.CatalogItem) string { return x.Code })
}
