package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"yibao"
	"yibao/ledger/engine"
	"yibao/policy"
	"yibao/settlement"
)

// settlementRoutes are the visit, settlement, policy and ledger routes.
func (s *Server) settlementRoutes() []route {
	return []route{
		{method: "POST", path: "/api/v1/calc", access: anyone, maxBody: 8 << 20, h: s.calc},

		{method: "GET", path: "/api/v1/visits", access: anyone, h: s.listVisits},
		{method: "POST", path: "/api/v1/visits", access: anyone, idempotent: true, h: s.openVisit},
		{method: "GET", path: "/api/v1/visits/{mdtrt_id}", access: anyone, h: s.getVisit},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/fee-lines", access: anyone, idempotent: true, maxBody: 4 << 20, h: s.addFeeLines},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/fee-lines/cancel", access: anyone, idempotent: true, h: s.cancelFeeLines},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/discharge", access: anyone, idempotent: true, h: s.discharge},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/transfer", access: anyone, idempotent: true, h: s.transferDept},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/cancel", access: anyone, idempotent: true, h: s.cancelVisit},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/presettle", access: anyone, h: s.presettle},
		{method: "POST", path: "/api/v1/visits/{mdtrt_id}/settle", access: anyone, idempotent: true, h: s.settleVisit},

		{method: "GET", path: "/api/v1/settlements/{setl_id}", access: anyone, h: s.getSettlement},
		{method: "POST", path: "/api/v1/settlements/{setl_id}/complete", access: anyone, idempotent: true, h: s.completeSettlement},
		{method: "POST", path: "/api/v1/settlements/{setl_id}/void", access: anyone, idempotent: true, h: s.voidSettlement},
		{method: "POST", path: "/api/v1/settlements/{setl_id}/reverse", access: anyone, idempotent: true, h: s.reverseSettlement},

		{method: "GET", path: "/api/v1/persons/{psn_no}/accumulators", access: anyone, h: s.accumulators},
		{method: "GET", path: "/api/v1/persons/{psn_no}/settlements", access: anyone, h: s.personSettlements},
		{method: "GET", path: "/api/v1/persons/{psn_no}/family", access: anyone, h: s.familyLinks},
		{method: "POST", path: "/api/v1/family-links", access: staff, idempotent: true, h: s.linkFamily},
		{method: "DELETE", path: "/api/v1/family-links/{holder}/{member}", access: staff, idempotent: true, h: s.unlinkFamily},

		{method: "GET", path: "/api/v1/institutions/{code}/slots", access: anyone, h: s.listSlots},
		{method: "POST", path: "/api/v1/institutions/{code}/slots", access: anyone, idempotent: true, h: s.publishSlots},

		{method: "GET", path: "/api/v1/policies", access: anyone, h: s.listPolicies},
		{method: "POST", path: "/api/v1/policies", access: staff, idempotent: true, maxBody: 4 << 20, h: s.draftPolicy},
		{method: "GET", path: "/api/v1/policies/{admdvs}/{version}", access: anyone, h: s.getPolicy},
		{method: "POST", path: "/api/v1/policies/{admdvs}/{version}/submit", access: staff, idempotent: true, h: s.policyAction},
		{method: "POST", path: "/api/v1/policies/{admdvs}/{version}/approve", access: staff, idempotent: true, h: s.policyAction},
		{method: "POST", path: "/api/v1/policies/{admdvs}/{version}/reject", access: staff, idempotent: true, h: s.policyAction},
		{method: "POST", path: "/api/v1/policies/{admdvs}/{version}/replay", access: staff, h: s.replayPolicy},

		{method: "GET", path: "/api/v1/stats/settlements", access: anyone, h: s.settlementStats},

		{method: "GET", path: "/api/v1/ledger/accounts/{id}", access: anyone, h: s.ledgerAccount},
		{method: "GET", path: "/api/v1/ledger/accounts/{id}/statement", access: anyone, h: s.ledgerStatement},
		{method: "GET", path: "/api/v1/ledger/transfers", access: anyone, h: s.ledgerTransfers},
	}
}

func (s *Server) calc(c *call) error {
	var buf bytes.Buffer
	if err := policy.RunCalc(bytes.NewReader(c.body), &buf, c.query("explain") == "true"); err != nil {
		return err
	}
	c.status = http.StatusOK
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(buf.Bytes())
	return nil
}

// --- visits ---

