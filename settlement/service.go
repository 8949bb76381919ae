// Package settlement is the heart of yibao: visits and their fee lines,
// pre-settlement, settlement as one ledger unit (record, accumulators,
// transfers, outbox), pending settlements that complete or void exactly
// once, full reversals, year-to-date accumulators, and the policy
// versions that drive the calculator (drafted, approved by a second
// administrator, published, replayed over past bills).
//
// Every call reads the principal from the context: bureau administrators
// see everything, an institution's staff and keys only their own visits.
package settlement

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/ledger/engine"
	"yibao/policy"
	"yibao/registry"
	"yibao/sqlstore"
)

// Service runs visits and settlements.
type Service struct {
	db  *sqlstore.DB
	reg *registry.Service
	led *engine.Engine
	now func() time.Time
	log *slog.Logger

	// PendingTTL is how long a pending settlement waits for its
	// out-of-pocket payment before it voids itself (default 15 minutes).
	PendingTTL time.Duration

	// KeepPending, if set, is asked before an expired pending settlement
	// is voided: true keeps it (the payment service has a charge whose
	// outcome is not known yet, and voiding could strand paid money).
	KeepPending func(ctx context.Context, setlID string) (bool, error)

	// Audit records every settlement state in the audit trail (nil: none).
	Audit *audit.Writer

	// Review, if set, runs smart review on every bill before it is
	// calculated (pre-settlement and settlement).
	Review ReviewFunc

	// Remote reaches the nodes of other regions for cross-region
	// settlement (nil: this node settles only the persons it insures).
	Remote Remote

	mu       sync.RWMutex
	policies map[string][]*policy.Policy // published versions by region, loaded lazily
	remote   remotePolicies              // other regions' published versions

	// hookAfterPrepare, in tests, runs after a cross-region settlement
	// is prepared here and before the hub is asked (a crash point).
	hookAfterPrepare func(setlID string) error

	// persons serialises this process's settlements of one person, so
	// that concurrent bills of the same patient queue instead of racing
	// and recalculating. Correctness does not rest on it: the accumulator
	// version check inside the ledger unit still catches another node.
	persons [256]sync.Mutex

	recalcs atomic.Int64
}

// Recalculations counts settlements that lost a race to another writer
// and were calculated again (a metric; zero on a single node).
func (s *Service) Recalculations() int64 { return s.recalcs.Load() }

// lockPersons locks the stripes of the given persons in a fixed order and
// returns the unlock function.
func (s *Service) lockPersons(psns ...string) func() {
	var idx []int
	for _, p := range psns {
		if p == "" {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(p))
		i := int(h.Sum32() % uint32(len(s.persons)))
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	for _, i := range idx {
		s.persons[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			s.persons[i].Unlock()
		}
	}
}

// New builds the service.
func New(db *sqlstore.DB, reg *registry.Service, led *engine.Engine, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, reg: reg, led: led, now: time.Now, log: log, PendingTTL: 15 * time.Minute}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

func (s *Service) today() string { return s.now().In(cst).Format(time.DateOnly) }

// cst is China Standard Time: visit and settlement dates are local dates.
var cst = yibao.ChinaTime

func newID(prefix string) string {
	var b [10]byte
	rand.Read(b[:])
	return prefix + time.Now().In(cst).Format("20060102") + strings.ToUpper(hex.EncodeToString(b[:]))
}

// access checks that the caller may act for an institution.
func access(ctx context.Context, fixmedinsCode string) (*yibao.Principal, error) {
	p, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if !p.ActsFor(fixmedinsCode) {
		return nil, yibao.Errorf(yibao.CodeForbidden, "you may act only for your own institution")
	}
	return p, nil
}

func notFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func micros(t time.Time) int64     { return t.UnixMicro() }
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }
func optTime(v int64) *time.Time {
	if v == 0 {
		return nil
	}
	t := fromMicros(v)
	return &t
}

// querier is a database or a transaction.
type querier interface {
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) *sql.Row
}
