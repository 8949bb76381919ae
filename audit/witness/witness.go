// Package witness follows a yibao transparency log from the outside: it
// keeps the last checkpoint it accepted, accepts a new one only if its
// signatures verify and a consistency proof (built from the log's
// published tiles) shows it extends the old one, and refuses a rollback
// or a split view. What it accepts it cosigns with its own key, so that
// others can require checkpoints a witness has seen.
package witness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"yibao/audit/tlog"
)

// State is what a witness keeps between runs.
type State struct {
	Checkpoint string    `json:"checkpoint"` // the last accepted checkpoint (signed note)
	Size       uint64    `json:"size"`
	Cosigned   string    `json:"cosigned"` // that checkpoint with the witness's cosignature added
	At         time.Time `json:"at"`
}

// Witness follows one log.
type Witness struct {
	LogURL    string         // where the log's tiles are served, e.g. http://host/log/
	Verifiers note.Verifiers // the log's checkpoint keys
	Signer    note.Signer    // the witness's own key (nil: no cosignature)
	StatePath string
	Client    *http.Client
}

// Outcome is the result of one Update.
type Outcome struct {
	Old, New uint64 // sizes
	First    bool   // no earlier checkpoint: trusted on first use
	Cosigned string
}

// Update fetches the log's checkpoint and accepts it if it verifies and
// extends the kept one. A rollback is tlog.ErrRollback, two roots for one
// size tlog.ErrSplitView, a failing proof tlog.ErrInconsistent; the kept
// state is then unchanged, and the error carries both checkpoints.
func (w *Witness) Update(ctx context.Context) (*Outcome, error) {
	u, err := url.Parse(w.LogURL)
	if err != nil {
		return nil, err
	}
	if u.Path == "" || u.Path[len(u.Path)-1] != '/' {
		u.Path += "/"
	}
	c := w.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	f, err := client.NewHTTPFetcher(u, c)
	if err != nil {
		return nil, err
	}
	raw, err := f.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching the checkpoint: %w", err)
	}
	cp, err := tlog.OpenCheckpoint(raw, w.Verifiers)
	if err != nil {
		return nil, err
	}
	old, err := w.load()
	if err != nil {
		return nil, err
	}
	out := &Outcome{New: cp.Size}
	if old == nil {
		out.First = true
	} else {
		out.Old = old.Size
		var proof [][]byte
		if old.Size > 0 && old.Size < cp.Size {
			pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
			if err != nil {
				return nil, fmt.Errorf("reading the log's tiles: %w", err)
			}
			if proof, err = pb.ConsistencyProof(ctx, old.Size, cp.Size); err != nil {
				return nil, fmt.Errorf("%w: no consistency proof from %d to %d: %v", tlog.ErrInconsistent, old.Size, cp.Size, err)
			}
		}
		if err := tlog.VerifyCheckpointConsistency(old.Checkpoint, string(raw), proof, w.Verifiers); err != nil {
			return nil, fmt.Errorf("%w\nkept checkpoint:\n%s\noffered checkpoint:\n%s", err, old.Checkpoint, raw)
		}
	}
	st := &State{Checkpoint: string(raw), Size: cp.Size, At: time.Now().UTC(), Cosigned: string(raw)}
	if w.Signer != nil {
		if st.Cosigned, err = Cosign(raw, w.Signer, w.Verifiers); err != nil {
			return nil, err
		}
	}
	out.Cosigned = st.Cosigned
	return out, w.save(st)
}

// Cosign adds the witness's signature to a checkpoint note.
func Cosign(raw []byte, s note.Signer, logKeys note.Verifiers) (string, error) {
	n, err := note.Open(raw, logKeys)
	if err != nil {
		return "", err
	}
	b, err := note.Sign(n, s)
	return string(b), err
}

func (w *Witness) load() (*State, error) {
	b, err := os.ReadFile(w.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("witness state %s: %w", w.StatePath, err)
	}
	return &st, nil
}

func (w *Witness) save(st *State) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.MkdirAll(filepath.Dir(w.StatePath), 0o700); err != nil {
		return err
	}
	tmp := w.StatePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, w.StatePath)
}
