package httpapi

import (
	"bytes"
	"mime"
	"net/http"
	"strconv"

	"yibao"
	"yibao/funds"
)

// fundRoutes are fund operations: contribution files, crediting and
// payout runs, corrections, dual-control approval, the bank's files, the
// fund dashboard and personal-account statements. Administrators, except
// an institution reading its own payouts.
func (s *Server) fundRoutes() []route {
	return s.needFunds([]route{
		{method: "GET", path: "/api/v1/fund-runs", access: staff, h: s.fundRuns},
		{method: "GET", path: "/api/v1/fund-runs/{run_id}", access: staff, h: s.fundRun},
		{method: "POST", path: "/api/v1/fund-runs/{run_id}/approve", access: staff, idempotent: true, h: s.fundApprove},
		{method: "POST", path: "/api/v1/fund-runs/{run_id}/reject", access: staff, idempotent: true, h: s.fundReject},
		{method: "GET", path: "/api/v1/fund-runs/{run_id}/bank-file", access: staff, h: s.fundBankFile},
		{method: "POST", path: "/api/v1/fund-runs/contributions", access: staff, idempotent: true, maxBody: -1, h: s.fundContributions},
		{method: "GET", path: "/api/v1/fund-jobs/{id}", access: staff, h: s.fundJob},
		{method: "POST", path: "/api/v1/fund-runs/crediting", access: staff, idempotent: true, h: s.fundCrediting},
		{method: "POST", path: "/api/v1/fund-runs/payout", access: staff, idempotent: true, h: s.fundPayout},
		{method: "POST", path: "/api/v1/fund-runs/corrections", access: staff, idempotent: true, h: s.fundCorrection},
		{method: "GET", path: "/api/v1/fund-payouts", access: anyone, h: s.fundPayouts},
		{method: "POST", path: "/api/v1/fund-payouts/confirmations", access: staff, idempotent: true, maxBody: -1, h: s.fundConfirm},
		{method: "GET", path: "/api/v1/funds/dashboard", access: staff, h: s.fundDashboard},
		{method: "GET", path: "/api/v1/persons/{psn_no}/account-statement", access: staff, h: s.fundStatement},
	})
}

func (s *Server) needFunds(rs []route) []route {
	for i := range rs {
		h := rs[i].h
		rs[i].h = func(c *call) error {
			if s.funds == nil {
				return yibao.Errorf(yibao.CodeUnavailable, "fund operations are not available on this server")
			}
			return h(c)
		}
	}
	return rs
}

func (s *Server) fundRuns(c *call) error {
	n, err := c.limit()
	if err != nil {
		return err
	}
	out, err := s.funds.Runs(c.r.Context(), c.query("kind"), n)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) fundRun(c *call) error {
	r, err := s.funds.Get(c.r.Context(), c.path("run_id"))
	if err != nil {
		return err
	}
	lines, err := s.funds.Lines(c.r.Context(), r.RunID, 500)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"run": r, "lines": lines})
}

func (s *Server) fundApprove(c *call) error {
	r, err := s.funds.Approve(c.r.Context(), c.path("run_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, r)
}

func (s *Server) fundReject(c *call) error {
	var in struct {
		Note string `json:"note"`
	}
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	r, err := s.funds.Reject(c.r.Context(), c.path("run_id"), in.Note)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, r)
}

func (s *Server) fundBankFile(c *call) error {
	b, err := s.funds.BankFile(c.r.Context(), c.path("run_id"))
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	c.w.Header().Set("Content-Disposition", `attachment; filename="payout-`+c.path("run_id")+`.csv"`)
	c.status = http.StatusOK
	c.w.WriteHeader(http.StatusOK)
	_, err = c.w.Write(b)
	return err
}

func (s *Server) csvBody(c *call) error {
	if int64(len(c.body)) > s.cfg.MaxImportBytes {
		return yibao.Errorf(yibao.CodeTooLarge, "files are limited to %d bytes", s.cfg.MaxImportBytes)
	}
	if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt != "text/csv" {
		return yibao.Errorf(yibao.CodeUnsupportedType, "send the file as text/csv")
	}
	return nil
}

func (s *Server) fundContributions(c *call) error {
	if err := s.csvBody(c); err != nil {
		return err
	}
	j, err := s.funds.StartContributions(c.r.Context(), c.body)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/api/v1/fund-jobs/"+j.ID)
	return c.json(http.StatusAccepted, j)
}

func (s *Server) fundJob(c *call) error {
	j, err := s.funds.JobByID(c.r.Context(), c.path("id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, j)
}

type periodRequest struct {
	Admdvs string `json:"admdvs"`
	Period string `json:"period"`
}

func (s *Server) fundCrediting(c *call) error {
	var in periodRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	r, err := s.funds.PrepareCrediting(c.r.Context(), in.Admdvs, in.Period)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, r)
}

func (s *Server) fundPayout(c *call) error {
	var in periodRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	r, err := s.funds.PreparePayout(c.r.Context(), in.Admdvs, in.Period)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, r)
}

func (s *Server) fundCorrection(c *call) error {
	var in funds.CorrectionRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	r, err := s.funds.PrepareCorrection(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, r)
}

func (s *Server) fundPayouts(c *call) error {
	out, err := s.funds.Payouts(c.r.Context(), c.query("run_id"), c.query("fixmedins_code"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) fundConfirm(c *call) error {
	if err := s.csvBody(c); err != nil {
		return err
	}
	res, err := s.funds.Confirm(c.r.Context(), bytes.NewReader(c.body))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, res)
}

func (s *Server) fundDashboard(c *call) error {
	months := 12
	if v := c.query("months"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 36 {
			return yibao.FieldError("months", "1–36")
		}
		months = n
	}
	admdvs := c.query("admdvs")
	if admdvs == "" {
		return yibao.FieldError("admdvs", "name the region")
	}
	out, err := s.funds.Dashboard(c.r.Context(), admdvs, months)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"admdvs": admdvs, "funds": out})
}

func (s *Server) fundStatement(c *call) error {
	if err := yibao.RequireAdmin(c.r.Context()); err != nil {
		return err
	}
	n, err := c.limit()
	if err != nil {
		return err
	}
	out, err := s.funds.Statement(c.r.Context(), c.path("psn_no"), n)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, out)
}
