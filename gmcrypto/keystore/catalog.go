package keystore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"yibao/gmcrypto"
)

// Record is one key of the catalog.
type Record struct {
	ID       string
	Kind     Kind
	Purpose  string
	Alg      Alg
	State    State
	KeyStore string // the KEK it is wrapped under (KeyStore.ID)
	Wrapped  []byte // wrapped material or a store reference; nil once retired
	Public   []byte // signing keys
	Origin   string // "generated", or "imported: <legacy derivation>"
	Created  time.Time
	Changed  time.Time
}

// Generation is the number at the end of the key's id (k2 → 2).
func (r Record) Generation() int {
	s, _ := SpecOf(r.Purpose)
	n, _ := strconv.Atoi(strings.TrimPrefix(r.ID, s.Prefix))
	return n
}

// Event is a change of the catalog, for the audit trail.
type Event struct {
	ID     string // unique per event: key:<id>:<action>[:<time>]
	Action string // rotated | retired | reencrypted
	Actor  string
	Key    Record // Wrapped is nil
	Data   map[string]any
}

// Catalog is the table of keys and what is done with them.
type Catalog struct {
	DB      DB                                                    // reads, outside transactions
	WriteTx func(ctx context.Context, fn func(tx DB) error) error // a write transaction (sqlstore.DB.WriteTx)
	Store   KeyStore
	// Event, if set, records a change inside its transaction (the audit
	// trail).
	Event func(ctx context.Context, tx DB, e Event) error
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// RetireAfter is how long a key must have been decrypt-only before it
	// can be retired: running servers pick a data-key rotation up within
	// RefreshInterval, and must not be left sealing under a retired key.
	// Zero means DefaultRetireAfter; negative means no wait (tests).
	RetireAfter time.Duration
}

// RefreshInterval is how often a running server reloads its data keys.
const RefreshInterval = 30 * time.Second

// DefaultRetireAfter is four refresh intervals.
const DefaultRetireAfter = 4 * RefreshInterval

func (c *Catalog) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

const recordCols = `id, kind, purpose, alg, state, key_store, wrapped, public_key, origin, created_at, changed_at`

type scanner interface{ Scan(...any) error }

func scanRecord(s scanner) (Record, error) {
	var r Record
	var kind, alg, state string
	var created, changed int64
	if err := s.Scan(&r.ID, &kind, &r.Purpose, &alg, &state, &r.KeyStore, &r.Wrapped, &r.Public, &r.Origin, &created, &changed); err != nil {
		return r, err
	}
	r.Kind, r.Alg, r.State = Kind(kind), Alg(alg), State(state)
	r.Created, r.Changed = time.UnixMicro(created).UTC(), time.UnixMicro(changed).UTC()
	return r, nil
}

