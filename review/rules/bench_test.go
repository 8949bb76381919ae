package rules

import (
	"reflect"
	"testing"
)

// bench20 is a 20-line inpatient bill: drugs and items, several of them
// hitting rules (course, level, frequency, duplicate, primary-secondary,
// price cap, diagnosis-free lines by name, same-day elsewhere).
func bench20() Bill {
	d, s := TargetDrug, TargetService
	return Bill{VisitType: "inpatient", Level: 2, Insutype: "310", Age: 67, Sex: "1", Diagnoses: []string{"I63.900", "I10.x00"},
		Lines: []Line{
			{Sn: "1", Code: "XB01AXA223B002010100156", Name: "奥扎格雷钠注射液", Kind: d, Quantity: 1, Days: 1, Date: "2025-03-01", UnitPrice: 2000, PriceCap: 2500},
			{Sn: "2", Code: "XB01AXA223B002010100156", Name: "奥扎格雷钠注射液", Kind: d, Quantity: 1, Days: 15, Date: "2025-03-02", UnitPrice: 2000, PriceCap: 2500},
			{Sn: "3", Code: "XN07XXD130E002010102774", Name: "丁苯酞软胶囊", Kind: d, Quantity: 24, Days: 7, Date: "2025-03-02", UnitPrice: 1500},
			{Sn: "4", Code: "XS01LAL328B002010104021", Name: "雷珠单抗注射液", Kind: d, Quantity: 1, Date: "2025-03-02", UnitPrice: 300000},
			{Sn: "5", Code: "ZA07AAA0061010100166", Name: "安宫牛黄丸", Kind: d, Quantity: 1, Date: "2025-03-02", UnitPrice: 45000},
			{Sn: "6", Code: "H-LOCAL-0042", Name: "阿帕他胺片", Kind: d, Quantity: 28, Date: "2025-03-02", UnitPrice: 6000},
			{Sn: "7", Code: "XA02BCA211A001010100000", Name: "奥美拉唑肠溶胶囊", Kind: d, Quantity: 14, Date: "2025-03-02", UnitPrice: 80},
			{Sn: "8", Code: "XC01EBC109B001010102049", Name: "注射用重组人脑利钠肽", Kind: d, Quantity: 1, Days: 4, Date: "2025-03-02", UnitPrice: 60000},
			{Sn: "9", Code: "003107010220000", Name: "心电监测", Kind: s, Quantity: 24, Date: "2025-03-01", UnitPrice: 300},
			{Sn: "10", Code: "003107010220000", Name: "心电监测", Kind: s, Quantity: 6, Date: "2025-03-01", UnitPrice: 300},
			{Sn: "11", Code: "001103000010000", Name: "急诊监护费", Kind: s, Quantity: 1, Date: "2025-03-01", UnitPrice: 5000},
			{Sn: "12", Code: "001102000030000", Name: "急诊诊查费", Kind: s, Quantity: 1, Date: "2025-03-01", UnitPrice: 1000},
			{Sn: "13", Code: "001109000010000", Name: "普通病房床位费", Kind: s, Quantity: 1, Date: "2025-03-02", UnitPrice: 3000},
			{Sn: "14", Code: "002503020030000", Name: "糖化血红蛋白测定", Kind: s, Quantity: 1, Date: "2025-03-02", UnitPrice: 6000, PriceCap: 4500},
			{Sn: "15", Code: "003310020040000", Name: "远端胃大部切除术", Kind: s, Quantity: 1, Date: "2025-03-03", UnitPrice: 300000},
			{Sn: "16", Code: "003310020010000", Name: "胃肠切开取异物", Kind: s, Quantity: 1, Date: "2025-03-03", UnitPrice: 120000},
			{Sn: "17", Code: "002101030280000", Name: "阴茎海绵体造影", Kind: s, Quantity: 1, Date: "2025-03-03", UnitPrice: 20000},
			{Sn: "18", Code: "001201000070000", Name: "新生儿护理", Kind: s, Quantity: 1, Date: "2025-03-03", UnitPrice: 2000},
			{Sn: "19", Code: "003402000320000", Name: "职业功能训练", Kind: s, Quantity: 1, Date: "2025-03-03", UnitPrice: 4000},
			{Sn: "20", Code: "M-0001", Name: "一次性注射器", Kind: "material", Quantity: 10, Date: "2025-03-03", UnitPrice: 50},
		},
		Elsewhere: []Line{{Sn: "E1", Code: "XN07XXD130E002010102774", Name: "丁苯酞软胶囊", Kind: d, Date: "2025-03-02"}},
		History:   []Line{{Sn: "H1", Code: "002503020030000", Name: "糖化血红蛋白测定", Kind: s, Quantity: 1, Date: "2025-02-25"}},
	}
}

func TestBenchBill(t *testing.T) {
	rules, _ := loadReal(t)
	lib := NewLibrary(rules, nil)
	hits := lib.Check(bench20())
	kinds := map[Kind]int{}
	for _, h := range hits {
		kinds[h.Kind]++
		t.Logf("%s %s %s %s", h.Sn, h.Rule, h.Action, h.Message)
	}
	if len(hits) < 10 || len(kinds) < 8 {
		t.Errorf("%d hits of %d kinds: want a bill that exercises most kinds", len(hits), len(kinds))
	}
}

func BenchmarkCheck20Lines(b *testing.B) {
	rules, _ := loadReal(b)
	lib := NewLibrary(rules, nil)
	bill := bench20()
	b.ReportAllocs()
	for b.Loop() {
		if len(lib.Check(bill)) == 0 {
			b.Fatal("no hits")
		}
	}
}

func BenchmarkNewLibrary(b *testing.B) {
	rules, _ := loadReal(b)
	b.ReportAllocs()
	for b.Loop() {
		NewLibrary(rules, nil)
	}
}

func TestConcurrentCheck(t *testing.T) {
	rules, _ := loadReal(t)
	lib := NewLibrary(rules, nil)
	want := lib.Check(bench20())
	done := make(chan []Hit)
	for range 8 {
		go func() { done <- lib.Check(bench20()) }()
	}
	for range 8 {
		if got := <-done; !reflect.DeepEqual(got, want) {
			t.Fatal("concurrent checks differ")
		}
	}
}
