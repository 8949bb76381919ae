# Regenerates policy/testdata/cases/*.json. The expected figures are
# computed here independently of the Go code, with Python's Decimal and
# explicit formulas (ROUND_HALF_UP to the fen), from the parameters each
# case cites. Run: python3 policy/testdata/gen_cases.py
#
# quality: "derived" = parameters from a published page or from
# reference/settlement-rules.md, bill and missing parameters ours (said in
# notes); "partial" = one published figure reproduced inside our own bill.
# The per-case grades of the original 39 examples (high/medium/low) were not
# in our copy of settlement-rules.md, so none is claimed here.
import json, os
from decimal import Decimal as D, ROUND_HALF_UP
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
RULES = "reference/settlement-rules.md"
def r2(x): return D(x).quantize(D('0.01'), ROUND_HALF_UP)
def y(x): return f"{r2(D(x)):.2f}"

def pol(scheme, insutype="310", **kw):
    p = {"version": "case", "admdvs": "000000", "effective_from": "2000-01-01", "schemes": {insutype: scheme}}
    p.update(kw); return p
def ben(ded, ratio, unit=None, counter=None, **kw):
    d = {"by_level": {k: y(v) for k, v in ded.items()}}
    if unit: d["unit"] = unit
    if counter: d["counter"] = counter
    b = {"deductible": d, "ratio": {"by_level": {k: str(v) for k, v in ratio.items()}} if not isinstance(ratio, dict) or "by_level" not in ratio and "bands_by_level" not in ratio and "age" not in ratio else ratio}
    b.update(kw); return b
def A(amt, id="A"): return {"id": id, "class": "A", "amount": y(amt)}
def B(amt, id="B", **kw): l = {"id": id, "class": "B", "amount": y(amt)}; l.update(kw); return l
def C(amt, id="C"): return {"id": id, "class": "C", "amount": y(amt)}
def req(policy, lines, insutype="310", category="active", groups=None, age=50, vtype="inpatient", level=3, date="2026-06-01", counters=None, admissions=0, balance="0.00", **kw):
    person = {"insutype": insutype, "category": category, "age": age}
    if groups: person["groups"] = groups
    visit = {"type": vtype, "level": level, "settlement_date": date}
    visit.update(kw.pop("visit", {}))
    r = {"person": person, "visit": visit,
         "accumulators": {"admissions": admissions, "acct_balc": balance, "counters": {k: y(v) for k, v in (counters or {}).items()}},
         "lines": lines}
    if policy is not None: r["policy"] = policy
    r.update(kw); return r
def case(fn, name, source, quality, notes, covers, request, expect=None, policy_file=None, expect_error=None):
    c = {"name": name, "source": source, "quality": quality, "notes": notes, "covers": covers}
    if policy_file: c["policy_file"] = policy_file
    c["request"] = request
    if expect is not None: c["expect"] = expect
    if expect_error: c["expect_error"] = expect_error
    with open(os.path.join(OUT, fn + ".json"), "w") as f:
        json.dump(c, f, ensure_ascii=False, indent=2); f.write("\n")
def S(**kw): return {"setlinfo": {k: (y(v) if not isinstance(v, str) else v) for k, v in kw.items()}}
def E(setl=None, **parts):
    e = {}
    if setl: e["setlinfo"] = {k: (y(v) if not isinstance(v, str) else v) for k, v in setl.items()}
    for k, v in parts.items(): e[k] = v
    return e
def fenmap(d): return {k: y(v) for k, v in d.items()}

# 01 NHSA B-line rounding
inscp = D('100') + D('31.77') - r2(D('31.77')*D('0.1'))
hifp = r2(inscp*D('0.8'))
case("01_nhsa_b_line_rounding", "NHSA cross-region chronic outpatient: 乙类 line 31.77 × 10% = 3.177 → 3.18",
  "NHSA 国家医保局 异地就医门诊慢特病 worked example, as quoted in " + RULES + " §1 step 1 (URL not preserved in our notes)",
  "partial",
  "Only the line figure 31.77×10%=3.18 is published in our notes; the 甲 line, the 80% ratio and the zero deductible are ours so that the rest can be checked. Long-term filed cross-region = local rules with the place-of-treatment catalog (classes come in with the lines).",
  ["b_self_pay_half_up", "chronic_outpatient", "cross_region_long_term"],
  req(pol({"b_self_pay": "0.1", "chronic_outpatient": ben({"*": 0}, {"*": "0.8"}, unit="year", counter="deductible.chronic")}),
      [B(D('31.77'), "B1"), A(100, "A1")], vtype="chronic_outpatient", level=2, visit={"cross_region": {"status": "long_term"}}),
  E({"medfee_sumamt": D('131.77'), "preselfpay_amt": D('3.18'), "inscp_scp_amt": inscp, "hifp_pay": hifp, "psn_part_amt": D('131.77')-hifp, "psn_cash_pay": D('131.77')-hifp},
    lines=[{"feedetl_sn": "B1", "preselfpay_amt": "3.18", "inscp_scp_amt": "28.59"}, {"feedetl_sn": "A1", "inscp_scp_amt": "100.00"}]))

# 02 line classes
q = r2(D('3.33')*D('2.5'))
lines = [A(200, "L1"), B(100, "L2", self_pay_ratio="0.3"), {"id": "L3", "class": "乙", "unit_price": "250.00", "quantity": "2", "price_cap": "200.00"},
         C(80, "L4"), B(D('123.40'), "L5", preselfpay="12.34"), {"id": "L6", "class": "甲", "unit_price": "3.33", "quantity": "2.5"}, B(1000, "L7", self_pay_ratio="0.5")]
