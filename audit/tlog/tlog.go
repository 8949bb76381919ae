// Package tlog is yibao's transparency log for audit entries: an
// append-only, Certificate-Transparency-style Merkle log in which every
// entry can be proven present (inclusion) and every published state proven
// to extend the previous one (consistency), so that neither the platform
// nor anyone with access to its disks can quietly rewrite the audit
// history.
//
// # Format
//
// The log is a tile-based log (c2sp.org/tlog-tiles) built with tessera's
// POSIX driver: a SHA-256 RFC 6962 Merkle tree whose entries, hash tiles
// and checkpoint are plain files in one directory, interoperable with the
// transparency-dev tools (tessera's client and fsck, witnesses). Entries
// are opaque byte strings of at most 65,535 bytes; the audit package
// decides what they contain.
//
// Checkpoints (c2sp.org/tlog-checkpoint) are signed notes
// (golang.org/x/mod/sumdb/note) carrying TWO signatures by keys named as
// the log's origin:
//
//   - Ed25519, the standard note signature that witnesses and the
//     transparency-dev tools understand;
//   - SM2 (GM/T compliance), made with yibao/gmcrypto over the note text
//     (SM3 digest, default user ID, ASN.1 DER). Its key ID follows note's
//     convention, SHA-256(name || "\n" || type || public key)[:4], with
//     type SM2SignatureType = 0xff "yibao/sm2" (0xff is C2SP signed-note's
//     byte for signature types it does not assign, to be followed by a
//     longer identifier). Verifier keys: SM2VerifierKey / NewSM2Verifier.
//
// # API
//
//	l, err := tlog.Open(ctx, tlog.Config{Dir: dir, Origin: origin, Ed25519: ed, SM2: sm})
//	idx, err := l.Add(ctx, entry)            // durably sequenced and integrated
//	cp, err := l.AwaitIntegrated(ctx, idx)   // a published checkpoint covers idx
//	r, err := l.Receipt(ctx, idx, entry)     // inclusion proof + signed checkpoint
//	err = tlog.VerifyReceipt(r, verifiers)   // anywhere, offline
//
// Log also offers AddMany, Checkpoint, Size, Entry, Scan, Consistency,
// Handler (the read-only tlog-tiles HTTP API: mount under /log/ with
// http.StripPrefix) and Close. Offline checks: VerifyReceipt,
// VerifyCheckpointConsistency (for witnesses and auditors keeping the last
// checkpoint they saw; ErrSplitView, ErrRollback, ErrInconsistent),
// OpenCheckpoint, and VerifyTree, which re-derives the whole tree from the
// directory alone (every entry bundle, every hash tile, the root against
// the signed checkpoint) and cross-checks with tessera's fsck. Bench
// measures append throughput (yibao bench log).
//
// # Writers
//
// One Log per directory: Open takes an exclusive lock on Dir/.writer.lock
// and fails if another Log (in this or another process) holds it. Readers
// (Handler over NewHandler, VerifyTree) need no lock.
//
// # Exactly once
//
// Add returns once the entry is durably sequenced; an entry whose Add
// failed or was abandoned (context cancelled, crash) may or may not be in
// the log. Callers that must append each record exactly once keep their
// own record of the index (see the recovery recipe in the Log.Scan
// documentation): Size and Entry/Scan let them find entries appended but
// not recorded.
package tlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Defaults for Config's zero values.
const (
	DefaultBatchMaxAge        = 50 * time.Millisecond
	DefaultBatchMaxSize       = 256
	DefaultCheckpointInterval = 200 * time.Millisecond
	// MaxEntrySize is the largest entry (tlog-tiles' limit).
	MaxEntrySize = tessera.DefaultEntrySizeLimit
)

// minCheckpointInterval is the POSIX driver's lower bound.
const minCheckpointInterval = 100 * time.Millisecond

