// Package demo builds the deterministic demo dataset of one province: one
// pooling region (济南市 370100) and a neighbour (青岛市 370200), the
// insurance schemes, hospitals of every level and a pharmacy, a catalog
// taken from the 2024 national drug list and NHSA item codes (see
// data/PROVENANCE.md), insured persons of every category with valid ID
// numbers, staff logins and institution API keys. Build is Shandong (37);
// BuildProvince also makes Jiangsu (32: 南京市 320100, 无锡市 320200) and
// Guangdong (44: 广州市 440100, 深圳市 440300) in the same shape, one per
// node for cross-region care. It is pure data: no database, no clock, no
// network.
package demo

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"strings"

	"yibao"
	"yibao/money"
)

//go:embed data/catalog.csv
var catalogCSV []byte

// divisionsFS holds one file of administrative divisions per province,
// data/divisions_<prov>.csv.
//
//go:embed data/divisions_*.csv
var divisionsFS embed.FS

// DemoUser is a staff login of the demo.
type DemoUser struct {
	Username      string
	Password      string
	Role          string // admin | cashier | his
	FixmedinsCode string
	DisplayName   string
}

// DemoAPIKey is an institution key of the demo. Its secret is derived from
// the key id and therefore public: demo only.
type DemoAPIKey struct {
	KeyID         string
	FixmedinsCode string
	Alg           string
	Secret        []byte
}

// Dataset is the whole demo of one province.
type Dataset struct {
	Province     string         // "37", "32" or "44": the first two digits of every region code
	Regions      []yibao.Region // the capital region first
	Schemes      []yibao.Scheme
	Institutions []yibao.Institution
	Catalog      []yibao.CatalogItem
	Persons      []yibao.Person
	Coverages    []yibao.Coverage
	Users        []DemoUser
	APIKeys      []DemoAPIKey
}

// Seed fixes every random choice of the Shandong dataset; each other
// province has its own seed (provinceSpec), so its people differ.
const Seed = 20261123

// provinceSpec is what differs between the provinces of the demo. Every
// name comes from the province's division file except the pharmacy's
// branch, the second region's hospital and the English city names.
type provinceSpec struct {
	seed            uint64
	capital, second string // region codes: the capital first
	district2       string // the district of the level-2 hospital
	district1       string // the district of the level-1 community centre
	pharmacyBranch  string // 济南示范大药房（泉城路店）
	secondHospital  string // the second region's hospital, after its city name
	capitalEN       string // for the policy names: "Jinan-like"
	secondEN        string
	policyEdits     []string // old, new pairs applied to the Shandong policy (PolicyDocs)
}

// provinces are the provinces BuildProvince knows.
var provinces = map[string]provinceSpec{
	"37": {seed: Seed, capital: "370100", second: "370200", district2: "370102", district1: "370112",
		pharmacyBranch: "泉城路店", secondHospital: "示范市立医院", capitalEN: "Jinan", secondEN: "Qingdao"},
	"32": {seed: 20261132, capital: "320100", second: "320200", district2: "320102", district1: "320115",
		pharmacyBranch: "新街口店", secondHospital: "示范人民医院", capitalEN: "Nanjing", secondEN: "Wuxi",
		policyEdits: []string{
			// employee inpatient deductible 300/600/1000, general outpatient 600 a year
			`"by_level": {"1": "200.00", "2": "500.00", "3": "900.00"}`, `"by_level": {"1": "300.00", "2": "600.00", "3": "1000.00"}`,
			`"by_level": {"*": "700.00"}`, `"by_level": {"*": "600.00"}`,
			`employee inpatient deductible 200/500/900 by level`, `employee inpatient deductible 300/600/1000 by level (Jiangsu variant)`,
		}},
	"44": {seed: 20261144, capital: "440100", second: "440300", district2: "440104", district1: "440106",
		pharmacyBranch: "北京路店", secondHospital: "示范人民医院", capitalEN: "Guangzhou", secondEN: "Shenzhen",
		policyEdits: []string{
			// employee inpatient ratios 96/93/90%, resident critical illness from 18000
			`"by_level": {"1": "0.95", "2": "0.92", "3": "0.90"}`, `"by_level": {"1": "0.96", "2": "0.93", "3": "0.90"}`,
			`"threshold": "15000.00"`, `"threshold": "18000.00"`,
			`resident critical illness 15000 threshold`, `resident critical illness 18000 threshold (Guangdong variant; employee inpatient 96/93/90%)`,
		}},
}

// Provinces lists the provinces BuildProvince knows: "37" (Shandong, the
// default), "32" (Jiangsu) and "44" (Guangdong).
func Provinces() []string { return []string{"37", "32", "44"} }

