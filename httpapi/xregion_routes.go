package httpapi

import (
	"net/http"
	"time"

	"yibao"
	"yibao/money"
	"yibao/registry"
)

// xregionRoutes are the bureau's side of cross-region care on this node
// (docs/cross-region.md): the filings (备案) of the persons it insures,
// and its positions with other regions for a clearing month. Visits of
// persons insured elsewhere go through the ordinary visit routes.
func (s *Server) xregionRoutes() []route {
	return []route{
		{method: "GET", path: "/api/v1/persons/{psn_no}/filings", access: anyone, h: s.listFilings},
		{method: "POST", path: "/api/v1/persons/{psn_no}/filings", access: anyone, idempotent: true, h: s.createFiling},
		{method: "POST", path: "/api/v1/filings/{filing_id}/revoke", access: anyone, idempotent: true, h: s.revokeFiling},

		{method: "GET", path: "/api/v1/xr/positions", access: anyone, h: s.xrPositions},
	}
}

// --- filings ---

func (s *Server) listFilings(c *call) error {
	ctx, psn := c.r.Context(), c.path("psn_no")
	list, err := s.registry.Filings(ctx, psn)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) createFiling(c *call) error {
	var in struct {
		Kind          string `json:"kind"`
		DestAdmdvs    string `json:"dest_admdvs"`
		FixmedinsCode string `json:"fixmedins_code"`
		BeginDate     string `json:"begin_date"`
		EndDate       string `json:"end_date"`
		Reason        string `json:"reason"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	ctx, psn := c.r.Context(), c.path("psn_no")
	f, err := s.registry.CreateFiling(ctx, registry.Filing{PsnNo: psn, Kind: in.Kind, DestAdmdvs: in.DestAdmdvs,
		FixmedinsCode: in.FixmedinsCode, BeginDate: in.BeginDate, EndDate: in.EndDate, Reason: in.Reason})
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, f)
}

func (s *Server) revokeFiling(c *call) error {
	f, err := s.registry.RevokeFiling(c.r.Context(), c.path("filing_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, f)
}

// --- positions ---

// xrPosition is settlement.Position with amounts in yuan, as everywhere
// in the API.
type xrPosition struct {
	Own         string    `json:"own"`
	Other       string    `json:"other"`
	Receivable  money.Fen `json:"receivable"`
	Payable     money.Fen `json:"payable"`
	Net         money.Fen `json:"net"`
	Settlements int       `json:"settlements"`
	Reversals   int       `json:"reversals"`
}

// xrPositions answers GET /api/v1/xr/positions?clr_month=YYYY-MM: this
// node's cross-region positions for the month, by pair of regions, and
// the check of its ledger against them. Administrators only (the
// settlement service leaves the check to its callers: the hub calls it
// through /xr/v1/positions).
func (s *Server) xrPositions(c *call) error {
	ctx := c.r.Context()
	month := c.query("clr_month")
	if _, err := time.Parse("2006-01", month); err != nil || len(month) != len("2006-01") {
		return yibao.FieldError("clr_month", "want a clearing month YYYY-MM")
	}
	p, err := s.settle.PositionsFor(ctx, month)
	if err != nil {
		return err
	}
	items := make([]xrPosition, len(p.Positions))
	for i, x := range p.Positions {
		items[i] = xrPosition{Own: x.Own, Other: x.Other, Receivable: money.Fen(x.Receivable), Payable: money.Fen(x.Payable),
			Net: money.Fen(x.Receivable - x.Payable), Settlements: x.Settlements, Reversals: x.Reversals}
	}
	problems := p.LedgerProblems
	if problems == nil {
		problems = []string{}
	}
	return c.json(http.StatusOK, struct {
		Month          string       `json:"clr_month"`
		Positions      []xrPosition `json:"positions"`
		Unreported     int          `json:"unreported"`
		LedgerProblems []string     `json:"ledger_problems"`
	}{p.Month, items, p.Unreported, problems})
}
