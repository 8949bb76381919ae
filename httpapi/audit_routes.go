package httpapi

import (
	"net/http"
	"strconv"

	"yibao"
)

// auditRoutes are the audit browser's reads and receipts. The log itself
// is served read-only under /log/ in the tile layout (public).
func (s *Server) auditRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/audit/log", access: public, h: s.auditLogInfo},
		{method: "GET", path: "/api/v1/audit/entries", access: anyone, h: s.auditEntries},
		{method: "GET", path: "/api/v1/audit/entries/{id}/receipt", access: anyone, h: s.auditReceipt},
	}
}

// auditLogInfo tells a verifier what it needs: the log's origin, its
// latest checkpoint and the keys that sign checkpoints.
func (s *Server) auditLogInfo(c *call) error {
	cp, err := s.audit.Log.Checkpoint(c.r.Context())
	if err != nil {
		return yibao.Errorf(yibao.CodeUnavailable, "no checkpoint yet: %v", err)
	}
	return c.json(http.StatusOK, map[string]any{"origin": s.auditOrigin, "checkpoint": string(cp), "verifier_keys": s.auditKeys,
		"tiles": "/log/"})
}

func (s *Server) auditEntries(c *call) error {
	n, err := c.limit()
	if err != nil {
		return err
	}
	var before int64
	if b := c.query("before"); b != "" {
		if before, err = strconv.ParseInt(b, 10, 64); err != nil {
			return yibao.FieldError("before", "a sequence number")
		}
	}
	out, err := s.audit.Entries(c.r.Context(), c.query("kind"), c.query("subject"), before, n)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) auditReceipt(c *call) error {
	if err := yibao.RequireAdmin(c.r.Context()); err != nil {
		return err
	}
	r, err := s.audit.ReceiptFor(c.r.Context(), c.path("id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, r)
}

// appSettlementReceipt is the patient's verifiable receipt of one of
// their settlements: the audit entry of its latest state, its inclusion
// proof and the signed checkpoint, as a file to keep.
func (s *Server) appSettlementReceipt(c *call) error {
	ctx, st, err := s.appOwnSettlement(c)
	if err != nil {
		return err
	}
	id, err := s.audit.LatestFor(ctx, st.SetlID)
	if err != nil {
		return err
	}
	r, err := s.audit.ReceiptFor(ctx, id)
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Disposition", `attachment; filename="yibao-receipt-`+st.SetlID+`.json"`)
	return c.json(http.StatusOK, map[string]any{"receipt": r, "verifier_keys": s.auditKeys, "origin": s.auditOrigin})
}
