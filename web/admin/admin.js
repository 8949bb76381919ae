// The bureau console: dashboard charts, the registry (persons, masked, and
// institutions), CSV imports with their progress, policy versions (draft,
// submit, approve by a second administrator, compare two versions, replay),
// payment orders that need a person, channel reconciliation with a chart,
// e-certificate channels and institution API keys, credit payment (exposure
// per bank, draws against repayments, the daily settlement file with the
// bank, the reminder/overdue cycle), fund operations (contribution files,
// crediting, payouts with the bank's files, corrections, the fund
// dashboard), cross-region care (a person's filings, added and revoked;
// the month's positions with other regions, their chart and the ledger
// check), changes under dual control awaiting a second administrator,
// dead letters.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem("yibao.admin.token");
  let me = null;
  const idem = () => "ui-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  async function api(method, path, body, raw, type) {
    const h = { "Content-Type": type || "application/json" };
    if (token) h.Authorization = "Bearer " + token;
    if (method !== "GET") h["Idempotency-Key"] = idem();
    const r = await fetch(path, { method, headers: h, body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = new Error((data.code ? data.code + ": " : "") + (data.message || r.status));
      e.code = data.code; e.status = r.status; e.issues = data.issues; e.body = data;
      throw e;
    }
    return data;
  }
  // apiText GETs a file (CSV) with the session's bearer token.
  async function apiText(path) {
    const r = await fetch(path, { headers: token ? { Authorization: "Bearer " + token } : {} });
    const text = await r.text();
    if (!r.ok) {
      let data = {};
      try { data = JSON.parse(text); } catch (e) { /* not JSON */ }
      const e = new Error((data.code ? data.code + ": " : "") + (data.message || r.status));
      e.code = data.code; e.status = r.status;
      throw e;
    }
    return text;
  }
  const fail = (e) => { $("error").textContent = e.message || String(e); };
  const ok = () => { $("error").textContent = ""; };
  const cst = (d) => new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 10);

  // bars draws a bar chart into an SVG: one bar per item, labels below.
  // opts.second adds a second series (class bar2) beside the first, with
  // opts.names naming the two in the bars' titles; opts.every labels only
  // every n-th item (for many items); opts.fmt formats the values in the
  // titles. opts.line adds a line (class line, dots class dot) on its own
  // scale, named opts.lineName, its top written by opts.lineScale.
  function bars(svg, items, value, label, opts) {
    const NS = "http://www.w3.org/2000/svg";
    opts = opts || {};
    const series = opts.second ? [[value, "bar"], [opts.second, "bar2"]] : [[value, "bar"]];
    const names = opts.names || [];
    svg.innerHTML = "";
    const max = Math.max(1, ...series.flatMap(([f]) => items.map(f)));
    const w = 700 / Math.max(1, items.length);
    const bw = Math.max(2, w - 8) / series.length;
    items.forEach((it, i) => {
      series.forEach(([f, cls], j) => {
        const h = 140 * f(it) / max;
        const r = document.createElementNS(NS, "rect");
        r.setAttribute("class", cls); r.setAttribute("x", i * w + 4 + j * bw); r.setAttribute("y", 150 - h);
        r.setAttribute("width", bw); r.setAttribute("height", h);
        const title = document.createElementNS(NS, "title");
        title.textContent = label(it) + (names[j] ? " " + names[j] : "") + ": " + (opts.fmt ? opts.fmt(f(it)) : f(it)); r.appendChild(title);
        svg.appendChild(r);
      });
      if (i % (opts.every || 1)) return;
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", i * w + 4); t.setAttribute("y", 168); t.textContent = label(it);
      svg.appendChild(t);
    });
    if (opts.scale) { // the top of the scale, so the heights read as amounts
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", 4); t.setAttribute("y", 12); t.textContent = opts.scale(max);
      svg.appendChild(t);
    }
    if (opts.line && items.length) {
      const vs = items.map(opts.line);
      const lo = Math.min(0, ...vs), hi = Math.max(lo + 1, ...vs);
      const y = (v) => 150 - 140 * (v - lo) / (hi - lo);
      const pts = vs.map((v, i) => [i * w + w / 2, y(v)]);
      const pl = document.createElementNS(NS, "polyline");
      pl.setAttribute("class", "line");
      pl.setAttribute("points", pts.map((p) => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" "));
      svg.appendChild(pl);
      pts.forEach((p, i) => {
        const c = document.createElementNS(NS, "circle");
        c.setAttribute("class", "dot"); c.setAttribute("cx", p[0]); c.setAttribute("cy", p[1]); c.setAttribute("r", 3);
        const title = document.createElementNS(NS, "title");
        title.textContent = label(items[i]) + (opts.lineName ? " " + opts.lineName : "") + ": " + (opts.fmt ? opts.fmt(vs[i]) : vs[i]);
        c.appendChild(title);
        svg.appendChild(c);
      });
      if (opts.lineScale) {
        const t = document.createElementNS(NS, "text");
        t.setAttribute("x", 696); t.setAttribute("y", 12); t.setAttribute("text-anchor", "end"); t.textContent = opts.lineScale(hi);
        svg.appendChild(t);
      }
    }
  }

  async function dashboard() {
    const to = new Date(), from = new Date(to.getTime() - 13 * 86400e3);
    const st = await api("GET", "/api/v1/stats/settlements?from=" + cst(from) + "&to=" + cst(to));
    $("totals").textContent = "结算 " + st.total.bills + " 笔 bills · 医疗费 ¥" + st.total.medfee_sumamt + " · 基金 ¥" + st.total.fund_pay_sumamt +
      " · 个人账户 ¥" + st.total.acct_pay + " · 现金 ¥" + st.total.psn_cash_pay + " · 异地 cross-region " + st.cross_region_bills;
    bars($("chart-days"), st.days, (d) => d.bills, (d) => d.date.slice(5));
    bars($("chart-groups"), st.by_scheme_level, (g) => parseFloat(g.fund_pay_sumamt), (g) => g.insutype + " L" + g.level);
  }

  async function policies() {
    const list = (await api("GET", "/api/v1/policies")).items;
    versions = list;
    fillDiffSelects(list);
    const tb = $("policies").tBodies[0];
    tb.innerHTML = "";
    for (const v of list) {
      const tr = tb.insertRow();
      tr.dataset.version = v.version;
      [v.admdvs, v.version, v.effective_from + " … " + (v.effective_to || ""), v.status].forEach((x) => { tr.insertCell().textContent = x; });
      const td = tr.insertCell();
      const act = (label, fn) => { const b = document.createElement("button"); b.textContent = label; b.addEventListener("click", fn); td.appendChild(b); };
      act("复制 Copy", async () => {
        const full = await api("GET", "/api/v1/policies/" + v.admdvs + "/" + encodeURIComponent(v.version));
        $("draft").value = JSON.stringify(full.policy, null, 2);
        $("draft").focus();
      });
      const base = baseFor(v);
      if (base) {
        act("对比 Diff", async () => {
          $("pd-a").value = key(base); $("pd-b").value = key(v);
          await runDiff();
          $("pd-summary").scrollIntoView({ block: "nearest" });
        });
        td.lastChild.title = "与 " + base.version + " 对比 Compare with " + base.version;
      }
      if (v.status === "draft") act("提交 Submit", () => move(v, "submit"));
      if (v.status === "submitted") { act("批准 Approve", () => move(v, "approve")); act("退回 Reject", () => move(v, "reject")); }
    }
  }
  async function move(v, action) {
    ok();
    try { await api("POST", "/api/v1/policies/" + v.admdvs + "/" + encodeURIComponent(v.version) + "/" + action, {}); await policies(); }
    catch (e) { fail(e); }
  }
  $("save-draft").addEventListener("click", async () => {
    ok();
    try { await api("POST", "/api/v1/policies", undefined, $("draft").value); await policies(); } catch (e) { fail(e); }
  });
  $("replay").addEventListener("click", async () => {
    ok();
    const ver = $("rv").value.trim();
    try {
      const rep = await api("POST", "/api/v1/policies/" + ver.slice(0, 6) + "/" + encodeURIComponent(ver) + "/replay", { from: $("rfrom").value, to: $("rto").value });
      const tb = $("replay-rows").tBodies[0];
      tb.innerHTML = "";
      for (const r of rep.rows.concat([rep.total])) {
        const tr = tb.insertRow();
        const d = parseFloat(r.fund_pay_delta);
        [r.insutype, r.insutype === "*" ? "" : r.level, r.bills, "¥" + r.fund_pay_before, "¥" + r.fund_pay_after, (d > 0 ? "+" : "") + r.fund_pay_delta]
          .forEach((x, i) => { const c = tr.insertCell(); c.textContent = x; if (i >= 2) c.className = "num"; if (i === 5) c.classList.add(d > 0 ? "pos" : "neg"); });
      }
    } catch (e) { fail(e); }
  });

  async function deadLetters() {
    const list = (await api("GET", "/api/v1/events?status=dead&limit=20")).items;
    const tb = $("dead").tBodies[0];
    tb.innerHTML = "";
    for (const ev of list) {
      const tr = tb.insertRow();
      [ev.id, ev.fixmedins_code, ev.topic, ev.attempts, ev.last_error || ""].forEach((x, i) => { const c = tr.insertCell(); c.textContent = x; if (i === 3) c.className = "num"; });
      const b = document.createElement("button"); b.textContent = "重发 Retry";
      b.addEventListener("click", async () => { try { await api("POST", "/api/v1/events/" + ev.id + "/retry", {}); deadLetters(); } catch (e) { fail(e); } });
      tr.insertCell().appendChild(b);
    }
  }

  // orders lists the payment orders a person has to look at: held for
  // review (with the button that decides them), declined, in flight.
  async function orders() {
    const tb = $("orders").tBodies[0];
    tb.innerHTML = "";
    for (const st of ["review", "declined", "paying"]) {
      const list = (await api("GET", "/api/v1/payments?status=" + st + "&limit=20")).items;
      for (const o of list) {
        const tr = tb.insertRow();
        tr.dataset.id = o.pay_ord_id; tr.dataset.status = o.status;
        [o.pay_ord_id, o.fixmedins_code, o.channel, o.status, "¥" + o.self_pay, o.reason || ""].forEach((x, i) => {
          const c = tr.insertCell(); c.textContent = x; if (i === 4) c.className = "num";
        });
        const td = tr.insertCell();
        if (o.status === "review") {
          const b = document.createElement("button"); b.textContent = "查询裁决 Resolve";
          b.addEventListener("click", async () => { ok(); try { await api("POST", "/api/v1/payments/" + o.pay_ord_id + "/resolve", {}); orders(); } catch (e) { fail(e); } });
          td.appendChild(b);
        }
      }
    }
    if (!tb.rows.length) { const c = tb.insertRow().insertCell(); c.colSpan = 7; c.textContent = "无 None"; }
  }

  $("reconcile").addEventListener("click", async () => {
    ok();
    $("rc-summary").textContent = "下载中… downloading";
    try {
      const r = await api("POST", "/api/v1/reconciliations", { channel: $("rc-channel").value, date: $("rc-date").value });
      $("rc-summary").textContent = r.summary;
      const rep = r.report;
      $("rc-summary").dataset.differences = rep.differences.length;
      bars($("chart-recon"), [
        { k: "我方收款 ours paid", v: rep.ours.payment_sum }, { k: "账单收款 bill paid", v: rep.theirs.payment_sum },
        { k: "我方退款 ours refunded", v: rep.ours.refund_sum }, { k: "账单退款 bill refunded", v: rep.theirs.refund_sum },
      ], (x) => parseFloat(x.v), (x) => x.k);
      const tb = $("rc-diffs").tBodies[0];
      tb.innerHTML = "";
      for (const d of rep.differences) {
        const tr = tb.insertRow();
        tr.dataset.kind = d.kind;
        [d.kind, d.row, d.out_trade_no, d.out_refund_no || "", "¥" + d.ours, "¥" + d.theirs, d.detail].forEach((x, i) => {
          const c = tr.insertCell(); c.textContent = x; if (i === 4 || i === 5) c.className = "num";
        });
      }
    } catch (e) { $("rc-summary").textContent = ""; fail(e); }
  });

  // --- credit payment (信用就医): exposure per bank, draws against
  // repayments per day, the daily settlement file with the bank, and the
  // reminder / overdue cycle on demand. ---
  const fenYuan = (n) => (n < 0 ? "-" : "") + Math.floor(Math.abs(n) / 100) + "." + String(Math.abs(n) % 100).padStart(2, "0");
  const pct = (r) => (100 * r).toFixed(r > 0 && r < 0.001 ? 2 : 1) + "%";
  const FILE_STATUS = { matched: "全部相符 matched", differences: "有差异 differences" };
  async function credit() {
    let ex;
    try { ex = await api("GET", "/api/v1/credit/exposure"); } catch (e) {
      if (e.status === 404) { $("credit").hidden = true; return; }
      throw e;
    }
    $("credit").hidden = false;
    const tb = $("cr-exposure").tBodies[0];
    tb.innerHTML = "";
    for (const b of ex.banks) {
      const tr = tb.insertRow();
      tr.dataset.bank = b.bank_code;
      cells(tr, [b.name + " " + b.bank_code, b.agreements, b.active, b.suspended, "¥" + b.limits, "¥" + b.outstanding, "¥" + b.held, "¥" + b.overdue,
        pct(b.overdue_rate), b.open_guarantees], [null, "num", "num", "num", "num", "num", "num", "num", "num rate", "num"]);
      tr.cells[1].dataset.k = "agreements"; tr.cells[5].dataset.k = "outstanding"; tr.cells[8].dataset.k = "overdue_rate";
      if (b.overdue_rate > 0) tr.cells[8].classList.add("pos");
    }
    if (!ex.banks.length) none(tb, 10);
    const sum = (k) => ex.banks.reduce((a, b) => a + Math.round(parseFloat(b[k]) * 100), 0);
    const out = sum("outstanding"), over = sum("overdue");
    const drawn = ex.days.reduce((a, d) => a + Math.round(parseFloat(d.draws) * 100), 0);
    const back = ex.days.reduce((a, d) => a + Math.round(parseFloat(d.repayments) * 100), 0);
    $("cr-summary").textContent = "欠款 outstanding ¥" + fenYuan(out) + " · 逾期 overdue ¥" + fenYuan(over) + " · 逾期率 overdue rate " +
      pct(out ? over / out : 0) + " · 近 30 天 last 30 days: 信用支付 draws ¥" + fenYuan(drawn) + "，还款 repayments ¥" + fenYuan(back);
    bars($("chart-credit"), ex.days, (d) => parseFloat(d.draws), (d) => d.day.slice(5),
      { second: (d) => parseFloat(d.repayments), names: ["信用支付 draws", "还款 repayments"], every: 5,
        scale: (m) => "最高 max ¥" + (drawn || back ? m.toFixed(2) : "0.00") });
    const sel = $("cr-bank"), keep = sel.value;
    if (!sel.options.length || !ex.banks.some((b) => b.bank_code === keep)) {
      sel.length = 0;
      for (const b of ex.banks) sel.add(new Option(b.name + " " + b.bank_code, b.bank_code));
    }
    await creditReports();
  }

  async function creditReports() {
    const list = (await api("GET", "/api/v1/credit/settlement-files?limit=10")).items;
    const tb = $("cr-reports").tBodies[0];
    tb.innerHTML = "";
    for (const r of list) {
      const tr = tb.insertRow();
      tr.dataset.status = r.status; tr.dataset.day = r.day; tr.dataset.bank = r.bank_code;
      const n = r.missing.length + r.extra.length + r.mismatched.length + r.hospitals.filter((h) => h.difference !== "0.00").length;
      cells(tr, [r.day, r.bank_code, FILE_STATUS[r.status] || r.status, r.rows, r.matched, "¥" + r.draws, "¥" + r.repayments, "¥" + r.payouts, "¥" + r.net],
        [null, null, "st-" + r.status, "num", "num", "num", "num", "num", "num"]);
      const td = tr.insertCell();
      if (!n) { td.textContent = "无 none"; continue; }
      td.appendChild(button("查看 " + n + " 处 Show " + n, () => creditDiffs(r), "差异明细 Differences " + r.bank_code + " " + r.day));
    }
    if (!list.length) none(tb, 10);
  }

  // creditDiffs lists one file's differences: rows only we have, rows only
  // the bank has, rows with other amounts, and hospitals paid otherwise.
  function creditDiffs(r) {
    const t = $("cr-diffs"), tb = t.tBodies[0];
    tb.innerHTML = "";
    const row = (kind, x, ours, theirs) => {
      const tr = tb.insertRow();
      tr.dataset.kind = kind;
      cells(tr, [{ missing: "银行缺 missing at the bank", extra: "银行多 extra at the bank", mismatched: "金额不符 amounts differ" }[kind], x.kind, x.id, x.agreement_no,
        x.fixmedins_code || "", ours, theirs], [null, null, null, null, null, "num", "num"]);
    };
    for (const x of r.missing) row("missing", x, fenYuan(x.amount_fen), "—");
    for (const x of r.extra) row("extra", x, "—", fenYuan(x.amount_fen));
    for (const m of r.mismatched) row("mismatched", m.ours, fenYuan(m.ours.amount_fen), fenYuan(m.theirs.amount_fen));
    $("cr-diffs-title").textContent = "差异明细 Differences · " + r.bank_code + " " + r.day;
    t.hidden = !tb.rows.length;
    const ht = $("cr-hospitals"), hb = ht.tBodies[0];
    hb.innerHTML = "";
    for (const h of r.hospitals) {
      const tr = hb.insertRow();
      tr.dataset.code = h.fixmedins_code;
      cells(tr, [h.fixmedins_code, "¥" + h.owed, "¥" + h.paid, "¥" + h.difference], [null, "num", "num", "num"]);
      if (h.difference !== "0.00") { tr.className = "diff"; tr.cells[3].classList.add("pos"); }
    }
    ht.hidden = !r.hospitals.length;
  }

  function sendLabel() {
    const d = $("cr-day").value;
    $("cr-send").textContent = !d || d === cst(new Date()) ? "发送今日结算文件 Send today's settlement file" : "发送 " + d + " 结算文件 Send the settlement file of " + d;
  }
  $("cr-day").addEventListener("change", sendLabel);
  $("cr-send").addEventListener("click", async () => {
    ok();
    const bank = $("cr-bank").value;
    if (!bank) return;
    const st = $("cr-file-status");
    st.textContent = "发送中… sending"; delete st.dataset.status;
    $("cr-send").disabled = true;
    try {
      const body = { bank_code: bank };
      if ($("cr-day").value) body.day = $("cr-day").value;
      const r = await api("POST", "/api/v1/credit/settlement-files", body);
      st.dataset.status = r.status;
      st.textContent = r.bank_code + " " + r.day + "：" + (FILE_STATUS[r.status] || r.status) + " · " + r.matched + "/" + r.rows + " 行相符 rows matched · 信用支付 draws ¥" +
        r.draws + " · 还款 repayments ¥" + r.repayments + " · 付医院 payouts ¥" + r.payouts + " · 轧差 net ¥" + r.net;
      creditDiffs(r);
      await creditReports();
    } catch (e) { st.textContent = ""; fail(e); } finally { $("cr-send").disabled = false; }
  });
  $("cr-cycle").addEventListener("click", async () => {
    ok();
    const st = $("cr-cycle-status");
    $("cr-cycle").disabled = true;
    try {
      const r = await api("POST", "/api/v1/credit/cycle", {});
      st.dataset.done = "true";
      st.textContent = "已提醒 reminded " + r.reminded + " · 转为逾期 now overdue " + r.overdue + " · 已暂停 suspended " + r.suspended;
      await credit();
    } catch (e) { fail(e); } finally { $("cr-cycle").disabled = false; }
  });

  // --- small helpers for the tables below ---
  const enc = encodeURIComponent;
  const when = (ts) => ts ? new Date(new Date(ts).getTime() + 8 * 3600e3).toISOString().slice(0, 16).replace("T", " ") : "";
  const none = (tb, cols) => { const c = tb.insertRow().insertCell(); c.colSpan = cols; c.textContent = "无 None"; };
  function cells(tr, values, classes) {
    values.forEach((x, i) => { const c = tr.insertCell(); c.textContent = x; if (classes && classes[i]) c.className = classes[i]; });
  }
  function button(label, fn, aria) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = label;
    if (aria) b.setAttribute("aria-label", aria);
    b.addEventListener("click", fn);
    return b;
  }
  const STATUS = { active: "有效 active", suspended: "已暂停 suspended", revoked: "已吊销 revoked", terminated: "已终止 terminated" };
  const LEVELS = { 0: "无等级 none", 1: "一级 1", 2: "二级 2", 3: "三级 3" };
  const KINDS = { hospital: "医院 hospital", pharmacy: "药店 pharmacy" };
  const CATEGORIES = { active: "在职 active", retired: "退休 retired", resident: "城乡居民 resident", student: "学生 student",
    low_income: "低保 low_income", extreme_poverty: "特困 extreme_poverty", disabled: "残疾 disabled", special_care: "优抚 special_care" };
  let regions = new Map(); // admdvs → name
  const regionName = (a) => regions.has(a) ? regions.get(a) + " " + a : a;

  // allPages follows a list's `next` cursor (a bounded number of pages).
  async function allPages(path) {
    const out = [];
    let after = "";
    for (let i = 0; i < 20; i++) {
      const page = await api("GET", path + (path.includes("?") ? "&" : "?") + "limit=500" + (after ? "&after=" + enc(after) : ""));
      out.push(...page.items);
      if (!page.next) break;
      after = page.next;
    }
    return out;
  }

  async function loadRegions() {
    const list = (await api("GET", "/api/v1/regions")).items;
    regions = new Map(list.map((r) => [r.admdvs, r.name]));
    const sel = $("ps-admdvs"), keep = sel.value;
    sel.length = 1;
    for (const r of list) sel.add(new Option(r.name + " " + r.admdvs, r.admdvs));
    sel.value = regions.has(keep) ? keep : "";
    const fo = $("fo-admdvs"), had = fo.value;
    fo.length = 0;
    for (const r of list) fo.add(new Option(r.name + " " + r.admdvs, r.admdvs));
    fo.value = regions.has(had) ? had : regions.has("370100") ? "370100" : (list[0] || {}).admdvs || "";
  }

  // --- registry: institutions (also the key card's select) and persons ---
  async function institutions() {
    const list = await allPages("/api/v1/institutions");
    const tb = $("institutions").tBodies[0];
    tb.innerHTML = "";
    for (const it of list) {
      const tr = tb.insertRow();
      tr.dataset.code = it.fixmedins_code;
      cells(tr, [it.fixmedins_code, it.name, KINDS[it.kind] || it.kind, LEVELS[it.level] || String(it.level), regionName(it.admdvs),
        STATUS[it.contract_status] || it.contract_status], [null, null, null, null, null, "st-" + it.contract_status]);
    }
    if (!list.length) none(tb, 6);
    const sel = $("k-inst"), keep = sel.value;
    sel.length = 0;
    for (const it of list) sel.add(new Option(it.fixmedins_code + " " + it.name, it.fixmedins_code));
    if (list.some((it) => it.fixmedins_code === keep)) sel.value = keep;
  }

  const ID_NUMBER = /^[0-9]{17}[0-9Xx]$/;
  let personsNext = "";
  // searchPersons finds one person by number or ID number (exact), or lists
  // a page by region and category; more appends the next page.
  async function searchPersons(more) {
    const tb = $("persons").tBodies[0];
    const q = $("ps-q").value.trim();
    let items = [], note = "";
    $("ps-more").hidden = true;
    try {
      if (q && ID_NUMBER.test(q)) {
        items = [(await api("POST", "/api/v1/persons/lookup", { id_number: q.toUpperCase() })).person];
        note = "按身份证号 by ID number";
      } else if (q) {
        items = [await api("GET", "/api/v1/persons/" + enc(q))];
        note = "按编号 by person number";
      } else {
        const qs = new URLSearchParams({ limit: "20" });
        if ($("ps-admdvs").value) qs.set("admdvs", $("ps-admdvs").value);
        if ($("ps-category").value) qs.set("category", $("ps-category").value);
        if (more && personsNext) qs.set("after", personsNext);
        const page = await api("GET", "/api/v1/persons?" + qs);
        items = page.items;
        personsNext = page.next || "";
      }
    } catch (e) {
      if (e.code !== "not_found") {
        if (!more) { tb.innerHTML = ""; none(tb, 8); $("ps-summary").textContent = ""; delete $("ps-summary").dataset.count; }
        throw e;
      }
    }
    if (!more) tb.innerHTML = "";
    for (const p of items) {
      const tr = tb.insertRow();
      tr.dataset.psn = p.psn_no;
      cells(tr, [p.psn_no, p.name_masked, p.id_masked, p.phone_masked || "", p.gender === "1" ? "男 M" : p.gender === "2" ? "女 F" : "",
        p.birth_date, CATEGORIES[p.category] || p.category, regionName(p.admdvs)]);
    }
    if (!tb.rows.length) none(tb, 8);
    const shown = tb.querySelectorAll("tr[data-psn]").length;
    $("ps-summary").textContent = (note ? note + "：" : "") + "显示 " + shown + " 人 persons shown" + (q ? "（精确查找，不按区划与类别筛选 exact match; region and category not applied）" : "");
    $("ps-summary").dataset.count = shown;
    $("ps-more").hidden = !!q || !personsNext;
  }
  $("f-persons").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    try { await searchPersons(false); } catch (e) { fail(e); }
  });
  $("ps-more").addEventListener("click", async () => {
    ok();
    try { await searchPersons(true); } catch (e) { fail(e); }
  });

  // --- CSV imports: start a job, poll it, draw its progress ---
  const HEADERS = {
    catalog: "code,name,kind,class,self_pay_ratio,price_cap,unit,spec,category,restriction,valid_from,valid_to",
    persons: "psn_no,id_number,name,phone,category,admdvs,insutype,start_date,end_date",
  };
  const PHASES = { reading: "读取 reading", validating: "校验 validating", writing: "写入 writing", done: "结束 done" };
  const showHeader = () => { $("im-header").textContent = HEADERS[$("im-kind").value]; };
  $("im-kind").addEventListener("change", showHeader);
  showHeader();
  let importTimer = 0, importNote = "";

  function drawIssues(issues, table) {
    const t = table || $("im-errors"), tb = t.tBodies[0];
    tb.innerHTML = "";
    t.hidden = !issues || !issues.length;
    if (t.hidden) return;
    const first = issues.slice(0, 20);
    for (const is of first) {
      const tr = tb.insertRow();
      tr.dataset.line = is.line || "";
      cells(tr, [is.line || "", is.field || "", is.message], ["num"]);
    }
    if (issues.length > first.length) {
      const c = tb.insertRow().insertCell(); c.colSpan = 3;
      c.textContent = "另有 " + (issues.length - first.length) + " 行有误 and " + (issues.length - first.length) + " more bad lines";
    }
  }
  function drawJob(j) {
    $("im-job").hidden = false;
    const pr = $("im-progress");
    pr.max = Math.max(1, j.total);
    pr.value = Math.min(j.done, pr.max);
    pr.dataset.status = j.status;
    const st = $("im-status");
    st.dataset.status = j.status;
    const kind = j.kind === "catalog" ? "目录 catalog" : "参保人 persons";
    if (j.status === "running") {
      st.textContent = kind + " · 进行中 running · " + (PHASES[j.phase] || j.phase) + " · " + j.done + " / " + j.total + " 行 rows";
    } else if (j.status === "succeeded") {
      st.textContent = kind + " · 完成 succeeded · 导入 " + j.imported + " 行 rows imported" + importNote;
    } else {
      const bad = j.errors.length;
      st.textContent = kind + " · 失败 failed · " + j.total + " 行中 " + bad + (bad >= 100 ? "+" : "") + " 行有误，未写入任何数据 " +
        bad + (bad >= 100 ? "+" : "") + " of " + j.total + " lines are bad; nothing was imported" + importNote;
    }
    drawIssues(j.status === "failed" ? j.errors : []);
  }
  function pollImport(id, misses) {
    importTimer = setTimeout(async () => {
      try {
        const j = await api("GET", "/api/v1/imports/" + enc(id));
        drawJob(j);
        if (j.status === "running") { pollImport(id, 0); return; }
        $("im-start").disabled = false;
        if (j.status === "succeeded" && j.kind === "persons") await searchPersons(false);
      } catch (e) {
        // A job is readable on the node running it until it ends; another
        // node answers not_found until then, so keep asking for a while.
        if (e.code === "not_found" && misses < 100) { pollImport(id, misses + 1); return; }
        $("im-start").disabled = false;
        fail(e);
      }
    }, misses ? Math.min(2000, 150 * (misses + 1)) : 150);
  }
  // decodeCSV returns a file as text: UTF-8, or GB18030 (what Excel saves
  // on Chinese Windows) converted to UTF-8, with a note saying so; readCSV
  // keeps the note for the import's status line.
  async function decodeCSV(file) {
    const buf = await file.arrayBuffer();
    try { return [new TextDecoder("utf-8", { fatal: true }).decode(buf), ""]; } catch (e) {
      return [new TextDecoder("gb18030").decode(buf), "（已从 GB18030 转为 UTF-8 converted from GB18030）"];
    }
  }
  async function readCSV(file) {
    const [text, note] = await decodeCSV(file);
    importNote = note;
    return text;
  }
  $("f-import").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    const file = $("im-file").files[0];
    if (!file) { fail(new Error("请选择 CSV 文件 Choose a CSV file")); return; }
    clearTimeout(importTimer);
    $("im-start").disabled = true;
    try {
      const text = await readCSV(file);
      const job = await api("POST", "/api/v1/imports?kind=" + enc($("im-kind").value), undefined, text, "text/csv");
      drawJob(job);
      pollImport(job.id, 0);
    } catch (e) {
      $("im-start").disabled = false;
      $("im-job").hidden = false;
      $("im-progress").value = 0;
      $("im-status").dataset.status = "refused";
      $("im-status").textContent = "未开始 not started: " + e.message;
      drawIssues(e.issues);
      fail(e);
    }
  });

  // --- policy versions: compare two documents path by path ---
  let versions = [];
  const key = (v) => v.admdvs + "/" + v.version;
  // baseFor is what a row's Diff compares against: the region's published
  // version in force at the row's start (or its latest), else any other.
  function baseFor(v) {
    const same = versions.filter((x) => x.admdvs === v.admdvs && x.version !== v.version);
    const earlier = (xs) => xs.filter((x) => x.effective_from <= v.effective_from)
      .sort((a, b) => b.effective_from.localeCompare(a.effective_from))[0];
    const pub = same.filter((x) => x.status === "published");
    return earlier(pub) || pub[0] || earlier(same) || same[0] || null;
  }
  function fillDiffSelects(list) {
    const sels = [$("pd-a"), $("pd-b")];
    const keep = sels.map((s) => s.value);
    for (const sel of sels) {
      sel.innerHTML = "";
      const groups = new Map();
      for (const v of list) {
        if (!groups.has(v.admdvs)) {
          const g = document.createElement("optgroup"); g.label = regionName(v.admdvs);
          groups.set(v.admdvs, g); sel.appendChild(g);
        }
        groups.get(v.admdvs).appendChild(new Option(v.version + " · " + v.status, key(v)));
      }
    }
    const has = (k) => list.some((v) => key(v) === k);
    if (has(keep[0]) && has(keep[1])) { sels[0].value = keep[0]; sels[1].value = keep[1]; return; }
    if (list.length) { // the newest version of the first region against the one it follows
      const b = list[0], a = baseFor(b) || b;
      sels[0].value = key(a); sels[1].value = key(b);
    }
  }
  // flatten turns a JSON document into path → leaf value, in document order;
  // empty objects and arrays are leaves too.
  function flatten(x, path, out) {
    if (Array.isArray(x)) {
      if (!x.length) out.set(path, []);
      x.forEach((v, i) => flatten(v, path + "[" + i + "]", out));
    } else if (x && typeof x === "object") {
      const ks = Object.keys(x);
      if (!ks.length) out.set(path, {});
      for (const k of ks) flatten(x[k], /^[^.[\]\s"]+$/.test(k) ? (path ? path + "." + k : k) : path + "[" + JSON.stringify(k) + "]", out);
    } else {
      out.set(path, x);
    }
    return out;
  }
  function diffDocs(a, b) {
    const fa = flatten(a, "", new Map()), fb = flatten(b, "", new Map());
    const order = [...fa.keys()], bk = [...fb.keys()];
    bk.forEach((k, i) => { if (!fa.has(k)) order.splice(i ? order.indexOf(bk[i - 1]) + 1 : 0, 0, k); });
    const rows = [];
    for (const p of order) {
      if (!fb.has(p)) rows.push({ path: p, change: "removed", old: fa.get(p) });
      else if (!fa.has(p)) rows.push({ path: p, change: "added", new: fb.get(p) });
      else if (JSON.stringify(fa.get(p)) !== JSON.stringify(fb.get(p))) rows.push({ path: p, change: "changed", old: fa.get(p), new: fb.get(p) });
    }
    return { rows, fields: order.length };
  }
  const show = (v) => typeof v === "string" ? v : JSON.stringify(v);
  const CHANGES = { changed: "± 修改 changed", added: "+ 新增 added", removed: "− 删除 removed" };
  async function runDiff() {
    ok();
    const a = $("pd-a").value, b = $("pd-b").value;
    const t = $("pd-rows"), tb = t.tBodies[0];
    if (!a || !b) return;
    if (a.split("/")[0] !== b.split("/")[0]) { fail(new Error("请选择同一区划的两个版本 Pick two versions of the same region")); return; }
    const get = (k) => { const i = k.indexOf("/"); return api("GET", "/api/v1/policies/" + k.slice(0, i) + "/" + enc(k.slice(i + 1))); };
    $("pd-summary").textContent = "对比中… comparing";
    try {
      const [A, B] = await Promise.all([get(a), get(b)]);
      const d = diffDocs(A.policy, B.policy);
      tb.innerHTML = "";
      for (const r of d.rows) {
        const tr = tb.insertRow();
        tr.dataset.path = r.path; tr.dataset.change = r.change; tr.className = "d-" + r.change;
        let o = r.change === "added" ? "" : show(r.old), n = r.change === "removed" ? "" : show(r.new);
        if (r.change === "changed" && o === n) { o = JSON.stringify(r.old); n = JSON.stringify(r.new); }
        cells(tr, [CHANGES[r.change], r.path, o, n], ["mark", "path", "old", "new"]);
      }
      t.hidden = !d.rows.length;
      const count = (c) => d.rows.filter((r) => r.change === c).length;
      $("pd-summary").dataset.changes = d.rows.length;
      $("pd-summary").textContent = A.version + " → " + B.version + "：" + (d.rows.length
        ? d.rows.length + " 处不同（修改 " + count("changed") + "，新增 " + count("added") + "，删除 " + count("removed") + "） " +
          d.rows.length + " differences (" + count("changed") + " changed, " + count("added") + " added, " + count("removed") + " removed) among " + d.fields + " fields"
        : "两个版本内容相同 the two documents are identical (" + d.fields + " fields)");
    } catch (e) { $("pd-summary").textContent = ""; fail(e); }
  }
  $("pd-run").addEventListener("click", runDiff);

  // --- dual control: key and channel changes wait for a second administrator ---
  // A staff user's change of a channel, an institution key or a partner
  // bank is answered 202 with a stored approval; another administrator
  // approves it (and only then it runs) or rejects it.
  const ROUTES = {
    "POST /api/v1/institutions/{code}/keys": "签发机构密钥 Issue an institution key",
    "DELETE /api/v1/institutions/{code}/keys/{key_id}": "吊销机构密钥 Revoke an institution key",
    "POST /api/v1/ecert/channels": "登记电子凭证渠道 Register an e-certificate channel",
    "PUT /api/v1/ecert/channels/{channel_id}/status": "更改渠道状态 Change a channel's status",
    "POST /api/v1/credit/banks": "登记合作银行 Register a partner bank",
  };
  const AP_STATUS = { prepared: "待批准 awaiting approval", approved: "已批准并执行 approved", failed: "已批准但执行失败 approved, failed",
    rejected: "已退回 rejected", executing: "执行中 running" };
  let pending = []; // the approvals still prepared
  const meID = () => me ? me.kind + ":" + me.subject : "";
  const pendingFor = (method, path) => pending.find((a) => a.method === method && a.path.split("?")[0] === path);
  // bodySummary names each field of a change's body, long values cut.
  function bodySummary(b) {
    if (!b || typeof b !== "object") return "";
    return Object.entries(b).map(([k, v]) => {
      const t = k + "=" + (typeof v === "string" ? v : JSON.stringify(v));
      return t.length > 60 ? t.slice(0, 59) + "…" : t;
    }).join(" · ");
  }
  // submitted tells where a change was made that it now waits for approval.
  function submitted(el, a, what) {
    el.dataset.approval = a.approval_id;
    el.dataset.status = "prepared";
    el.textContent = "已提交，待另一位管理员批准 submitted — another administrator must approve: " + a.approval_id + (what ? " · " + what : "");
  }
  // waiting is the button of a row whose change awaits approval: it stays
  // focusable and says so, instead of preparing the change twice.
  function waiting(label, a, el) {
    const b = button(label, () => {
      el.dataset.approval = a.approval_id; el.dataset.status = "prepared";
      el.textContent = "已在等待批准 already awaiting approval: " + a.approval_id + "（" + a.prepared_by + " " + when(a.prepared_at) + "）";
    }, label + " " + a.approval_id);
    b.setAttribute("aria-disabled", "true");
    b.className = "waiting";
    return b;
  }

  async function approvals() {
    const all = $("ap-decided").checked;
    const list = (await api("GET", "/api/v1/approvals" + (all ? "" : "?status=prepared"))).items;
    pending = list.filter((a) => a.status === "prepared");
    const tb = $("approvals").tBodies[0];
    tb.innerHTML = "";
    for (const a of list) {
      const tr = tb.insertRow();
      tr.dataset.id = a.approval_id; tr.dataset.status = a.status; tr.dataset.route = a.route;
      const mine = a.prepared_by === meID();
      const decided = a.decided_by ? "（" + a.decided_by + (a.decided_at ? " " + when(a.decided_at) : "") + (a.note ? "：" + a.note : "") + "）" : "";
      cells(tr, [a.approval_id, ROUTES[a.route] || a.route, a.method + " " + a.path, bodySummary(a.body),
        a.prepared_by + (mine ? "（您 you）" : "") + " " + when(a.prepared_at), (AP_STATUS[a.status] || a.status) + decided],
      ["code", null, "path", "body", null, "st-" + a.status]);
      const td = tr.insertCell();
      if (a.status !== "prepared") continue;
      td.appendChild(button("批准 Approve", () => decideApproval(a, true), "批准 Approve " + a.approval_id));
      td.appendChild(button("退回 Reject", () => decideApproval(a, false), "退回 Reject " + a.approval_id));
    }
    if (!list.length) none(tb, 7);
    const theirs = pending.filter((a) => a.prepared_by !== meID()).length;
    $("ap-summary").dataset.count = pending.length;
    $("ap-summary").textContent = pending.length
      ? pending.length + " 项待批准 awaiting approval，其中 " + theirs + " 项可由您批准 " + theirs + " of them by you (others prepared them)"
      : "没有待批准的变更 Nothing awaits approval";
  }
  // refreshChanges reloads the approvals, then what they change.
  async function refreshChanges() {
    await approvals();
    await Promise.all([channels(), keys()]);
  }
  async function decideApproval(a, approve) {
    ok();
    const st = $("ap-status");
    st.textContent = ""; delete st.dataset.status; st.dataset.approval = a.approval_id;
    try {
      const r = await api("POST", "/api/v1/approvals/" + enc(a.approval_id) + "/" + (approve ? "approve" : "reject"),
        approve ? {} : { note: $("ap-note").value.trim() });
      st.dataset.status = r.status;
      const what = (ROUTES[r.route] || r.route) + " " + r.path;
      if (r.status === "approved") {
        st.textContent = "已批准并执行 approved and done: " + r.approval_id + " · " + what + " · HTTP " + r.result_status;
      } else if (r.status === "failed") {
        const why = r.result && (r.result.message || r.result.code) || "";
        st.textContent = "已批准，但变更被拒绝 approved, but the change was refused: " + r.approval_id + " · HTTP " + r.result_status + (why ? " · " + why : "");
      } else {
        st.textContent = "已退回 rejected: " + r.approval_id + " · " + what + (r.note ? " · " + r.note : "");
        $("ap-note").value = "";
      }
      if (r.status === "approved" && r.result && r.result.secret) {
        // A new key: its secret, shown this once, to the approver.
        if ($("k-inst").value !== r.result.fixmedins_code) $("k-inst").value = r.result.fixmedins_code;
        await refreshChanges();
        showSecret(r.result);
        return;
      }
      await refreshChanges();
      const next = $("approvals").querySelector("tbody tr[data-status=prepared] button");
      (next || $("ap-refresh")).focus();
    } catch (e) {
      if (/dual_control/.test(e.message)) {
        st.dataset.status = "refused";
        st.textContent = "不能批准自己提交的变更，须由另一位管理员批准 You prepared " + a.approval_id + "; another administrator has to approve it";
      }
      fail(e);
    }
  }
  $("ap-refresh").addEventListener("click", () => { ok(); refreshChanges().catch(fail); });
  // Coming back to the console, see what the other administrator did meanwhile.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden || !token || $("console").hidden) return;
    refreshChanges().catch(fail);
    if (!$("funds").hidden) fundRuns().catch(fail);
  });
  $("ap-decided").addEventListener("change", () => { ok(); approvals().catch(fail); });

  // --- e-certificate channels ---
  async function channels() {
    const list = (await api("GET", "/api/v1/ecert/channels")).items;
    const tb = $("channels").tBodies[0];
    tb.innerHTML = "";
    for (const ch of list) {
      const tr = tb.insertRow();
      tr.dataset.id = ch.channel_id; tr.dataset.status = ch.status;
      const path = "/api/v1/ecert/channels/" + enc(ch.channel_id) + "/status";
      const wait = pendingFor("PUT", path);
      const to = wait && wait.body && wait.body.status;
      cells(tr, [ch.channel_id, ch.name, (STATUS[ch.status] || ch.status) + (wait ? "（待批准改为 awaiting approval: " + (STATUS[to] || to) + "）" : ""), when(ch.created_at)],
        [null, null, "st-" + ch.status]);
      if (wait) {
        tr.dataset.pending = wait.approval_id;
        tr.insertCell().appendChild(waiting("待批准 Awaiting approval", wait, $("ch-pending")));
        continue;
      }
      const next = ch.status === "active" ? "suspended" : "active";
      const label = next === "suspended" ? "暂停 Suspend" : "恢复 Reactivate";
      const b = button(label, async () => {
        ok(); b.disabled = true;
        try {
          const r = await api("PUT", path, { status: next });
          await approvals();
          await channels();
          if (r.approval) submitted($("ch-pending"), r.approval, label + " " + ch.channel_id);
          const again = tb.querySelector("tr[data-id='" + CSS.escape(ch.channel_id) + "'] button");
          if (again) again.focus();
        } catch (e) { b.disabled = false; fail(e); }
      }, label + " " + ch.channel_id);
      tr.insertCell().appendChild(b);
    }
    if (!list.length) none(tb, 5);
  }

  // --- institution API keys: list, revoke, issue (the secret shown once, to
  // the administrator who approves the issue) ---
  function hideSecret() {
    $("k-secret-value").value = "";
    $("k-secret-id").textContent = "";
    $("k-secret").hidden = true;
    delete $("k-secret").dataset.key;
  }
  function showSecret(k) {
    $("k-secret-id").textContent = k.key_id + " · " + k.fixmedins_code;
    $("k-secret-value").value = k.secret || "";
    $("k-secret").dataset.key = k.key_id;
    $("k-secret").hidden = false;
    $("k-secret-value").focus();
    $("k-secret-value").select();
  }
  async function keys() {
    const code = $("k-inst").value;
    const tb = $("keys").tBodies[0];
    if (!code) { tb.innerHTML = ""; none(tb, 5); return; }
    const list = (await api("GET", "/api/v1/institutions/" + enc(code) + "/keys")).items;
    if ($("k-inst").value !== code) return; // the select moved on meanwhile
    const all = $("k-revoked").checked;
    tb.innerHTML = "";
    for (const k of list) {
      if (k.status !== "active" && !all) continue;
      const tr = tb.insertRow();
      tr.dataset.id = k.key_id; tr.dataset.status = k.status;
      const path = "/api/v1/institutions/" + enc(code) + "/keys/" + enc(k.key_id);
      const wait = k.status === "active" && pendingFor("DELETE", path);
      cells(tr, [k.key_id, k.alg, (STATUS[k.status] || k.status) + (wait ? "（吊销待批准 revocation awaiting approval）" : ""), when(k.created_at)], [null, null, "st-" + k.status]);
      const td = tr.insertCell();
      if (wait) {
        tr.dataset.pending = wait.approval_id;
        td.appendChild(waiting("吊销待批准 Revocation awaiting approval", wait, $("k-pending")));
      } else if (k.status === "active") {
        td.appendChild(button("吊销 Revoke", async () => {
          if (!confirm("吊销密钥 " + k.key_id + "？经另一位管理员批准后，用它签名的请求将立即被拒绝，且无法恢复。\nRevoke " + k.key_id + "? Once another administrator approves, requests signed with it are refused at once; this cannot be undone.")) return;
          ok();
          try {
            const r = await api("DELETE", path);
            if ($("k-secret").dataset.key === k.key_id) hideSecret();
            await approvals();
            await keys();
            if (r.approval) submitted($("k-pending"), r.approval, "吊销 revoke " + k.key_id);
            $("k-create").focus();
          } catch (e) { fail(e); }
        }, "吊销 Revoke " + k.key_id));
      }
    }
    if (!tb.rows.length) none(tb, 5);
    const active = list.filter((k) => k.status === "active").length;
    const issuing = pending.filter((a) => a.method === "POST" && a.path.split("?")[0] === "/api/v1/institutions/" + enc(code) + "/keys").length;
    $("k-summary").textContent = code + "：" + active + " 个有效密钥 active keys" +
      (list.length > active ? "，" + (list.length - active) + " 个已吊销 revoked" + (all ? "" : "（未显示 hidden）") : "") +
      (issuing ? "，" + issuing + " 个签发待批准 issues awaiting approval" : "");
  }
  $("k-inst").addEventListener("change", () => { hideSecret(); ok(); keys().catch(fail); });
  $("k-revoked").addEventListener("change", () => { ok(); keys().catch(fail); });
  $("k-create").addEventListener("click", async () => {
    ok();
    const code = $("k-inst").value;
    if (!code) return;
    try {
      const r = await api("POST", "/api/v1/institutions/" + enc(code) + "/keys", { alg: "HMAC-SM3" });
      if (r.approval) { // dual control: the secret goes to the approver
        await approvals();
        await keys();
        submitted($("k-pending"), r.approval, "签发 HMAC-SM3 密钥 issue an HMAC-SM3 key · " + code);
        return;
      }
      showSecret(r);
      await keys();
      $("k-secret-value").focus();
    } catch (e) { fail(e); }
  });
  $("k-secret-done").addEventListener("click", () => { hideSecret(); $("ap-refresh").focus(); });

  // --- fund operations: contribution files in, personal accounts credited,
  // institutions paid out (with the bank's files), corrections, and the
  // fund dashboard. One administrator prepares each run, another approves
  // it; money moves only on approval. ---
  const RUN_KINDS = { contributions: "缴费入账 contributions", crediting: "账户划入 crediting", payout: "机构拨付 payout", correction: "调账 correction" };
  const RUN_STATUS = { prepared: "待批准 prepared", approved: "执行中 approved", done: "已完成 done", rejected: "已退回 rejected" };
  const PAYOUT_STATUS = { instructed: "已发指令 instructed", confirmed: "银行已付 confirmed", failed: "银行未付 failed" };
  const FUND_KINDS = { fund_pool: "统筹基金 pool", large_amount_fund: "大额 large-amount", critical_illness: "大病 critical illness",
    assistance_fund: "医疗救助 assistance" };
  const FUND_PHASES = { reading: "读取 reading", validating: "校验 validating", prepared: "已准备 prepared", preparing: "准备 preparing" };
  const funded = (s) => s === undefined || s === null ? "—" : "¥" + s;
  // fen reads a yuan string exactly ("-12.3" → -1230), for sums.
  function fen(s) {
    const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(s).trim());
    if (!m) return 0;
    return (m[1] ? -1 : 1) * (parseInt(m[2], 10) * 100 + parseInt((m[3] || "0").padEnd(2, "0"), 10));
  }
  let fundTimer = 0, fundNote = "", fundBoard = null;
  let payoutRun = null, bankFile = "", bankURL = "";
  const region = () => $("fo-admdvs").value;
  const period = () => $("fo-period").value;

  async function funds() {
    try { await fundDashboard(); } catch (e) {
      if (e.code === "unavailable") { $("funds").hidden = true; return; }
      throw e;
    }
    $("funds").hidden = false;
    await fundRuns();
  }

  async function fundDashboard() {
    const adm = region();
    if (!adm) return;
    const d = await api("GET", "/api/v1/funds/dashboard?admdvs=" + enc(adm) + "&months=12");
    if (region() !== adm) return;
    fundBoard = d;
    const tb = $("fd-funds").tBodies[0];
    tb.innerHTML = "";
    let total = 0, shortest = null;
    for (const f of d.funds) {
      const tr = tb.insertRow();
      tr.dataset.account = f.account;
      const last = f.months[f.months.length - 1] || {};
      cells(tr, [f.account, FUND_KINDS[f.kind] || f.kind, "¥" + f.balance, f.days_of_cover === null ? "— 无支出 no outgo" : f.days_of_cover + " 天 days",
        funded(last.income), funded(last.outgo)], [null, null, "num balance", "num cover", "num income", "num outgo"]);
      total += fen(f.balance);
      if (f.days_of_cover !== null && (!shortest || f.days_of_cover < shortest.days_of_cover)) shortest = f;
    }
    if (!d.funds.length) none(tb, 6);
    $("fd-summary").textContent = regionName(adm) + "：" + d.funds.length + " 个基金 funds · 合计余额 total balance ¥" + fenYuan(total) +
      (shortest ? " · 可支付天数最短 shortest cover: " + shortest.account + " " + shortest.days_of_cover + " 天 days" : " · 近 90 天无支出 no outgo in the last 90 days");
    const sel = $("fd-fund"), keep = sel.value;
    sel.length = 0;
    for (const f of d.funds) sel.add(new Option(f.account + " " + (FUND_KINDS[f.kind] || f.kind), f.account));
    const want = d.funds.some((f) => f.account === keep) ? keep : d.funds.some((f) => f.account === "fund:" + adm + ":310") ? "fund:" + adm + ":310" : (d.funds[0] || {}).account;
    if (want) sel.value = want;
    fundChart();
  }
  // fundChart draws the chosen fund: income and outgo per month as bars,
  // the balance at each month's end as a line on its own scale.
  function fundChart() {
    const svg = $("chart-fund");
    const f = fundBoard && fundBoard.funds.find((x) => x.account === $("fd-fund").value);
    if (!f) { svg.innerHTML = ""; return; }
    svg.dataset.account = f.account;
    svg.setAttribute("aria-label", f.account + "：每月收入、支出与月末余额 income, outgo and month-end balance per month, " +
      f.months[0].month + " – " + f.months[f.months.length - 1].month);
    const y = (s) => fen(s) / 100;
    bars(svg, f.months, (m) => y(m.income), (m) => m.month.slice(2), {
      second: (m) => y(m.outgo), names: ["收入 income", "支出 outgo"], fmt: (v) => "¥" + v.toFixed(2),
      line: (m) => y(m.balance), lineName: "月末余额 balance",
      scale: (mx) => "收支最高 max ¥" + (mx > 1 ? mx.toFixed(2) : "0.00"), lineScale: (mx) => "余额最高 max balance ¥" + mx.toFixed(2) });
    $("fd-caption").dataset.account = f.account;
  }
  $("fd-fund").addEventListener("change", fundChart);
  $("fo-admdvs").addEventListener("change", () => { ok(); fundDashboard().catch(fail); });
  $("fo-refresh").addEventListener("click", () => { ok(); funds().catch(fail); });

  async function fundRuns() {
    const list = (await api("GET", "/api/v1/fund-runs?limit=50")).items;
    const tb = $("fo-runs").tBodies[0];
    tb.innerHTML = "";
    for (const r of list) {
      const tr = tb.insertRow();
      tr.dataset.run = r.run_id; tr.dataset.kind = r.kind; tr.dataset.status = r.status;
      const mine = r.prepared_by === meID();
      cells(tr, [r.run_id, RUN_KINDS[r.kind] || r.kind, (r.admdvs ? regionName(r.admdvs) : "—") + " · " + (r.period || "—"), RUN_STATUS[r.status] || r.status,
        r.posted + " / " + r.lines, "¥" + r.total, r.prepared_by + (mine ? "（您 you）" : "") + " " + when(r.prepared_at),
        r.decided_by ? r.decided_by + " " + when(r.decided_at) + (r.note && r.kind !== "correction" ? "：" + r.note : "") : ""],
      ["code", null, null, "st-" + r.status, "num", "num"]);
      const td = tr.insertCell();
      td.appendChild(button("明细 Details", () => runDetail(r.run_id).catch(fail), "明细 Details " + r.run_id));
      if (r.status === "prepared") {
        td.appendChild(button("批准 Approve", () => decideRun(r, true), "批准 Approve " + r.run_id));
        td.appendChild(button("退回 Reject", () => decideRun(r, false), "退回 Reject " + r.run_id));
      } else if (r.status === "approved") { // interrupted: approving again resumes it
        td.appendChild(button("继续执行 Resume", () => decideRun(r, true), "继续执行 Resume " + r.run_id));
      }
      if (r.kind === "payout" && (r.status === "done" || r.status === "approved")) {
        td.appendChild(button("拨付单 Payouts", () => openPayout(r).catch(fail), "拨付单 Payouts " + r.run_id));
      }
    }
    if (!list.length) none(tb, 9);
    return list;
  }
  const runStatus = (el, r, verb) => {
    el.dataset.run = r.run_id; el.dataset.status = r.status;
    el.textContent = verb + "：" + (RUN_KINDS[r.kind] || r.kind) + " " + r.run_id + (r.period ? " · " + r.period : "") + " · " + r.lines + " 行 lines · ¥" + r.total +
      (r.status === "prepared" ? " · 待另一位管理员批准 awaiting another administrator's approval" : " · " + (RUN_STATUS[r.status] || r.status));
  };
  async function decideRun(r, approve) {
    ok();
    const st = $("fo-status");
    try {
      const out = await api("POST", "/api/v1/fund-runs/" + enc(r.run_id) + "/" + (approve ? "approve" : "reject"), approve ? {} : { note: $("fo-note").value.trim() });
      runStatus(st, out, approve ? "已批准 approved" : "已退回 rejected");
      if (approve) st.textContent += " · 已执行 executed " + out.posted + " / " + out.lines;
      else $("fo-note").value = "";
      await Promise.all([fundRuns(), fundDashboard()]);
      if (approve && out.kind === "payout") await openPayout(out);
      else await runDetail(out.run_id);
    } catch (e) {
      if (/dual_control/.test(e.message)) {
        st.dataset.run = r.run_id; st.dataset.status = "refused";
        st.textContent = "不能批准自己准备的批次，须由另一位管理员批准 You prepared " + r.run_id + "; another administrator has to approve it";
      }
      fail(e);
    }
  }

  function runSummary(r) {
    const s = r.summary || {};
    const kv = (o) => Object.entries(o || {}).map(([k, v]) => k + " ¥" + v).join("，");
    switch (r.kind) {
      case "contributions":
        return s.rows + " 行 rows · " + kv(s.by_kind) + " · 区划 regions " + (s.regions || []).join(", ") + " · 文件 SM3 " + String(s.file_sm3 || "").slice(0, 16) + "…";
      case "crediting":
        return "职工 employees " + s.employees + " · 退休 retirees " + s.retirees + "（每月 monthly ¥" + s.retiree_monthly + "）· 个人缴费划入比例 individual share " +
          s.individual_to_account + " · 单位 employer share " + s.employer_to_account;
      case "payout":
        return "机构 institutions " + s.institutions + " · 拨付单 payouts " + s.payouts + " · 质保金比例 quality deposit " + s.quality_deposit + " · 截止 cutoff " + when(s.cutoff);
      case "correction": {
        const o = s.original || {};
        return "冲回 mirrors " + s.corrects + "（" + o.debit + " → " + o.credit + " ¥" + o.amount + "）· 理由 reason: " + (r.note || "");
      }
    }
    return "";
  }
  async function runDetail(id) {
    const d = await api("GET", "/api/v1/fund-runs/" + enc(id));
    const r = d.run;
    $("fo-detail").hidden = false;
    $("fo-detail").dataset.run = r.run_id;
    $("fo-detail-title").textContent = "批次明细 Run " + r.run_id + " · " + (RUN_KINDS[r.kind] || r.kind) + " · " + (RUN_STATUS[r.status] || r.status);
    $("fo-detail-summary").textContent = runSummary(r);
    const tb = $("fo-lines").tBodies[0];
    tb.innerHTML = "";
    const shown = d.lines.slice(0, 100);
    for (const l of shown) {
      const tr = tb.insertRow();
      tr.dataset.seq = l.seq; tr.dataset.status = l.status;
      cells(tr, [l.seq, l.psn_no || l.fixmedins_code || "", l.kind || "", l.period || "", l.debit + " → " + l.credit, "¥" + l.amount, l.status],
        ["num", null, null, null, "path", "num"]);
      const td = tr.insertCell();
      if (l.status === "posted" && r.kind !== "payout") { // its ledger transfer is <run>:<seq>
        const tid = r.run_id + ":" + l.seq;
        td.appendChild(button("调账 Correct", () => {
          $("fx-transfer").value = tid; $("fx-amount").value = ""; $("fx-reason").focus();
        }, "调账 Correct " + tid));
      }
    }
    if (!shown.length) none(tb, 8);
    if (r.lines > shown.length) {
      const c = tb.insertRow().insertCell(); c.colSpan = 8;
      c.textContent = "显示前 " + shown.length + " 行，共 " + r.lines + " 行 first " + shown.length + " of " + r.lines + " lines";
    }
    if (r.kind !== "payout") { $("fp-box").hidden = true; payoutRun = null; }
  }

  // --- contribution files: check in the background, poll, list bad lines ---
  function drawFundJob(j) {
    $("fc-job").hidden = false;
    const pr = $("fc-progress");
    pr.max = Math.max(1, j.total);
    pr.value = Math.min(j.done, pr.max);
    const st = $("fc-status");
    st.dataset.status = j.status;
    if (j.status === "running") {
      st.textContent = "校验中 checking · " + (FUND_PHASES[j.phase] || j.phase) + " · " + j.done + " / " + j.total + " 行 lines";
    } else if (j.status === "succeeded") {
      runStatus(st, j.run, "已准备 prepared");
      st.dataset.status = "succeeded";
      st.textContent += fundNote;
    } else {
      const bad = j.errors.length;
      st.textContent = "失败 failed · " + (bad ? j.total + " 行中 " + bad + (bad >= 100 ? "+" : "") + " 行有误，未准备任何批次 " + bad + (bad >= 100 ? "+" : "") + " of " +
        j.total + " lines are bad; no run was prepared" : (j.error || "") + "，未准备任何批次 no run was prepared") + fundNote;
    }
    drawIssues(j.status === "failed" ? j.errors : [], $("fc-errors"));
  }
  function pollFundJob(id, misses) {
    fundTimer = setTimeout(async () => {
      try {
        const j = await api("GET", "/api/v1/fund-jobs/" + enc(id));
        drawFundJob(j);
        if (j.status === "running") { pollFundJob(id, 0); return; }
        $("fc-start").disabled = false;
        if (j.status === "succeeded") { await fundRuns(); await runDetail(j.run.run_id); }
      } catch (e) {
        if (e.code === "not_found" && misses < 100) { pollFundJob(id, misses + 1); return; }
        $("fc-start").disabled = false;
        fail(e);
      }
    }, misses ? Math.min(2000, 150 * (misses + 1)) : 150);
  }
  $("f-contrib").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    const file = $("fc-file").files[0];
    if (!file) { fail(new Error("请选择 CSV 文件 Choose a CSV file")); return; }
    clearTimeout(fundTimer);
    $("fc-start").disabled = true;
    try {
      const [text, note] = await decodeCSV(file);
      fundNote = note;
      const job = await api("POST", "/api/v1/fund-runs/contributions", undefined, text, "text/csv");
      drawFundJob(job);
      pollFundJob(job.id, 0);
    } catch (e) {
      $("fc-start").disabled = false;
      $("fc-job").hidden = false;
      $("fc-progress").value = 0;
      $("fc-status").dataset.status = "refused";
      $("fc-status").textContent = "未开始 not started: " + e.message;
      drawIssues(e.issues, $("fc-errors"));
      fail(e);
    }
  });

  // --- crediting and payout of the chosen region and month ---
  async function prepareRun(kind) {
    ok();
    const st = $("fo-status");
    if (!region() || !/^\d{4}-\d{2}$/.test(period())) { fail(new Error("请选择区划和月份 Choose a region and a month")); return; }
    const btn = $(kind === "crediting" ? "fo-crediting" : "fo-payout");
    btn.disabled = true;
    delete st.dataset.run; delete st.dataset.status;
    st.textContent = "准备中… preparing";
    try {
      const r = await api("POST", "/api/v1/fund-runs/" + kind, { admdvs: region(), period: period() });
      runStatus(st, r, r.status === "prepared" ? "已准备 prepared（" + r.prepared_by + "）" : "该月已有批次 this month already has a run");
      await fundRuns();
      if (r.kind === "payout" && r.status !== "prepared") await openPayout(r); else await runDetail(r.run_id);
    } catch (e) { delete st.dataset.run; st.textContent = ""; fail(e); } finally { btn.disabled = false; }
  }
  $("fo-crediting").addEventListener("click", () => prepareRun("crediting"));
  $("fo-payout").addEventListener("click", () => prepareRun("payout"));

  // --- a payout run: the bank file, each institution's statement, and the
  // bank's confirmation (a file, or in the demo a simulated bank) ---
  async function openPayout(r) {
    const [d, po] = await Promise.all([api("GET", "/api/v1/fund-runs/" + enc(r.run_id)), api("GET", "/api/v1/fund-payouts?run_id=" + enc(r.run_id))]);
    const run = d.run;
    payoutRun = run;
    $("fo-detail").hidden = true;
    $("fp-box").hidden = false;
    $("fp-box").dataset.run = run.run_id;
    $("fp-title").textContent = "拨付 Payout " + run.run_id + " · " + regionName(run.admdvs) + " · " + run.period + " · " + (RUN_STATUS[run.status] || run.status);
    const byCode = new Map(po.items.map((p) => [p.fixmedins_code, p]));
    const statements = (run.summary && run.summary.statements) || po.items.map((p) => p.statement);
    const tb = $("fp-statements").tBodies[0];
    tb.innerHTML = "";
    for (const s of statements) {
      const p = byCode.get(s.fixmedins_code);
      const tr = tb.insertRow();
      tr.dataset.code = s.fixmedins_code; tr.dataset.status = p ? p.status : "none";
      if (p) tr.dataset.payout = p.payout_id;
      const funds = Object.entries(s.by_fund || {}).map(([k, v]) => (k === "personal_account" ? "个人账户 personal account" : k) + " ¥" + v).join("，");
      const who = tr.insertCell();
      who.textContent = s.fixmedins_code + " " + s.name;
      if (funds) { const sm = document.createElement("small"); sm.textContent = funds; who.appendChild(document.createElement("br")); who.appendChild(sm); }
      cells(tr, ["¥" + s.settled, "¥" + s.reversed, "¥" + s.recovered, "¥" + s.carried_in, "¥" + s.owed, "¥" + s.deposit_held, "¥" + s.review_held,
        "¥" + (p ? p.amount : s.net), p ? p.payout_id : "—", p ? PAYOUT_STATUS[p.status] || p.status : "无需拨付 nothing to pay"],
      ["num", "num", "num", "num", "num", "num", "num", "num net", "code", "st-" + (p ? p.status : "none")]);
    }
    if (!statements.length) none(tb, 11);
    const open = po.items.filter((p) => p.status === "instructed").length;
    const done = run.status === "done";
    $("fp-simulate").disabled = !done || !open;
    $("fp-upload").disabled = !done;
    if (bankURL) { URL.revokeObjectURL(bankURL); bankURL = ""; }
    bankFile = "";
    $("fp-download").hidden = true;
    $("fp-preview").hidden = true;
    $("fp-file-note").textContent = done ? "" : "批准后才有银行文件 the bank file exists once the run is approved";
    if (done) {
      bankFile = await apiText("/api/v1/fund-runs/" + enc(run.run_id) + "/bank-file");
      if (payoutRun !== run) return;
      bankURL = URL.createObjectURL(new Blob([bankFile], { type: "text/csv" }));
      const a = $("fp-download");
      a.href = bankURL; a.download = "payout-" + run.run_id + ".csv"; a.hidden = false;
      const rows = parseCSV(bankFile).length - 1;
      $("fp-file-note").textContent = rows + " 笔付款 payments · " + po.items.length + " 张拨付单 payouts，其中 " + open + " 张待银行确认 " + open + " awaiting the bank";
      $("fp-bankfile").textContent = bankFile;
      $("fp-preview").hidden = false;
    }
    $("fp-title").focus();
  }
  // parseCSV reads RFC 4180 CSV (quoted fields, doubled quotes, CRLF).
  function parseCSV(text) {
    const rows = [];
    let row = [], f = "", q = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (q) {
        if (c === '"' && text[i + 1] === '"') { f += '"'; i++; } else if (c === '"') q = false; else f += c;
      } else if (c === '"') q = true;
      else if (c === ",") { row.push(f); f = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(f); rows.push(row); row = []; f = "";
      } else f += c;
    }
    if (f !== "" || row.length) { row.push(f); rows.push(row); }
    return rows.filter((r) => r.length > 1 || r[0] !== "");
  }
  const csvField = (v) => /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  async function sendConfirmation(text, note) {
    const st = $("fp-status");
    st.textContent = "发送中… sending"; delete st.dataset.status;
    drawIssues([], $("fp-errors"));
    try {
      const r = await api("POST", "/api/v1/fund-payouts/confirmations", undefined, text, "text/csv");
      st.dataset.status = "applied";
      st.textContent = "银行回单已入账 the bank's confirmation applied: 新确认 confirmed " + r.confirmed + " · 未付 failed " + r.failed + " · 此前已确认 confirmed before " +
        r.already + " · 清偿应收 receivables cleared ¥" + r.cleared + (note || "");
      await openPayout(payoutRun);
      await fundDashboard();
    } catch (e) {
      st.dataset.status = "refused";
      st.textContent = "回单被拒绝，未入账任何一行 the file was refused; nothing was applied: " + e.message;
      drawIssues(e.issues, $("fp-errors"));
      fail(e);
    }
  }
  $("fp-simulate").addEventListener("click", async () => {
    ok();
    if (!payoutRun || !bankFile) return;
    const rows = parseCSV(bankFile);
    const head = rows[0] || [];
    const ix = (k) => head.indexOf(k);
    const out = ["payout_id,amount,status,bank_ref"];
    for (const r of rows.slice(1)) {
      const id = r[ix("payout_id")];
      out.push([id, r[ix("amount")], "paid", "SIMBANK-" + id].map(csvField).join(","));
    }
    if (out.length === 1) { $("fp-status").textContent = "银行文件没有付款行 the bank file has no payments"; return; }
    await sendConfirmation(out.join("\r\n") + "\r\n", "（模拟银行 simulated bank）");
  });
  $("f-confirm").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    const file = $("fp-file").files[0];
    if (!file) { fail(new Error("请选择银行回单 Choose the bank's confirmation file")); return; }
    const [text, note] = await decodeCSV(file);
    await sendConfirmation(text, note);
  });

  // --- corrections: mirror a posted transfer (prepared; another approves) ---
  $("f-correct").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    const st = $("fx-status");
    const body = { transfer_id: $("fx-transfer").value.trim(), reason: $("fx-reason").value.trim() };
    if ($("fx-amount").value.trim()) body.amount = $("fx-amount").value.trim();
    try {
      const r = await api("POST", "/api/v1/fund-runs/corrections", body);
      runStatus(st, r, "已准备调账 correction prepared");
      $("fx-transfer").value = ""; $("fx-amount").value = ""; $("fx-reason").value = "";
      await fundRuns();
      await runDetail(r.run_id);
    } catch (e) { st.textContent = ""; delete st.dataset.run; fail(e); }
  });

  // --- cross-region care (异地就医): the filings (备案) of a person insured
  // here, and this node's positions with the other regions for a clearing
  // month, with the check of its ledger (what the hub's monthly clearing
  // compares, docs/cross-region.md). ---
  const FILING_KINDS = { long_term: "异地长期居住 long-term residence", referred: "转诊转院 referral", temporary: "临时外出就医 temporary",
    emergency: "急诊抢救 emergency" };
  // PROVINCES names a region of another node by its first two digits
  // (GB/T 2260); this node's own regions come from /api/v1/regions.
  const PROVINCES = { 11: "北京 Beijing", 12: "天津 Tianjin", 13: "河北 Hebei", 14: "山西 Shanxi", 15: "内蒙古 Inner Mongolia", 21: "辽宁 Liaoning",
    22: "吉林 Jilin", 23: "黑龙江 Heilongjiang", 31: "上海 Shanghai", 32: "江苏 Jiangsu", 33: "浙江 Zhejiang", 34: "安徽 Anhui", 35: "福建 Fujian",
    36: "江西 Jiangxi", 37: "山东 Shandong", 41: "河南 Henan", 42: "湖北 Hubei", 43: "湖南 Hunan", 44: "广东 Guangdong", 45: "广西 Guangxi",
    46: "海南 Hainan", 50: "重庆 Chongqing", 51: "四川 Sichuan", 52: "贵州 Guizhou", 53: "云南 Yunnan", 54: "西藏 Tibet", 61: "陕西 Shaanxi",
    62: "甘肃 Gansu", 63: "青海 Qinghai", 64: "宁夏 Ningxia", 65: "新疆 Xinjiang" };
  // placeName is a region of this node's province by its name, and one of
  // another province with the province's name first (a province itself:
  // "whole province").
  function placeName(a) {
    a = String(a || "");
    const known = regions.get(a), prov = a.slice(0, 2);
    if (prov === homeProvince() || !PROVINCES[prov]) return known ? known + " " + a : a;
    return PROVINCES[prov] + (known ? " " + known : a.endsWith("0000") ? " 全省 whole province" : "") + " " + a;
  }
  // homeProvince is the province most of the node's regions are in (it also
  // lists the regions of guests it treated).
  function homeProvince() {
    const n = new Map();
    for (const a of regions.keys()) n.set(a.slice(0, 2), (n.get(a.slice(0, 2)) || 0) + 1);
    return [...n].sort((x, y) => y[1] - x[1])[0]?.[0] || "";
  }
  const signedYuan = (s) => (String(s).startsWith("-") ? "-¥" + String(s).slice(1) : "¥" + s);
  let filingPsn = ""; // the person whose filings are shown (the add form files for them)

  async function filings(psn) {
    const tb = $("xf-list").tBodies[0];
    let list;
    try { list = (await api("GET", "/api/v1/persons/" + enc(psn) + "/filings")).items; } catch (e) {
      filingPsn = ""; tb.innerHTML = ""; $("xf-list").hidden = true;
      $("f-xf-add").hidden = true;
      $("xf-summary").textContent = e.code === "not_found" ? psn + "：本节点没有这位参保人 no such person on this node" : "";
      delete $("xf-summary").dataset.psn;
      throw e;
    }
    filingPsn = psn;
    tb.innerHTML = "";
    $("xf-list").hidden = false;
    const today = cst(new Date());
    for (const f of list) {
      const tr = tb.insertRow();
      tr.dataset.id = f.filing_id; tr.dataset.kind = f.kind; tr.dataset.status = f.status;
      const expired = f.status === "active" && f.end_date && f.end_date < today;
      const st = f.status === "revoked" ? "已撤销 revoked" + (f.revoked_at ? "（" + (f.revoked_by || "") + " " + when(f.revoked_at) + "）" : "")
        : expired ? "已到期 expired" : f.status === "active" ? "有效 active" : f.status;
      cells(tr, [f.filing_id, FILING_KINDS[f.kind] || f.kind, placeName(f.dest_admdvs) + (f.fixmedins_code ? " · " + f.fixmedins_code : ""),
        f.begin_date, f.end_date || "长期 open-ended", f.reason || "", st],
      ["code", "kind", "dest", null, null, null, "st-" + (expired ? "expired" : f.status)]);
      const td = tr.insertCell();
      if (f.status === "active") td.appendChild(button("撤销 Revoke", () => revokeFiling(f), "撤销备案 Revoke filing " + f.filing_id));
    }
    if (!list.length) none(tb, 8);
    const active = list.filter((f) => f.status === "active").length;
    $("xf-summary").dataset.psn = psn;
    $("xf-summary").dataset.count = list.length;
    $("xf-summary").textContent = psn + "：" + (list.length ? active + " 项有效备案 active filings" + (list.length > active ? "，" + (list.length - active) +
      " 项已撤销或到期 revoked or expired" : "") : "没有备案（异地就医按未备案处理） no filings: treated elsewhere as unregistered");
    $("f-xf-add").hidden = false;
    $("xf-add-title").textContent = "为 " + psn + " 新增备案 Add a filing for " + psn;
  }
  function xfStatus(status, text) {
    const st = $("xf-status");
    st.textContent = text;
    if (status) st.dataset.status = status; else delete st.dataset.status;
  }
  async function revokeFiling(f) {
    if (!confirm("撤销备案 " + f.filing_id + "（" + (FILING_KINDS[f.kind] || f.kind) + "，" + placeName(f.dest_admdvs) + "）？撤销后在外省就医按未备案处理。\n" +
      "Revoke filing " + f.filing_id + "? Treatment there then counts as unregistered.")) return;
    ok();
    try {
      const r = await api("POST", "/api/v1/filings/" + enc(f.filing_id) + "/revoke", {});
      xfStatus("revoked", "已撤销备案 filing revoked: " + r.filing_id + " · " + (FILING_KINDS[r.kind] || r.kind) + " · " + placeName(r.dest_admdvs));
      await filings(r.psn_no);
      const next = $("xf-list").querySelector("tbody tr[data-status=active] button");
      (next || $("xf-psn")).focus();
    } catch (e) { xfStatus("refused", "撤销失败 not revoked: " + e.message); fail(e); }
  }
  $("f-xf-find").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok(); xfStatus("", "");
    const psn = $("xf-psn").value.trim();
    if (!psn) return;
    try { await filings(psn); } catch (e) { fail(e); }
  });
  const FILING_FIELDS = { kind: "xf-kind", dest_admdvs: "xf-dest", fixmedins_code: "xf-inst", begin_date: "xf-begin", end_date: "xf-end", reason: "xf-reason" };
  $("f-xf-add").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    const psn = filingPsn;
    if (!psn) return;
    for (const id of Object.values(FILING_FIELDS)) $(id).removeAttribute("aria-invalid");
    const body = { kind: $("xf-kind").value, dest_admdvs: $("xf-dest").value.trim(), begin_date: $("xf-begin").value };
    if ($("xf-end").value) body.end_date = $("xf-end").value;
    if ($("xf-inst").value.trim()) body.fixmedins_code = $("xf-inst").value.trim().toUpperCase();
    if ($("xf-reason").value.trim()) body.reason = $("xf-reason").value.trim();
    $("xf-add").disabled = true;
    try {
      const f = await api("POST", "/api/v1/persons/" + enc(psn) + "/filings", body);
      xfStatus("created", "已新增备案 filing added: " + f.filing_id + " · " + (FILING_KINDS[f.kind] || f.kind) + " · " + placeName(f.dest_admdvs) + " · " +
        f.begin_date + " – " + (f.end_date || "长期 open-ended"));
      $("xf-status").dataset.id = f.filing_id;
      for (const id of ["xf-dest", "xf-inst", "xf-end", "xf-reason"]) $(id).value = "";
      await filings(psn);
    } catch (e) {
      xfStatus("refused", "未新增备案 not filed: " + e.message);
      delete $("xf-status").dataset.id;
      const field = e.body && FILING_FIELDS[e.body.field];
      if (field) { $(field).setAttribute("aria-invalid", "true"); $(field).focus(); }
      fail(e);
    } finally { $("xf-add").disabled = false; }
  });

  // pairBars is bars' sibling for a few items with two amounts each
  // (receivable and payable per other region): a row per item, its two
  // bars across (class bar, bar2) on one scale, each with its amount
  // written at its end and in its title. The height follows the rows.
  function pairBars(svg, items, label, first, second, names, fmt) {
    const NS = "http://www.w3.org/2000/svg";
    const add = (tag, attrs, text) => {
      const el = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      if (text !== undefined) el.textContent = text;
      svg.appendChild(el);
      return el;
    };
    svg.innerHTML = "";
    const rowH = 46, left = 190, span = 330;
    svg.setAttribute("viewBox", "0 0 700 " + (12 + Math.max(1, items.length) * rowH));
    const max = Math.max(1, ...items.flatMap((it) => [first(it), second(it)]));
    items.forEach((it, i) => {
      const y = 8 + i * rowH;
      add("text", { x: 4, y: y + 24 }, label(it));
      [[first, "bar"], [second, "bar2"]].forEach(([f, cls], j) => {
        const v = f(it), w = v > 0 ? Math.max(1, span * v / max) : 0;
        const r = add("rect", { class: cls, x: left, y: y + j * 19, width: w, height: 16 });
        const t = document.createElementNS(NS, "title");
        t.textContent = label(it) + " " + names[j] + ": " + fmt(v);
        r.appendChild(t);
        add("text", { x: left + w + 6, y: y + j * 19 + 12 }, names[j] + " " + fmt(v));
      });
    });
  }

  async function positions() {
    const month = $("xp-month").value;
    if (!month) return;
    const p = await api("GET", "/api/v1/xr/positions?clr_month=" + enc(month));
    if ($("xp-month").value !== month) return; // the picker moved on meanwhile
    const tb = $("xp-rows").tBodies[0];
    tb.innerHTML = "";
    let recv = 0, pay = 0, n = 0, rev = 0;
    const byOther = new Map();
    for (const x of p.positions) {
      const tr = tb.insertRow();
      tr.dataset.own = x.own; tr.dataset.other = x.other;
      cells(tr, [placeName(x.own), placeName(x.other), x.settlements, x.reversals, "¥" + x.receivable, "¥" + x.payable, signedYuan(x.net)],
        [null, null, "num", "num", "num receivable", "num payable", "num net"]);
      recv += fen(x.receivable); pay += fen(x.payable); n += x.settlements; rev += x.reversals;
      const o = byOther.get(x.other) || { other: x.other, recv: 0, pay: 0 };
      o.recv += fen(x.receivable); o.pay += fen(x.payable);
      byOther.set(x.other, o);
    }
    if (p.positions.length > 1) {
      const tr = tb.insertRow();
      tr.className = "total"; tr.dataset.total = "true";
      cells(tr, ["合计 Total", "", n, rev, "¥" + fenYuan(recv), "¥" + fenYuan(pay), signedYuan(fenYuan(recv - pay))],
        [null, null, "num", "num", "num receivable", "num payable", "num net"]);
    }
    const sum = $("xp-summary");
    sum.dataset.month = month;
    sum.dataset.count = p.positions.length;
    if (!p.positions.length) {
      const c = tb.insertRow().insertCell(); c.colSpan = 7;
      c.textContent = "无 None";
      sum.textContent = month + "：本月没有异地结算，也没有撤销 no cross-region settlements or reversals in " + month;
    } else {
      sum.textContent = month + "：结算 " + n + " 笔 settlements · 撤销 " + rev + " 笔 reversals · 应收 receivable ¥" + fenYuan(recv) + " · 应付 payable ¥" +
        fenYuan(pay) + " · 净额 net " + signedYuan(fenYuan(recv - pay)) + (recv === pay ? "" : recv > pay ? "（本节点应收 this node receives）" : "（本节点应付 this node pays）");
    }
    if (p.unreported) sum.textContent += " · " + p.unreported + " 笔撤销尚未报送国家平台 reversals not yet reported to the hub";
    const svg = $("chart-xr");
    const items = [...byOther.values()].sort((a, b) => a.other.localeCompare(b.other));
    svg.dataset.regions = items.map((x) => x.other).join(",");
    if (items.length) {
      svg.setAttribute("aria-label", month + "：按对方地区的应收与应付 receivable and payable per other region: " +
        items.map((x) => x.other + " ¥" + fenYuan(x.recv) + " / ¥" + fenYuan(x.pay)).join("; "));
      pairBars(svg, items, (x) => placeName(x.other), (x) => x.recv / 100, (x) => x.pay / 100, ["应收 receivable", "应付 payable"],
        (v) => "¥" + v.toFixed(2));
    } else {
      svg.innerHTML = "";
      svg.setAttribute("viewBox", "0 0 700 40");
      svg.setAttribute("aria-label", month + "：没有数据 nothing this month");
      const t = document.createElementNS("http://www.w3.org/2000/svg", "text");
      t.setAttribute("x", 4); t.setAttribute("y", 24); t.textContent = "本月没有异地结算 nothing this month";
      svg.appendChild(t);
    }
    const chk = $("xp-check"), probs = $("xp-problems");
    probs.innerHTML = "";
    if (!p.ledger_problems.length) {
      chk.dataset.status = "agree";
      chk.textContent = "账实相符 books agree：账上 xr: 科目与异地结算记录一致，到分 the ledger's xr: accounts match the cross-region records to the fen";
    } else {
      chk.dataset.status = "problems";
      chk.textContent = "账实不符 books disagree：" + p.ledger_problems.length + " 处 problems";
      for (const pr of p.ledger_problems) { const li = document.createElement("li"); li.textContent = pr; probs.appendChild(li); }
    }
    probs.hidden = !p.ledger_problems.length;
  }
  $("xp-month").addEventListener("change", () => { ok(); positions().catch(fail); });
  $("xp-refresh").addEventListener("click", () => { ok(); positions().catch(fail); });

  // The audit log: entries with their log index; "verify" fetches the
  // receipt and checks it here, in the browser, against the log's
  // published Ed25519 key (tlogverify.js) — not by trusting the server's word.
  let logInfo = null;
  async function auditLog() {
    logInfo = await api("GET", "/api/v1/audit/log");
    const lines = logInfo.checkpoint.split("\n");
    $("log-head").textContent = "日志 log " + lines[0] + " · " + lines[1] + " 条 entries · root " + lines[2].slice(0, 16) + "…";
    const q = new URLSearchParams({ limit: "30" });
    if ($("audit-kind").value) q.set("kind", $("audit-kind").value);
    if ($("audit-subject").value.trim()) q.set("subject", $("audit-subject").value.trim());
    const list = (await api("GET", "/api/v1/audit/entries?" + q)).items;
    const tb = $("audit").tBodies[0];
    tb.innerHTML = "";
    for (const r of list) {
      const tr = tb.insertRow();
      tr.dataset.id = r.id;
      const idx = tr.insertCell(); idx.className = "num"; idx.textContent = r.log_index === undefined ? "…" : r.log_index;
      tr.insertCell().textContent = r.id;
      tr.insertCell().textContent = r.entry.at.replace("T", " ").slice(0, 19);
      tr.insertCell().textContent = r.entry.actor;
      const td = tr.insertCell();
      if (r.log_index === undefined) { td.textContent = "待入日志 pending"; continue; }
      const b = document.createElement("button"); b.textContent = "校验 Verify";
      b.addEventListener("click", async () => {
        ok();
        try {
          const rc = await api("GET", "/api/v1/audit/entries/" + encodeURIComponent(r.id) + "/receipt");
          const res = await TLogVerify(rc, logInfo.verifier_keys[0]);
          td.textContent = "✓ 已证明 proven in " + res.origin + " @" + res.size;
          td.dataset.verified = "true";
        } catch (e) { td.textContent = "✗ " + e.message; td.dataset.verified = "false"; }
      });
      td.appendChild(b);
    }
  }
  $("audit-load").addEventListener("click", () => auditLog().catch(fail));

  // Smart review: the library in force, the review queue (confirm or
  // dismiss), and the bureau's own diagnosis restrictions.
  async function review() {
    const r = await api("GET", "/api/v1/review/rules");
    const total = Object.values(r.library).reduce((a, b) => a + b, 0);
    $("rule-stats").textContent = "规则库 " + total + " 条 rules in force: " + Object.entries(r.library).map(([k, v]) => k + " " + v).join(" · ");
    const at = $("review-actions").tBodies[0];
    at.innerHTML = "";
    for (const [kind, action] of Object.entries(r.actions).sort()) {
      const tr = at.insertRow();
      tr.dataset.kind = kind;
      const lab = document.createElement("label");
      lab.htmlFor = "act-" + kind; lab.textContent = kind + " (" + (r.library[kind] || 0) + ")";
      tr.insertCell().appendChild(lab);
      const sel = document.createElement("select");
      sel.id = "act-" + kind;
      for (const [v, t] of [["warn", "提示 warn"], ["self_pay", "转自费 self-pay"], ["block", "拒付 block"], ["off", "关闭 off"]]) {
        const o = document.createElement("option"); o.value = v; o.textContent = t; o.selected = v === action; sel.appendChild(o);
      }
      sel.addEventListener("change", async () => {
        ok();
        try { await api("PUT", "/api/v1/review/actions/" + kind, { action: sel.value }); tr.dataset.saved = sel.value; } catch (e) { fail(e); }
      });
      tr.insertCell().appendChild(sel);
    }
    const rt = $("review-rules").tBodies[0];
    rt.innerHTML = "";
    for (const x of r.items) {
      const tr = rt.insertRow();
      [x.code || x.name, x.value, x.action, x.note || ""].forEach((v) => { tr.insertCell().textContent = v; });
    }
    const list = (await api("GET", "/api/v1/review/alerts?limit=30")).items;
    const tb = $("alerts").tBodies[0];
    tb.innerHTML = "";
    for (const a of list) {
      const tr = tb.insertRow();
      tr.dataset.id = a.id; tr.dataset.status = a.status; tr.dataset.kind = a.kind;
      [a.kind, a.subject, a.day, a.detail.why || "", a.status].forEach((v) => { tr.insertCell().textContent = v; });
      const td = tr.insertCell();
      if (a.status !== "open") continue;
      for (const [label, st] of [["确认 Confirm", "confirmed"], ["驳回 Dismiss", "dismissed"]]) {
        const b = document.createElement("button"); b.textContent = label;
        b.addEventListener("click", async () => { ok(); try { await api("POST", "/api/v1/review/alerts/" + encodeURIComponent(a.id) + "/decide", { status: st }); review(); } catch (e) { fail(e); } });
        td.appendChild(b);
      }
    }
    if (!tb.rows.length) { const c = tb.insertRow().insertCell(); c.colSpan = 6; c.textContent = "无 None"; }
    const sel = $("rc-alert");
    sel.innerHTML = "";
    for (const a of list.filter((x) => x.status === "confirmed")) {
      const o = document.createElement("option"); o.value = a.id; o.textContent = a.id; sel.appendChild(o);
    }
    await recoveries();
  }

  async function recoveries() {
    const list = (await api("GET", "/api/v1/review/recoveries")).items;
    const tb = $("recoveries").tBodies[0];
    tb.innerHTML = "";
    for (const r of list) {
      const tr = tb.insertRow();
      tr.dataset.id = r.id; tr.dataset.status = r.status;
      [r.alert_id, r.fixmedins_code, "¥" + r.amount, r.reason, r.status, r.proposed_by].forEach((v, i) => {
        const c = tr.insertCell(); c.textContent = v; if (i === 2) c.className = "num";
      });
      const td = tr.insertCell();
      if (r.status !== "proposed") continue;
      for (const [label, approve] of [["批准 Approve", true], ["拒绝 Reject", false]]) {
        const b = document.createElement("button"); b.textContent = label;
        b.addEventListener("click", async () => { ok(); try { await api("POST", "/api/v1/review/recoveries/" + r.id + "/decide", { approve }); recoveries(); } catch (e) { fail(e); } });
        td.appendChild(b);
      }
    }
  }
  $("rc-propose").addEventListener("click", async () => {
    ok();
    try {
      await api("POST", "/api/v1/review/recoveries", { alert_id: $("rc-alert").value, fixmedins_code: $("rc-inst").value.trim(),
        fund_account: $("rc-fund").value.trim(), amount: $("rc-amount").value.trim(), reason: $("rc-reason").value.trim() });
      recoveries();
    } catch (e) { fail(e); }
  });

  async function report() {
    const r = await api("GET", "/api/v1/review/report?fixmedins_code=" + encodeURIComponent($("rep-inst").value.trim()) + "&month=" + $("rep-month").value);
    bars($("chart-review"), Object.keys(r.trend).sort().map((m) => ({ m, n: r.trend[m] })), (x) => x.n, (x) => x.m);
    const tb = $("rep-rows").tBodies[0];
    tb.innerHTML = "";
    for (const x of r.rows) {
      const tr = tb.insertRow();
      [x.kind, x.action, x.hits, "¥" + x.amount_affected].forEach((v, i) => { const c = tr.insertCell(); c.textContent = v; if (i >= 2) c.className = "num"; });
    }
  }
  $("rep-load").addEventListener("click", () => report().catch(fail));
  $("rr-add").addEventListener("click", async () => {
    ok();
    try {
      await api("POST", "/api/v1/review/rules", { kind: "diagnosis", code: $("rr-code").value.trim(), value: $("rr-value").value.trim(), action: $("rr-action").value });
      $("rr-code").value = ""; $("rr-value").value = "";
      review();
    } catch (e) { fail(e); }
  });

  async function start() {
    try {
      me = await api("GET", "/api/v1/auth/me");
      if (me.role !== "admin") throw new Error("这里只供医保局管理员使用 (administrators only)");
    } catch (e) {
      token = null; sessionStorage.removeItem("yibao.admin.token"); $("login").hidden = false; $("console").hidden = true; $("logout").hidden = true;
      if (me) fail(e);
      return;
    }
    $("who").textContent = me.display_name || me.subject;
    $("login").hidden = true; $("console").hidden = false; $("logout").hidden = false;
    const t = new Date();
    $("rfrom").value = cst(new Date(t.getTime() - 30 * 86400e3)); $("rto").value = cst(t);
    $("rc-date").value = cst(t);
    $("rep-month").value = cst(t).slice(0, 7);
    $("cr-day").value = cst(t); sendLabel();
    if (!$("fo-period").value) $("fo-period").value = cst(t).slice(0, 7);
    if (!$("xp-month").value) $("xp-month").value = cst(t).slice(0, 7);
    if (!$("xf-begin").value) $("xf-begin").value = cst(t);
    try {
      await loadRegions();
      await Promise.all([dashboard(), policies(), orders(), deadLetters(), Promise.all([institutions(), approvals()]).then(() => Promise.all([keys(), channels()])),
        searchPersons(false), auditLog(), review(), report(), credit(), funds(), positions()]);
    } catch (e) { fail(e); }
  }
  $("f-login").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    try {
      const s = await api("POST", "/api/v1/auth/login", { username: $("u").value, password: $("p").value });
      token = s.token; sessionStorage.setItem("yibao.admin.token", token); me = null; start();
    } catch (e) { fail(e); }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/v1/auth/logout", {}); } catch (e) { /* gone anyway */ }
    token = null; me = null; sessionStorage.removeItem("yibao.admin.token");
    hideSecret(); clearTimeout(importTimer); $("im-start").disabled = false;
    clearTimeout(fundTimer); $("fc-start").disabled = false;
    if (bankURL) { URL.revokeObjectURL(bankURL); bankURL = ""; }
    bankFile = ""; payoutRun = null; $("fp-box").hidden = true; $("fo-detail").hidden = true;
    for (const id of ["k-pending", "ch-pending", "ap-status", "fo-status", "fp-status", "fx-status", "fc-status", "xf-status", "xf-summary"]) { $(id).textContent = ""; delete $(id).dataset.status; }
    filingPsn = ""; $("xf-psn").value = ""; $("xf-list").tBodies[0].innerHTML = ""; $("xf-list").hidden = true; $("f-xf-add").hidden = true;
    $("console").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("u").focus();
  });
  if (token) start(); else $("login").hidden = false;
})();
