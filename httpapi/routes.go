package httpapi

import (
	"encoding/hex"
	"mime"
	"net/http"
	"strings"

	"yibao"
	"yibao/auth"
	"yibao/registry"
)

// routeTable lists every API route. Keep it in step with openapi.yaml; a
// test fails when they differ.
func (s *Server) routeTable() []route {
	return []route{
		{method: "POST", path: "/api/v1/auth/login", access: public, h: s.login},
		{method: "POST", path: "/api/v1/auth/logout", access: staff, h: s.logout},
		{method: "GET", path: "/api/v1/auth/me", access: anyone, h: s.me},

		{method: "GET", path: "/api/v1/regions", access: anyone, h: s.listRegions},
		{method: "POST", path: "/api/v1/regions", access: anyone, idempotent: true, h: s.createRegion},
		{method: "GET", path: "/api/v1/regions/{admdvs}", access: anyone, h: s.getRegion},
		{method: "GET", path: "/api/v1/schemes", access: anyone, h: s.listSchemes},
		{method: "POST", path: "/api/v1/schemes", access: anyone, idempotent: true, h: s.createScheme},

		{method: "GET", path: "/api/v1/persons", access: anyone, h: s.listPersons},
		{method: "POST", path: "/api/v1/persons", access: anyone, idempotent: true, h: s.createPerson},
		{method: "POST", path: "/api/v1/persons/lookup", access: anyone, h: s.lookupPerson},
		{method: "GET", path: "/api/v1/persons/{psn_no}", access: anyone, h: s.getPerson},
		{method: "GET", path: "/api/v1/persons/{psn_no}/coverages", access: anyone, h: s.listCoverages},
		{method: "POST", path: "/api/v1/persons/{psn_no}/coverages", access: anyone, idempotent: true, h: s.createCoverage},

		{method: "GET", path: "/api/v1/institutions", access: anyone, h: s.listInstitutions},
		{method: "POST", path: "/api/v1/institutions", access: anyone, idempotent: true, h: s.createInstitution},
		{method: "GET", path: "/api/v1/institutions/{code}", access: anyone, h: s.getInstitution},
		{method: "PUT", path: "/api/v1/institutions/{code}/contract", access: anyone, idempotent: true, h: s.setContract},
		{method: "GET", path: "/api/v1/institutions/{code}/keys", access: anyone, h: s.listKeys},
		{method: "POST", path: "/api/v1/institutions/{code}/keys", access: staff, idempotent: true, dual: true, h: s.createKey},
		{method: "DELETE", path: "/api/v1/institutions/{code}/keys/{key_id}", access: staff, idempotent: true, dual: true, h: s.revokeKey},

		{method: "GET", path: "/api/v1/catalog", access: anyone, h: s.listCatalog},
		{method: "POST", path: "/api/v1/catalog", access: anyone, idempotent: true, h: s.createCatalogItem},
		{method: "GET", path: "/api/v1/catalog/{code}", access: anyone, h: s.getCatalogItem},
		{method: "PUT", path: "/api/v1/catalog/{code}", access: anyone, idempotent: true, h: s.updateCatalogItem},

		{method: "POST", path: "/api/v1/imports", access: staff, idempotent: true, maxBody: -1, h: s.startImport},
		{method: "GET", path: "/api/v1/imports/{id}", access: staff, h: s.getImport},

		{method: "GET", path: "/api/v1/users", access: staff, h: s.listUsers},
		{method: "POST", path: "/api/v1/users", access: staff, idempotent: true, h: s.createUser},
	}
}

// allRoutes is every route of the API.
func (s *Server) allRoutes() []route {
	return append(append(append(append(append(append(append(append(append(append(append(s.routeTable(), s.settlementRoutes()...), s.ecertRoutes()...), s.deliveryRoutes()...), s.payRoutes()...), s.auditRoutes()...), s.reviewRoutes()...), s.creditRoutes()...), s.fundRoutes()...), s.faceRoutes()...), s.approvalRoutes()...), s.xregionRoutes()...)
}

// --- auth ---

func (s *Server) login(c *call) error {
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	sess, err := s.auth.Login(c.r.Context(), in.Username, in.Password)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, sess)
}

func (s *Server) logout(c *call) error {
	if err := s.auth.Logout(c.r.Context(), bearer(c.r)); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]bool{"logged_out": true})
}

