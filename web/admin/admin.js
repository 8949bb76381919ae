// The bureau console: dashboard charts, the registry (persons, masked, and
// institutions), CSV imports with their progress, policy versions (draft,
// submit, approve by a second administrator, compare two versions, replay),
// payment orders that need a person, channel reconciliation with a chart,
// e-certificate channels and institution API keys, credit payment (exposure
// per bank, draws against repayments, the daily settlement file with the
// bank, the reminder/overdue cycle), dead letters.
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
      e.code = data.code; e.status = r.status; e.issues = data.issues;
      throw e;
    }
    return data;
  }
  const fail = (e) => { $("error").textContent = e.message || String(e); };
  const ok = () => { $("error").textContent = ""; };
  const cst = (d) => new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 10);

  // bars draws a bar chart into an SVG: one bar per item, labels below.
  // opts.second adds a second series (class bar2) beside the first, with
  // opts.names naming the two in the bars' titles; opts.every labels only
  // every n-th item (for many items).
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
        title.textContent = label(it) + (names[j] ? " " + names[j] : "") + ": " + f(it); r.appendChild(title);
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

  function drawIssues(issues) {
    const t = $("im-errors"), tb = t.tBodies[0];
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
  // readCSV returns the file as text: UTF-8, or GB18030 (what Excel saves
  // on Chinese Windows) converted to UTF-8.
  async function readCSV(file) {
    const buf = await file.arrayBuffer();
    try { importNote = ""; return new TextDecoder("utf-8", { fatal: true }).decode(buf); } catch (e) {
      importNote = "（已从 GB18030 转为 UTF-8 converted from GB18030）";
      return new TextDecoder("gb18030").decode(buf);
    }
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

  // --- e-certificate channels ---
  async function channels() {
    const list = (await api("GET", "/api/v1/ecert/channels")).items;
    const tb = $("channels").tBodies[0];
    tb.innerHTML = "";
    for (const ch of list) {
      const tr = tb.insertRow();
      tr.dataset.id = ch.channel_id; tr.dataset.status = ch.status;
      cells(tr, [ch.channel_id, ch.name, STATUS[ch.status] || ch.status, when(ch.created_at)], [null, null, "st-" + ch.status]);
      const next = ch.status === "active" ? "suspended" : "active";
      const label = next === "suspended" ? "暂停 Suspend" : "恢复 Reactivate";
      const b = button(label, async () => {
        ok(); b.disabled = true;
        try {
          await api("PUT", "/api/v1/ecert/channels/" + enc(ch.channel_id) + "/status", { status: next });
          await channels();
          const again = tb.querySelector("tr[data-id='" + CSS.escape(ch.channel_id) + "'] button");
          if (again) again.focus();
        } catch (e) { b.disabled = false; fail(e); }
      }, label + " " + ch.channel_id);
      tr.insertCell().appendChild(b);
    }
    if (!list.length) none(tb, 5);
  }

  // --- institution API keys: list, revoke, issue (the secret shown once) ---
  function hideSecret() {
    $("k-secret-value").value = "";
    $("k-secret-id").textContent = "";
    $("k-secret").hidden = true;
    delete $("k-secret").dataset.key;
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
      cells(tr, [k.key_id, k.alg, STATUS[k.status] || k.status, when(k.created_at)], [null, null, "st-" + k.status]);
      const td = tr.insertCell();
      if (k.status === "active") {
        td.appendChild(button("吊销 Revoke", async () => {
          if (!confirm("吊销密钥 " + k.key_id + "？用它签名的请求将立即被拒绝，且无法恢复。\nRevoke " + k.key_id + "? Requests signed with it are refused at once; this cannot be undone.")) return;
          ok();
          try {
            await api("DELETE", "/api/v1/institutions/" + enc(code) + "/keys/" + enc(k.key_id));
            if ($("k-secret").dataset.key === k.key_id) hideSecret();
            await keys();
            $("k-create").focus();
          } catch (e) { fail(e); }
        }, "吊销 Revoke " + k.key_id));
      }
    }
    if (!tb.rows.length) none(tb, 5);
    const active = list.filter((k) => k.status === "active").length;
    $("k-summary").textContent = code + "：" + active + " 个有效密钥 active keys" +
      (list.length > active ? "，" + (list.length - active) + " 个已吊销 revoked" + (all ? "" : "（未显示 hidden）") : "");
  }
  $("k-inst").addEventListener("change", () => { hideSecret(); ok(); keys().catch(fail); });
  $("k-revoked").addEventListener("change", () => { ok(); keys().catch(fail); });
  $("k-create").addEventListener("click", async () => {
    ok();
    const code = $("k-inst").value;
    if (!code) return;
    try {
      const k = await api("POST", "/api/v1/institutions/" + enc(code) + "/keys", { alg: "HMAC-SM3" });
      $("k-secret-id").textContent = k.key_id + " · " + code;
      $("k-secret-value").value = k.secret || "";
      $("k-secret").dataset.key = k.key_id;
      $("k-secret").hidden = false;
      await keys();
      $("k-secret-value").focus();
      $("k-secret-value").select();
    } catch (e) { fail(e); }
  });
  $("k-secret-done").addEventListener("click", () => { hideSecret(); $("k-create").focus(); });

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
    try {
      await loadRegions();
      await Promise.all([dashboard(), policies(), orders(), deadLetters(), institutions().then(keys), searchPersons(false), channels(), auditLog(), review(), report(), credit()]);
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
    $("console").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("u").focus();
  });
  if (token) start(); else $("login").hidden = false;
})();