// KnownProvince reports whether BuildProvince knows prov.
func KnownProvince(prov string) bool {
	_, ok := provinces[prov]
	return ok
}

func spec(prov string) provinceSpec {
	sp, ok := provinces[prov]
	if !ok {
		panic(fmt.Sprintf("demo: unknown province %q (want one of %s)", prov, strings.Join(Provinces(), ", ")))
	}
	return sp
}

// Build returns the Shandong dataset, BuildProvince("37"); every call
// returns the same data.
func Build() *Dataset { return BuildProvince("37") }

// BuildProvince returns the dataset of province prov ("37", "32" or "44",
// see Provinces): two regions, the same schemes, catalog, institutions of
// every level (H<capital>00001…, e.g. H32010000001, a pharmacy
// P<capital>00001 and a hospital H<second>00001), persons whose ID numbers carry the province's
// district codes and whose psn_no starts with their region's first four
// digits, and the logins and API keys of its institutions
// (cashier.h32010000001, ak_demo_h32010000001 …). Every call returns the
// same data. It panics for any other prov: check with KnownProvince.
func BuildProvince(prov string) *Dataset {
	sp := spec(prov)
	d := &Dataset{Province: prov}
	divisions := parseDivisions(prov)
	d.Regions = []yibao.Region{
		{Admdvs: sp.capital, Name: divisions[sp.capital], Parent: prov + "0000"},
		{Admdvs: sp.second, Name: divisions[sp.second], Parent: prov + "0000"},
	}
	d.Schemes = []yibao.Scheme{
		{Insutype: "310", Name: "职工基本医疗保险", Kind: yibao.SchemeEmployeeBasic},
		{Insutype: "320", Name: "公务员医疗补助", Kind: yibao.SchemeCivilServant},
		{Insutype: "330", Name: "大额医疗费用补助", Kind: yibao.SchemeLargeAmount},
		{Insutype: "390", Name: "城乡居民基本医疗保险", Kind: yibao.SchemeResidentBasic},
		{Insutype: "392", Name: "城乡居民大病医疗保险", Kind: yibao.SchemeCriticalIllness},
		// 610 is not in the NHSA insutype dictionary: medical assistance is
		// paid from its own fund (fund_pay_type 610100); the demo registers
		// it as a scheme so eligibility is a coverage like any other.
		{Insutype: "610", Name: "医疗救助", Kind: yibao.SchemeAssistance},
	}
	city, second := divisions[sp.capital], divisions[sp.second]
	d.Institutions = []yibao.Institution{
		{Code: "H" + sp.capital + "00001", Name: city + "示范第一人民医院", Kind: yibao.KindHospital, Level: 3, Admdvs: sp.capital},
		{Code: "H" + sp.capital + "00002", Name: city + divisions[sp.district2] + "示范人民医院", Kind: yibao.KindHospital, Level: 2, Admdvs: sp.capital},
		{Code: "H" + sp.capital + "00003", Name: city + divisions[sp.district1] + "示范社区卫生服务中心", Kind: yibao.KindHospital, Level: 1, Admdvs: sp.capital},
		{Code: "H" + sp.capital + "00004", Name: city + "示范中医医院", Kind: yibao.KindHospital, Level: 3, Admdvs: sp.capital},
		{Code: "P" + sp.capital + "00001", Name: strings.TrimSuffix(city, "市") + "示范大药房（" + sp.pharmacyBranch + "）", Kind: yibao.KindPharmacy, Level: 0, Admdvs: sp.capital},
		{Code: "H" + sp.second + "00001", Name: second + sp.secondHospital, Kind: yibao.KindHospital, Level: 3, Admdvs: sp.second},
	}
	for i := range d.Institutions {
		d.Institutions[i].ContractStatus = yibao.ContractActive
	}
	d.Catalog = parseCatalog(catalogCSV)

	r := rand.New(rand.NewPCG(sp.seed, 1))
	d.Persons, d.Coverages = people(r, sp, divisions, 64, 0)

	d.Users = []DemoUser{
		{Username: "admin", Password: "admin123", Role: "admin", DisplayName: "医保局管理员"},
		{Username: "auditor", Password: "auditor123", Role: "admin", DisplayName: "医保局复核员"},
	}
	for _, in := range d.Institutions {
		lc := strings.ToLower(in.Code)
		d.Users = append(d.Users, DemoUser{Username: "cashier." + lc, Password: "cashier123", Role: "cashier",
			FixmedinsCode: in.Code, DisplayName: in.Name + " 收费员"})
		if in.Kind == yibao.KindHospital {
			d.Users = append(d.Users, DemoUser{Username: "his." + lc, Password: "his12345", Role: "his",
				FixmedinsCode: in.Code, DisplayName: in.Name + " HIS"})
		}
		id := "ak_demo_" + lc
		sum := sha256.Sum256([]byte("yibao demo api key/" + id))
		d.APIKeys = append(d.APIKeys, DemoAPIKey{KeyID: id, FixmedinsCode: in.Code, Alg: "HMAC-SM3", Secret: sum[:]})
	}
	return d
}