func queryRecords(ctx context.Context, db DB, where string, args ...any) ([]Record, error) {
	rows, err := db.Query(ctx, `SELECT `+recordCols+` FROM crypto_keys `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("keystore: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// List returns every key, by purpose and age.
func (c *Catalog) List(ctx context.Context) ([]Record, error) {
	return queryRecords(ctx, c.DB, `ORDER BY purpose, created_at, id`)
}

// Get returns one key.
func (c *Catalog) Get(ctx context.Context, id string) (Record, error) {
	r, err := scanRecord(c.DB.QueryRow(ctx, `SELECT `+recordCols+` FROM crypto_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%w: %q", ErrNoKey, id)
	}
	return r, err
}

// Active returns the active key of a purpose.
func (c *Catalog) Active(ctx context.Context, purpose string) (Record, error) {
	return activeIn(ctx, c.DB, purpose)
}

func activeIn(ctx context.Context, db DB, purpose string) (Record, error) {
	r, err := scanRecord(db.QueryRow(ctx, `SELECT `+recordCols+` FROM crypto_keys WHERE purpose = ? AND state = 'active'`, purpose))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%w: no active %s key (has the catalog been bootstrapped?)", ErrNoKey, purpose)
	}
	return r, err
}

// newRecord makes a key of spec with the given id: from legacy material
// when given, else fresh.
func (c *Catalog) newRecord(spec Spec, id string, legacy *Legacy) (Record, error) {
	now := c.now().UTC().Truncate(time.Microsecond)
	r := Record{ID: id, Kind: spec.Kind, Purpose: spec.Purpose, Alg: spec.Alg, State: StateActive, KeyStore: c.Store.ID(),
		Origin: "generated", Created: now, Changed: now}
	if legacy != nil {
		r.Origin = "imported: " + legacy.Label
	}
	if !gmcrypto.ValidKeyID(id) {
		return r, fmt.Errorf("keystore: invalid key id %q", id)
	}
	var err error
	switch spec.Kind {
	case KindData, KindSecret:
		var material []byte
		if legacy != nil {
			material = legacy.Material
		} else {
			material = make([]byte, map[Kind]int{KindData: 16, KindSecret: 32}[spec.Kind])
			if _, err := rand.Read(material); err != nil {
				return r, err
			}
			defer clear(material)
		}
		r.Wrapped, err = c.Store.Wrap(material, wrapAAD(id, spec.Purpose, spec.Alg))
	case KindSigning:
		if legacy != nil {
			r.Wrapped, r.Public, err = c.Store.ImportSigner(spec.Alg, id, legacy.Material)
		} else {
			r.Wrapped, r.Public, err = c.Store.GenerateSigner(spec.Alg, id)
		}
	}
	if err != nil {
		return r, fmt.Errorf("keystore: making key %s: %w", id, err)
	}
	return r, nil
}

func insertRecord(ctx context.Context, tx DB, r Record) (bool, error) {
	res, err := tx.Exec(ctx, `INSERT INTO crypto_keys (`+recordCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		r.ID, string(r.Kind), r.Purpose, string(r.Alg), string(r.State), r.KeyStore, r.Wrapped, r.Public, r.Origin, r.Created.UnixMicro(), r.Changed.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("keystore: insert %s: %w", r.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Missing lists the purposes of Specs that have no key yet.
func (c *Catalog) Missing(ctx context.Context) ([]string, error) {
	have := map[string]bool{}
	rows, err := c.DB.Query(ctx, `SELECT DISTINCT purpose FROM crypto_keys`)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		have[p] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range Specs {
		if !have[s.Purpose] {
			out = append(out, s.Purpose)
		}
	}
	return out, nil
}

// Bootstrap gives every purpose of Specs that has no key yet its first
// one: the legacy key of that purpose when legacy has it (a database from
// before the catalog), else a fresh one. It is idempotent and safe to run
// from two processes at once. It returns the keys it created.
func (c *Catalog) Bootstrap(ctx context.Context, legacy map[string]Legacy) ([]Record, error) {
	missing, err := c.Missing(ctx)
	if err != nil {
		return nil, err
	}
	var todo []Record
	for _, p := range missing {
		s, _ := SpecOf(p)
		id := s.Prefix + "1"
		var lg *Legacy
		if l, ok := legacy[s.Purpose]; ok {
			lg, id = &l, l.ID
		}
		r, err := c.newRecord(s, id, lg)
		if err != nil {
			return nil, err
		}
		todo = append(todo, r)
	}
	if len(todo) == 0 {
		return nil, nil
	}
	var created []Record
	err = c.WriteTx(ctx, func(tx DB) error {
		created = created[:0]
		for _, r := range todo {
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM crypto_keys WHERE purpose = ?`, r.Purpose).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				continue // another process was first
			}
			ok, err := insertRecord(ctx, tx, r)
			if err != nil {
				return err
			}
			if ok {
				created = append(created, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.forget(todo, created)
	return created, nil
}

// forget destroys store material made for records that were not stored.
func (c *Catalog) forget(made, kept []Record) {
	for _, m := range made {
		stored := false
		for _, k := range kept {
			stored = stored || k.ID == m.ID
		}
		if !stored && m.Kind == KindSigning {
			c.Store.Destroy(m.Alg, m.ID, m.Wrapped)
		}
	}
}

func maxGeneration(ctx context.Context, db DB, purposes []string) (int, error) {
	gen := 0
	for _, p := range purposes {
		recs, err := queryRecords(ctx, db, `WHERE purpose = ?`, p)
		if err != nil {
			return 0, err
		}
		for _, r := range recs {
			gen = max(gen, r.Generation())
		}
	}
	return gen, nil
}

// RotateData makes a new active data key; the old one becomes
// decrypt-only. Running servers pick it up within RefreshInterval; run
// Reencrypt to move the stored values over.
func (c *Catalog) RotateData(ctx context.Context, actor string) (Record, error) {
	rs, err := c.Rotate(ctx, actor, PurposePII)
	if err != nil {
		return Record{}, err
	}
	return rs[0], nil
}

// CheckpointPurposes are the two keys that sign a checkpoint, rotated
// together (one generation: cp-sm2-N and cp-ed-N).
var CheckpointPurposes = []string{PurposeCheckpointSM2, PurposeCheckpointEd25519}

// Rotate makes a new active key for each purpose, all of one new
// generation, and turns the old ones decrypt-only (for signing keys:
// verify-only; their public halves stay in the catalog). Signing keys
// take effect when the server next starts.
func (c *Catalog) Rotate(ctx context.Context, actor string, purposes ...string) ([]Record, error) {
	if len(purposes) == 0 {
		return nil, errors.New("keystore: rotate what?")
	}
	var specs []Spec
	for _, p := range purposes {
		s, ok := SpecOf(p)
		if !ok {
			return nil, fmt.Errorf("keystore: unknown purpose %q", p)
		}
		if !s.Rotatable {
			return nil, fmt.Errorf("%w: %s", ErrNotRotatable, p)
		}
		specs = append(specs, s)
	}
	gen, err := maxGeneration(ctx, c.DB, purposes)
	if err != nil {
		return nil, err
	}
	olds := make([]Record, len(specs))
	news := make([]Record, len(specs))
	for i, s := range specs {
		if olds[i], err = c.Active(ctx, s.Purpose); err != nil {
			return nil, err
		}
		if olds[i].KeyStore != c.Store.ID() {
			return nil, fmt.Errorf("%w: %s is under %s, this key store is %s", ErrOtherStore, olds[i].ID, olds[i].KeyStore, c.Store.ID())
		}
		if news[i], err = c.newRecord(s, s.Prefix+strconv.Itoa(gen+1), nil); err != nil {
			c.forget(news[:i], nil)
			return nil, err
		}
	}
	now := c.now().UTC().Truncate(time.Microsecond)
	err = c.WriteTx(ctx, func(tx DB) error {
		for i := range specs {
			res, err := tx.Exec(ctx, `UPDATE crypto_keys SET state = 'decrypt-only', changed_at = ? WHERE id = ? AND state = 'active'`, now.UnixMicro(), olds[i].ID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("keystore: %s is no longer the active %s key: another rotation ran at the same time", olds[i].ID, specs[i].Purpose)
			}
			if ok, err := insertRecord(ctx, tx, news[i]); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("keystore: key id %s is taken: another rotation ran at the same time", news[i].ID)
			}
			if c.Event != nil {
				ev := news[i]
				ev.Wrapped = nil
				if err := c.Event(ctx, tx, Event{ID: "key:" + ev.ID + ":rotated", Action: "rotated", Actor: actor, Key: ev,
					Data: map[string]any{"purpose": ev.Purpose, "alg": string(ev.Alg), "new_key": ev.ID, "old_key": olds[i].ID, "old_state": string(StateDecryptOnly), "key_store": ev.KeyStore}}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		c.forget(news, nil)
		return nil, err
	}
	return news, nil
}

// Retire destroys a decrypt-only key's material. A data key is retired
// only when no value in targets still names it (run Reencrypt first),
// and any key only after RetireAfter in the decrypt-only state. A retired
// signing key keeps its public half, so what it signed still verifies.
func (c *Catalog) Retire(ctx context.Context, actor, id string, targets []Target) (Record, error) {
	r, err := c.Get(ctx, id)
	if err != nil {
		return r, err
	}
	switch r.State {
	case StateRetired:
		return r, fmt.Errorf("%w: %s", ErrRetired, id)
	case StateActive:
		return r, fmt.Errorf("keystore: %s is the active %s key: rotate first", id, r.Purpose)
	}
	wait := c.RetireAfter
	if wait == 0 {
		wait = DefaultRetireAfter
	}
	if since := c.now().Sub(r.Changed); wait > 0 && since < wait {
		return r, fmt.Errorf("keystore: %s has been decrypt-only for %s; retire it after %s, when every running server has moved to the new key", id, since.Round(time.Second), wait)
	}
	var refs int64
	if r.Kind == KindData {
		rep, err := c.Scan(ctx, targets, nil)
		if err != nil {
			return r, err
		}
		if refs = rep.ByKey[id]; refs > 0 {
			return r, fmt.Errorf("%w: %d stored values are still sealed under %s: run `yibao keys reencrypt` first", ErrInUse, refs, id)
		}
	}
	now := c.now().UTC().Truncate(time.Microsecond)
	err = c.WriteTx(ctx, func(tx DB) error {
		res, err := tx.Exec(ctx, `UPDATE crypto_keys SET state = 'retired', wrapped = NULL, changed_at = ? WHERE id = ? AND state = 'decrypt-only'`, now.UnixMicro(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("keystore: %s changed while being retired", id)
		}
		if c.Event != nil {
			ev := r
			ev.Wrapped, ev.State = nil, StateRetired
			return c.Event(ctx, tx, Event{ID: "key:" + id + ":retired", Action: "retired", Actor: actor, Key: ev,
				Data: map[string]any{"purpose": r.Purpose, "alg": string(r.Alg), "key": id, "values_referring": refs}})
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	c.Store.Destroy(r.Alg, r.ID, r.Wrapped)
	r.State, r.Wrapped, r.Changed = StateRetired, nil, now
	return r, nil
}

// unwrap opens a data key or secret of the catalog.
func (c *Catalog) unwrap(r Record) ([]byte, error) {
	if r.State == StateRetired || r.Wrapped == nil {
		return nil, fmt.Errorf("%w: %s", ErrRetired, r.ID)
	}
	if r.KeyStore != c.Store.ID() {
		return nil, fmt.Errorf("%w: %s is under %s, this key store is %s (another master key?)", ErrOtherStore, r.ID, r.KeyStore, c.Store.ID())
	}
	k, err := c.Store.Unwrap(r.Wrapped, wrapAAD(r.ID, r.Purpose, r.Alg))
	if err != nil {
		return nil, fmt.Errorf("keystore: unwrapping %s: %w", r.ID, err)
	}
	return k, nil
}

// Secret returns the active secret of a purpose (the derivation root).
func (c *Catalog) Secret(ctx context.Context, purpose string) ([]byte, error) {
	r, err := c.Active(ctx, purpose)
	if err != nil {
		return nil, err
	}
	if r.Kind != KindSecret {
		return nil, fmt.Errorf("keystore: %s is a %s key, not a secret", r.ID, r.Kind)
	}
	return c.unwrap(r)
}

// DataKey returns a data key that is not retired.
func (c *Catalog) DataKey(ctx context.Context, id string) ([]byte, error) {
	r, err := c.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Kind != KindData {
		return nil, fmt.Errorf("keystore: %s is not a data key", id)
	}
	return c.unwrap(r)
}

func (c *Catalog) dataKeys(ctx context.Context) (string, map[string][]byte, error) {
	recs, err := queryRecords(ctx, c.DB, `WHERE purpose = ? AND state IN ('active', 'decrypt-only')`, PurposePII)
	if err != nil {
		return "", nil, err
	}
	active, keys := "", map[string][]byte{}
	for _, r := range recs {
		k, err := c.unwrap(r)
		if err != nil {
			return "", nil, err
		}
		keys[r.ID] = k
		if r.State == StateActive {
			active = r.ID
		}
	}
	if active == "" {
		return "", nil, fmt.Errorf("%w: no active data key", ErrNoKey)
	}
	return active, keys, nil
}

// Keyring builds the SM4 keyring of the active and decrypt-only data keys.
// A key id it meets that it does not hold (made by a rotation in another
// process) is loaded from the catalog on first use; Refresh picks up a new
// active key.
func (c *Catalog) Keyring(ctx context.Context) (*gmcrypto.Keyring, error) {
	active, keys, err := c.dataKeys(ctx)
	if err != nil {
		return nil, err
	}
	kr, err := gmcrypto.NewKeyring(active, keys)
	if err != nil {
		return nil, err
	}
	kr.SetLoader(func(id string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.DataKey(ctx, id)
	})
	return kr, nil
}

// Refresh reloads kr's keys from the catalog: a new active key seals from
// now on, a retired one no longer opens.
func (c *Catalog) Refresh(ctx context.Context, kr *gmcrypto.Keyring) error {
	active, keys, err := c.dataKeys(ctx)
	if err != nil {
		return err
	}
	return kr.Update(active, keys)
}

// Signer is an active signing key, used through its store.
type Signer struct {
	Record
	store KeyStore
}

// Signer returns the active signing key of a purpose.
func (c *Catalog) Signer(ctx context.Context, purpose string) (*Signer, error) {
	r, err := c.Active(ctx, purpose)
	if err != nil {
		return nil, err
	}
	if r.Kind != KindSigning {
		return nil, fmt.Errorf("keystore: %s is not a signing key", r.ID)
	}
	if r.KeyStore != c.Store.ID() {
		return nil, fmt.Errorf("%w: %s is under %s, this key store is %s (another master key?)", ErrOtherStore, r.ID, r.KeyStore, c.Store.ID())
	}
	return &Signer{Record: r, store: c.Store}, nil
}

// Sign signs msg (SM2: under uid, nil for the default; Ed25519: uid
// ignored).
func (s *Signer) Sign(uid, msg []byte) ([]byte, error) {
	return s.store.Sign(s.Alg, s.ID, s.Wrapped, uid, msg)
}

// SM2 returns the key as a gmcrypto SM2 key whose private half stays in
// the store.
func (s *Signer) SM2() (*gmcrypto.PrivateKey, error) {
	if s.Alg != AlgSM2 {
		return nil, fmt.Errorf("keystore: %s is an %s key", s.ID, s.Alg)
	}
	pub, err := gmcrypto.ParsePublicKey(s.Public)
	if err != nil {
		return nil, err
	}
	return gmcrypto.NewStoreKey(pub, s.Sign), nil
}
