package yibao

import (
	"regexp"
	"time"
)

// Gender follows GB/T 2261.1: 1 male, 2 female.
type Gender string

// Genders.
const (
	GenderMale   Gender = "1"
	GenderFemale Gender = "2"
)

// DateLayout is the layout of calendar dates everywhere: API, database, CSV.
const DateLayout = "2006-01-02"

// ChinaTime is the zone of every calendar date the platform uses (UTC+8,
// no daylight saving): visit dates, settlement dates, policy years.
var ChinaTime = time.FixedZone("CST", 8*3600)

// DateOf is the calendar date of t in China time, YYYY-MM-DD.
func DateOf(t time.Time) string { return t.In(ChinaTime).Format(DateLayout) }

// ValidDate reports whether s is a calendar date in DateLayout.
func ValidDate(s string) bool {
	_, err := time.Parse(DateLayout, s)
	return err == nil
}

var (
	admdvsRe   = regexp.MustCompile(`^[1-9][0-9]{5}$`)
	insutypeRe = regexp.MustCompile(`^[0-9]{3}$`)
	psnNoRe    = regexp.MustCompile(`^[0-9A-Za-z]{8,30}$`)
	fixmedRe   = regexp.MustCompile(`^[HP][0-9]{11}$`)
	phoneRe    = regexp.MustCompile(`^1[3-9][0-9]{9}$`)
	codeRe     = regexp.MustCompile(`^[0-9A-Za-z._-]{2,50}$`)
)

// ValidAdmdvs reports whether s is a well-formed 6-digit division code.
func ValidAdmdvs(s string) bool { return admdvsRe.MatchString(s) }

