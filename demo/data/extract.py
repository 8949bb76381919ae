#!/usr/bin/env python3
"""Builds demo/data/catalog.csv, sample_catalog_import.csv and the division
files divisions_37.csv (Shandong), divisions_32.csv (Jiangsu) and
divisions_44.csv (Guangdong) from the staged reference data in
../shared/data. A development tool, run by hand when the selection changes;
the product embeds the CSV files and never reads ../shared. A rerun
reproduces the committed files byte for byte.

    python3 demo/data/extract.py /path/to/shared/data
"""
import csv, hashlib, re, sys, os

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/data")
out = os.path.dirname(os.path.abspath(__file__))

def rows(name):
    with open(os.path.join(src, name), encoding="utf-8") as f:
        return list(csv.DictReader(f))

def h(s):  # stable small integer from a string
    return int(hashlib.sha256(s.encode()).hexdigest()[:8], 16)

UNIT = [("注射", "支"), ("颗粒", "袋"), ("散", "袋"), ("口服液体", "瓶"), ("滴眼", "支"), ("软膏", "支"),
        ("乳膏", "支"), ("吸入", "支"), ("栓", "粒"), ("胶囊", "粒"), ("丸", "袋"), ("贴", "贴")]

def unit_for(form, name):
    for key, u in UNIT:
        if key in form or key in name:
            return u
    return "片"

# --- drugs -------------------------------------------------------------------
drugs = rows("nhsa_drug_list_2024.csv")
codes = {}
for r in rows("nhsa_drug_codes_rules.csv"):
    codes.setdefault(r["generic_name"], r["nhsa_drug_code"])

items, matched, seen_names = [], 0, set()
regular = [r for r in drugs if r["list_part"] == "常规" and r["is_repeat"] == "0"]
# Drugs with an NHSA code in the rules table first (every 2nd), then every
# 30th of the rest, for a spread over categories with real codes where we can.
with_code = [r for r in regular if r["drug_name"] in codes]
without = [r for r in regular if r["drug_name"] not in codes]
picked = with_code[::2] + without[::30]
negotiated = [r for r in drugs if r["list_part"] != "常规" and re.match(r"^[0-9]+(\.[0-9]+)?元\(.*/([^)]+)\)$", r["payment_standard"])]
picked += negotiated[::12]
for r in picked:
    name = r["drug_name"]
    if name in seen_names:
        continue
    seen_names.add(name)
    code = codes.get(name)
    if code:
        matched += 1
    else:
        # No NHSA code in the rules table: a demo code from the list's own
        # category code and number (documented in PROVENANCE.md).
        code = "YB%s%s%04d" % (r["category_code"], "X" if r["drug_type"] == "西药" else "Z", int(r["drug_no"]))
    cls = r["insurance_class"]
    ratio = "0.1" if cls == "乙" else ""
    cap, unit, valid_to = "", unit_for(r["dosage_form"], name), ""
    m = re.match(r"^([0-9]+(?:\.[0-9]+)?)元\(.*/([^)]+)\)$", r["payment_standard"])
    if m:
        cap, unit = "%.2f" % float(m.group(1)), m.group(2)[-1]
        vm = re.search(r"至(\d{4})年(\d{1,2})月(\d{1,2})日", r["valid_period"])
        if vm:
            valid_to = "%s-%02d-%02d" % (vm.group(1), int(vm.group(2)), int(vm.group(3)))
    items.append(dict(code=code, name=name, kind="drug", cls=cls, ratio=ratio, cap=cap, unit=unit,
                      spec=r["dosage_form"] or r["drug_type"], category=r["category_code"] + " " + r["category_name"],
                      restriction=r["remark"], valid_to=valid_to))
n_drugs = len(items)

# --- services ----------------------------------------------------------------
NOT_COVERED = re.compile(r"保健|体检|美容|精子|行为矫正|包皮")
seen = set()
svc = []
for r in rows("nhsa_service_item_rules.csv"):
    code, name = r["item_code"], r["item_name"]
    if code in seen or not re.fullmatch(r"[0-9]{15}", code) or "加收" in name:
        continue
    seen.add(code)
    svc.append((code, name, r["rule_type"], r["rule_value"]))