ful, over = D(80), D(100)
pre = D(30) + D(40) + D('12.34') + D(500)
ins = D(200) + D(70) + D(360) + D('111.06') + q + D(500)
tot = ful + over + pre + ins
hifp = r2(ins*D('0.5'))
case("02_line_classes", "Line classification: 甲/乙/丙, over price cap, 乙 share override, pre-computed 先行自付, decimal quantity",
  RULES + " §1 step 1 (ratios 10/30/50%, 宁波-style pre-computed B_prepay amounts, 超限价 = amount above 医保支付标准)",
  "derived",
  "Synthetic bill exercising every line rule; figures recomputed with Decimal. L3: 250×2 with a cap of 200/unit → 100 over the cap, 10% of the capped 400 pre-self-pay. L6: 3.33×2.5 = 8.325 → 8.33 (half-up). Outpatient pooling at 50%, no deductible.",
  ["fulamt_ownpay", "overlmt_selfpay", "b_self_pay_override", "preselfpay_fixed", "quantity_decimal"],
  req(pol({"b_self_pay": "0.1", "general_outpatient": ben({"*": 0}, {"*": "0.5"}, unit="year", counter="deductible.outpatient", layers=[])}),
      lines, vtype="general_outpatient", level=1),
  E({"medfee_sumamt": tot, "fulamt_ownpay_amt": ful, "overlmt_selfpay": over, "preselfpay_amt": pre, "inscp_scp_amt": ins, "hifp_pay": hifp, "psn_cash_pay": tot-hifp},
    lines=[{"feedetl_sn": "L1"}, {"feedetl_sn": "L2", "preselfpay_amt": "30.00", "selfpay_prop": "0.3"}, {"feedetl_sn": "L3", "overlmt_amt": "100.00", "preselfpay_amt": "40.00", "inscp_scp_amt": "360.00"},
           {"feedetl_sn": "L4", "fulamt_ownpay_amt": "80.00"}, {"feedetl_sn": "L5", "preselfpay_amt": "12.34", "inscp_scp_amt": "111.06"}, {"feedetl_sn": "L6", "det_item_fee_sumamt": y(q)}, {"feedetl_sn": "L7", "preselfpay_amt": "500.00"}]))

def inpat(ded, ratio, **kw):
    b = ben(ded, ratio, **kw); return b

# 03 Beijing repeat half
case("03_beijing_repeat_half", "Beijing employee: second admission of the year pays half the deductible (1300 → 650)",
  "https://www.banzhengshi.com/shebao/695593.html (Beijing employee segments 1300–3万/3–4万/…); repeat rule 1300→650 from " + RULES + " §1 step 3",
  "derived", "Parameter page, no published bill. The 85% ratio for 3万 and below is our assumption; 10000 of 甲 items, 2nd admission.",
  ["deductible_per_admission", "repeat_ratio"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"3": "1300.00"}, "repeat": {"ratios": ["1", "0.5"]}}, "ratio": {"by_level": {"3": "0.85"}}}}),
      [A(10000)], visit={"admission_index": 2}),
  E({"act_pay_dedc": 650, "hifp_pay": r2(D(9350)*D('0.85'))}, accumulators={"admissions_delta": 1, "delta": {"deductible": "650.00"}}))

chong = {"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"1": "200.00", "2": "400.00", "3": "800.00"}, "repeat": {"compound": "0.9", "floor_by_level": {"1": "100.00", "2": "260.00", "3": "620.00"}}}, "ratio": {"by_level": {"*": "0.8"}}}}
case("04_chongqing_compound_floor", "Chongqing: −10% per extra admission, compounding, floor 620 at level 3 (4th admission)",
  RULES + " §1 step 3 (重庆: −10% per extra admission compounding, floor 620/260/100)", "derived",
  "Floors are from the note; the level-3 base of 800 and the 80% ratio are our assumptions. 800→720→648→583.20, below the floor → 620. Each step is rounded half-up to the fen.",
  ["repeat_compound", "repeat_floor", "admissions_counter"],
  req(pol(chong), [A(5000)], admissions=3),
  E({"act_pay_dedc": 620, "hifp_pay": r2((D(5000)-620)*D('0.8'))}))
case("05_chongqing_compound_third", "Chongqing: 3rd admission 800 × 0.9 × 0.9 = 648",
  RULES + " §1 step 3 (重庆)", "derived", "As 04, 3rd admission: above the floor.",
  ["repeat_compound"], req(pol(chong), [A(5000)], visit={"admission_index": 3}),
  E({"act_pay_dedc": 648, "hifp_pay": r2((D(5000)-648)*D('0.8'))}))

case("06_nanjing_child_repeat", "Nanjing 少儿: 75% then 50% of the current level's deductible, floor 150",
  RULES + " §1 step 3 (南京 少儿)", "derived",
  "Child deductible at level 2 assumed 200 (adults 600): 3rd admission 200×50% = 100, floored at 150. Ratio 90% assumed. The admission index comes from accumulators.admissions (2 earlier).",
  ["deductible_by_group", "repeat_ratios", "repeat_floor"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"2": "600.00"}, "by_group": {"child": {"2": "200.00"}}, "repeat": {"ratios": ["1", "0.75", "0.5"], "floor_by_level": {"*": "150.00"}}}, "ratio": {"by_level": {"2": "0.9"}}}}, insutype="390"),
      [A(3000)], insutype="390", category="resident", groups=["child"], age=8, level=2, admissions=2),
  E({"act_pay_dedc": 150, "hifp_pay": r2((D(3000)-150)*D('0.9'))}))

case("07_table_schedule_bands", "Fixed deductible schedule 400/280/200 with bands from 0 (first band from the deductible to 10000)",
  RULES + " §1 steps 3–4 (table case: schedule 400/280/200, band 400–10000)", "derived",
  "Band ratios 80% (to 10000) and 85% (above) are our assumptions. 2nd admission: deductible 280; positions 280–10000 at 80%, 10000–15000 at 85%.",
  ["repeat_schedule", "bands_per_admission"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "400.00"}, "repeat": {"schedule_by_level": {"*": ["400.00", "280.00", "200.00"]}}}, "ratio": {"bands_by_level": {"*": [{"from": "0", "ratio": "0.8"}, {"from": "10000.00", "ratio": "0.85"}]}}}}),
      [A(15000)], visit={"admission_index": 2}),
  E({"act_pay_dedc": 280, "hifp_pay": r2(D(9720)*D('0.8') + D(5000)*D('0.85')), "pool_prop_selfpay": "0.8"}))

