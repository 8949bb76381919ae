package httpapi

import (
	"net/http"

	"yibao"
	"yibao/credit"
	"yibao/money"
)

// creditRoutes are credit payment's routes: banks and the bureau's view
// (administrators), the inpatient guarantee (hospitals), the banks'
// signed callbacks, and the daily settlement file.
func (s *Server) creditRoutes() []route {
	return s.needCredit([]route{
		{method: "GET", path: "/api/v1/credit/banks", access: anyone, h: s.creditBanks},
		{method: "POST", path: "/api/v1/credit/banks", access: staff, idempotent: true, dual: true, h: s.creditRegisterBank},
		{method: "GET", path: "/api/v1/credit/exposure", access: staff, h: s.creditExposure},
		{method: "GET", path: "/api/v1/credit/settlement-files", access: staff, h: s.creditDayReports},
		{method: "POST", path: "/api/v1/credit/settlement-files", access: staff, h: s.creditSettleDay},
		{method: "POST", path: "/api/v1/credit/cycle", access: staff, h: s.creditCycle},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/credit-guarantee", access: anyone, idempotent: true, h: s.creditOpenGuarantee},
		{method: "GET", path: "/api/v1/visits/{mdtrt_id}/credit-guarantee", access: anyone, h: s.creditGuarantee},
		{method: "DELETE", path: "/api/v1/visits/{mdtrt_id}/credit-guarantee", access: anyone, h: s.creditReleaseGuarantee},
		{method: "POST", path: "/api/v1/credit/notify/{bank_code}", access: public, h: s.creditNotify},
	})
}

// needCredit makes routes answer unavailable when the platform runs
// without credit payment (banks "off").
func (s *Server) needCredit(rs []route) []route {
	for i := range rs {
		h := rs[i].h
		rs[i].h = func(c *call) error {
			if s.credit == nil {
				return yibao.Errorf(yibao.CodeUnavailable, "credit payment is switched off on this platform")
			}
			return h(c)
		}
	}
	return rs
}

func (s *Server) creditBanks(c *call) error {
	out, err := s.credit.Banks(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) creditRegisterBank(c *call) error {
	var in credit.BankInfo
	if err := c.decode(&in); err != nil {
		return err
	}
	b, err := s.credit.RegisterBank(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, b)
}

func (s *Server) creditExposure(c *call) error {
	out, err := s.credit.Exposure(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) creditDayReports(c *call) error {
	n, err := c.limit()
	if err != nil {
		return err
	}
	out, err := s.credit.DayReports(c.r.Context(), n)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

func (s *Server) creditSettleDay(c *call) error {
	var in struct {
		BankCode string `json:"bank_code"`
		Day      string `json:"day"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.Day == "" {
		in.Day = yibao.DateOf(s.now())
	}
	rep, err := s.credit.SettleDay(c.r.Context(), in.BankCode, in.Day)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, rep)
}

func (s *Server) creditCycle(c *call) error {
	if err := yibao.RequireAdmin(c.r.Context()); err != nil {
		return err
	}
	out, err := s.credit.Cycle(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) creditOpenGuarantee(c *call) error {
	g, err := s.credit.OpenGuarantee(c.r.Context(), c.path("mdtrt_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, g)
}

func (s *Server) creditGuarantee(c *call) error {
	g, err := s.credit.Guarantee(c.r.Context(), c.path("mdtrt_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, g)
}

func (s *Server) creditReleaseGuarantee(c *call) error {
	g, err := s.credit.ReleaseGuarantee(c.r.Context(), c.path("mdtrt_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, g)
}

// creditNotify takes a bank's signed callback (a repayment at its
// counter, a limit change, a suspension …). A forged or replayed one is
// refused; a duplicate is acknowledged without effect.
func (s *Server) creditNotify(c *call) error {
	bank := c.path("bank_code")
	cb, err := s.credit.ParseCallback(c.r.Context(), c.r, c.body, bank)
	if err != nil {
		s.log.WarnContext(c.r.Context(), "bank callback refused", "bank", bank, "err", err)
		return err
	}
	outcome, err := s.credit.Callback(c.r.Context(), bank, cb)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]string{"code": "SUCCESS", "outcome": outcome})
}

// --- the patient app ---

func (s *Server) appCreditRoutes() []route {
	return s.needCredit([]route{
		{method: "GET", path: "/app/api/credit", access: public, h: s.appCredit},
		{method: "GET", path: "/app/api/credit/consent", access: public, h: s.appCreditConsent},
		{method: "POST", path: "/app/api/credit/applications", access: public, h: s.appCreditApply},
		{method: "POST", path: "/app/api/credit/agreements/{agreement_no}/repay", access: public, h: s.appCreditRepay},
		{method: "POST", path: "/app/api/credit/agreements/{agreement_no}/close", access: public, h: s.appCreditClose},
	})
}

// appCredit is the patient's credit page: agreements with limit, debt
// and what is left, statements, repayments and messages.
func (s *Server) appCredit(c *call) error {
	psn, _, err := s.appPerson(c, "credit")
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	ags, err := s.credit.Agreements(ctx, psn)
	if err != nil {
		return err
	}
	sts, err := s.credit.Statements(ctx, psn)
	if err != nil {
		return err
	}
	rps, err := s.credit.Repayments(ctx, psn)
	if err != nil {
		return err
	}
	ns, err := s.credit.Notices(ctx, psn)
	if err != nil {
		return err
	}
	banks, err := s.credit.Banks(ctx)
	if err != nil {
		return err
	}
	type bank struct {
		BankCode         string `json:"bank_code"`
		Name             string `json:"name"`
		InterestFreeDays int    `json:"interest_free_days"`
	}
	bs := []bank{}
	for _, b := range banks {
		if b.Status == "active" {
			bs = append(bs, bank{b.BankCode, b.Name, b.InterestFreeDays})
		}
	}
	return c.json(http.StatusOK, map[string]any{"agreements": ags, "statements": sts, "repayments": rps, "notices": ns, "banks": bs,
		"wallets": s.pay.Channels()})
}

func (s *Server) appCreditConsent(c *call) error {
	if _, _, err := s.appPerson(c, "credit"); err != nil {
		return err
	}
	b, err := s.credit.BankByCode(c.r.Context(), c.query("bank_code"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, credit.ConsentText(b.Name, b.InterestFreeDays))
}

func (s *Server) appCreditApply(c *call) error {
	var in credit.ApplyRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	psn, _, err := s.appPerson(c, "credit")
	if err != nil {
		return err
	}
	a, err := s.credit.Apply(c.r.Context(), psn, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, a)
}

func (s *Server) appCreditRepay(c *call) error {
	var in struct {
		Amount money.Fen `json:"amount"`
		Wallet string    `json:"wallet"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	psn, _, err := s.appPerson(c, "credit")
	if err != nil {
		return err
	}
	rp, err := s.credit.Repay(c.r.Context(), psn, c.path("agreement_no"), credit.RepayRequest{Amount: in.Amount, Wallet: in.Wallet})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, rp)
}

func (s *Server) appCreditClose(c *call) error {
	psn, _, err := s.appPerson(c, "credit")
	if err != nil {
		return err
	}
	a, err := s.credit.Close(c.r.Context(), psn, c.path("agreement_no"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, a)
}
