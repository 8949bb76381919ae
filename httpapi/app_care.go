package httpapi

import (
	"net/http"

	"yibao"
	"yibao/registry"
	"yibao/settlement"
)

// The patient's own care in /app: the family members who may share the
// personal account (家庭共济), and booking an appointment (预约挂号).

// appFamily lists the person's family links with the other member's
// masked name.
func (s *Server) appFamily(c *call) error {
	psn, _, err := s.appPerson(c, "family")
	if err != nil {
		return err
	}
	ctx := yibao.WithPrincipal(c.r.Context(), yibao.System("app"))
	links, err := s.settle.FamilyLinks(ctx, psn)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, l := range links {
		other, role := l.MemberPsnNo, "holder" // this person's account may pay for the other
		if l.MemberPsnNo == psn {
			other, role = l.HolderPsnNo, "member" // the other's account may pay for this person
		}
		name := ""
		if p, err := s.registry.Person(ctx, other, false); err == nil {
			name = p.NameMask
		}
		out = append(out, map[string]any{"relation": l.Relation, "role": role, "name_masked": name, "status": l.Status, "since": l.CreatedAt})
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

// appHospitals lists the hospitals of the person's region for booking.
func (s *Server) appHospitals(c *call) error {
	psn, _, err := s.appPerson(c, "hospitals")
	if err != nil {
		return err
	}
	ctx := yibao.WithPrincipal(c.r.Context(), yibao.System("app"))
	p, err := s.registry.Person(ctx, psn, false)
	if err != nil {
		return err
	}
	page, err := s.registry.Institutions(ctx, registry.InstitutionFilter{Admdvs: p.Admdvs, Kind: yibao.KindHospital, Limit: 50})
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, in := range page.Items {
		out = append(out, map[string]any{"fixmedins_code": in.Code, "name": in.Name, "level": in.Level})
	}
	return c.json(http.StatusOK, map[string]any{"items": out})
}

// appSlots lists a hospital's appointment slots of a day.
func (s *Server) appSlots(c *call) error {
	if _, _, err := s.appPerson(c, "slots"); err != nil {
		return err
	}
	ctx := yibao.WithPrincipal(c.r.Context(), yibao.System("app"))
	date := c.query("date")
	if date == "" {
		date = yibao.DateOf(s.now())
	}
	list, err := s.settle.Slots(ctx, c.query("fixmedins_code"), date, c.query("dept_code"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

// appBook books a slot: an outpatient visit registered for the person at
// the slot's hospital and department (the counter then only scans and
// bills).
func (s *Server) appBook(c *call) error {
	var in struct {
		FixmedinsCode string `json:"fixmedins_code"`
		SlotID        string `json:"slot_id"`
		Date          string `json:"date"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	psn, _, err := s.appPerson(c, "book")
	if err != nil {
		return err
	}
	if in.SlotID == "" {
		return yibao.FieldError("slot_id", "the slot to book")
	}
	ctx := yibao.WithPrincipal(c.r.Context(), yibao.System("app"))
	v, err := s.settle.OpenVisit(ctx, settlement.VisitRequest{PsnNo: psn, FixmedinsCode: in.FixmedinsCode, Type: "general_outpatient",
		SlotID: in.SlotID, BeginDate: in.Date})
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, map[string]any{"mdtrt_id": v.MdtrtID, "fixmedins_code": v.FixmedinsCode, "dept_name": v.DeptName,
		"begin_date": v.BeginDate, "slot_id": v.SlotID})
}
