package demo

import (
	"bytes"
	"strings"
	"testing"

	"yibao"
	"yibao/funds"
)

// TestProvinceCodes checks that every code of a province's dataset carries
// the province: regions, institutions, ID numbers, psn_no, coverages,
// logins and keys, and that no two provinces share a person or a key.
func TestProvinceCodes(t *testing.T) {
	want := map[string][2]string{"37": {"济南市", "青岛市"}, "32": {"南京市", "无锡市"}, "44": {"广州市", "深圳市"}}
	seen := map[string]string{}
	once := func(t *testing.T, prov, key string) {
		if o, ok := seen[key]; ok {
			t.Errorf("%s is in provinces %s and %s", key, o, prov)
		}
		seen[key] = prov
	}
	for _, prov := range Provinces() {
		t.Run(prov, func(t *testing.T) {
			d := BuildProvince(prov)
			if d.Province != prov || len(d.Regions) != 2 {
				t.Fatalf("province %q, %d regions", d.Province, len(d.Regions))
			}
			region := map[string]string{}
			for i, r := range d.Regions {
				if r.Admdvs[:2] != prov || r.Parent != prov+"0000" || r.Name != want[prov][i] {
					t.Errorf("region %+v", r)
				}
				region[r.Admdvs] = r.Name
			}
			if d.CapitalRegion() != d.Regions[0].Admdvs {
				t.Errorf("capital %s", d.CapitalRegion())
			}
			codes := map[string]bool{}
			perRegion := map[string]int{}
			for _, in := range d.Institutions {
				name, ok := region[in.Admdvs]
				if !ok || in.Code[1:5] != in.Admdvs[:4] || !strings.HasPrefix(in.Name, strings.TrimSuffix(name, "市")) {
					t.Errorf("institution %s %s in %s", in.Code, in.Name, in.Admdvs)
				}
				codes[in.Code] = true
				perRegion[in.Admdvs]++
			}
			people := map[string]yibao.Person{}
			for _, p := range d.Persons {
				if _, ok := region[p.Admdvs]; !ok || p.PsnNo[:4] != p.Admdvs[:4] || p.IDNumber[:4] != p.Admdvs[:4] {
					t.Errorf("person %s (ID %s) of region %s", p.PsnNo, p.IDNumber, p.Admdvs)
				}
				once(t, prov, p.PsnNo)
				once(t, prov, p.IDNumber)
				people[p.PsnNo] = p
				perRegion["persons "+p.Admdvs]++
			}
			for _, r := range d.Regions {
				if perRegion[r.Admdvs] == 0 || perRegion["persons "+r.Admdvs] == 0 {
					t.Errorf("region %s has no institution or no person: %v", r.Admdvs, perRegion)
				}
			}
			for _, c := range d.Coverages {
				if c.Admdvs != people[c.PsnNo].Admdvs || !strings.Contains(c.ID, c.PsnNo) {
					t.Errorf("coverage %s in %s", c.ID, c.Admdvs)
				}
			}
			for _, u := range d.Users {
				if u.FixmedinsCode == "" {
					continue
				}
				if !codes[u.FixmedinsCode] || u.Username != u.Role+"."+strings.ToLower(u.FixmedinsCode) {
					t.Errorf("user %s of %s", u.Username, u.FixmedinsCode)
				}
			}
			for _, k := range d.APIKeys {
				if !codes[k.FixmedinsCode] || k.KeyID != "ak_demo_"+strings.ToLower(k.FixmedinsCode) {
					t.Errorf("key %s of %s", k.KeyID, k.FixmedinsCode)
				}
				once(t, prov, k.KeyID)
			}
			if h := AgreementHolders(d); len(h) != 3 || people[h[0]].Admdvs != d.CapitalRegion() {
				t.Errorf("agreement holders %v", h)
			}
		})
	}
	if got := BuildProvince("32").Users[2].Username; got != "cashier.h32010000001" {
		t.Errorf("first cashier of 32: %s", got)
	}
}

// TestContributionsEveryProvince reads each province's contribution file
// as the funds service does.
func TestContributionsEveryProvince(t *testing.T) {
	forEachProvince(t, func(t *testing.T, d *Dataset) {
		recs, err := yibao.ReadCSV(bytes.NewReader(ContributionsCSV(d, "2026-03")), funds.ContributionsCSVHeader, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		psns := map[string]bool{}
		for _, p := range d.Persons {
			psns[p.PsnNo] = true
		}
		kinds := map[string]int{}
		for _, r := range recs {
			if !psns[r.Fields[0]] {
				t.Fatalf("line %d: contribution for unknown person %s", r.Line, r.Fields[0])
			}
			kinds[r.Fields[3]]++
		}
		if kinds["employer"] == 0 || kinds["individual"] == 0 || kinds["resident"] == 0 || kinds["subsidy"] == 0 {
			t.Fatalf("contribution kinds %v", kinds)
		}
	})
}
