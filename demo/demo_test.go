package demo

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"testing"
	"time"

	"yibao"
)

var update = flag.Bool("update", false, "rewrite data/sample_persons_import.csv")

var today = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func TestBuildIsDeterministic(t *testing.T) {
	if !reflect.DeepEqual(Build(), Build()) {
		t.Fatal("Build differs between calls")
	}
	if !reflect.DeepEqual(Build(), BuildProvince("37")) {
		t.Fatal(`Build is not BuildProvince("37")`)
	}
	names := map[string]string{}
	for _, prov := range Provinces() {
		if !reflect.DeepEqual(BuildProvince(prov), BuildProvince(prov)) {
			t.Fatalf("BuildProvince(%s) differs between calls", prov)
		}
		// Each province has its own seed: its people differ.
		for _, p := range BuildProvince(prov).Persons[:8] {
			if o, ok := names[p.Name+p.IDNumber[6:14]]; ok {
				t.Errorf("province %s repeats %s's person %s", prov, o, p.Name)
			}
			names[p.Name+p.IDNumber[6:14]] = prov
		}
	}
}

func TestUnknownProvincePanics(t *testing.T) {
	if KnownProvince("11") || !KnownProvince("32") {
		t.Fatal("KnownProvince")
	}
	defer func() {
		if recover() == nil {
			t.Fatal(`BuildProvince("11") did not panic`)
		}
	}()
	BuildProvince("11")
}

// forEachProvince runs a subtest per province on its dataset.
func forEachProvince(t *testing.T, f func(t *testing.T, d *Dataset)) {
	for _, prov := range Provinces() {
		t.Run(prov, func(t *testing.T) { f(t, BuildProvince(prov)) })
	}
}

func TestCounts(t *testing.T) { forEachProvince(t, testCounts) }

func testCounts(t *testing.T, d *Dataset) {
	byClass := map[yibao.ItemClass]int{}
	byKind := map[yibao.ItemKind]int{}
	for _, it := range d.Catalog {
		byClass[it.Class]++
		byKind[it.Kind]++
	}
	if len(d.Catalog) < 240 || byClass[yibao.ClassC] < 20 || byClass[yibao.ClassA] < 50 || byClass[yibao.ClassB] < 50 {
		t.Fatalf("catalog: %d items, by class %v", len(d.Catalog), byClass)
	}
	if byKind[yibao.ItemDrug] < 100 || byKind[yibao.ItemService] < 40 || byKind[yibao.ItemMaterial] < 20 {
		t.Fatalf("catalog by kind %v", byKind)
	}
	cats := map[yibao.PersonCategory]int{}
	for _, p := range d.Persons {
		cats[p.Category]++
	}
	if len(d.Persons) < 60 {
		t.Fatalf("%d persons", len(d.Persons))
	}
	for _, c := range yibao.PersonCategories {
		if cats[c] == 0 {
			t.Errorf("no person of category %s", c)
		}
	}
	levels := map[int]bool{}
	pharmacy := false
	for _, in := range d.Institutions {
		levels[in.Level] = true
		pharmacy = pharmacy || in.Kind == yibao.KindPharmacy
	}
	if !levels[1] || !levels[2] || !levels[3] || !pharmacy {
		t.Fatalf("institutions lack a level or a pharmacy: %v", levels)
	}
	if d.Users[0].Username != "admin" || d.Users[0].Role != "admin" {
		t.Fatal("the first user must be the administrator (the demo prints it)")
	}
	t.Logf("catalog %d (by class %v, by kind %v), persons %d %v, coverages %d", len(d.Catalog), byClass, byKind, len(d.Persons), cats, len(d.Coverages))
}

func TestEveryRecordValidates(t *testing.T) { forEachProvince(t, testEveryRecordValidates) }

func testEveryRecordValidates(t *testing.T, d *Dataset) {
	for _, r := range d.Regions {
		if err := r.Validate(); err != nil {
			t.Errorf("region %s: %v", r.Admdvs, err)
		}
	}
	for _, s := range d.Schemes {
		if err := s.Validate(); err != nil {
			t.Errorf("scheme %s: %v", s.Insutype, err)
		}
	}
	for _, in := range d.Institutions {
		if err := in.Validate(); err != nil {
			t.Errorf("institution %s: %v", in.Code, err)
		}
	}
	codes := map[string]bool{}
	for _, it := range d.Catalog {
		if err := it.Validate(); err != nil {
			t.Errorf("catalog %s: %v", it.Code, err)
		}
		if codes[it.Code] {
			t.Errorf("catalog code %s twice", it.Code)
		}
		codes[it.Code] = true
	}
	ids, phones, psns := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, p := range d.Persons {
		if err := p.Validate(today); err != nil {
			t.Errorf("person %s: %v", p.PsnNo, err)
		}
		if ids[p.IDNumber] || psns[p.PsnNo] || (p.Phone != "" && phones[p.Phone]) {
			t.Errorf("person %s repeats an ID number, psn_no or phone", p.PsnNo)
		}
		ids[p.IDNumber], psns[p.PsnNo] = true, true
		if p.Phone != "" {
			phones[p.Phone] = true
		}
	}
	for i, c := range d.Coverages {
		if err := c.Validate(); err != nil {
			t.Errorf("coverage %s: %v", c.ID, err)
		}
		if !psns[c.PsnNo] {
			t.Errorf("coverage %s for unknown person", c.ID)
		}
		for _, o := range d.Coverages[:i] {
			if o.PsnNo == c.PsnNo && o.Insutype == c.Insutype && yibao.Overlaps(o.StartDate, o.EndDate, c.StartDate, c.EndDate) {
				t.Errorf("coverages %s and %s overlap", o.ID, c.ID)
			}
		}
	}
}

func TestSamplesAreCurrent(t *testing.T) {
	ps, cs := SamplePersons()
	seeded := map[string]bool{}
	for _, p := range Build().Persons {
		seeded[p.PsnNo], seeded[p.IDNumber] = true, true
	}
	for _, p := range ps {
		if seeded[p.PsnNo] || seeded[p.IDNumber] {
			t.Fatalf("sample person %s collides with the seeded data", p.PsnNo)
		}
		if err := p.Validate(today); err != nil {
			t.Fatalf("sample person %s: %v", p.PsnNo, err)
		}
	}
	want := PersonsCSV(ps, cs)
	if *update {
		os.WriteFile("data/sample_persons_import.csv", want, 0o644)
	}
	got, err := os.ReadFile("data/sample_persons_import.csv")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("data/sample_persons_import.csv is stale; run go test ./demo -update (%v)", err)
	}
	// The catalog sample adds items: none of its codes is seeded.
	sample := parseCatalog(mustRead(t, "data/sample_catalog_import.csv"))
	codes := map[string]bool{}
	for _, it := range Build().Catalog {
		codes[it.Code] = true
	}
	for _, it := range sample {
		if codes[it.Code] {
			t.Fatalf("sample catalog item %s is already seeded", it.Code)
		}
		if err := it.Validate(); err != nil {
			t.Fatalf("sample catalog item %s: %v", it.Code, err)
		}
	}
	if len(sample) < 20 {
		t.Fatalf("catalog sample has %d items", len(sample))
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
