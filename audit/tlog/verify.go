package tlog

import (
	"bytes"
	"errors"
	"fmt"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Error kinds. Errors returned by this package wrap one of these; test with
// errors.Is.
var (
	// ErrBadSignature: a checkpoint does not open with the given verifiers
	// (unsigned, signed only by unknown keys, a known key's signature
	// invalid, a key required by RequireAll missing, or no verified
	// signature by a key named as the checkpoint's origin).
	ErrBadSignature = errors.New("tlog: checkpoint signature does not verify")
	// ErrMalformed: a receipt, checkpoint or proof is not well formed.
	ErrMalformed = errors.New("tlog: malformed")
	// ErrNotIncluded: the inclusion proof does not show the data at the
	// index under the checkpoint's root (or the index is beyond its size).
	ErrNotIncluded = errors.New("tlog: entry not included")
	// ErrInconsistent: two views of the log disagree: a consistency proof
	// fails, or a checkpoint's root is not the root of the stored entries.
	ErrInconsistent = errors.New("tlog: inconsistent")
	// ErrSplitView: two validly signed checkpoints of the same size have
	// different roots — the log showed two different histories.
	ErrSplitView = errors.New("tlog: split view: same size, different roots")
	// ErrRollback: a checkpoint is smaller than one seen before.
	ErrRollback = errors.New("tlog: rollback: checkpoint smaller than a previous one")
	// ErrWrongOrigin: checkpoints of different logs were compared.
	ErrWrongOrigin = errors.New("tlog: checkpoints of different logs")
	// ErrMissing: a file of the log's directory is missing.
	ErrMissing = errors.New("tlog: missing resource")
	// ErrCorrupt: a file of the log's directory is malformed or does not
	// match what the entries imply.
	ErrCorrupt = errors.New("tlog: corrupt resource")
	// ErrNotFound: no entry at that index yet.
	ErrNotFound = errors.New("tlog: no such entry")
	// ErrNotPublished: the entry or size is not yet covered by a published
	// checkpoint; wait with AwaitIntegrated.
	ErrNotPublished = errors.New("tlog: not yet covered by a published checkpoint")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("tlog: log closed")
)

// Receipt proves offline that Data is entry Index of the log whose signed
// checkpoint is Checkpoint. It marshals to JSON with the byte fields in
// base64. Verify it with VerifyReceipt and the log's verifier keys only.
type Receipt struct {
	Index      uint64   `json:"index"`
	Data       []byte   `json:"data"`       // the entry bytes
	Proof      [][]byte `json:"proof"`      // RFC 6962 inclusion proof, leaf to root
	Checkpoint string   `json:"checkpoint"` // the signed note (tlog-checkpoint)
}

// CheckpointInfo is the body of a verified checkpoint.
type CheckpointInfo struct {
	Origin string
	Size   uint64
	Root   []byte
	// Signers lists the keys (name and key ID) whose signatures verified.
	Signers []note.Signature
}

// OpenCheckpoint verifies a signed checkpoint with verifiers and parses it.
// The note must carry a valid signature by a known key named as its origin
// line (the log's own key; other known keys, e.g. witnesses', may sign
// too), no invalid signature by a known key, and a signature by every key
// of a RequireAll set. Errors wrap ErrBadSignature or ErrMalformed.
func OpenCheckpoint(raw []byte, verifiers note.Verifiers) (*CheckpointInfo, error) {
	if verifiers == nil {
		return nil, fmt.Errorf("%w: no verifiers given", ErrBadSignature)
	}
	n, err := note.Open(raw, verifiers)
	if err != nil {
		if _, ok := err.(*note.UnverifiedNoteError); ok {
			return nil, fmt.Errorf("%w: no signature by a known key", ErrBadSignature)
		}
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if req, ok := verifiers.(requirement); ok {
		for _, v := range req.required() {
			found := false
			for _, s := range n.Sigs {
				if s.Name == v.Name() && s.Hash == v.KeyHash() {
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("%w: no signature by required key %s+%08x", ErrBadSignature, v.Name(), v.KeyHash())
			}
		}
	}
	info, err := parseCheckpointText([]byte(n.Text))
	if err != nil {
		return nil, err
	}
	byLog := false
	for _, s := range n.Sigs {
		byLog = byLog || s.Name == info.Origin
	}
	if !byLog {
		return nil, fmt.Errorf("%w: no verified signature by a key of the origin %q", ErrBadSignature, info.Origin)
	}
	info.Signers = n.Sigs
	return info, nil
}

// parseCheckpointText parses a checkpoint body (origin, size, base64 root,
// optional extension lines).
func parseCheckpointText(text []byte) (*CheckpointInfo, error) {
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal(text); err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrMalformed, err)
	}
	if len(cp.Hash) != rfc6962.DefaultHasher.Size() {
		return nil, fmt.Errorf("%w: checkpoint root is %d bytes", ErrMalformed, len(cp.Hash))
	}
	return &CheckpointInfo{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash}, nil
}

// parseCheckpointUnverified reads a checkpoint's body without checking its
// signatures: only for the log's own files.
func parseCheckpointUnverified(raw []byte) (*CheckpointInfo, error) {
	i := bytes.Index(raw, []byte("\n\n"))
	if i < 0 {
		return nil, fmt.Errorf("%w: checkpoint is not a signed note", ErrMalformed)
	}
	return parseCheckpointText(raw[:i+1])
}

// VerifyReceipt checks a receipt offline: the checkpoint opens with
// verifiers (see OpenCheckpoint; pass RequireAll to insist on both the
// Ed25519 and the SM2 signature), then the RFC 6962 leaf hash of Data is
// shown by Proof to sit at Index under the checkpoint's root. Errors wrap
// ErrMalformed, ErrBadSignature or ErrNotIncluded.
func VerifyReceipt(r *Receipt, verifiers note.Verifiers) error {
	if r == nil {
		return fmt.Errorf("%w: nil receipt", ErrMalformed)
	}
	cp, err := OpenCheckpoint([]byte(r.Checkpoint), verifiers)
	if err != nil {
		return err
	}
	if r.Index >= cp.Size {
		return fmt.Errorf("%w: index %d is beyond the checkpoint's size %d", ErrNotIncluded, r.Index, cp.Size)
	}
	for _, h := range r.Proof {
		if len(h) != rfc6962.DefaultHasher.Size() {
			return fmt.Errorf("%w: proof hash of %d bytes", ErrMalformed, len(h))
		}
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(r.Data)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, leaf, r.Proof, cp.Root); err != nil {
		return fmt.Errorf("%w: entry %d under checkpoint of size %d: %v", ErrNotIncluded, r.Index, cp.Size, err)
	}
	return nil
}

// VerifyCheckpointConsistency is what a witness (or an auditor keeping the
// last checkpoint it saw) runs: both checkpoints open with verifiers, have
// the same origin, and proof shows that the tree of newer extends the tree
// of older. Same size with different roots is ErrSplitView; newer smaller
// than older is ErrRollback; a proof that fails is ErrInconsistent.
func VerifyCheckpointConsistency(older, newer string, consistency [][]byte, verifiers note.Verifiers) error {
	o, err := OpenCheckpoint([]byte(older), verifiers)
	if err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	n, err := OpenCheckpoint([]byte(newer), verifiers)
	if err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	return checkConsistency(o, n, consistency)
}

func checkConsistency(o, n *CheckpointInfo, consistency [][]byte) error {
	switch {
	case o.Origin != n.Origin:
		return fmt.Errorf("%w: %q and %q", ErrWrongOrigin, o.Origin, n.Origin)
	case n.Size < o.Size:
		return fmt.Errorf("%w: size %d after size %d", ErrRollback, n.Size, o.Size)
	case n.Size == o.Size:
		if !bytes.Equal(o.Root, n.Root) {
			return fmt.Errorf("%w: size %d has roots %x and %x", ErrSplitView, n.Size, o.Root, n.Root)
		}
		if len(consistency) != 0 {
			return fmt.Errorf("%w: non-empty consistency proof between equal sizes", ErrMalformed)
		}
		return nil
	}
	for _, h := range consistency {
		if len(h) != rfc6962.DefaultHasher.Size() {
			return fmt.Errorf("%w: proof hash of %d bytes", ErrMalformed, len(h))
		}
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, o.Size, n.Size, consistency, o.Root, n.Root); err != nil {
		return fmt.Errorf("%w: sizes %d → %d: %v", ErrInconsistent, o.Size, n.Size, err)
	}
	return nil
}
