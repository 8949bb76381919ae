package tlog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"
)

// TreeReport is what VerifyTree found.
type TreeReport struct {
	Dir        string
	Checkpoint string // the directory's checkpoint, as read
	Origin     string
	Size       uint64 // the checkpoint's size
	// CheckpointRoot is the root the checkpoint signs; Root the root
	// recomputed from the entry bundles (nil if they could not all be
	// read). They are equal in a sound log.
	CheckpointRoot []byte
	Root           []byte
	// IntegratedSize is tessera's private tree state (.state/treeState),
	// 0 if absent: above Size in a live log between publications, or when
	// the checkpoint was rolled back.
	IntegratedSize uint64
	Bundles        int    // entry bundles read
	Tiles          int    // hash tiles compared with the recomputed ones
	Fsck           string // tessera's fsck over the same directory: "ok", "skipped: …" or its failure
	// Problems found, each wrapping an error kind (ErrBadSignature,
	// ErrMissing, ErrCorrupt, ErrInconsistent, ErrRollback, …).
	Problems []error
	// Warnings are findings that are not proof of tampering by themselves.
	Warnings []string
}

// OK reports whether no problem was found.
func (r *TreeReport) OK() bool { return len(r.Problems) == 0 }

func (r *TreeReport) err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("tlog: %s: %d problem(s): %w", r.Dir, len(r.Problems), errors.Join(r.Problems...))
}

func (r *TreeReport) problem(kind error, format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...)))
}

// VerifyTree re-derives the log in dir from its files alone: it opens the
// checkpoint with verifiers, reads every entry bundle the checkpoint
// covers, recomputes every hash tile and the root, and compares them with
// the stored tiles and the signed root. If that finds nothing, tessera's
// fsck checks the directory again independently. known are checkpoints
// seen earlier (kept by the caller, a witness or an auditor): the
// directory's checkpoint must not be smaller (ErrRollback), nor of the same
// size with another root (ErrSplitView), and its tree must extend each of
// them (ErrInconsistent).
//
// The report is always returned; the error is nil if and only if no
// problem was found, otherwise it joins the problems (errors.Is works with
// the kinds). VerifyTree takes no lock: run it on a closed log or a copy,
// or expect warnings about a live writer.
func VerifyTree(ctx context.Context, dir string, verifiers note.Verifiers, known ...string) (*TreeReport, error) {
	rep := &TreeReport{Dir: dir}
	raw, err := os.ReadFile(filepath.Join(dir, layout.CheckpointPath))
	if err != nil {
		rep.problem(missingOr(err), "checkpoint: %v", err)
		return rep, rep.err()
	}
	rep.Checkpoint = string(raw)
	cp, err := OpenCheckpoint(raw, verifiers)
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Errorf("checkpoint: %w", err))
		// Go on with the unverified body, to report what else is wrong.
		if cp, err = parseCheckpointUnverified(raw); err != nil {
			return rep, rep.err()
		}
	}
	rep.Origin, rep.Size, rep.CheckpointRoot = cp.Origin, cp.Size, cp.Root

	if ts, err := readTreeState(dir); err == nil {
		rep.IntegratedSize = ts.Size
		switch {
		case ts.Size > cp.Size:
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("the directory holds %d entries but its checkpoint covers %d: a live log between publications, or a rolled-back checkpoint", ts.Size, cp.Size))
		case ts.Size < cp.Size:
			rep.problem(ErrInconsistent, "tessera's tree state (.state/treeState) has size %d, below the checkpoint's %d: the next append would overwrite published entries", ts.Size, cp.Size)
		case !bytes.Equal(ts.Root, cp.Root):
			rep.problem(ErrInconsistent, "tessera's tree state (.state/treeState) has root %x, the checkpoint %x", ts.Root, cp.Root)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("tessera's tree state: %v", err))
	}

	// Earlier checkpoints: the tree must extend them.
	wantRoots := map[uint64][]*CheckpointInfo{}
	for i, k := range known {
		kc, err := OpenCheckpoint([]byte(k), verifiers)
		switch {
		case err != nil:
			rep.Problems = append(rep.Problems, fmt.Errorf("known checkpoint #%d: %w", i, err))
		case kc.Origin != cp.Origin:
			rep.problem(ErrWrongOrigin, "known checkpoint #%d is of %q, the directory of %q", i, kc.Origin, cp.Origin)
		case kc.Size > cp.Size:
			rep.problem(ErrRollback, "the directory's checkpoint (size %d) is older than known checkpoint #%d (size %d)", cp.Size, i, kc.Size)
		case kc.Size == cp.Size && !bytes.Equal(kc.Root, cp.Root):
			rep.problem(ErrSplitView, "known checkpoint #%d and the directory's checkpoint both have size %d but roots %x and %x", i, kc.Size, kc.Root, cp.Root)
		case kc.Size > 0:
			wantRoots[kc.Size] = append(wantRoots[kc.Size], kc)
		}
	}

	rb := &rebuild{ctx: ctx, dir: dir, rep: rep, pending: map[compact.NodeID][][]byte{}}
	root, err := rb.run(cp.Size, wantRoots)
	if err != nil {
		return rep, fmt.Errorf("tlog: verify %s: %w", dir, err) // ctx ended
	}
	rep.Root = root
	if root != nil && !bytes.Equal(root, cp.Root) {
		rep.problem(ErrInconsistent, "the checkpoint signs root %x, the entries give %x", cp.Root, root)
	}

	if !rep.OK() {
		rep.Fsck = "skipped: problems found already"
	} else if err := runFsck(ctx, dir, cp, verifiers); err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		rep.Fsck = err.Error()
		rep.problem(ErrCorrupt, "tessera fsck: %v", err)
	} else {
		rep.Fsck = "ok"
	}
	return rep, rep.err()
}