case("08_yinchuan_zero_from_second", "Yinchuan 2011: no deductible from the 2nd admission; none at level 1",
  RULES + " §1 step 3 (银川 2011, inferred)", "derived", "Level-2 deductible 500 and 80% ratio assumed. 2nd admission → 0.",
  ["repeat_zero_from", "deductible_zero_level"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"1": "0", "2": "500.00"}, "repeat": {"zero_from": 2}}, "ratio": {"by_level": {"*": "0.8"}}}}),
      [A(1000)], level=2, visit={"admission_index": 2}),
  E({"act_pay_dedc": 0, "hifp_pay": 800}))

case("09_yantai_annual_topup", "Yantai: one annual deductible, 200 met at level 1, level 3 needs 400 more to reach 600",
  RULES + " §1 step 3 (烟台 annual deductible with level top-up)", "derived",
  "Top-up figures (200 met, 400 more, 600) are the published ones; the 1000 bill and 50% ratio are ours.",
  ["deductible_annual", "deductible_topup", "explain"],
  req(pol({"b_self_pay": "0.1", "chronic_outpatient": {"deductible": {"unit": "year", "by_level": {"1": "200.00", "3": "600.00"}}, "ratio": {"by_level": {"*": "0.5"}}}}),
      [A(1000)], vtype="chronic_outpatient", counters={"deductible": 200}),
  E({"act_pay_dedc": 400, "hifp_pay": 300}, accumulators={"delta": {"deductible": "400.00"}, "after": {"deductible": "600.00"}},
    explain=[{"code": "lines"}, {"code": "deductible", "zh": "起付线 600.00，本年度已累计 200.00，本次尚需 400.00，实际支付起付线 400.00", "en": "deductible 600.00 of which 200.00 already met this year: 400.00 still due, 400.00 paid now"}, {"code": "basic"}, {"code": "total"}]))

case("10_changsha_deductible_annual_cap", "Changsha: per-admission deductibles capped at 900 a year",
  "https://juke.outofmemory.cn/read/1150588.html (长沙 deductible annual cap 900), via " + RULES + " §5", "derived",
  "800 already paid this year, level-3 deductible 1000 (assumed) → only 100 due. 80% ratio assumed.",
  ["deductible_annual_cap"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"3": "1000.00"}, "annual_cap": "900.00"}, "ratio": {"by_level": {"*": "0.8"}}}}),
      [A(2000)], counters={"deductible": 800}, admissions=1),
  E({"act_pay_dedc": 100, "hifp_pay": 1520}, accumulators={"after": {"deductible": "900.00"}}))

case("11_transfer_pays_difference", "Transfer to a higher level within a stay pays only the deductible difference",
  RULES + " §1 step 3 (transfers to a higher level pay only the difference)", "derived",
  "Level 2 → level 3: 900 − 500 = 400. 90% ratio assumed.",
  ["deductible_transfer"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"2": "500.00", "3": "900.00"}}, "ratio": {"by_level": {"*": "0.9"}}}}),
      [A(3000)], visit={"transfer_from_level": 2}),
  E({"act_pay_dedc": 400, "hifp_pay": 2340}))

case("12_jiangsu_annual_bands", "Jiangsu 2021: band position is the year's cumulative policy-range amount",
  RULES + " §1 step 4 (2021 Jiangsu example: 进入年度累计医疗费范围)", "derived",
  "Band edges 0/20000 with 85%/90% and deductible 900 are ours. 15000 already accumulated; this stay's 10000 occupies positions 15900–25000: 4100×85% + 5000×90% = 7985.",
  ["bands_annual", "inscp_counter"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "900.00"}}, "ratio": {"band_basis": "annual", "bands_by_level": {"*": [{"from": "0", "ratio": "0.85"}, {"from": "20000.00", "ratio": "0.9"}]}}}}),
      [A(10000)], counters={"inscp": 15000}, admissions=1),
  E({"hifp_pay": 7985, "pool_prop_selfpay": "0.85"}, accumulators={"after": {"inscp": "25000.00"}}))

case("13_personal_share_bands", "Bands written as the personal share 32/27/22%",
  RULES + " §1 step 4 (bands may be written as the personal share 32/27/22%)", "derived",
  "Edges 10000/30000 and deductible 500 are ours: 9500×68% + 20000×73% + 10000×78% = 28860.",
  ["bands_personal"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "500.00"}}, "ratio": {"bands_are": "personal", "bands_by_level": {"*": [{"from": "0", "ratio": "0.32"}, {"from": "10000.00", "ratio": "0.27"}, {"from": "30000.00", "ratio": "0.22"}]}}}}),
      [A(40000)]),
  E({"hifp_pay": 28860, "pool_prop_selfpay": "0.68"}))

case("14_zhongshan_retiree_plus", "Zhongshan: retirees +2 points on the level ratio",
  RULES + " §1 step 4 (中山 80%/90%, retiree +2)", "derived",
  "80% at level 3 and +2 points are from the note (中山 is inferred there); deductible 1000 is ours: 9000×82% = 7380.",
  ["retiree_plus", "ratio_by_level"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"3": "1000.00"}}, "ratio": {"by_level": {"1": "0.9", "3": "0.8"}, "retiree": {"plus": "0.02"}}}}),
      [A(10000)], category="retired", age=68),
  E({"hifp_pay": 7380, "pool_prop_selfpay": "0.82"}))

case("15_retiree_personal_factor", "2012 example: retiree personal share = 0.8 × active share",
  RULES + " §1 step 4 (k = 0.8 in the 2012 example)", "derived",
  "Active 85% → personal 15% × 0.8 = 12% → fund 88%. Deductible 800 ours: 9200×88% = 8096.",
  ["retiree_factor"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "800.00"}}, "ratio": {"by_level": {"*": "0.85"}, "retiree": {"personal_factor": "0.8"}}}}),
      [A(10000)], category="retired", age=70),
  E({"hifp_pay": 8096, "pool_prop_selfpay": "0.88"}))

