package registry_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/registry"
	"yibao/sqlstore"
	"yibao/sqlstore/sqltest"
)

var admin = yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "admin", Role: yibao.RoleAdmin})

func cashierOf(code string) context.Context {
	return yibao.WithPrincipal(context.Background(), &yibao.Principal{Kind: yibao.PrincipalUser, Subject: "c", Role: yibao.RoleCashier, Institution: code})
}

// fixture is a registry with one region, two schemes and two hospitals.
func fixture(t *testing.T) (*registry.Service, *sqlstore.DB) {
	t.Helper()
	db := sqltest.Open(t)
	keys, err := gmcrypto.NewKeyring("k1", map[string][]byte{"k1": []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	s := registry.New(db, keys, []byte("blind-index-key-for-tests-only!!"))
	s.SetClock(func() time.Time { return time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC) })
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateRegion(admin, yibao.Region{Admdvs: "370100", Name: "济南市", Parent: "370000"}))
	must(s.CreateScheme(admin, yibao.Scheme{Insutype: "310", Name: "职工基本医疗保险", Kind: yibao.SchemeEmployeeBasic}))
	must(s.CreateScheme(admin, yibao.Scheme{Insutype: "390", Name: "城乡居民基本医疗保险", Kind: yibao.SchemeResidentBasic}))
	must(s.CreateInstitution(admin, yibao.Institution{Code: "H37010000001", Name: "第一医院", Kind: yibao.KindHospital, Level: 3, Admdvs: "370100"}))
	must(s.CreateInstitution(admin, yibao.Institution{Code: "H37010000002", Name: "第二医院", Kind: yibao.KindHospital, Level: 2, Admdvs: "370100"}))
	return s, db
}

func wantCode(t *testing.T, err error, code yibao.Code) {
	t.Helper()
	if yibao.ErrorCode(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func count(t *testing.T, db *sqlstore.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateRejectsBadInput(t *testing.T) {
	s, db := fixture(t)
	good := yibao.Person{PsnNo: "37010000000000000001", IDNumber: "370102198507160029", Name: "李娜", Phone: "13912345678",
		Category: yibao.CategoryActive, Admdvs: "370100"}
	if _, err := s.CreatePerson(admin, good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		call  func() error
		code  yibao.Code
		field string
	}{
		{"region code 5 digits", func() error { _, err := s.CreateRegion(admin, yibao.Region{Admdvs: "37010", Name: "x"}); return err }, yibao.CodeInvalid, "admdvs"},
		{"duplicate region", func() error {
			_, err := s.CreateRegion(admin, yibao.Region{Admdvs: "370100", Name: "again"})
			return err
		}, yibao.CodeConflict, ""},
		{"scheme kind unknown", func() error {
			_, err := s.CreateScheme(admin, yibao.Scheme{Insutype: "311", Name: "x", Kind: "magic"})
			return err
		}, yibao.CodeInvalid, "kind"},
		{"bad ID check character", func() error {
			p := good
			p.PsnNo, p.IDNumber = "37010000000000000002", "370102198507160028"
			_, err := s.CreatePerson(admin, p)
			return err
		}, yibao.CodeInvalid, "id_number"},
		{"same ID number twice", func() error {
			p := good
			p.PsnNo = "37010000000000000003"
			_, err := s.CreatePerson(admin, p)
			return err
		}, yibao.CodeConflict, ""},
		{"same psn_no twice", func() error {
			p := good
			p.IDNumber = "110101199003074477"
			_, err := s.CreatePerson(admin, p)
			return err
		}, yibao.CodeConflict, ""},
		{"person in unknown region", func() error {
			p := good
			p.PsnNo, p.IDNumber, p.Admdvs = "37010000000000000004", "110101199003074477", "999999"
			_, err := s.CreatePerson(admin, p)
			return err
		}, yibao.CodeInvalid, "admdvs"},
		{"pharmacy with a level", func() error {
			_, err := s.CreateInstitution(admin, yibao.Institution{Code: "P37010000001", Name: "药店", Kind: yibao.KindPharmacy, Level: 2, Admdvs: "370100"})
			return err
		}, yibao.CodeInvalid, "level"},
		{"hospital code for a pharmacy", func() error {
			_, err := s.CreateInstitution(admin, yibao.Institution{Code: "H37010000009", Name: "药店", Kind: yibao.KindPharmacy, Admdvs: "370100"})
			return err
		}, yibao.CodeInvalid, "fixmedins_code"},
		{"duplicate institution", func() error {
			_, err := s.CreateInstitution(admin, yibao.Institution{Code: "H37010000001", Name: "x", Kind: yibao.KindHospital, Level: 1, Admdvs: "370100"})
			return err
		}, yibao.CodeConflict, ""},
		{"coverage for unknown scheme", func() error {
			_, err := s.CreateCoverage(admin, yibao.Coverage{PsnNo: good.PsnNo, Insutype: "999", Admdvs: "370100", StartDate: "2024-01-01"})
			return err
		}, yibao.CodeInvalid, "insutype"},
		{"coverage ends before it starts", func() error {
			_, err := s.CreateCoverage(admin, yibao.Coverage{PsnNo: good.PsnNo, Insutype: "310", Admdvs: "370100", StartDate: "2024-01-01", EndDate: "2023-01-01"})
			return err
		}, yibao.CodeInvalid, "end_date"},
		{"cashier may not create persons", func() error {
			p := good
			p.PsnNo, p.IDNumber = "37010000000000000005", "110101199003074477"
			_, err := s.CreatePerson(cashierOf("H37010000001"), p)
			return err
		}, yibao.CodeForbidden, ""},
		{"anonymous may not read the catalog", func() error {
			_, err := s.Catalog(context.Background(), registry.CatalogFilter{})
			return err
		}, yibao.CodeUnauthenticated, ""},
		{"cashier may not read another hospital", func() error {
			_, err := s.Institution(cashierOf("H37010000001"), "H37010000002")
			return err
		}, yibao.CodeForbidden, ""},
		{"cashier may not list persons", func() error {
			_, err := s.Persons(cashierOf("H37010000001"), registry.PersonFilter{})
			return err
		}, yibao.CodeForbidden, ""},
	}
	persons, regions := count(t, db, "persons"), count(t, db, "regions")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			wantCode(t, err, c.code)
			if c.field != "" {
				var ye *yibao.Error
				if !asErr(err, &ye) || ye.Field != c.field {
					t.Fatalf("field = %v, want %s", err, c.field)
				}
			}
		})
	}
	if count(t, db, "persons") != persons || count(t, db, "regions") != regions {
		t.Fatal("a rejected call wrote a row")
	}
}