// parseDivisions returns code → name of the province's divisions.
func parseDivisions(prov string) map[string]string {
	b, err := divisionsFS.ReadFile("data/divisions_" + prov + ".csv")
	if err != nil {
		panic("demo: divisions: " + err.Error())
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		panic("demo: divisions: " + err.Error())
	}
	m := map[string]string{}
	for _, row := range rows[1:] {
		m[row[0]] = row[1]
	}
	return m
}

// parseCatalog reads the embedded catalog, which is in the import format.
func parseCatalog(b []byte) []yibao.CatalogItem {
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		panic("demo: catalog: " + err.Error())
	}
	var items []yibao.CatalogItem
	for _, f := range rows[1:] {
		class, _ := yibao.ParseItemClass(f[3])
		it := yibao.CatalogItem{Code: f[0], Name: f[1], Kind: yibao.ItemKind(f[2]), Class: class, Unit: f[6], Spec: f[7],
			Category: f[8], Restriction: f[9], ValidFrom: f[10], ValidTo: f[11]}
		if f[4] != "" {
			it.SelfPayRatio, _ = money.ParseRatio(f[4])
		}
		if f[5] != "" {
			v := money.MustParseYuan(f[5])
			it.PriceCap = &v
		}
		items = append(items, it)
	}
	return items
}

var (
	surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
	givenM   = []rune("伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林建国志文")
	givenF   = []rune("芳娜敏静丽艳娟霞秀燕玲桂英红梅琳雪婷颖倩慧莉兰萍洁琴云凤")
)

// categoryPlan gives each category its share of the persons and its
// birth-year range.
var categoryPlan = []struct {
	cat          yibao.PersonCategory
	count        int
	yFrom, yTo   int
	employeePlan bool
}{
	{yibao.CategoryActive, 18, 1966, 2003, true},
	{yibao.CategoryRetired, 12, 1936, 1965, true},
	{yibao.CategoryResident, 12, 1950, 2000, false},
	{yibao.CategoryStudent, 8, 2008, 2022, false},
	{yibao.CategoryLowIncome, 6, 1945, 1990, false},
	{yibao.CategoryExtremePoverty, 4, 1940, 1975, false},
	{yibao.CategoryDisabled, 3, 1960, 1995, false},
	{yibao.CategorySpecialCare, 1, 1945, 1955, false},
}

// districtsOf returns the district codes of a region, sorted.
func districtsOf(divisions map[string]string, region string) []string {
	var out []string
	for code := range divisions {
		if strings.HasPrefix(code, region[:4]) && code != region && !strings.HasSuffix(code, "00") {
			out = append(out, code)
		}
	}
	sortStrings(out)
	return out
}