case("16_chengdu_age_formula", "Chengdu (historical): ratio = 75% + age × 0.2%",
  RULES + " §1 step 4 (成都 age formula)", "derived", "Age 70 → 89%; deductible 500 ours: 4500×89% = 4005.",
  ["age_formula"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "500.00"}}, "ratio": {"age": {"base": "0.75", "per_year": "0.002", "max": "0.95"}}}}),
      [A(5000)], category="retired", age=70),
  E({"hifp_pay": 4005, "pool_prop_selfpay": "0.89"}))

case("17_demo_resident_tier2", "Demo 370100 resident, 二档 (tier 2) ratio at level 2",
  "policy_370100.json (demo data, see its notes)", "derived",
  "Tier 2 replaces the level ratios: 85% at level 2. 9500×85% = 8075. Critical-illness base 1425 stays below 15000.",
  ["ratio_by_group", "demo_policy", "resident_no_account"],
  req(None, [A(10000)], insutype="390", category="resident", groups=["tier2"], level=2, date="2026-05-01", visit={"discharge_date": "2026-05-01"}),
  E({"act_pay_dedc": 500, "hifp_pay": 8075, "hifmi_pay": 0, "psn_cash_pay": 1925}), policy_file="policy_370100.json")

E_ = D('288431.43') - 1000
cons = r2(D(65000)/D('0.91'))
overc = E_ - cons
la = r2(overc*D('0.95'))
case("18_qingyuan_cap_midsettlement", "Qingyuan: basic cap 65000 reached mid-settlement; supplementary 95% of the expense beyond it",
  RULES + " §1 steps 5–6 and 10 (清远: (expense − deductible − 65000/0.91) × 95%, 216002.857 → 216002.86)", "derived",
  "Reconstructed: the note gives the cap, the 91% ratio, the 95% supplementary rate and the intermediate 216002.86; we chose a 1000 deductible and a bill of 288431.43 so that expense − deductible − 65000/0.91 = 216002.86 as published. The engine rounds 65000/0.91 to 71428.57 (same result).",
  ["fund_cap_year", "cap_mid_settlement", "large_amount"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "1000.00"}}, "ratio": {"by_level": {"*": "0.91"}}, "caps": [{"kind": "fund", "amount": "65000.00"}]},
           "large_amount": {"bands": [{"from": "0", "ratio": "0.95"}]}}),
      [A(D('288431.43'))]),
  E({"hifp_pay": 65000, "hifob_pay": la, "fund_pay_sumamt": 65000+la, "psn_part_amt": D('288431.43')-65000-la},
    breakdown={"over_cap": y(overc), "coinsurance": y(cons-65000)},
    setldetail=[{"fund_pay_type": "310100", "fund_payamt": "65000.00", "crt_payb_lmt_amt": "65000.00"}, {"fund_pay_type": "330100", "fund_payamt": y(la)}]))

case("19_zhenjiang_expense_cap_ci", "Zhenjiang: outpatient expense cap 10000 above the deductible; over-cap expense feeds 大病 (deductible included, threshold 6000)",
  RULES + " §1 steps 5 and 7 (镇江 门诊 10000; 大病 includes the deductible; employee threshold 6000 inferred)", "derived",
  "8000 of the 10000 expense cap used; this 5000 visit: 2000 at 70% (assumed) = 1400, 3000 over the cap. 大病 base 600+3000 = 3600 on a cumulative 5000 → 8600, 60% (assumed) above 6000 = 1560.",
  ["expense_cap_year", "critical_illness_include_deductible", "outpatient_feeds_ci"],
  req(pol({"b_self_pay": "0.1", "general_outpatient": {"deductible": {"unit": "year", "by_level": {"*": "0"}, "counter": "deductible.outpatient"}, "ratio": {"by_level": {"*": "0.7"}}, "caps": [{"kind": "expense", "amount": "10000.00", "counter": "expense.outpatient"}]},
           "critical_illness": {"threshold": "6000.00", "include_deductible": True, "bands": [{"from": "0", "ratio": "0.6"}]}}),
      [A(5000)], vtype="general_outpatient", counters={"expense.outpatient": 8000, "ci_base": 5000}),
  E({"hifp_pay": 1400, "hifmi_pay": 1560}, breakdown={"over_cap": "3000.00", "critical_illness_base": "3600.00"}, accumulators={"after": {"expense.outpatient": "10000.00", "ci_base": "8600.00"}}))

case("20_anyang_monthly_chronic", "Anyang: chronic outpatient, no deductible, 300 a month eligible",
  RULES + " §1 steps 3 and 5 (安阳 慢性病 zero deductible, 300/month)", "derived",
  "100 already used this month; 200 left at 60% (assumed) = 120; the other 300 is over the cap.",
  ["expense_cap_month", "deductible_zero"],
  req(pol({"b_self_pay": "0.1", "chronic_outpatient": {"deductible": {"unit": "year", "by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.6"}}, "caps": [{"kind": "expense", "period": "month", "amount": "300.00"}]}}),
      [A(500)], vtype="chronic_outpatient", counters={"expense.month": 100}),
  E({"hifp_pay": 120}, breakdown={"over_cap": "300.00"}, accumulators={"month": "2026-06", "delta": {"expense.month": "200.00"}}))

zi = {"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0"}}},
      "critical_illness": {"threshold": "8000.00", "bands_on": "absolute", "bands": [{"from": "0", "ratio": "0.5"}, {"from": "50000.00", "ratio": "0.6"}, {"from": "100000.00", "ratio": "0.7"}]}}