func missingOr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrMissing
	}
	return ErrCorrupt
}

// treeState is tessera POSIX's private record of the integrated tree.
type treeState struct {
	Size uint64 `json:"size"`
	Root []byte `json:"root"`
}

func readTreeState(dir string) (*treeState, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ".state", "treeState"))
	if err != nil {
		return nil, err
	}
	var ts treeState
	if err := json.Unmarshal(raw, &ts); err != nil {
		return nil, err
	}
	return &ts, nil
}

// rebuild recomputes the tree from the entry bundles, the way tessera's
// fsck does (a compact range whose visitor collects the tile rows), but
// carries on past a bad resource so that every problem is reported.
type rebuild struct {
	ctx     context.Context
	dir     string
	rep     *TreeReport
	tree    *compact.Range
	pending map[compact.NodeID][][]byte // tile (level, index) → nodes so far
}

func (rb *rebuild) run(size uint64, wantRoots map[uint64][]*CheckpointInfo) ([]byte, error) {
	rb.tree = (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for ri := range layout.Range(0, size, size) {
		if err := rb.ctx.Err(); err != nil {
			return nil, err
		}
		hashes, ok := rb.bundleHashes(ri)
		if !ok {
			rb.rep.problem(ErrMissing, "cannot recompute the tree beyond entry %d: the root and the remaining tiles are unchecked", ri.Index*layout.EntryBundleWidth)
			return nil, nil
		}
		for _, h := range hashes {
			if err := rb.tree.Append(h, rb.visit); err != nil {
				return nil, err
			}
			if cps := wantRoots[rb.tree.End()]; cps != nil {
				r, err := rb.tree.GetRootHash(nil)
				if err != nil {
					return nil, err
				}
				for _, kc := range cps {
					if !bytes.Equal(r, kc.Root) {
						rb.rep.problem(ErrInconsistent, "a known checkpoint of size %d has root %x, the directory's tree %x at that size", kc.Size, kc.Root, r)
					}
				}
			}
		}
	}
	// The right edge: partial tiles.
	keys := make([]compact.NodeID, 0, len(rb.pending))
	for k := range rb.pending {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b compact.NodeID) int {
		if c := cmp.Compare(a.Level, b.Level); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	for _, k := range keys {
		rb.checkTile(uint64(k.Level), k.Index, rb.pending[k])
	}
	if size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	return rb.tree.GetRootHash(nil)
}

// visit collects the nodes stored in tiles (every 8th level) and checks a
// tile once it is full.
func (rb *rebuild) visit(id compact.NodeID, h []byte) {
	if id.Level%layout.TileHeight != 0 {
		return
	}
	k := compact.NodeID{Level: id.Level / layout.TileHeight, Index: id.Index / layout.TileWidth}
	nodes := append(rb.pending[k], h)
	if len(nodes) == layout.TileWidth {
		delete(rb.pending, k)
		rb.checkTile(uint64(k.Level), k.Index, nodes)
		return
	}
	rb.pending[k] = nodes
}

// readPartialOrFull reads the partial resource of width p, falling back to
// the full one as tlog-tiles clients do; it reports the width it read (0:
// full).
func (rb *rebuild) readPartialOrFull(path func(p uint8) string, p uint8) ([]byte, uint8, string, error) {
	if p > 0 {
		b, err := os.ReadFile(filepath.Join(rb.dir, path(p)))
		if !errors.Is(err, fs.ErrNotExist) {
			return b, p, path(p), err
		}
	}
	b, err := os.ReadFile(filepath.Join(rb.dir, path(0)))
	if errors.Is(err, fs.ErrNotExist) {
		if p > 0 {
			return nil, p, path(p), fmt.Errorf("%w (nor the full %s)", fs.ErrNotExist, path(0))
		}
		return nil, 0, path(0), fs.ErrNotExist
	}
	return b, 0, path(0), err
}

// bundleHashes returns the leaf hashes of the entries of bundle ri. A bad
// bundle is reported; the hashes are then taken from its level-0 tile, if
// that can be read, so that the rest of the tree can still be checked.
func (rb *rebuild) bundleHashes(ri layout.RangeInfo) ([][]byte, bool) {
	raw, got, name, err := rb.readPartialOrFull(func(p uint8) string { return layout.EntriesPath(ri.Index, p) }, ri.Partial)
	rb.rep.Bundles++
	want := int(got)
	if got == 0 {
		want = layout.EntryBundleWidth
	}
	var b api.EntryBundle
	if err != nil {
		rb.rep.problem(missingOr(err), "%s: %v", name, err)
	} else if err := b.UnmarshalText(raw); err != nil {
		rb.rep.problem(ErrCorrupt, "%s: %v", name, err)
	} else if len(b.Entries) != want {
		rb.rep.problem(ErrCorrupt, "%s holds %d entries, want %d", name, len(b.Entries), want)
	} else {
		hs := make([][]byte, 0, ri.N)
		for _, e := range b.Entries[ri.First : ri.First+ri.N] {
			hs = append(hs, rfc6962.DefaultHasher.HashLeaf(e))
		}
		return hs, true
	}
	// Fall back on the stored leaf hashes.
	traw, _, _, err := rb.readPartialOrFull(func(p uint8) string { return layout.TilePath(0, ri.Index, p) }, ri.Partial)
	var t api.HashTile
	if err != nil || t.UnmarshalText(traw) != nil || uint(len(t.Nodes)) < ri.First+ri.N {
		return nil, false
	}
	rb.rep.Warnings = append(rb.rep.Warnings, fmt.Sprintf("%s: continuing with the leaf hashes of its tile", name))
	return t.Nodes[ri.First : ri.First+ri.N], true
}

// checkTile compares a recomputed tile with the stored one.
func (rb *rebuild) checkTile(level, index uint64, nodes [][]byte) {
	rb.rep.Tiles++
	p := uint8(len(nodes) % layout.TileWidth)
	raw, got, name, err := rb.readPartialOrFull(func(p uint8) string { return layout.TilePath(level, index, p) }, p)
	if err != nil {
		rb.rep.problem(missingOr(err), "%s: %v", name, err)
		return
	}
	want := bytes.Join(nodes, nil)
	if got == 0 && p > 0 && len(raw) == layout.TileWidth*32 {
		raw = raw[:len(want)] // a full tile stands in for a removed partial one
	}
	if len(raw) != len(want) {
		rb.rep.problem(ErrCorrupt, "%s has %d bytes, want %d", name, len(raw), len(want))
		return
	}
	if !bytes.Equal(raw, want) {
		for i := 0; i < len(want); i += 32 {
			if !bytes.Equal(raw[i:i+32], want[i:i+32]) {
				rb.rep.problem(ErrCorrupt, "%s: hash %d does not match the entries", name, i/32)
				return
			}
		}
	}
}

// runFsck runs tessera's fsck over the directory.
func runFsck(ctx context.Context, dir string, cp *CheckpointInfo, verifiers note.Verifiers) error {
	if len(cp.Signers) == 0 {
		return errors.New("no verified signature")
	}
	v, err := verifiers.Verifier(cp.Signers[0].Name, cp.Signers[0].Hash)
	if err != nil {
		return err
	}
	// fsck's tile workers stop at their first mismatch and its bundle
	// stream then blocks once the work queue (N deep) is full, so fsck
	// only runs on a directory that the rebuild found sound, with a
	// queue deep enough for every tile of small logs, and abandoned if ctx
	// ends.
	n := min(max(tileCount(cp.Size), 1), 64)
	f := fsck.New(cp.Origin, v, bundleCountChecker{client.FileFetcher{Root: dir}}, leafHashes, fsck.Opts{N: n})
	done := make(chan error, 1)
	go func() { done <- f.Check(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tileCount is the number of hash tiles of a tree of the given size.
func tileCount(size uint64) uint {
	var n uint64
	for s := size; s > 0; s >>= layout.TileHeight {
		n += (s + layout.TileWidth - 1) / layout.TileWidth
	}
	return uint(n)
}

func leafHashes(bundle []byte) ([][]byte, error) {
	var b api.EntryBundle
	if err := b.UnmarshalText(bundle); err != nil {
		return nil, err
	}
	hs := make([][]byte, len(b.Entries))
	for i, e := range b.Entries {
		hs[i] = rfc6962.DefaultHasher.HashLeaf(e)
	}
	return hs, nil
}

// bundleCountChecker refuses bundles with fewer entries than asked for:
// fsck would index past the end of a short bundle's hashes.
type bundleCountChecker struct{ client.FileFetcher }

func (c bundleCountChecker) ReadEntryBundle(ctx context.Context, i uint64, p uint8) ([]byte, error) {
	raw, err := c.FileFetcher.ReadEntryBundle(ctx, i, p)
	if err != nil {
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, err
	}
	want := int(p)
	if p == 0 {
		want = layout.EntryBundleWidth
	}
	if len(b.Entries) < want {
		return nil, fmt.Errorf("entry bundle %d holds %d entries, want %d", i, len(b.Entries), want)
	}
	return raw, nil
}
