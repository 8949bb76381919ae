// The cashier's counter page: scan the e-certificate (a scanner gun types
// the code and Enter), open the visit with the ecToken, add fee lines from
// the catalog, show the split, then settle and collect in one step (the
// patient's wallet agreement, or the counter) with each leg's status;
// print, refund. Keyboard only works.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem("yibao.cashier.token");
  let me = null, ecToken = null, visit = null, order = null;
  const lines = [];

  function idem() { return "ui-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2); }
  async function api(method, path, body) {
    const h = { "Content-Type": "application/json" };
    if (token) h.Authorization = "Bearer " + token;
    if (method !== "GET") h["Idempotency-Key"] = idem();
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((data.code ? data.code + ": " : "") + (data.message || r.status));
    return data;
  }
  const fail = (e) => { $("error").textContent = e.message || String(e); };
  const ok = () => { $("error").textContent = ""; };
  function yuan(s) { return "¥" + s; }

  async function start() {
    try {
      me = await api("GET", "/api/v1/auth/me");
      $("who").textContent = (me.display_name || me.subject) + " · " + (me.fixmedins_code || "");
      $("login").hidden = true;
      $("desk").hidden = false;
      $("scan").focus();
    } catch (e) { token = null; sessionStorage.removeItem("yibao.cashier.token"); $("login").hidden = false; }
  }

  $("f-login").addEventListener("submit", async (ev) => {
    ev.preventDefault(); ok();
    const f = new FormData(ev.target);
    try {
      const s = await api("POST", "/api/v1/auth/login", { username: f.get("username"), password: f.get("password") });
      token = s.token; sessionStorage.setItem("yibao.cashier.token", token);
      start();
    } catch (e) { fail(e); }
  });

  $("scan").addEventListener("keydown", async (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault(); ok();
    const code = $("scan").value.trim();
    $("scan").value = "";
    try {
      const r = await api("POST", "/api/v1/ecert/resolve", { code });
      ecToken = r.ec_token;
      $("p-name").textContent = r.person.name_masked + " · " + r.person.id_masked + (r.shown_by_proxy ? " · 代为出示 shown by a guardian" : "");
      $("p-cov").textContent = r.coverages.map((c) => c.insutype + " " + c.admdvs).join(", ") || "无有效参保 no coverage today";
      $("patient").hidden = false;
      $("vtype").focus();
    } catch (e) { fail(e); $("scan").focus(); }
  });

  $("open").addEventListener("click", async () => {
    ok();
    try {
      visit = await api("POST", "/api/v1/visits", { ec_token: ecToken, fixmedins_code: me.fixmedins_code, visit_type: $("vtype").value });
      $("mdtrt").textContent = visit.mdtrt_id;
      $("visit").hidden = false;
      $("q").focus();
    } catch (e) { fail(e); }
  });

  let searchTimer = null;
  $("q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(async () => {
      const q = $("q").value.trim();
      const ul = $("hits");
      ul.innerHTML = "";
      if (!q) return;
      try {
        const page = await api("GET", "/api/v1/catalog?limit=8&q=" + encodeURIComponent(q));
        for (const it of page.items) {
          const li = document.createElement("li");
          li.tabIndex = 0;
          li.setAttribute("role", "option");
          li.dataset.code = it.code;
          li.textContent = it.name + " · " + it.code + " · " + ({ A: "甲", B: "乙", C: "丙" }[it.class] || it.class);
          li.addEventListener("click", () => addLine(it));
          li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") addLine(it); });
          ul.appendChild(li);
        }
      } catch (e) { fail(e); }
    }, 150);
  });

  async function addLine(it) {
    ok();
    const price = $("price").value.trim(), qty = $("qty").value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(price) || !(parseFloat(qty) > 0)) { fail(new Error("单价须为金额，数量须大于 0 (price in yuan, quantity > 0)")); return; }
    try {
      const sn = String(lines.length + 1);
      visit = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/fee-lines",
        { lines: [{ feedetl_sn: sn, catalog_code: it.code, unit_price: Number(price).toFixed(2), quantity: qty }] });
      lines.push(sn);
      const tb = $("lines").tBodies[0];
      tb.innerHTML = "";
      for (const l of visit.fee_lines) {
        const tr = tb.insertRow();
        [l.name, { A: "甲", B: "乙", C: "丙" }[l.class], yuan(l.unit_price), l.quantity, yuan(l.amount)].forEach((v, i) => {
          const td = tr.insertCell(); td.textContent = v; if (i >= 2) td.className = "num";
        });
      }
      $("hits").innerHTML = ""; $("q").value = ""; $("presettle").focus();
    } catch (e) { fail(e); }
  }

  function showSplit(si, title) {
    const total = parseFloat(si.medfee_sumamt) || 1;
    const bars = $("bars");
    bars.innerHTML = "";
    for (const [k, cls] of [["fund_pay_sumamt", "fund"], ["acct_pay", "acct"], ["psn_cash_pay", "cash"]]) {
      const d = document.createElement("div");
      d.className = cls; d.style.width = (100 * parseFloat(si[k]) / total) + "%";
      bars.appendChild(d);
    }
    const rows = [["医疗费总额 Total", si.medfee_sumamt], ["基金支付 Funds", si.fund_pay_sumamt], ["起付线 Deductible", si.act_pay_dedc],
      ["个人账户 Personal account", si.acct_pay], ["个人现金 Cash", si.psn_cash_pay], ["全自费 Full self-pay", si.fulamt_ownpay_amt],
      ["先行自付 Pre-self-pay", si.preselfpay_amt], ["账户余额 Balance after", si.balc]];
    const tb = $("figures").tBodies[0];
    tb.innerHTML = "";
    for (const [k, v] of rows) { const tr = tb.insertRow(); tr.insertCell().textContent = k; const td = tr.insertCell(); td.textContent = yuan(v); td.className = "num"; }
    $("result").textContent = title;
    $("split").hidden = false;
  }

  $("presettle").addEventListener("click", async () => {
    ok();
    try {
      const p = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/presettle", { acct_used_flag: $("acct").checked });
      showSplit(p.result.setlinfo, "预结算 pre-settlement — nothing has been charged yet");
      $("settle").disabled = false;
      $("settle").focus();
    } catch (e) { fail(e); }
  });

  const legNames = { fund: "基金 Funds", acct: "个人账户 Personal account", self: "自付 Out of pocket" };
  const statusNames = {
    paying: "收费中 collecting", paid: "已支付 paid", declined: "钱包拒绝 declined", review: "待核查 held for review",
    voided: "已取消 cancelled", refunded: "已退费 refunded", partially_refunded: "部分退费 partly refunded",
  };

  // showOrder draws the order's legs and the buttons its state allows.
  function showOrder(o) {
    order = o;
    const tb = $("legs").tBodies[0];
    tb.innerHTML = "";
    for (const l of o.legs) {
      const tr = tb.insertRow();
      tr.dataset.leg = l.leg; tr.dataset.status = l.status;
      tr.insertCell().textContent = legNames[l.leg] || l.leg;
      const a = tr.insertCell(); a.textContent = yuan(l.amount); a.className = "num";
      tr.insertCell().textContent = l.status;
    }
    $("legs").hidden = false;
    const via = o.channel ? " · " + o.channel : "";
    $("result").textContent = (statusNames[o.status] || o.status) + " · " + o.pay_ord_id + via + (o.reason ? " · " + o.reason : "");
    $("result").dataset.status = o.status;
    $("declined").hidden = o.status !== "declined";
    $("after").hidden = !(o.status === "paid" || o.status === "partially_refunded");
    if (o.status === "paid") $("print").focus();
    if (o.status === "declined") $("collect").focus();
  }

  // follow polls an order whose out-of-pocket leg is still in flight.
  async function follow(o) {
    for (let i = 0; o.status === "paying" && i < 60; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      o = await api("GET", "/api/v1/payments/" + o.pay_ord_id);
      showOrder(o);
    }
  }

  $("settle").addEventListener("click", async () => {
    ok();
    try {
      const o = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/pay", { channel: $("paywith").value, acct_used_flag: $("acct").checked });
      $("settle").disabled = true;
      showOrder(o);
      await follow(o);
    } catch (e) { fail(e); }
  });

  $("collect").addEventListener("click", async () => {
    ok();
    try { showOrder(await api("POST", "/api/v1/payments/" + order.pay_ord_id + "/collect", { channel: "counter" })); } catch (e) { fail(e); }
  });
  $("cancel").addEventListener("click", async () => {
    ok();
    try { showOrder(await api("POST", "/api/v1/payments/" + order.pay_ord_id + "/cancel")); } catch (e) { fail(e); }
  });
  $("print").addEventListener("click", () => window.print());
  $("refund").addEventListener("click", async () => {
    ok();
    try {
      await api("POST", "/api/v1/payments/" + order.pay_ord_id + "/refunds", { refund_no: "ALL", kind: "all", reason: "cashier" });
      showOrder(await api("GET", "/api/v1/payments/" + order.pay_ord_id));
    } catch (e) { fail(e); }
  });

  if (token) start(); else $("login").hidden = false;
})();
