// Package xregion joins a region node to the national hub
// (docs/cross-region.md). It is the settlement service's Remote: the
// questions a treating node asks about a person insured elsewhere, and
// the two-phase commit of a cross-region settlement, go to the hub as
// signed HTTP; the hub's questions and decisions arrive at the node's
// /xr/v1/ endpoints. A background loop resolves settlements left in
// doubt by a crash and reports reversals to the hub.
package xregion

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"yibao"
	"yibao/ecert"
	"yibao/gmcrypto"
	"yibao/settlement"
	"yibao/sqlstore"
	"yibao/xregion/wire"
)

// Config joins a node to the hub.
type Config struct {
	ID       string               // this node's id at the hub, e.g. "37"
	Prefixes []string             // 2-digit province codes whose insured this node keeps
	HubURL   string               // the hub's base URL
	HubKey   *gmcrypto.PublicKey  // the hub's public key
	Key      *gmcrypto.PrivateKey // this node's signing key
	Timeout  time.Duration        // per call to the hub; default 10 s
	// DoubtAfter is how long a prepared settlement waits before recovery
	// asks the hub how it ended; default 15 s.
	DoubtAfter time.Duration
	Log        *slog.Logger
}

// Node is this node's side of the cross-region protocol.
type Node struct {
	cfg    Config
	db     *sqlstore.DB
	settle *settlement.Service
	ecert  *ecert.Service
	client *wire.Client
	verify *wire.Verifier
	log    *slog.Logger
	clock  atomic.Pointer[func() time.Time]
}

// New builds the node side; set it as the settlement service's Remote.
func New(cfg Config, db *sqlstore.DB, settle *settlement.Service, ec *ecert.Service) *Node {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.DoubtAfter == 0 {
		cfg.DoubtAfter = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, db: db, settle: settle, ecert: ec, log: cfg.Log}
	n.client = &wire.Client{Signer: &wire.Signer{From: cfg.ID, Key: cfg.Key}, Timeout: cfg.Timeout}
	n.verify = &wire.Verifier{Keys: func(from string) *gmcrypto.PublicKey {
		if from == "hub" {
			return cfg.HubKey
		}
		return nil
	}}
	return n
}

// SetClock replaces the clock (tests).
func (n *Node) SetClock(now func() time.Time) { n.clock.Store(&now) }