case("21_ziyang_ci_absolute", "Ziyang 大病: 8000–50000 at 50%, then 60%, 70% on the absolute burden (burden 120000 → 65000)",
  RULES + " §1 step 7 and §4 (资阳; the source printed 53000 by reusing a 30000 band, its own bands give 65000)", "derived",
  "The basic layer is neutralised (0 deductible, 0%) so that the policy-range burden is exactly the source's 120000: 42000×50% + 50000×60% + 20000×70% = 65000.",
  ["critical_illness_absolute"],
  req(pol(zi, insutype="390"), [A(120000)], insutype="390", category="resident"),
  E({"hifmi_pay": 65000}, setldetail=[{"fund_pay_type": "390100", "fund_payamt": "0.00"}, {"fund_pay_type": "390200", "fund_payamt": "65000.00"}]))
case("22_ziyang_ci_cumulative", "Ziyang 大病 across two admissions: f(after) − f(before)",
  RULES + " §1 step 7 (per-settlement = f(accumulated after) − f(accumulated before))", "derived",
  "60000 already counted this year; another 60000: f(120000) − f(60000) = 65000 − 27000 = 38000.",
  ["critical_illness_cumulative"],
  req(pol(zi, insutype="390"), [A(60000)], insutype="390", category="resident", counters={"ci_base": 60000, "ci_paid": 27000}),
  E({"hifmi_pay": 38000}, accumulators={"after": {"ci_base": "120000.00", "ci_paid": "65000.00"}}))

case("23_ci_excess_bands", "大病 bands on the excess over a 16000 threshold: 60/65/70/75%",
  "https://www.nancybrand.com/278777.html (市医保局 reply: 大病 1.6万, 60/65/70/75%), via " + RULES + " §5", "derived",
  "Band widths (5万/10万/20万 of excess) are ours. Burden 100000 → excess 84000: 50000×60% + 34000×65% = 52100.",
  ["critical_illness_excess"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0"}}},
           "critical_illness": {"threshold": "16000.00", "bands_on": "excess", "bands": [{"from": "0", "ratio": "0.6"}, {"from": "50000.00", "ratio": "0.65"}, {"from": "100000.00", "ratio": "0.7"}, {"from": "200000.00", "ratio": "0.75"}], "annual_cap": "400000.00"}}, insutype="390"),
      [A(100000)], insutype="390", category="resident"),
  E({"hifmi_pay": 52100}))

hifp = D(58000)*D('0.6'); ci = r2((D(23200)-7500)*D('0.65')); base = D(1000)+D(23200)-ci; main = r2(base*D('0.8'))
case("24_demo_low_income_ci_assistance", "Demo 370100 low-income resident: halved 大病 threshold, +5 points, then 80% assistance",
  "policy_370100.json (demo data); special-group rule from " + RULES + " §1 step 7 (threshold −50%, +5 points, no cap)", "derived",
  "Level 3: deductible 1000, 60%: fund 34800. 大病 base excludes the deductible and 先行自付: 23200 → (23200 − 7500) × 65% = 10205. Assistance base (deductible included): 1000 + 23200 − 10205 = 13995 × 80% = 11196. Tilt: 2799 left, below 3000 → 0.",
  ["critical_illness_special", "critical_illness_exclude_deductible", "assistance_group", "assistance_tilt", "demo_policy"],
  req(None, [A(50000), B(10000), C(2000)], insutype="390", category="resident", groups=["low_income"], date="2026-08-01", visit={"discharge_date": "2026-08-01"}),
  E({"medfee_sumamt": 62000, "hifp_pay": hifp, "hifmi_pay": ci, "maf_pay": main, "fund_pay_sumamt": hifp+ci+main, "psn_cash_pay": 62000-hifp-ci-main},
    breakdown={"critical_illness_base": "23200.00", "assistance_base": y(base), "in_range_personal": y(base-main), "preselfpay_personal": "1000.00"}), policy_file="policy_370100.json")

su = {"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "500.00"}}, "ratio": {"by_level": {"*": "0.7"}}},
      "assistance": {"by_group": {"extreme_poverty": {"ratio": "1", "priority": 3}, "low_income": {"ratio": "0.8", "threshold": "3000.00", "annual_cap": "100000.00", "priority": 2}, "near_poverty": {"ratio": "0.7", "threshold": "3000.00", "annual_cap": "100000.00", "priority": 1}}}}
case("25_suqian_assistance_threshold_cap", "Suqian assistance: 100/80/70% by group, annual threshold 3000, cap 10万 (cap reached)",
  "https://www.suqian.gov.cn (…75e853869b7b46a3832fd12f78fa6e0e, 宿迁 救助 100/80/70%, threshold 3000, cap 10万), via " + RULES + " §5", "derived",
  "Near-poverty person (70%), 1000 of the threshold met earlier. Burden 500 + 2850 = 3350; 1350 above the threshold × 70% = 945, but only 200 of the 10万 cap is left → 200.",
  ["assistance_threshold", "assistance_cap", "assistance_priority"],
  req(pol(su, insutype="390"), [A(10000)], insutype="390", category="resident", groups=["near_poverty"], counters={"maf_base": 1000, "maf_paid": 99800}),
  E({"hifp_pay": 6650, "maf_pay": 200}, accumulators={"after": {"maf_paid": "100000.00", "maf_base": "4350.00"}}))
case("26_suqian_assistance_uncapped", "Suqian assistance, same bill, cap not reached",
  "suqian.gov.cn page as in 25", "derived", "1350 × 70% = 945.",
  ["assistance_threshold"],
  req(pol(su, insutype="390"), [A(10000)], insutype="390", category="resident", groups=["near_poverty"], counters={"maf_base": 1000}),
  E({"hifp_pay": 6650, "maf_pay": 945}))

case("27_chongqing_tilt_assistance", "Chongqing district 倾斜救助: a second pass above 3000 at 60%, 2万 annual cap",
  RULES + " §1 step 8 (重庆 districts: above 3000/3500 at 60/70%, 2万 cap; district inferred)", "derived",
  "Low-income 80% first: burden 500 + 29750 = 30250 → 24200; 6050 left − 3000 = 3050 × 60% = 1830, but 19000 of the 20000 tilt cap is used → 1000. Deductible 500 and 50% ratio ours.",
  ["assistance_tilt", "assistance_tilt_cap"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "500.00"}}, "ratio": {"by_level": {"*": "0.5"}}},
           "assistance": {"by_group": {"low_income": {"ratio": "0.8"}}, "tilt": {"threshold": "3000.00", "ratio": "0.6", "annual_cap": "20000.00"}}}, insutype="390"),
      [A(60000)], insutype="390", category="resident", groups=["low_income"], counters={"maf_tilt_paid": 19000}),
  E({"hifp_pay": 29750, "maf_pay": 25200}, accumulators={"delta": {"maf_paid": "24200.00", "maf_tilt_paid": "1000.00"}}))