// Config configures Open.
type Config struct {
	// Dir is the log's directory (checkpoint, tile/…, tessera's private
	// .state/). It is created if missing.
	Dir string
	// Origin is the checkpoint's origin line, e.g.
	// "yibao.example/log/370100". Both signers must be named so (note key
	// names are the origin by tlog-checkpoint convention). Empty means
	// Ed25519.Name().
	Origin string
	// Ed25519 signs checkpoints first (NewEd25519Signer).
	Ed25519 note.Signer
	// SM2 signs checkpoints second (NewSM2Signer).
	SM2 note.Signer
	// BatchMaxAge is the longest an entry waits to be sequenced with
	// others (default 50 ms); BatchMaxSize the largest batch (default
	// 256, one entry bundle). Batches are written one at a time, each
	// with a handful of fsync'd files, and Add returns when its batch is
	// written: with c concurrent callers, throughput is about
	// c/(BatchMaxAge+write time) until c reaches BatchMaxSize, then
	// bounded by the disk's fsync rate (see Bench).
	BatchMaxAge  time.Duration
	BatchMaxSize uint
	// CheckpointInterval is how often a new checkpoint may be signed and
	// published (default 200 ms, at least 100 ms).
	CheckpointInterval time.Duration
}

// Log is an open, writable transparency log. Its methods are safe for
// concurrent use.
type Log struct {
	dir    string
	origin string

	appender *tessera.Appender
	reader   tessera.LogReader
	shutdown func(context.Context) error
	awaiter  *tessera.PublicationAwaiter
	cancel   context.CancelFunc
	lock     *os.File

	mu       sync.RWMutex // guards closed against Add starting
	closed   bool
	inflight sync.WaitGroup // Adds whose futures have not resolved

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the log in cfg.Dir and starts its
// background sequencing and checkpoint publication. Close it.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Dir == "" {
		return nil, errors.New("tlog: Config.Dir is empty")
	}
	if cfg.Ed25519 == nil || cfg.SM2 == nil {
		return nil, errors.New("tlog: both the Ed25519 and the SM2 signer are required")
	}
	if cfg.Origin == "" {
		cfg.Origin = cfg.Ed25519.Name()
	}
	if cfg.Ed25519.Name() != cfg.Origin || cfg.SM2.Name() != cfg.Origin {
		return nil, fmt.Errorf("tlog: signer names %q and %q must both be the origin %q", cfg.Ed25519.Name(), cfg.SM2.Name(), cfg.Origin)
	}
	if cfg.BatchMaxAge <= 0 {
		cfg.BatchMaxAge = DefaultBatchMaxAge
	}
	if cfg.BatchMaxSize == 0 {
		cfg.BatchMaxSize = DefaultBatchMaxSize
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.CheckpointInterval < minCheckpointInterval {
		cfg.CheckpointInterval = minCheckpointInterval
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkOrigin(cfg.Dir, cfg.Origin); err != nil {
		lock.Close()
		return nil, err
	}

	// The background tasks outlive Open's context: they stop in Close.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fail := func(err error) (*Log, error) {
		cancel()
		lock.Close()
		return nil, err
	}
	driver, err := posix.New(bg, posix.Config{Path: cfg.Dir})
	if err != nil {
		return fail(fmt.Errorf("tlog: posix driver: %w", err))
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(cfg.Ed25519, cfg.SM2).
		WithBatching(cfg.BatchMaxSize, cfg.BatchMaxAge).
		WithCheckpointInterval(cfg.CheckpointInterval)
	appender, shutdown, reader, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		return fail(fmt.Errorf("tlog: %w", err))
	}
	poll := min(cfg.CheckpointInterval/4, 50*time.Millisecond)
	return &Log{
		dir:      cfg.Dir,
		origin:   cfg.Origin,
		appender: appender,
		reader:   reader,
		shutdown: shutdown,
		awaiter:  tessera.NewPublicationAwaiter(bg, reader.ReadCheckpoint, poll),
		cancel:   cancel,
		lock:     lock,
	}, nil
}

// lockDir takes the single-writer lock. flock locks belong to the open
// file, so a second Open in the same process is refused too (tessera's own
// fcntl locks do not exclude a second appender in the same process).
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".writer.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("tlog: %s is open by another writer: %w", dir, err)
	}
	return f, nil
}