func (s *Server) listVisits(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	list, next, err := s.settle.Visits(c.r.Context(), settlement.VisitFilter{FixmedinsCode: c.query("fixmedins_code"),
		PsnNo: c.query("psn_no"), Status: c.query("status"), Before: c.query("before"), Limit: limit})
	if err != nil {
		return err
	}
	out := map[string]any{"items": list}
	if next != "" {
		out["next"] = next
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) openVisit(c *call) error {
	var in struct {
		settlement.VisitRequest
		// EcToken, from resolving the patient's e-certificate code, names
		// the patient instead of psn_no (mdtrt_cert_type 01).
		EcToken string `json:"ec_token"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	ctx := c.r.Context()
	if in.EcToken != "" {
		if in.PsnNo != "" {
			return yibao.FieldError("psn_no", "give psn_no or ec_token, not both")
		}
		psn, certID, err := s.ecert.TokenPerson(ctx, in.EcToken)
		if err != nil {
			return err
		}
		in.PsnNo, in.MdtrtCertType, in.MdtrtCertNo = psn, "01", certID
	} else if in.MdtrtCertType == "01" {
		return yibao.FieldError("mdtrt_cert_type", "an e-certificate visit is opened with its ec_token")
	}
	v, err := s.settle.OpenVisit(ctx, in.VisitRequest)
	if err != nil {
		return err
	}
	if in.EcToken != "" {
		if err := s.ecert.BindToken(ctx, in.EcToken, v.MdtrtID); err != nil {
			return err
		}
	}
	return c.json(http.StatusCreated, v)
}

func (s *Server) getVisit(c *call) error {
	v, err := s.settle.GetVisit(c.r.Context(), c.path("mdtrt_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) addFeeLines(c *call) error {
	var in struct {
		Lines []settlement.FeeLineInput `json:"lines"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.settle.AddFeeLines(c.r.Context(), c.path("mdtrt_id"), in.Lines)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) cancelFeeLines(c *call) error {
	var in struct {
		Sns []string `json:"feedetl_sns"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.settle.CancelFeeLines(c.r.Context(), c.path("mdtrt_id"), in.Sns)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) discharge(c *call) error {
	var in struct {
		EndDate string `json:"end_date"`
	}
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	v, err := s.settle.Discharge(c.r.Context(), c.path("mdtrt_id"), in.EndDate)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) transferDept(c *call) error {
	var in struct {
		DeptCode string `json:"dept_code"`
		DeptName string `json:"dept_name"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.settle.TransferDept(c.r.Context(), c.path("mdtrt_id"), in.DeptCode, in.DeptName)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) cancelVisit(c *call) error {
	v, err := s.settle.CancelVisit(c.r.Context(), c.path("mdtrt_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) presettle(c *call) error {
	var in settlement.SettleRequest
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	p, err := s.settle.PreSettle(c.r.Context(), c.path("mdtrt_id"), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, p)
}

func (s *Server) settleVisit(c *call) error {
	var in settlement.SettleRequest
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	if in.Explain {
		return yibao.FieldError("explain", "explanations come with pre-settlement")
	}
	st, err := s.settle.Settle(c.r.Context(), c.path("mdtrt_id"), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, st)
}

// --- settlements ---

func (s *Server) getSettlement(c *call) error {
	st, err := s.settle.GetSettlement(c.r.Context(), c.path("setl_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, st)
}

func (s *Server) completeSettlement(c *call) error {
	var in struct {
		Channel string `json:"channel"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	st, err := s.settle.Complete(c.r.Context(), c.path("setl_id"), in.Channel)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, st)
}

func (s *Server) voidSettlement(c *call) error {
	st, err := s.settle.Void(c.r.Context(), c.path("setl_id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, st)
}

func (s *Server) reverseSettlement(c *call) error {
	// Cash already refunded through the payment is not returned again.
	refunded, err := s.pay.RefundedFor(c.r.Context(), c.path("setl_id"))
	if err != nil {
		return err
	}
	st, err := s.settle.ReverseRefunded(c.r.Context(), c.path("setl_id"), refunded)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, st)
}

// --- persons ---

func (s *Server) accumulators(c *call) error {
	list, err := s.settle.Accumulators(c.r.Context(), c.path("psn_no"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) personSettlements(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	list, err := s.settle.History(c.r.Context(), c.path("psn_no"), limit)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) familyLinks(c *call) error {
	list, err := s.settle.FamilyLinks(c.r.Context(), c.path("psn_no"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) linkFamily(c *call) error {
	var in struct {
		Holder   string `json:"holder_psn_no"`
		Member   string `json:"member_psn_no"`
		Relation string `json:"relation"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	l, err := s.settle.LinkFamily(c.r.Context(), in.Holder, in.Member, in.Relation)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, l)
}

func (s *Server) unlinkFamily(c *call) error {
	if err := s.settle.UnlinkFamily(c.r.Context(), c.path("holder"), c.path("member")); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]bool{"revoked": true})
}

// --- slots ---

func (s *Server) listSlots(c *call) error {
	list, err := s.settle.Slots(c.r.Context(), c.path("code"), c.query("date"), c.query("dept_code"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) publishSlots(c *call) error {
	var in settlement.ScheduleRequest
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.FixmedinsCode == "" {
		in.FixmedinsCode = c.path("code")
	}
	if in.FixmedinsCode != c.path("code") {
		return yibao.FieldError("fixmedins_code", "must match the path")
	}
	list, err := s.settle.PublishSchedule(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, map[string]any{"items": list})
}

// --- policies ---

func (s *Server) listPolicies(c *call) error {
	list, err := s.settle.PolicyVersions(c.r.Context(), c.query("admdvs"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) draftPolicy(c *call) error {
	if err := c.requireJSON(); err != nil {
		return err
	}
	v, err := s.settle.DraftPolicy(c.r.Context(), c.body)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, v)
}

func (s *Server) getPolicy(c *call) error {
	v, err := s.settle.PolicyVersion(c.r.Context(), c.path("admdvs"), c.path("version"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) policyAction(c *call) error {
	var in struct {
		Note string `json:"note"`
	}
	if err := c.decodeOptional(&in); err != nil {
		return err
	}
	ctx, adm, ver := c.r.Context(), c.path("admdvs"), c.path("version")
	var v *settlement.PolicyVersion
	var err error
	switch {
	case strings.HasSuffix(c.r.URL.Path, "/submit"):
		v, err = s.settle.SubmitPolicy(ctx, adm, ver)
	case strings.HasSuffix(c.r.URL.Path, "/approve"):
		v, err = s.settle.ApprovePolicy(ctx, adm, ver, in.Note)
	default:
		v, err = s.settle.RejectPolicy(ctx, adm, ver, in.Note)
	}
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, v)
}

func (s *Server) replayPolicy(c *call) error {
	var in struct {
		From string `json:"from"`
		To   string `json:"to"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	rep, err := s.settle.ReplayPolicy(c.r.Context(), c.path("admdvs"), c.path("version"), in.From, in.To)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, rep)
}

// --- ledger (read-only) ---

// mayReadAccount: administrators read every account; an institution only
// its own receivable, bank and counter-cash accounts.
func mayReadAccount(p *yibao.Principal, id string) error {
	if p.IsAdmin() {
		return nil
	}
	kind, owner, _ := strings.Cut(id, ":")
	if p.Institution != "" && owner == p.Institution && (kind == "recv" || kind == "bank" || kind == "cash") {
		return nil
	}
	return yibao.Errorf(yibao.CodeForbidden, "you may read only your own institution's accounts")
}

func (s *Server) ledgerAccount(c *call) error {
	id := c.path("id")
	if err := mayReadAccount(c.principal, id); err != nil {
		return err
	}
	a, err := s.ledger.Account(c.r.Context(), id)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"account": a, "balance": engine.BalanceOf(a)})
}

func (s *Server) ledgerStatement(c *call) error {
	id := c.path("id")
	if err := mayReadAccount(c.principal, id); err != nil {
		return err
	}
	limit, err := c.limit()
	if err != nil {
		return err
	}
	var after int64
	if a := c.query("after"); a != "" {
		if after, err = strconv.ParseInt(a, 10, 64); err != nil || after < 0 {
			return yibao.FieldError("after", "must be a sequence number")
		}
	}
	if _, err := s.ledger.Account(c.r.Context(), id); err != nil {
		return err
	}
	lines, next, err := s.ledger.Statement(c.r.Context(), id, after, limit)
	if err != nil {
		return err
	}
	out := map[string]any{"items": lines}
	if next > 0 {
		out["next"] = strconv.FormatInt(next, 10)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) ledgerTransfers(c *call) error {
	ud := c.query("user_data")
	if ud == "" {
		return yibao.FieldError("user_data", "is required (e.g. a settlement id)")
	}
	if !c.principal.IsAdmin() {
		// An institution reads the legs of its own settlements only.
		if _, err := s.settle.GetSettlement(c.r.Context(), ud); err != nil {
			return err
		}
	}
	list, err := s.ledger.TransfersByUserData(c.r.Context(), ud)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) settlementStats(c *call) error {
	st, err := s.settle.Statistics(c.r.Context(), c.query("from"), c.query("to"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, st)
}