case("28_jiangyin_assistance_includes_preselfpay", "Jiangyin: assistance base includes 自理 (先行自付)",
  RULES + " §1 step 8 (江阴 also includes 自理)", "derived",
  "Base 380 in range + 100 先行自付 = 480 × 80% = 384; the person keeps 96 of the 先行自付.",
  ["assistance_include_preselfpay"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.8"}}},
           "assistance": {"by_group": {"low_income": {"ratio": "0.8", "include_preselfpay": True}}}}, insutype="390"),
      [A(1000), B(1000)], insutype="390", category="resident", groups=["low_income"]),
  E({"hifp_pay": 1520, "maf_pay": 384, "psn_cash_pay": 96}, breakdown={"in_range_personal": "0.00", "preselfpay_personal": "96.00"}))

ly = {"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"1": "300.00", "2": "600.00", "3": "1000.00"}}, "ratio": {"by_level": {"1": "0.9", "2": "0.85", "3": "0.8"}}},
      "cross_region": {"by_status": {"temporary": {"first_pay": "0.1", "level": 3}, "unregistered": {"first_pay": "0.4", "level": 3}}}}
case("29_linyi_first_pay_filed", "Linyi (from 2023-10-01): cross-region filed temporary — 10% personal first-pay, then the home 三级 deductible and ratio",
  "https://lyyb.linyi.gov.cn/info/1577/5879.htm (临沂 10% first-pay), via " + RULES + " §1 step 2 and §5", "derived",
  "Home level-3 deductible 1000 and 80% are ours. 20000 → first-pay 2000, 18000 − 1000 = 17000 × 80% = 13600 although treated at a level-2 hospital.",
  ["cross_region_first_pay", "cross_region_level"],
  req(pol(ly), [A(20000)], level=2, visit={"cross_region": {"status": "temporary", "scope": "out_of_province"}}),
  E({"act_pay_dedc": 1000, "hifp_pay": 13600}, breakdown={"cross_region_first_pay": "2000.00", "level": 3, "cross_status": "temporary"}))
case("30_first_pay_unregistered_40", "Another city's reply: unregistered cross-region 40% first-pay",
  "https://www.nancybrand.com/278777.html (10% registered / 40% unregistered), via " + RULES + " §1 step 2", "derived",
  "20000 → 8000 first-pay, 12000 − 1000 = 11000 × 80% = 8800.",
  ["cross_region_first_pay", "cross_region_unregistered"],
  req(pol(ly), [A(20000)], level=2, visit={"cross_region": {"status": "unregistered"}}),
  E({"hifp_pay": 8800}, breakdown={"cross_region_first_pay": "8000.00"}))

case("31_hangjin_unregistered_cut", "Hangjinhouqi: 异地 deductible 1200 (out of region) / 600, 80%, −10 points when unregistered",
  "https://www.hjhq.gov.cn (…t20251104_726685.html, 杭锦后旗), via " + RULES + " §5", "derived",
  "Out-of-province unregistered: deductible 1200, 80% − 10 = 70%: 18800 × 70% = 13160.",
  ["cross_region_ratio_cut", "cross_region_deductible_scope"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "500.00"}}, "ratio": {"by_level": {"*": "0.8"}}},
           "cross_region": {"by_status": {"unregistered": {"ratio_cut": "0.1", "deductible_by_scope": {"in_province": "600.00", "out_of_province": "1200.00"}}}}}, insutype="390"),
      [A(20000)], insutype="390", category="resident", visit={"cross_region": {"status": "unregistered", "scope": "out_of_province"}}),
  E({"act_pay_dedc": 1200, "hifp_pay": 13160, "pool_prop_selfpay": "0.7"}))

ah = {"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "800.00"}}, "ratio": {"by_level": {"*": "0.7"}}},
      "cross_region": {"by_status": {"temporary": {"deductible_share": {"ratio": "0.2", "min": "2000.00", "max": "10000.00"}}}}}
case("32_anhui_deductible_share", "An Anhui city: 省外 deductible = 20% of the admission total, min 2000, max 10000",
  RULES + " §1 step 2 (one Anhui city)", "derived", "30000 bill → 6000; 24000 × 70% (assumed) = 16800.",
  ["cross_region_deductible_share"],
  req(pol(ah), [A(30000)], visit={"cross_region": {"status": "temporary", "scope": "out_of_province"}}),
  E({"act_pay_dedc": 6000, "hifp_pay": 16800}))
case("33_anhui_deductible_share_min", "Anhui share deductible floored at 2000",
  RULES + " §1 step 2", "derived", "5000 bill → 20% is 1000, min 2000; 3000 × 70% = 2100.",
  ["cross_region_deductible_share"],
  req(pol(ah), [A(5000)], visit={"cross_region": {"status": "temporary"}}),
  E({"act_pay_dedc": 2000, "hifp_pay": 2100}))

case("34_demo_emergency_unregistered", "Demo 370100 employee emergency out of region without filing: treated as referred (−5 points)",
  "policy_370100.json (demo data)", "derived",
  "Emergency uses the general-outpatient rules; deductible 700 already met; level 3 60% − 5 = 55% → 550. Account balance 100 pays part of the 450, cash 350.",
  ["emergency", "cross_region_emergency_as", "account_partial", "demo_policy"],
  req(None, [A(1000)], vtype="emergency", counters={"deductible.outpatient": 700}, balance="100.00", visit={"cross_region": {"status": "unregistered", "scope": "out_of_province"}}),
  E({"hifp_pay": 550, "acct_pay": 100, "psn_cash_pay": 350, "balc": 0, "pool_prop_selfpay": "0.55"}, breakdown={"cross_status": "referred"}), policy_file="policy_370100.json")