// now reads the clock.
func (n *Node) now() time.Time {
	if f := n.clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// ID is the node's id at the hub.
func (n *Node) ID() string { return n.cfg.ID }

// Local reports whether this node keeps the insured persons of admdvs.
func (n *Node) Local(admdvs string) bool {
	return len(admdvs) == 6 && slices.Contains(n.cfg.Prefixes, admdvs[:2])
}

// forward asks the node keeping admdvs through the hub.
func (n *Node) forward(ctx context.Context, admdvs, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return n.client.Call(ctx, n.cfg.HubURL, "/hub/v1/forward", map[string]any{"admdvs": admdvs, "path": path, "body": json.RawMessage(body)}, out)
}

// Person fetches a person insured by another node.
func (n *Node) Person(ctx context.Context, r settlement.PersonRequest) (*settlement.RemotePerson, error) {
	var out settlement.RemotePerson
	return &out, n.forward(ctx, r.InsuAdmdvs, "/xr/v1/person", r, &out)
}

// Snapshot reads a person's accumulators at the insured node.
func (n *Node) Snapshot(ctx context.Context, r settlement.SnapshotRequest) (*settlement.Snapshot, error) {
	var out settlement.Snapshot
	return &out, n.forward(ctx, r.InsuAdmdvs, "/xr/v1/snapshot", r, &out)
}

// Policies fetches another region's published policies.
func (n *Node) Policies(ctx context.Context, admdvs string) ([][]byte, error) {
	var out struct {
		Docs []json.RawMessage `json:"docs"`
	}
	if err := n.forward(ctx, admdvs, "/xr/v1/policies", map[string]string{"admdvs": admdvs}, &out); err != nil {
		return nil, err
	}
	docs := make([][]byte, len(out.Docs))
	for i, d := range out.Docs {
		docs[i] = d
	}
	return docs, nil
}

// Commit asks the hub to run the two-phase commit of a prepared
// settlement.
func (n *Node) Commit(ctx context.Context, p *settlement.Prepare) (*settlement.Decision, error) {
	var d settlement.Decision
	if err := n.client.Call(ctx, n.cfg.HubURL, "/hub/v1/begin", p, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Handler serves the hub's messages to this node under /xr/v1/.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	on := func(path string, f func(ctx context.Context, body []byte) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			_, body, err := n.verify.Verify(r)
			if err != nil {
				wire.Reply(w, nil, err)
				return
			}
			ctx := yibao.WithPrincipal(r.Context(), yibao.System("cross-region"))
			v, err := f(ctx, body)
			if err != nil && yibao.ErrorCode(err) == yibao.CodeInternal {
				n.log.Error("cross-region message", "path", path, "err", err)
			}
			wire.Reply(w, v, err)
		})
	}
	on("/xr/v1/person", decoded(func(ctx context.Context, in settlement.PersonRequest) (any, error) {
		return n.settle.PersonInsured(ctx, in)
	}))
	on("/xr/v1/snapshot", decoded(func(ctx context.Context, in settlement.SnapshotRequest) (any, error) {
		return n.settle.SnapshotInsured(ctx, in)
	}))
	on("/xr/v1/policies", decoded(func(ctx context.Context, in struct {
		Admdvs string `json:"admdvs"`
	}) (any, error) {
		docs, err := n.settle.PublishedDocs(ctx, in.Admdvs)
		if err != nil {
			return nil, err
		}
		raw := make([]json.RawMessage, len(docs))
		for i, d := range docs {
			raw[i] = d
		}
		return map[string]any{"docs": raw}, nil
	}))
	on("/xr/v1/ecert/resolve", decoded(func(ctx context.Context, in codeRequest) (any, error) {
		if n.ecert == nil {
			return nil, yibao.Errorf(yibao.CodeUnavailable, "this node has no e-certificate service")
		}
		return n.ecert.UseForeignCode(ctx, in.Code, in.FixmedinsCode)
	}))
	on("/xr/v1/prepare", decoded(func(ctx context.Context, in settlement.Prepare) (any, error) {
		return n.settle.PrepareInsured(ctx, &in)
	}))
	type txMsg struct {
		TxID     string `json:"txid"`
		ClrMonth string `json:"clr_month,omitempty"`
		RevMonth string `json:"rev_month,omitempty"`
	}
	on("/xr/v1/commit", decoded(func(ctx context.Context, in txMsg) (any, error) {
		return ok, n.settle.CommitInsured(ctx, in.TxID, in.ClrMonth)
	}))
	on("/xr/v1/abort", decoded(func(ctx context.Context, in txMsg) (any, error) { return ok, n.settle.AbortInsured(ctx, in.TxID) }))
	on("/xr/v1/reverse", decoded(func(ctx context.Context, in txMsg) (any, error) {
		return ok, n.settle.ReverseInsured(ctx, in.TxID, in.RevMonth)
	}))
	on("/xr/v1/decision", decoded(func(ctx context.Context, d settlement.Decision) (any, error) {
		// The hub pushes the decision of a settlement this node treats.
		if d.TxID == "" {
			return nil, yibao.FieldError("txid", "a decision names its transaction")
		}
		_, err := n.settle.ResolveTreating(ctx, d.TxID, &d)
		return ok, err
	}))
	on("/xr/v1/positions", decoded(func(ctx context.Context, in struct {
		Month string `json:"clr_month"`
	}) (any, error) {
		return n.settle.PositionsFor(ctx, in.Month)
	}))
	on("/xr/v1/clearing", decoded(func(ctx context.Context, in struct {
		Month string           `json:"clr_month"`
		Nets  map[string]int64 `json:"nets"`
	}) (any, error) {
		return ok, n.settle.PostClearing(ctx, in.Month, in.Nets)
	}))
	return mux
}

var ok = map[string]bool{"ok": true}

// decoded adapts a handler of a typed message to the raw body (strict
// decoding, wire.Decode).
func decoded[T any](f func(ctx context.Context, in T) (any, error)) func(context.Context, []byte) (any, error) {
	return func(ctx context.Context, body []byte) (any, error) {
		var in T
		if err := wire.Decode(body, &in); err != nil {
			return nil, err
		}
		return f(ctx, in)
	}
}

// codeRequest carries an e-certificate code shown at another region's
// hospital.
type codeRequest struct {
	Code           string `json:"code"`
	FixmedinsCode  string `json:"fixmedins_code"`
	TreatingAdmdvs string `json:"treating_admdvs"`
}

// ResolveCode resolves a code of another province's platform shown at one
// of this node's institutions: the code's node checks and consumes it
// (through the hub), this node copies the person and their coverage and
// issues its own ecToken. It is the e-certificate service's Remote.
func (n *Node) ResolveCode(ctx context.Context, text, codeRegion, institution, instAdmdvs string) (*ecert.Resolution, error) {
	if n.Local(codeRegion) {
		return nil, yibao.Errorf(yibao.CodeInvalid, "the code is of this node's own province")
	}
	var u ecert.UsedCode
	if err := n.forward(ctx, codeRegion, "/xr/v1/ecert/resolve", codeRequest{Code: text, FixmedinsCode: institution, TreatingAdmdvs: instAdmdvs}, &u); err != nil {
		return nil, err
	}
	insured := u.PsnNo[:min(4, len(u.PsnNo))] + "00"
	if !yibao.ValidAdmdvs(insured) || insured[:2] != codeRegion[:2] {
		insured = codeRegion
	}
	if _, _, err := n.settle.ImportRemotePerson(ctx, settlement.PersonRequest{PsnNo: u.PsnNo, InsuAdmdvs: insured, TreatingAdmdvs: instAdmdvs,
		FixmedinsCode: institution, Date: yibao.DateOf(n.now())}); err != nil {
		return nil, err
	}
	return n.ecert.CrossRegionResolution(ctx, &u, institution)
}
