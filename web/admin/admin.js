// The bureau console: dashboard charts, policy versions (draft, submit,
// approve by a second administrator, replay), dead letters.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem("yibao.admin.token");
  let me = null;
  const idem = () => "ui-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  async function api(method, path, body, raw) {
    const h = { "Content-Type": "application/json" };
    if (token) h.Authorization = "Bearer " + token;
    if (method !== "GET") h["Idempotency-Key"] = idem();
    const r = await fetch(path, { method, headers: h, body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((data.code ? data.code + ": " : "") + (data.message || r.status));
    return data;
  }
  const fail = (e) => { $("error").textContent = e.message || String(e); };
  const ok = () => { $("error").textContent = ""; };
  const cst = (d) => new Date(d.getTime() + 8 * 3600e3).toISOString().slice(0, 10);

  // bars draws a bar chart into an SVG: one bar per item, labels below.
  function bars(svg, items, value, label) {
    const NS = "http://www.w3.org/2000/svg";
    svg.innerHTML = "";
    const max = Math.max(1, ...items.map(value));
    const w = 700 / Math.max(1, items.length);
    items.forEach((it, i) => {
      const h = 140 * value(it) / max;
      const r = document.createElementNS(NS, "rect");
      r.setAttribute("class", "bar"); r.setAttribute("x", i * w + 4); r.setAttribute("y", 150 - h);
      r.setAttribute("width", Math.max(2, w - 8)); r.setAttribute("height", h);
      const title = document.createElementNS(NS, "title"); title.textContent = label(it) + ": " + value(it); r.appendChild(title);
      svg.appendChild(r);
      const t = document.createElementNS(NS, "text");
      t.setAttribute("x", i * w + 4); t.setAttribute("y", 168); t.textContent = label(it);
      svg.appendChild(t);
    });
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
    try { await Promise.all([dashboard(), policies(), deadLetters()]); } catch (e) { fail(e); }
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
    $("console").hidden = true; $("login").hidden = false; $("logout").hidden = true; $("u").focus();
  });
  if (token) start(); else $("login").hidden = false;
})();