cons = r2(D(100)/D('0.7'))
case("35_yangzhou_outpatient_cap_account", "Yangzhou: outpatient fund cap 8000; the account covers the rest, cash 0",
  RULES + " §1 steps 5 and 9 (扬州 门诊 8000; cash 0 when the balance covers it)", "derived",
  "7900 of the 8000 outpatient cap used: fund pays 100 (of 700 at 70%, assumed); 142.86 eligible consumed, 857.14 over the cap. The account (5000) pays the 900 personal share.",
  ["fund_cap_year", "account_full", "layers_none"],
  req(pol({"b_self_pay": "0.1", "general_outpatient": {"deductible": {"unit": "year", "by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.7"}}, "caps": [{"kind": "fund", "amount": "8000.00", "counter": "fund.outpatient"}], "layers": []},
           "account": {}}),
      [A(1000)], vtype="general_outpatient", counters={"fund.outpatient": 7900}, balance="5000.00"),
  E({"hifp_pay": 100, "acct_pay": 900, "psn_cash_pay": 0, "balc": 4100}, breakdown={"over_cap": y(1000-cons)},
    accumulators={"after": {"fund.outpatient": "8000.00"}, "acct_balc": "4100.00"}))

case("36_demo_family_mutual_aid", "Demo 370100 resident buys at a pharmacy, paid by a linked family member's employee account (家庭共济)",
  "policy_370100.json (demo data); NHSA acct_mulaid_pay field (nhsa-interface.md §5)", "derived",
  "No pooling at pharmacies; residents have no own account; the family account may pay in-range items (145) and 先行自付 (5) but not 丙 items (30, cash).",
  ["family_mutual_aid", "pharmacy", "no_fund"],
  req(None, [A(100), B(50), C(30)], insutype="390", category="resident", vtype="pharmacy", level=0, family_account={"psn_no": "P-FAMILY-1", "balance": "2000.00"}),
  E({"fund_pay_sumamt": 0, "acct_pay": 150, "acct_mulaid_pay": 150, "psn_cash_pay": 30}), policy_file="policy_370100.json")

case("37_demo_pharmacy_account_full_ownpay", "Demo 370100 employee pharmacy purchase: the account may pay 丙 items here",
  "policy_370100.json (demo data)", "derived",
  "Account rule for pharmacy allows full self-pay items; balance 100 of the 130 bill, cash 30.",
  ["account_full_ownpay", "pharmacy"],
  req(None, [C(80), A(50)], vtype="pharmacy", level=0, balance="100.00"),
  E({"acct_pay": 100, "psn_cash_pay": 30, "balc": 0}), policy_file="policy_370100.json")

case("38_demo_new_year_stay", "Demo 370100: a stay across New Year is settled by the discharge date",
  "policy_370100.json (demo data); " + RULES + " and issue 4 (discharge date default)", "derived",
  "Admitted 2025-12-28 (no 2025 version loaded), discharged 2026-01-05: the 2026 version applies and the accumulators of 2026 are used.",
  ["date_basis_discharge"],
  req(None, [A(1000)], date="2026-01-05", visit={"admission_date": "2025-12-28", "discharge_date": "2026-01-05"}, level=1),
  E({"act_pay_dedc": 200, "hifp_pay": 760}, basis_date="2026-01-05", accumulators={"year": 2026, "month": "2026-01"}), policy_file="policy_370100.json")

case("39_date_outside_version", "A visit outside the version's effective dates is rejected",
  "policy_370100.json (demo data)", "derived", "Outpatient settled 2027-01-02 against the 2026 version.",
  ["date_validation"],
  req(None, [A(100)], vtype="general_outpatient", date="2027-01-02"), policy_file="policy_370100.json",
  expect_error={"code": "invalid_argument", "field": "visit.settlement_date"})

case("40_oct_sep_year", "Insurance year October–September (one 大病 rule)",
  RULES + " §2 (insurance year Oct–Sep)", "derived", "March 2026 belongs to the year that started in October 2025.",
  ["year_start_month"],
  req(pol({"b_self_pay": "0.1", "general_outpatient": {"deductible": {"unit": "year", "by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.5"}}}}, year_start_month=10),
      [A(100)], vtype="general_outpatient", date="2026-03-15"),
  E({"hifp_pay": 50}, accumulators={"year": 2025}))

bad = pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"3": "-1.00"}}, "ratio": {"by_level": {"3": "0.9"}}}})
case("41_validation_negative_deductible", "Validation names the field path",
  "docs/policy.md (validation)", "derived", "A negative level-3 deductible.",
  ["validation"], req(bad, [A(100)]),
  expect_error={"code": "invalid_argument", "field": "policy.schemes[310].inpatient.deductible.by_level[3]"})

case("42_large_amount_bands", "Supplementary layer in bands 94/96/98% on the year's cumulative base",
  RULES + " §1 step 6 (70–95% above the cap, sometimes in bands e.g. 94/96/98%)", "derived",
  "Basic cap already exhausted; 10000 counted earlier: positions 10000–60000 → 10000×94% + 20000×96% + 20000×98% = 48200.",
  ["large_amount_bands", "fund_cap_exhausted"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.9"}}, "caps": [{"kind": "fund", "amount": "1000.00"}]},
           "large_amount": {"bands": [{"from": "0", "ratio": "0.94"}, {"from": "20000.00", "ratio": "0.96"}, {"from": "40000.00", "ratio": "0.98"}], "annual_cap": "500000.00"}}),
      [A(50000)], counters={"fund": 1000, "large_amount_base": 10000}),
  E({"hifp_pay": 0, "hifob_pay": 48200}, breakdown={"over_cap": "50000.00"}))