func (s *Server) me(c *call) error { return c.json(http.StatusOK, c.principal) }

// --- regions and schemes ---

func (s *Server) listRegions(c *call) error {
	list, err := s.registry.Regions(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) createRegion(c *call) error {
	var in struct {
		Admdvs string `json:"admdvs"`
		Name   string `json:"name"`
		Parent string `json:"parent"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	r, err := s.registry.CreateRegion(c.r.Context(), yibao.Region{Admdvs: in.Admdvs, Name: in.Name, Parent: in.Parent})
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, r)
}

func (s *Server) getRegion(c *call) error {
	r, err := s.registry.Region(c.r.Context(), c.path("admdvs"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, r)
}

func (s *Server) listSchemes(c *call) error {
	list, err := s.registry.Schemes(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) createScheme(c *call) error {
	var in struct {
		Insutype string           `json:"insutype"`
		Name     string           `json:"name"`
		Kind     yibao.SchemeKind `json:"kind"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	sc, err := s.registry.CreateScheme(c.r.Context(), yibao.Scheme{Insutype: in.Insutype, Name: in.Name, Kind: in.Kind})
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, sc)
}

// --- persons and coverage ---

func (s *Server) listPersons(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	page, err := s.registry.Persons(c.r.Context(), registry.PersonFilter{Admdvs: c.query("admdvs"),
		Category: yibao.PersonCategory(c.query("category")), After: c.query("after"), Limit: limit})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, page)
}

func (s *Server) createPerson(c *call) error {
	var in struct {
		PsnNo    string               `json:"psn_no"`
		IDNumber string               `json:"id_number"`
		Name     string               `json:"name"`
		Phone    string               `json:"phone"`
		Category yibao.PersonCategory `json:"category"`
		Admdvs   string               `json:"admdvs"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	p, err := s.registry.CreatePerson(c.r.Context(), yibao.Person{PsnNo: in.PsnNo, IDNumber: in.IDNumber, Name: in.Name,
		Phone: in.Phone, Category: in.Category, Admdvs: in.Admdvs})
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, p)
}

func (s *Server) lookupPerson(c *call) error {
	var in struct {
		IDNumber string `json:"id_number"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	info, err := s.registry.LookupPerson(c.r.Context(), in.IDNumber)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, info)
}

func (s *Server) getPerson(c *call) error {
	reveal := false
	switch c.query("reveal") {
	case "", "false":
	case "true":
		reveal = true
	default:
		return yibao.FieldError("reveal", "must be true or false")
	}
	p, err := s.registry.Person(c.r.Context(), c.path("psn_no"), reveal)
	if err != nil {
		return err
	}
	if reveal {
		s.log.InfoContext(c.r.Context(), "personal data revealed", "request_id", RequestID(c.r.Context()),
			"principal", c.principal.ID(), "psn_no", p.PsnNo)
	}
	return c.json(http.StatusOK, p)
}