// Region is a pooling region (统筹区), named by its division code.
type Region struct {
	Admdvs    string    `json:"admdvs"`
	Name      string    `json:"name"`
	Parent    string    `json:"parent,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Validate checks the region's fields.
func (r *Region) Validate() error {
	if !ValidAdmdvs(r.Admdvs) {
		return FieldError("admdvs", "must be a 6-digit division code not starting with 0")
	}
	if r.Name == "" || len(r.Name) > 100 {
		return FieldError("name", "is required (at most 100 bytes)")
	}
	if r.Parent != "" && !ValidAdmdvs(r.Parent) {
		return FieldError("parent", "must be a 6-digit division code")
	}
	return nil
}

// SchemeKind classifies an insurance scheme (险种).
type SchemeKind string

// Scheme kinds.
const (
	SchemeEmployeeBasic   SchemeKind = "employee_basic"
	SchemeResidentBasic   SchemeKind = "resident_basic"
	SchemeCivilServant    SchemeKind = "civil_servant"
	SchemeLargeAmount     SchemeKind = "large_amount"
	SchemeCriticalIllness SchemeKind = "critical_illness"
	SchemeAssistance      SchemeKind = "assistance"
	SchemeSupplementary   SchemeKind = "supplementary"
)

var schemeKinds = map[SchemeKind]bool{
	SchemeEmployeeBasic: true, SchemeResidentBasic: true, SchemeCivilServant: true, SchemeLargeAmount: true,
	SchemeCriticalIllness: true, SchemeAssistance: true, SchemeSupplementary: true,
}

// Scheme is an insurance scheme (险种, insutype).
type Scheme struct {
	Insutype  string     `json:"insutype"`
	Name      string     `json:"name"`
	Kind      SchemeKind `json:"kind"`
	CreatedAt time.Time  `json:"created_at"`
}

// Validate checks the scheme's fields.
func (s *Scheme) Validate() error {
	if !insutypeRe.MatchString(s.Insutype) {
		return FieldError("insutype", "must be a 3-digit scheme code such as 310 or 390")
	}
	if s.Name == "" || len(s.Name) > 100 {
		return FieldError("name", "is required (at most 100 bytes)")
	}
	if !schemeKinds[s.Kind] {
		return FieldError("kind", "must be one of employee_basic, resident_basic, civil_servant, large_amount, critical_illness, assistance, supplementary")
	}
	return nil
}

// PersonCategory is the category that policies key on (retired, low income …).
type PersonCategory string

// Person categories.
const (
	CategoryActive         PersonCategory = "active"          // 在职
	CategoryRetired        PersonCategory = "retired"         // 退休
	CategoryResident       PersonCategory = "resident"        // 城乡居民
	CategoryStudent        PersonCategory = "student"         // 学生儿童
	CategoryLowIncome      PersonCategory = "low_income"      // 低保
	CategoryExtremePoverty PersonCategory = "extreme_poverty" // 特困
	CategoryDisabled       PersonCategory = "disabled"        // 重度残疾
	CategorySpecialCare    PersonCategory = "special_care"    // 优抚对象
)

// PersonCategories lists the categories in display order.
var PersonCategories = []PersonCategory{CategoryActive, CategoryRetired, CategoryResident, CategoryStudent,
	CategoryLowIncome, CategoryExtremePoverty, CategoryDisabled, CategorySpecialCare}

// ValidCategory reports whether c is a known category.
func ValidCategory(c PersonCategory) bool {
	for _, k := range PersonCategories {
		if k == c {
			return true
		}
	}
	return false
}

// Person is an insured person. IDNumber, Name and Phone are personal data:
// they are stored encrypted and only ever leave the service masked, unless a
// caller with the right to see them asks explicitly.
type Person struct {
	PsnNo     string         `json:"psn_no"`
	IDNumber  string         `json:"id_number,omitempty"`
	Name      string         `json:"name,omitempty"`
	Phone     string         `json:"phone,omitempty"`
	IDMasked  string         `json:"id_masked"`
	NameMask  string         `json:"name_masked"`
	PhoneMask string         `json:"phone_masked,omitempty"`
	BirthDate string         `json:"birth_date"`
	Gender    Gender         `json:"gender"`
	Category  PersonCategory `json:"category"`
	Admdvs    string         `json:"admdvs"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// Validate checks the fields a caller supplies and fills BirthDate and Gender
// from the ID number.
func (p *Person) Validate(today time.Time) error {
	if !psnNoRe.MatchString(p.PsnNo) {
		return FieldError("psn_no", "must be 8–30 letters or digits")
	}
	id, err := ParseIDNumber(p.IDNumber, today)
	if err != nil {
		return err
	}
	p.IDNumber = id.Number
	n := []rune(p.Name)
	if len(n) == 0 || len(n) > 50 {
		return FieldError("name", "is required (at most 50 characters)")
	}
	if p.Phone != "" && !phoneRe.MatchString(p.Phone) {
		return FieldError("phone", "must be an 11-digit mobile number")
	}
	if !ValidCategory(p.Category) {
		return FieldError("category", "must be one of active, retired, resident, student, low_income, extreme_poverty, disabled, special_care")
	}
	if !ValidAdmdvs(p.Admdvs) {
		return FieldError("admdvs", "must be a 6-digit division code")
	}
	p.BirthDate = id.BirthDate.Format(DateLayout)
	p.Gender = id.Gender
	return nil
}

// CoverageStatus is the state of a coverage period.
type CoverageStatus string

// Coverage states.
const (
	CoverageActive    CoverageStatus = "active"
	CoverageSuspended CoverageStatus = "suspended"
	CoverageEnded     CoverageStatus = "ended"
)

// Coverage is one person insured under one scheme in one region for a
// period. Two coverages of the same person and scheme never overlap.
type Coverage struct {
	ID        string         `json:"id"`
	PsnNo     string         `json:"psn_no"`
	Insutype  string         `json:"insutype"`
	Admdvs    string         `json:"admdvs"`
	StartDate string         `json:"start_date"`
	EndDate   string         `json:"end_date,omitempty"` // empty: open-ended
	Status    CoverageStatus `json:"status"`
	CreatedAt time.Time      `json:"created_at"`
}

// Validate checks the coverage's own fields (not overlap, which needs the
// database).
func (c *Coverage) Validate() error {
	if !psnNoRe.MatchString(c.PsnNo) {
		return FieldError("psn_no", "must be 8–30 letters or digits")
	}
	if !insutypeRe.MatchString(c.Insutype) {
		return FieldError("insutype", "must be a 3-digit scheme code")
	}
	if !ValidAdmdvs(c.Admdvs) {
		return FieldError("admdvs", "must be a 6-digit division code")
	}
	start, err := time.Parse(DateLayout, c.StartDate)
	if err != nil {
		return FieldError("start_date", "must be a date YYYY-MM-DD")
	}
	if c.EndDate != "" {
		end, err := time.Parse(DateLayout, c.EndDate)
		if err != nil {
			return FieldError("end_date", "must be a date YYYY-MM-DD")
		}
		if end.Before(start) {
			return FieldError("end_date", "must not be before start_date")
		}
	}
	switch c.Status {
	case "":
		c.Status = CoverageActive
	case CoverageActive, CoverageSuspended, CoverageEnded:
	default:
		return FieldError("status", "must be active, suspended or ended")
	}
	return nil
}

// Overlaps reports whether two inclusive date ranges overlap; an empty end
// is open.
func Overlaps(start1, end1, start2, end2 string) bool {
	// Dates are YYYY-MM-DD, so string order is date order.
	if end1 != "" && end1 < start2 {
		return false
	}
	if end2 != "" && end2 < start1 {
		return false
	}
	return true
}

// InstitutionKind tells hospitals from pharmacies.
type InstitutionKind string

// Institution kinds.
const (
	KindHospital InstitutionKind = "hospital"
	KindPharmacy InstitutionKind = "pharmacy"
)

// ContractStatus is an institution's agreement with the bureau.
type ContractStatus string

// Contract states.
const (
	ContractActive     ContractStatus = "active"
	ContractSuspended  ContractStatus = "suspended"
	ContractTerminated ContractStatus = "terminated"
)

// Institution is a designated hospital or pharmacy (定点医药机构).
type Institution struct {
	Code           string          `json:"fixmedins_code"`
	Name           string          `json:"name"`
	Kind           InstitutionKind `json:"kind"`
	Level          int             `json:"level"`
	Admdvs         string          `json:"admdvs"`
	ContractStatus ContractStatus  `json:"contract_status"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// Validate checks the institution's fields.
func (in *Institution) Validate() error {
	if !fixmedRe.MatchString(in.Code) {
		return FieldError("fixmedins_code", "must be H or P followed by 11 digits")
	}
	if in.Name == "" || len(in.Name) > 200 {
		return FieldError("name", "is required (at most 200 bytes)")
	}
	switch in.Kind {
	case KindHospital:
		if in.Code[0] != 'H' {
			return FieldError("fixmedins_code", "a hospital code starts with H")
		}
		if in.Level < 1 || in.Level > 3 {
			return FieldError("level", "a hospital's level must be 1, 2 or 3")
		}
	case KindPharmacy:
		if in.Code[0] != 'P' {
			return FieldError("fixmedins_code", "a pharmacy code starts with P")
		}
		if in.Level != 0 {
			return FieldError("level", "a pharmacy has level 0")
		}
	default:
		return FieldError("kind", "must be hospital or pharmacy")
	}
	if !ValidAdmdvs(in.Admdvs) {
		return FieldError("admdvs", "must be a 6-digit division code")
	}
	switch in.ContractStatus {
	case "":
		in.ContractStatus = ContractActive
	case ContractActive, ContractSuspended, ContractTerminated:
	default:
		return FieldError("contract_status", "must be active, suspended or terminated")
	}
	return nil
}