t = D(20000)+D(4500)+D(2250); hifp = r2((t-900)*D('0.93'))
case("43_demo_employee_retiree_inpatient", "Demo 370100 retired employee, level-3 stay with a price-capped 乙 item and the account",
  "policy_370100.json (demo data)", "derived",
  "Deductible 900, 90% + 3 points = 93%. 乙 item 300×10 with a cap of 250: 500 over the cap, 250 pre-self-pay. Account (3000) pays in-range share and 先行自付, not 丙 or 超限价.",
  ["demo_policy", "retiree_plus", "overlmt_selfpay", "account_partial"],
  req(None, [A(20000), B(5000), C(1000), {"id": "B2", "class": "B", "unit_price": "300.00", "quantity": "10", "price_cap": "250.00"}],
      category="retired", age=67, balance="3000.00", date="2026-04-10", visit={"discharge_date": "2026-04-10"}),
  E({"medfee_sumamt": 29000, "overlmt_selfpay": 500, "preselfpay_amt": 750, "inscp_scp_amt": t, "act_pay_dedc": 900, "hifp_pay": hifp, "acct_pay": 3000, "balc": 0, "psn_cash_pay": 29000-hifp-3000},
    setldetail=[{"fund_pay_type": "310100"}, {"fund_pay_type": "310200", "fund_payamt": "3000.00"}]), policy_file="policy_370100.json")

hifp = D(9000)*D('0.85'); cvl = r2((D(9000)-hifp)*D('0.5'))
case("44_civil_servant_subsidy", "Civil-servant medical subsidy (公务员医疗补助, 320100) on the coinsurance",
  "nhsa-interface.md §6 fund_pay_type 320100 and setlinfo cvlserv_pay; rule shape is ours", "derived",
  "Civil servant: 50% (assumed) of the in-range burden after the basic fund, deductible excluded: (9000 − 7650) × 50% = 675.",
  ["civil_servant"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "1000.00"}}, "ratio": {"by_level": {"*": "0.85"}}},
           "civil_servant": {"groups": ["civil_servant"], "ratio": "0.5", "annual_cap": "50000.00"}}),
      [A(10000)], groups=["civil_servant"]),
  E({"hifp_pay": hifp, "cvlserv_pay": cvl, "fund_pay_sumamt": hifp+cvl},
    setldetail=[{"fund_pay_type": "310100"}, {"fund_pay_type": "320100", "fund_payamt": y(cvl)}]))

case("45_large_amount_threshold_excess", "Supplementary layer above an annual threshold, bands on the excess",
  RULES + " §1 step 6 (pays 70–95% of the expense above the cap, in bands)", "derived",
  "Basic cap exhausted. Threshold 20000 on the cumulative base: 15000 counted earlier; this 30000 brings it to 45000; 25000 above the threshold: first 10000 of excess at 70%, the rest at 90% → 7000 + 13500 = 20500.",
  ["large_amount_threshold"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.9"}}, "caps": [{"kind": "fund", "amount": "1000.00"}]},
           "large_amount": {"threshold": "20000.00", "bands_on": "excess", "bands": [{"from": "0", "ratio": "0.7"}, {"from": "10000.00", "ratio": "0.9"}]}}),
      [A(30000)], counters={"fund": 1000, "large_amount_base": 15000}),
  E({"hifob_pay": 20500}, accumulators={"after": {"large_amount_base": "45000.00", "large_amount": "20500.00"}}))

case("46_input_bad_class", "An unknown catalog class is rejected with the line's field",
  "docs/policy.md (request validation)", "derived", "Class 丁 does not exist.",
  ["input_validation"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.9"}}}}), [A(10), {"id": "X", "class": "丁", "amount": "1.00"}]),
  expect_error={"code": "invalid_argument", "field": "lines[1].class"})

case("47_account_not_used", "acct_used_flag false: the account pays nothing this time",
  "policy_370100.json (demo data); NHSA 2206/2207 input acct_used_flag (nhsa-interface.md §4)", "derived",
  "Employee general outpatient at level 1, annual deductible already met: 70% → 70; the 30 personal share is cash although the balance is 500.",
  ["account_flag", "demo_policy"],
  req(None, [A(100)], vtype="general_outpatient", level=1, counters={"deductible.outpatient": 700}, balance="500.00", acct_used_flag=False),
  E({"hifp_pay": 70, "acct_pay": 0, "psn_cash_pay": 30, "balc": 500}), policy_file="policy_370100.json")

case("48_ci_include_preselfpay", "大病 base including 先行自付 (the 2017 partial case's exception)",
  RULES + " §1 step 7 (先行自付 usually excluded; the 2017 partial case includes it)", "derived",
  "Basic layer neutralised; in-range burden 19000 + 先行自付 1000 = 20000; (20000 − 12000) × 60% = 4800.",
  ["critical_illness_include_preselfpay"],
  req(pol({"b_self_pay": "0.1", "inpatient": {"deductible": {"by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0"}}},
           "critical_illness": {"threshold": "12000.00", "include_preselfpay": True, "bands": [{"from": "0", "ratio": "0.6"}]}}, insutype="390"),
      [A(10000), B(10000)], insutype="390", category="resident"),
  E({"hifmi_pay": 4800}, breakdown={"critical_illness_base": "20000.00"}))

case("49_fund_cap_month", "Monthly fund cap for chronic outpatient",
  RULES + " §1 step 5 (monthly limits for chronic outpatient)", "derived",
  "150 of a 200 monthly fund limit used: 80% of 100 would be 80, only 50 is left; 62.50 of the expense is consumed, 37.50 is over the cap.",
  ["fund_cap_month"],
  req(pol({"b_self_pay": "0.1", "chronic_outpatient": {"deductible": {"unit": "year", "by_level": {"*": "0"}}, "ratio": {"by_level": {"*": "0.8"}}, "caps": [{"kind": "fund", "period": "month", "amount": "200.00"}]}}),
      [A(100)], vtype="chronic_outpatient", counters={"fund.month": 150}),
  E({"hifp_pay": 50}, breakdown={"over_cap": "37.50"}, accumulators={"after": {"fund.month": "200.00"}}))
print("ok")