func asErr(err error, target **yibao.Error) bool {
	e, ok := err.(*yibao.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestPersonalDataIsEncryptedAtRest(t *testing.T) {
	s, db := fixture(t)
	p := yibao.Person{PsnNo: "37010000000000000001", IDNumber: "370102198507160029", Name: "欧阳娜娜", Phone: "13912345678",
		Category: yibao.CategoryRetired, Admdvs: "370100"}
	out, err := s.CreatePerson(admin, p)
	if err != nil {
		t.Fatal(err)
	}
	if out.IDNumber != "" || out.Name != "" || out.IDMasked != "370102********0029" || out.NameMask != "欧***" || out.PhoneMask != "139****5678" {
		t.Fatalf("create response is not masked: %+v", out)
	}
	if out.BirthDate != "1985-07-16" || out.Gender != yibao.GenderFemale {
		t.Fatalf("birth/gender not derived from the ID number: %+v", out)
	}
	// Nothing in the row holds the clear values.
	rows, err := db.Query(context.Background(), `SELECT id_cipher, name_cipher, phone_cipher, id_index FROM persons`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, b, c, d []byte
		if err := rows.Scan(&a, &b, &c, &d); err != nil {
			t.Fatal(err)
		}
		all := string(a) + string(b) + string(c) + string(d)
		for _, clear := range []string{p.IDNumber, p.Name, p.Phone} {
			if strings.Contains(all, clear) {
				t.Fatalf("%q stored in clear", clear)
			}
		}
	}
	rows.Close()
	got, err := s.Person(admin, p.PsnNo, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.IDNumber != p.IDNumber || got.Name != p.Name || got.Phone != p.Phone {
		t.Fatalf("reveal = %+v", got)
	}
	// Found by blind index: ID number at the counter, name and phone in the console.
	if info, err := s.LookupPerson(cashierOf("H37010000001"), "370102198507160029"); err != nil || info.Person.PsnNo != p.PsnNo || info.Person.Name != "" {
		t.Fatalf("lookup = %+v, %v", info, err)
	}
	for _, f := range []registry.PersonFilter{{Name: "欧阳娜娜"}, {Phone: "13912345678"}} {
		page, err := s.Persons(admin, f)
		if err != nil || len(page.Items) != 1 {
			t.Fatalf("filter %+v: %+v, %v", f, page, err)
		}
	}
	_, err = s.LookupPerson(cashierOf("H37010000001"), "110101199003074477")
	wantCode(t, err, yibao.CodeNotFound)
}

func TestCoverageNeverOverlaps(t *testing.T) {
	s, _ := fixture(t)
	if _, err := s.CreatePerson(admin, yibao.Person{PsnNo: "37010000000000000001", IDNumber: "370102198507160029", Name: "李娜",
		Category: yibao.CategoryActive, Admdvs: "370100"}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		insutype, start, end string
		code                 yibao.Code
	}{
		{"310", "2024-01-01", "2024-12-31", ""},
		{"310", "2025-01-01", "", ""},
		{"310", "2024-12-31", "2024-12-31", yibao.CodeConflict}, // touches the first period
		{"310", "2030-01-01", "2030-12-31", yibao.CodeConflict}, // inside the open-ended one
		{"390", "2024-06-01", "", ""},                           // another scheme may overlap
		{"390", "2023-01-01", "2023-12-31", ""},
	}
	for i, st := range steps {
		_, err := s.CreateCoverage(admin, yibao.Coverage{PsnNo: "37010000000000000001", Insutype: st.insutype, Admdvs: "370100", StartDate: st.start, EndDate: st.end})
		if yibao.ErrorCode(err) != st.code {
			t.Fatalf("step %d: err = %v, want %q", i, err, st.code)
		}
	}
	list, err := s.Coverages(admin, "37010000000000000001")
	if err != nil || len(list) != 4 {
		t.Fatalf("coverages = %d, %v", len(list), err)
	}
	if c, err := s.CoverageOn(admin, "37010000000000000001", "310", "2024-07-01"); err != nil || c.EndDate != "2024-12-31" {
		t.Fatalf("CoverageOn = %+v, %v", c, err)
	}
	_, err = s.CoverageOn(admin, "37010000000000000001", "310", "2022-07-01")
	wantCode(t, err, yibao.CodePrecondition)
}

func TestImports(t *testing.T) {
	var cases []struct {
		File     string `json:"file"`
		Kind     string `json:"kind"`
		After    string `json:"after"`
		Imported int    `json:"imported"`
		Code     string `json:"code"`
		BadLines []int  `json:"bad_lines"`
	}
	b, err := os.ReadFile("testdata/import/expect.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			s, db := fixture(t)
			if c.After != "" {
				f, _ := os.Open("testdata/import/" + c.After)
				defer f.Close()
				if _, err := s.Import(admin, registry.ImportPersons, f, nil); err != nil {
					t.Fatal(err)
				}
			}
			before := map[string]int{}
			for _, tb := range []string{"persons", "coverages", "catalog_items"} {
				before[tb] = count(t, db, tb)
			}
			f, err := os.Open("testdata/import/" + c.File)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var last int
			n, err := s.Import(admin, registry.ImportKind(c.Kind), f, func(_ string, done, total int) { last = done })
			if c.Code == "" {
				if err != nil || n != c.Imported || last != n {
					t.Fatalf("imported %d (progress %d), %v; want %d", n, last, err, c.Imported)
				}
				return
			}
			wantCode(t, err, yibao.Code(c.Code))
			var ye *yibao.Error
			asErr(err, &ye)
			var lines []int
			for _, is := range ye.Issues {
				lines = append(lines, is.Line)
			}
			if !equalInts(lines, c.BadLines) {
				t.Fatalf("bad lines %v, want %v (%v)", lines, c.BadLines, ye.Issues)
			}
			for tb, n := range before {
				if count(t, db, tb) != n {
					t.Fatalf("failed import wrote to %s", tb)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCatalogImportUpdatesAndSearches(t *testing.T) {
	s, _ := fixture(t)
	data, _ := os.ReadFile("testdata/import/catalog_good.csv")
	if _, err := s.ImportBytes(admin, registry.ImportCatalog, data); err != nil {
		t.Fatal(err)
	}
	// Re-import with a changed price cap: the row is replaced, not duplicated.
	changed := strings.Replace(string(data), "35.20", "30.00", 1)
	if n, err := s.ImportBytes(admin, registry.ImportCatalog, []byte(changed)); err != nil || n != 6 {
		t.Fatalf("re-import = %d, %v", n, err)
	}
	it, err := s.CatalogItem(cashierOf("H37010000001"), "ZA12CAD0073010100004")
	if err != nil || it.PriceCap == nil || it.PriceCap.String() != "30.00" || it.SelfPayRatio.String() != "0.1" || it.Restriction != "限二级及以上医疗机构, 限急救" {
		t.Fatalf("item = %+v, %v", it, err)
	}
	for _, c := range []struct {
		f    registry.CatalogFilter
		want int
	}{
		{registry.CatalogFilter{}, 6},
		{registry.CatalogFilter{Class: yibao.ClassA}, 3},
		{registry.CatalogFilter{Kind: yibao.ItemService}, 2},
		{registry.CatalogFilter{Query: "片"}, 2},
		{registry.CatalogFilter{Query: "XJ01"}, 1},
		{registry.CatalogFilter{Query: "%"}, 0},
	} {
		page, err := s.Catalog(admin, c.f)
		if err != nil || len(page.Items) != c.want {
			t.Errorf("%+v: %d items, %v; want %d", c.f, len(page.Items), err, c.want)
		}
	}
	// Paging walks every item once.
	seen, after := 0, ""
	for {
		page, err := s.Catalog(admin, registry.CatalogFilter{Limit: 4, After: after})
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page.Items)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if seen != 6 {
		t.Fatalf("paged %d items", seen)
	}
}

func TestBackgroundImportReportsProgress(t *testing.T) {
	s, _ := fixture(t)
	f, _ := os.Open("testdata/import/persons_bad.csv")
	defer f.Close()
	job, err := s.StartImport(admin, registry.ImportPersons, f)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := s.ImportJob(admin, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != "running" {
			if j.Status != "failed" || len(j.Errors) != 5 || j.Errors[0].Line != 3 {
				t.Fatalf("job = %+v", j)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("import never finished")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