// checkOrigin refuses to append to a directory holding another log.
func checkOrigin(dir, origin string) error {
	raw, err := os.ReadFile(filepath.Join(dir, layout.CheckpointPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tlog: %w", err)
	}
	cp, err := parseCheckpointUnverified(raw)
	if err != nil {
		return fmt.Errorf("tlog: existing checkpoint in %s: %w", dir, err)
	}
	if cp.Origin != origin {
		return fmt.Errorf("%w: %s holds log %q, not %q", ErrWrongOrigin, dir, cp.Origin, origin)
	}
	return nil
}

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.origin }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// enqueue hands data to tessera and returns its future; the caller must
// resolve it (which calls inflight.Done).
func (l *Log) enqueue(ctx context.Context, data []byte) (func() (uint64, error), error) {
	if len(data) > MaxEntrySize {
		return nil, fmt.Errorf("tlog: entry of %d bytes exceeds %d", len(data), MaxEntrySize)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	l.inflight.Add(1)
	// Copy: the entry stays queued after a cancelled Add returns.
	f := l.appender.Add(ctx, tessera.NewEntry(append([]byte(nil), data...)))
	return sync.OnceValues(func() (uint64, error) {
		defer l.inflight.Done()
		i, err := f()
		if err != nil {
			return 0, fmt.Errorf("tlog: add: %w", err)
		}
		return i.Index, nil
	}), nil
}

// Add appends data and returns its index once it is durably sequenced and
// integrated into the tree (tessera's Add future; with the POSIX driver
// both happen in the same fsync'd batch). Its published checkpoint follows
// within about CheckpointInterval: AwaitIntegrated waits for it.
//
// Add blocks for up to BatchMaxAge while a batch fills: to append many
// entries, call Add from many goroutines or use AddMany. If ctx ends first
// Add returns ctx's error, but the entry may still be appended.
func (l *Log) Add(ctx context.Context, data []byte) (uint64, error) {
	f, err := l.enqueue(ctx, data)
	if err != nil {
		return 0, err
	}
	type result struct {
		i   uint64
		err error
	}
	c := make(chan result, 1)
	go func() {
		i, err := f()
		c <- result{i, err}
	}()
	select {
	case r := <-c:
		return r.i, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// AddMany appends every entry of data, concurrently (they are batched
// together), and returns their indices in the order of data. On error some
// of the entries may have been appended: reconcile as described for Scan.
func (l *Log) AddMany(ctx context.Context, data [][]byte) ([]uint64, error) {
	futures := make([]func() (uint64, error), 0, len(data))
	var firstErr error
	for _, d := range data {
		f, err := l.enqueue(ctx, d)
		if err != nil {
			firstErr = err
			break
		}
		futures = append(futures, f)
	}
	idx := make([]uint64, len(futures))
	for i, f := range futures {
		if err := ctx.Err(); err != nil && firstErr == nil {
			firstErr = err
		}
		if firstErr != nil {
			go f() // resolve in the background (releases Close)
			continue
		}
		n, err := f()
		if err != nil {
			firstErr = err
			continue
		}
		idx[i] = n
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return idx, nil
}

// AwaitIntegrated waits until a published checkpoint covers index (its size
// exceeds index) and returns that checkpoint, using tessera's
// PublicationAwaiter. index must already be sequenced (returned by Add):
// otherwise it returns ErrNotFound at once.
func (l *Log) AwaitIntegrated(ctx context.Context, index uint64) ([]byte, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	next, err := l.reader.NextIndex(ctx)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	if index >= next {
		return nil, fmt.Errorf("%w: index %d (the log has %d entries)", ErrNotFound, index, next)
	}
	_, cp, err := l.awaiter.Await(ctx, func() (tessera.Index, error) { return tessera.Index{Index: index}, nil })
	if err != nil {
		return nil, fmt.Errorf("tlog: await: %w", err)
	}
	return cp, nil
}

// Checkpoint returns the latest published checkpoint, a signed note.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, error) {
	cp, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("tlog: checkpoint: %w", err)
	}
	return cp, nil
}

// Size returns the number of entries durably in the log (sequenced and
// integrated; with the POSIX driver these are the same): every index below
// it can be read with Entry, even right after a restart. The published
// checkpoint may lag behind by up to about CheckpointInterval; proofs are
// against the checkpoint.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	n, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return 0, fmt.Errorf("tlog: size: %w", err)
	}
	return n, nil
}

// Entry returns the data of entry index, read back from its entry bundle.
func (l *Log) Entry(ctx context.Context, index uint64) ([]byte, error) {
	var out []byte
	err := l.Scan(ctx, index, index+1, func(_ uint64, data []byte) error {
		out = data
		return nil
	})
	return out, err
}