svc = svc[::9][:70] + [x for x in svc if NOT_COVERED.search(x[1])][:12]
done = set()
for code, name, rtype, rval in svc:
    if code in done:
        continue
    done.add(code)
    if NOT_COVERED.search(name):
        cls, ratio = "丙", ""
    elif "术" in name and h(code) % 3 == 0:
        cls, ratio = "乙", "0.1"   # demo: some operations carry a self-pay share
    else:
        cls, ratio = "甲", ""
    base = 1200 if "术" in name else (80 if re.search(r"检|测|查", name) else 150)
    cap = "%.2f" % (base * (50 + h(name) % 100) / 100)  # demo price caps
    items.append(dict(code=code, name=name, kind="service", cls=cls, ratio=ratio, cap=cap,
                      unit="次", spec="", category="医疗服务项目", restriction=(rtype + "：" + rval) if rval else "", valid_to=""))
n_svc = len(items) - n_drugs

# --- materials ---------------------------------------------------------------
mats = rows("consumable_category_dict_medimodel.csv")[::5]
for i, r in enumerate(mats):
    if i % 4 == 3:
        cls, ratio = "丙", ""
    else:
        cls, ratio = "乙", ("0.3" if "介入" in r["fee_item"] else "0.2")
    cap = "%.2f" % (200 + h(r["category_name"]) % 3000)  # demo price caps
    items.append(dict(code=r["nhsa_consumable_category_code"], name=r["category_name"], kind="material", cls=cls,
                      ratio=ratio, cap=cap, unit="个", spec=r["fee_item"], category="医用耗材", restriction="", valid_to=""))

# Two emergency-care items added by hand from the NHSA duplicate-charge rule
# library (review/nhsa_service_item_duplicate_charge.csv, 第七批: the first
# includes the second), with demo prices, so the demo can show a duplicate
# charge being blocked (PROVENANCE.md). Kept here so a rerun keeps them.
HAND_ROWS = [
    ["001103000010000", "急诊监护费", "service", "甲", "", "120.00", "日", "", "医疗服务项目",
     "含监护、床位、诊查、护理（重复收费规则：不得另收急诊诊查费、床位费）", "2025-01-01", ""],
    ["001102000030000", "急诊诊查费", "service", "甲", "", "15.00", "次", "", "医疗服务项目", "", "2025-01-01", ""],
]

with open(os.path.join(out, "catalog.csv"), "w", encoding="utf-8", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["code", "name", "kind", "class", "self_pay_ratio", "price_cap", "unit", "spec", "category", "restriction", "valid_from", "valid_to"])
    for it in items:
        w.writerow([it["code"], it["name"], it["kind"], it["cls"], it["ratio"], it["cap"], it["unit"], it["spec"],
                    it["category"], it["restriction"], "2025-01-01", it["valid_to"]])
    for row in HAND_ROWS:
        w.writerow(row)

# A second, disjoint slice for the import sample in the README tour.
sample = [r for r in regular if r["drug_name"] not in seen_names][5::40][:30]
with open(os.path.join(out, "sample_catalog_import.csv"), "w", encoding="utf-8", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["code", "name", "kind", "class", "self_pay_ratio", "price_cap", "unit", "spec", "category", "restriction", "valid_from", "valid_to"])
    for r in sample:
        code = codes.get(r["drug_name"]) or "YB%s%s%04d" % (r["category_code"], "X" if r["drug_type"] == "西药" else "Z", int(r["drug_no"]))
        cls = r["insurance_class"]
        w.writerow([code, r["drug_name"], "drug", cls, "0.1" if cls == "乙" else "", "", unit_for(r["dosage_form"], r["drug_name"]),
                    r["dosage_form"] or r["drug_type"], r["category_code"] + " " + r["category_name"], r["remark"], "2025-01-01", ""])

# One division file per demo province (demo.BuildProvince): 37 Shandong,
# 32 Jiangsu, 44 Guangdong; every row whose code starts with the province.
divisions = rows("admin_divisions_cn_2023.csv")
for prov in ("37", "32", "44"):
    with open(os.path.join(out, "divisions_%s.csv" % prov), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "name", "level", "parent_code"])
        for r in divisions:
            if r["code"].startswith(prov):
                w.writerow([r["code"], r["name"], r["level"], r["parent_code"]])

by = {}
for it in items:
    by[(it["kind"], it["cls"])] = by.get((it["kind"], it["cls"]), 0) + 1
print("items", len(items), "drugs", n_drugs, "matched NHSA codes", matched, "services", n_svc, sorted(by.items()))
