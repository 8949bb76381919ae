package xregion

import (
	"context"
	"encoding/json"
	"time"

	"yibao"
	"yibao/settlement"
	"yibao/xregion/wire"
)

// Recover asks the hub how every settlement this node prepared and has
// not heard of for DoubtAfter ended, and applies the answer: the treating
// side posts or voids its pending legs, the insured side commits or
// aborts what it reserved. It returns how many it resolved. A hub that
// does not answer leaves them for the next round.
func (n *Node) Recover(ctx context.Context) (int, error) {
	before := n.now().Add(-n.cfg.DoubtAfter)
	done := 0
	treating, err := n.settle.InDoubtTreating(ctx, before)
	if err != nil {
		return 0, err
	}
	for _, id := range treating {
		d, err := n.decision(ctx, id)
		if err != nil {
			n.log.Warn("cross-region: the hub did not say how a settlement ended", "setl_id", id, "err", err)
			continue
		}
		if _, err := n.settle.ResolveTreating(ctx, id, d); err != nil {
			return done, err
		}
		done++
	}
	insured, err := n.settle.InDoubtInsured(ctx, before)
	if err != nil {
		return done, err
	}
	for _, id := range insured {
		d, err := n.decision(ctx, id)
		if err != nil {
			n.log.Warn("cross-region: the hub did not say how a prepared settlement ended", "txid", id, "err", err)
			continue
		}
		if d.Committed {
			err = n.settle.CommitInsured(ctx, id, d.ClrMonth)
		} else {
			err = n.settle.AbortInsured(ctx, id)
		}
		if err != nil {
			return done, err
		}
		done++
	}
	return done, nil
}

func (n *Node) decision(ctx context.Context, txid string) (*settlement.Decision, error) {
	var d settlement.Decision
	if err := n.client.Call(ctx, n.cfg.HubURL, "/hub/v1/decision", map[string]string{"txid": txid}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Report sends the hub every reversal waiting in the outbox and returns
// how many it took. A refusal or silence leaves the message for later,
// with backoff up to a minute.
func (n *Node) Report(ctx context.Context) (int, error) {
	rows, err := n.db.Query(ctx, `SELECT id, kind, body, attempts FROM xr_outbox WHERE done_at = 0 AND next_at <= ? ORDER BY created_at LIMIT 200`,
		n.now().UnixMicro())
	if err != nil {
		return 0, err
	}
	type msg struct {
		id, kind, body string
		attempts       int
	}
	var due []msg
	for rows.Next() {
		var m msg
		if err := rows.Scan(&m.id, &m.kind, &m.body, &m.attempts); err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	sent := 0
	for _, m := range due {
		var in struct {
			TxID string `json:"txid"`
		}
		json.Unmarshal([]byte(m.body), &in)
		var out struct {
			RevMonth string `json:"rev_month"`
		}
		err := n.client.Call(ctx, n.cfg.HubURL, "/hub/v1/reverse", in, &out)
		if err == nil {
			if err := n.settle.SetReversalMonth(ctx, in.TxID, out.RevMonth); err != nil {
				return sent, err
			}
			sent++
		}
		err = wire.Outcome(ctx, n.db, "xr_outbox", m.id, m.attempts, n.now(), err)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// Run recovers and reports every interval until ctx ends.
func (n *Node) Run(ctx context.Context, interval time.Duration) {
	yibao.EveryOrWoken(ctx, interval, nil, func(ctx context.Context) {
		if _, err := n.Report(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("cross-region report", "err", err)
		}
		if _, err := n.Recover(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("cross-region recovery", "err", err)
		}
	})
}