// Scan calls fn for every entry with from <= index < to, in index order,
// reading whole entry bundles (256 entries) at a time; to beyond Size is
// ErrNotFound. fn's data is its own. A non-nil error from fn stops Scan and
// is returned.
//
// Recovery recipe for exactly-once appends (the caller records each
// entry's index in its own table after Add): on start, before appending
// anything new, let h be the number of log entries the table accounts for
// (max recorded index + 1) and n := Size(); Scan(h, n) and, for each
// entry, identify its record (the entry carries the record's own ID) and
// record the index. Records still without an index were never appended:
// append them now. Add's failures during operation are handled the same
// way, by running the recovery before retrying.
func (l *Log) Scan(ctx context.Context, from, to uint64, fn func(index uint64, data []byte) error) error {
	size, err := l.Size(ctx)
	if err != nil {
		return err
	}
	if to > size || from > to {
		return fmt.Errorf("%w: [%d, %d) in a log of %d entries", ErrNotFound, from, to, size)
	}
	for ri := range layout.Range(from, to-from, size) {
		raw, err := l.reader.ReadEntryBundle(ctx, ri.Index, ri.Partial)
		if err != nil {
			return fmt.Errorf("tlog: entry bundle %d: %w", ri.Index, err)
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fmt.Errorf("%w: entry bundle %d: %v", ErrCorrupt, ri.Index, err)
		}
		if uint(len(b.Entries)) < ri.First+ri.N {
			return fmt.Errorf("%w: entry bundle %d has %d entries", ErrCorrupt, ri.Index, len(b.Entries))
		}
		for i := ri.First; i < ri.First+ri.N; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(ri.Index*layout.EntryBundleWidth+uint64(i), append([]byte(nil), b.Entries[i]...)); err != nil {
				return err
			}
		}
	}
	return nil
}

// published returns the latest checkpoint and its parsed body (the log's
// own file: its signatures are not checked here).
func (l *Log) published(ctx context.Context) ([]byte, *CheckpointInfo, error) {
	raw, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, nil, err
	}
	cp, err := parseCheckpointUnverified(raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, cp, nil
}

// Receipt returns the proof that data is entry index, against the latest
// published checkpoint. The receipt is checked before it is returned: data
// that is not the entry at index gives ErrNotIncluded; an index not yet
// covered by a checkpoint gives ErrNotPublished (AwaitIntegrated first).
func (l *Log) Receipt(ctx context.Context, index uint64, data []byte) (*Receipt, error) {
	raw, cp, err := l.published(ctx)
	if err != nil {
		return nil, err
	}
	if index >= cp.Size {
		return nil, fmt.Errorf("%w: index %d, checkpoint size %d", ErrNotPublished, index, cp.Size)
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, l.reader.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("tlog: inclusion proof: %w", err)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(data)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, leaf, p, cp.Root); err != nil {
		return nil, fmt.Errorf("%w: the log does not hold this data at index %d", ErrNotIncluded, index)
	}
	return &Receipt{Index: index, Data: append([]byte(nil), data...), Proof: p, Checkpoint: string(raw)}, nil
}

// Consistency returns the RFC 6962 consistency proof between tree sizes
// from <= to, both at most the published checkpoint's size, for
// VerifyCheckpointConsistency.
func (l *Log) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	_, cp, err := l.published(ctx)
	if err != nil {
		return nil, err
	}
	if from > to {
		return nil, fmt.Errorf("%w: consistency from %d to smaller %d", ErrMalformed, from, to)
	}
	if to > cp.Size {
		return nil, fmt.Errorf("%w: size %d, checkpoint size %d", ErrNotPublished, to, cp.Size)
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, l.reader.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w", err)
	}
	p, err := pb.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("tlog: consistency proof: %w", err)
	}
	return p, nil
}

func (l *Log) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// closeTimeout bounds Close: in-flight batches, then tessera's shutdown
// (which waits for a checkpoint covering every index it handed out).
const closeTimeout = 60 * time.Second

// Close stops appending, waits until every entry already handed out an
// index (and every queued entry) is covered by a published checkpoint,
// then stops the background tasks and releases the directory. Further
// calls to Add fail with ErrClosed; Handler keeps serving the files.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		drained := make(chan struct{})
		go func() {
			l.inflight.Wait()
			close(drained)
		}()
		select {
		case <-drained:
		case <-ctx.Done():
			l.closeErr = errors.New("tlog: close: queued entries were not sequenced in time")
		}
		if err := l.shutdown(ctx); err != nil && l.closeErr == nil {
			l.closeErr = fmt.Errorf("tlog: close: %w", err)
		}
		l.cancel()
		if err := l.lock.Close(); err != nil && l.closeErr == nil {
			l.closeErr = fmt.Errorf("tlog: close: %w", err)
		}
	})
	return l.closeErr
}