// people makes n persons with coverage; offset shifts their numbers so that
// sample files never collide with the seeded persons. Most live in the
// capital region's districts; every 16th is insured in the second region
// and born in its first district.
func people(r *rand.Rand, sp provinceSpec, divisions map[string]string, n, offset int) ([]yibao.Person, []yibao.Coverage) {
	districts := districtsOf(divisions, sp.capital)
	secondDistrict := districtsOf(divisions, sp.second)[0]
	var persons []yibao.Person
	var covs []yibao.Coverage
	usedPhones := map[string]bool{}
	i := 0
	for _, plan := range categoryPlan {
		for k := 0; k < plan.count && i < n; k, i = k+1, i+1 {
			seq := offset + i + 1
			admdvs := sp.capital
			if seq%16 == 0 {
				admdvs = sp.second // a few insured in the second region (Qingdao), for cross-region care
			}
			female := r.IntN(2) == 0
			year := plan.yFrom + r.IntN(plan.yTo-plan.yFrom+1)
			month, day := 1+r.IntN(12), 1+r.IntN(28)
			seqDigits := 100 + r.IntN(899)
			if (seqDigits%2 == 0) != female {
				seqDigits++
			}
			div := districts[r.IntN(len(districts))]
			if admdvs == sp.second {
				div = secondDistrict
			}
			body := fmt.Sprintf("%s%04d%02d%02d%03d", div, year, month, day, seqDigits)
			id := body + string(yibao.IDCheckChar(body))
			var given []rune
			pool := givenM
			if female {
				pool = givenF
			}
			for range 1 + r.IntN(2) {
				given = append(given, pool[r.IntN(len(pool))])
			}
			name := string(surnames[r.IntN(len(surnames))]) + string(given)
			phone := ""
			if plan.cat != yibao.CategoryStudent || r.IntN(2) == 0 {
				for phone == "" || usedPhones[phone] {
					phone = fmt.Sprintf("1%d%09d", 3+r.IntN(7), r.IntN(1_000_000_000))
				}
				usedPhones[phone] = true
			}
			psn := fmt.Sprintf("%s00%014d", admdvs[:4], seq)
			persons = append(persons, yibao.Person{PsnNo: psn, IDNumber: id, Name: name, Phone: phone, Category: plan.cat, Admdvs: admdvs})
			start := "2024-01-01"
			if r.IntN(4) == 0 {
				start = "2025-01-01"
			}
			add := func(insutype, from, to string) {
				covs = append(covs, yibao.Coverage{ID: fmt.Sprintf("cov_demo_%s_%s_%s", psn, insutype, from), PsnNo: psn,
					Insutype: insutype, Admdvs: admdvs, StartDate: from, EndDate: to, Status: yibao.CoverageActive})
			}
			if plan.employeePlan {
				if i == 1 {
					// History: an ended period and the current one.
					add("310", "2023-01-01", "2024-12-31")
					add("310", "2025-01-01", "")
				} else {
					add("310", start, "")
				}
				add("330", start, "")
				if plan.cat == yibao.CategoryActive && k%5 == 0 {
					add("320", start, "")
				}
			} else {
				add("390", start, "")
				add("392", start, "")
				if plan.cat == yibao.CategoryLowIncome || plan.cat == yibao.CategoryExtremePoverty {
					add("610", start, "")
				}
			}
		}
	}
	return persons, covs
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// SamplePersons returns Shandong persons and coverage that are not in
// Build(), for the import sample.
func SamplePersons() ([]yibao.Person, []yibao.Coverage) {
	r := rand.New(rand.NewPCG(Seed, 2))
	return people(r, spec("37"), parseDivisions("37"), 20, 500)
}

// CatalogCSV writes items in the catalog import format.
func CatalogCSV(items []yibao.CatalogItem) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"code", "name", "kind", "class", "self_pay_ratio", "price_cap", "unit", "spec", "category", "restriction", "valid_from", "valid_to"})
	for _, it := range items {
		ratio, cap := "", ""
		if !it.SelfPayRatio.IsZero() {
			ratio = it.SelfPayRatio.String()
		}
		if it.PriceCap != nil {
			cap = it.PriceCap.String()
		}
		w.Write([]string{it.Code, it.Name, string(it.Kind), it.Class.Label(), ratio, cap, it.Unit, it.Spec, it.Category,
			it.Restriction, it.ValidFrom, it.ValidTo})
	}
	w.Flush()
	return b.Bytes()
}

// PersonsCSV writes persons and their coverage in the persons import
// format, one row per coverage period.
func PersonsCSV(persons []yibao.Person, covs []yibao.Coverage) []byte {
	byPsn := map[string]yibao.Person{}
	for _, p := range persons {
		byPsn[p.PsnNo] = p
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"psn_no", "id_number", "name", "phone", "category", "admdvs", "insutype", "start_date", "end_date"})
	for _, c := range covs {
		p := byPsn[c.PsnNo]
		w.Write([]string{p.PsnNo, p.IDNumber, p.Name, p.Phone, string(p.Category), p.Admdvs, c.Insutype, c.StartDate, c.EndDate})
	}
	w.Flush()
	return b.Bytes()
}

// AgreementHolders are the persons the demo gives a WeChat Pay
// withholding agreement (免密代扣): the second to fourth employees of the
// capital region (d.Regions[0]), so that the first (the browser test's
// patient) signs one in the app.
func AgreementHolders(d *Dataset) []string {
	var out []string
	for _, c := range d.Coverages {
		if c.Insutype == "310" && c.EndDate == "" && c.Admdvs == d.CapitalRegion() {
			out = append(out, c.PsnNo)
		}
	}
	if len(out) > 4 {
		out = out[1:4]
	}
	return out
}

// CapitalRegion is the code of the province's capital region, the first of
// d.Regions (370100, 320100, 440100): the region the demo's bills, family
// link and agreements are made in.
func (d *Dataset) CapitalRegion() string { return d.Regions[0].Admdvs }
