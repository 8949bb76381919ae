// Package registry keeps the bureau's master data: regions, schemes,
// insured persons and their coverage, institutions and the catalog, with
// validation, encryption of personal data at rest and all-or-nothing CSV
// imports. Every exported method checks the caller's principal.
package registry

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/sqlstore"
)

// Service is the registry. It is safe for concurrent use.
type Service struct {
	db       *sqlstore.DB
	keys     *gmcrypto.Keyring
	indexKey []byte
	now      func() time.Time
	jobs     *jobTable

	// OnInstitutionCreated and OnPersonCreated, if set, run inside the
	// creating transaction (e.g. to open ledger accounts), so an entity
	// never exists without what hangs off it.
	OnInstitutionCreated func(ctx context.Context, tx *sqlstore.Tx, in *yibao.Institution) error
	OnPersonCreated      func(ctx context.Context, tx *sqlstore.Tx, p *yibao.Person) error

	// Keeps, if set, reports whether this node insures region admdvs
	// (a node joined to a cross-region hub); persons of other regions are
	// guests, copied here because they were treated here.
	Keeps func(admdvs string) bool
}

// New returns a registry over db. keys seals personal data; indexKey keys
// the blind indexes used to find a person by ID number, name or phone.
func New(db *sqlstore.DB, keys *gmcrypto.Keyring, indexKey []byte) *Service {
	return &Service{db: db, keys: keys, indexKey: indexKey, now: time.Now, jobs: newJobTable()}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

func (s *Service) today() time.Time {
	t := s.now().In(chinaTime)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// chinaTime is UTC+8; the platform keeps calendar dates in China time.
var chinaTime = yibao.ChinaTime

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Page is one page of a listing. Next is the cursor for the following page,
// empty on the last.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

const (
	defaultLimit = 50
	maxLimit     = 500
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// readPage scans up to limit rows into a page; the query asked for
// limit+1, and an extra row means there is a next page, whose cursor is
// the key of the last item kept.
func readPage[T any](rows *sql.Rows, limit int, scan func(interface{ Scan(...any) error }) (*T, error), key func(*T) string) (*Page[T], error) {
	defer rows.Close()
	page := &Page[T]{Items: []T{}}
	for rows.Next() {
		it, err := scan(rows)
		if err != nil {
			return nil, err
		}
		page.Items = append(page.Items, *it)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.Next = key(&page.Items[limit-1])
	}
	return page, nil
}