func (s *Server) listCoverages(c *call) error {
	list, err := s.registry.Coverages(c.r.Context(), c.path("psn_no"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) createCoverage(c *call) error {
	var in struct {
		Insutype  string               `json:"insutype"`
		Admdvs    string               `json:"admdvs"`
		StartDate string               `json:"start_date"`
		EndDate   string               `json:"end_date"`
		Status    yibao.CoverageStatus `json:"status"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	cov, err := s.registry.CreateCoverage(c.r.Context(), yibao.Coverage{PsnNo: c.path("psn_no"), Insutype: in.Insutype,
		Admdvs: in.Admdvs, StartDate: in.StartDate, EndDate: in.EndDate, Status: in.Status})
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, cov)
}

// --- institutions and keys ---

func (s *Server) listInstitutions(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	page, err := s.registry.Institutions(c.r.Context(), registry.InstitutionFilter{Admdvs: c.query("admdvs"),
		Kind: yibao.InstitutionKind(c.query("kind")), After: c.query("after"), Limit: limit})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, page)
}

func (s *Server) createInstitution(c *call) error {
	var in struct {
		Code           string                `json:"fixmedins_code"`
		Name           string                `json:"name"`
		Kind           yibao.InstitutionKind `json:"kind"`
		Level          int                   `json:"level"`
		Admdvs         string                `json:"admdvs"`
		ContractStatus yibao.ContractStatus  `json:"contract_status"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	inst, err := s.registry.CreateInstitution(c.r.Context(), yibao.Institution{Code: in.Code, Name: in.Name, Kind: in.Kind,
		Level: in.Level, Admdvs: in.Admdvs, ContractStatus: in.ContractStatus})
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, inst)
}

func (s *Server) getInstitution(c *call) error {
	inst, err := s.registry.Institution(c.r.Context(), c.path("code"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, inst)
}

func (s *Server) setContract(c *call) error {
	var in struct {
		ContractStatus yibao.ContractStatus `json:"contract_status"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	inst, err := s.registry.SetContractStatus(c.r.Context(), c.path("code"), in.ContractStatus)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, inst)
}

func (s *Server) listKeys(c *call) error {
	list, err := s.auth.APIKeys(c.r.Context(), c.path("code"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) createKey(c *call) error {
	var in struct {
		Alg       string `json:"alg"`
		PublicKey string `json:"public_key"`
	}
	if err := c.decode(&in); err != nil {
		return err
	}
	var pub []byte
	if in.PublicKey != "" {
		var err error
		if pub, err = hex.DecodeString(in.PublicKey); err != nil {
			return yibao.FieldError("public_key", "must be hex")
		}
	}
	if in.Alg == "" {
		in.Alg = auth.AlgHMACSM3
	}
	k, err := s.auth.CreateAPIKey(c.r.Context(), c.path("code"), in.Alg, "", nil, pub)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, k)
}

func (s *Server) revokeKey(c *call) error {
	if err := s.auth.RevokeAPIKey(c.r.Context(), c.path("code"), c.path("key_id")); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]string{"key_id": c.path("key_id"), "status": "revoked"})
}

// --- catalog ---

func (s *Server) listCatalog(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	f := registry.CatalogFilter{Query: c.query("q"), Kind: yibao.ItemKind(c.query("kind")), After: c.query("after"), Limit: limit}
	if v := c.query("class"); v != "" {
		cl, ok := yibao.ParseItemClass(v)
		if !ok {
			return yibao.FieldError("class", "must be A, B, C or 甲, 乙, 丙")
		}
		f.Class = cl
	}
	page, err := s.registry.Catalog(c.r.Context(), f)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, page)
}

func (s *Server) createCatalogItem(c *call) error {
	var it yibao.CatalogItem
	if err := c.decode(&it); err != nil {
		return err
	}
	out, err := s.registry.CreateCatalogItem(c.r.Context(), it)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, out)
}

func (s *Server) getCatalogItem(c *call) error {
	it, err := s.registry.CatalogItem(c.r.Context(), c.path("code"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, it)
}

func (s *Server) updateCatalogItem(c *call) error {
	var it yibao.CatalogItem
	if err := c.decode(&it); err != nil {
		return err
	}
	if it.Code != "" && it.Code != c.path("code") {
		return yibao.FieldError("code", "must match the code in the path or be omitted")
	}
	it.Code = c.path("code")
	out, err := s.registry.UpdateCatalogItem(c.r.Context(), it)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, out)
}

// --- imports ---

func (s *Server) startImport(c *call) error {
	if int64(len(c.body)) > s.cfg.MaxImportBytes {
		return yibao.Errorf(yibao.CodeTooLarge, "imports are limited to %d bytes", s.cfg.MaxImportBytes)
	}
	if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt != "text/csv" {
		return yibao.Errorf(yibao.CodeUnsupportedType, "send the file as text/csv")
	}
	kind := registry.ImportKind(c.query("kind"))
	job, err := s.registry.StartImport(c.r.Context(), kind, strings.NewReader(string(c.body)))
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/api/v1/imports/"+job.ID)
	return c.json(http.StatusAccepted, job)
}

func (s *Server) getImport(c *call) error {
	j, err := s.registry.ImportJob(c.r.Context(), c.path("id"))
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, j)
}

// --- users ---

func (s *Server) listUsers(c *call) error {
	list, err := s.auth.Users(c.r.Context())
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"items": list})
}

func (s *Server) createUser(c *call) error {
	var in auth.NewUser
	if err := c.decode(&in); err != nil {
		return err
	}
	u, err := s.auth.CreateUser(c.r.Context(), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, u)
}

// RouteList returns "METHOD /path" for every API route, for the OpenAPI
// consistency test and the docs.
func RouteList() []string {
	var out []string
	for _, rt := range (&Server{}).allRoutes() {
		out = append(out, rt.method+" "+rt.path)
	}
	return out
}
