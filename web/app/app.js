// The official-app channel's patient page. The device key is made here and
// kept in this browser's storage; only its public half is sent.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const KEY = "yibao.ecert.device";
  let device = JSON.parse(localStorage.getItem(KEY) || "null");
  let activation = null;
  let counter = Math.floor(Math.random() * 65536);
  let timer = null;

  async function api(path, body, method) {
    const r = await fetch("/app/api/" + path, {
      method: method || (body === undefined ? "GET" : "POST"),
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.message || r.status);
    return data;
  }
  function fail(e) { $("error").textContent = e.message || String(e); }

  // Language and large text: the page's fixed words come in <span
  // class="zh"> / <span class="en"> pairs and CSS shows one; words made
  // here go through t(). Both choices stay on this device.
  let lang = localStorage.getItem("yibao.app.lang") || "zh";
  const t = (zh, en) => (lang === "en" ? en : zh);
  function applyPrefs() {
    const root = document.documentElement;
    root.classList.toggle("lang-en", lang === "en");
    root.classList.toggle("lang-zh", lang !== "en");
    root.lang = lang === "en" ? "en" : "zh-CN";
    const large = localStorage.getItem("yibao.app.large") === "1";
    root.classList.toggle("large", large);
    $("lang").setAttribute("aria-pressed", String(lang === "en"));
    $("large").setAttribute("aria-pressed", String(large));
  }
  $("lang").addEventListener("click", () => {
    lang = lang === "en" ? "zh" : "en";
    localStorage.setItem("yibao.app.lang", lang);
    applyPrefs();
    if (device) { summary(); bills(); receipts(); family(); hospitals(); agreements(); }
  });
  $("large").addEventListener("click", () => {
    localStorage.setItem("yibao.app.large", localStorage.getItem("yibao.app.large") === "1" ? "0" : "1");
    applyPrefs();
  });
  applyPrefs();

  $("f-start").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").textContent = "";
    const f = new FormData(ev.target);
    try {
      activation = await api("activate", { id_number: f.get("id_number").trim().toUpperCase(), name: f.get("name").trim() });
      $("sent").textContent = t("验证码已发送至 ", "Code sent to ") + activation.sent_to;
      $("f-confirm").hidden = false;
    } catch (e) { fail(e); }
  });

  $("f-confirm").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").textContent = "";
    const key = YBCode.newKey();
    try {
      const b = await api("confirm", { activation_id: activation.activation_id, otp: new FormData(ev.target).get("otp").trim(),
        device_public_key: key.publicKey });
      device = { privateKey: key.privateKey, publicKey: key.publicKey, credential: b.credential, stepSeconds: b.step_seconds,
        certId: b.cert_id, bindingId: b.binding_id };
      localStorage.setItem(KEY, JSON.stringify(device));
      render();
    } catch (e) { fail(e); }
  });

  async function showCode() {
    counter = (counter + 1) % 65536;
    const text = YBCode.generate(device, Date.now(), counter);
    const r = await fetch("/app/api/render", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: text, format: "svg" }), credentials: "same-origin" });
    if (!r.ok) { fail(new Error((await r.json()).message)); return; }
    $("qr").innerHTML = await r.text();
    $("qr").dataset.code = text;
    const life = 2 * device.stepSeconds;
    let left = life;
    $("ttl").style.width = "100%";
    clearInterval(timer);
    timer = setInterval(() => {
      left--;
      $("ttl").style.width = Math.max(0, (100 * left) / life) + "%";
      if (left <= 0) showCode();
    }, 1000);
  }

  async function summary() {
    try {
      const s = await api("summary");
      const box = $("limits");
      box.innerHTML = "";
      for (const a of s.accumulators || []) {
        $("balance").textContent = t("个人账户余额：¥", "Personal account: ¥") + a.acct_balc;
        for (const l of a.limits || []) {
          if (l.period === "admission") continue;
          const used = Math.min(100, (100 * parseFloat(l.used)) / Math.max(0.01, parseFloat(l.amount)));
          const div = document.createElement("div");
          div.className = "limit";
          div.textContent = (l.kind === "deductible" ? t("起付线", "Deductible") : t("封顶线", "Cap")) + " · " + l.visit_type +
            t("：已用 ¥", ": used ¥") + l.used + " / ¥" + l.amount + t("，剩余 ¥", ", left ¥") + l.left;
          const track = document.createElement("div");
          track.className = "track";
          const bar = document.createElement("div");
          bar.className = "used";
          bar.style.width = used + "%";
          track.appendChild(bar);
          div.appendChild(track);
          box.appendChild(div);
        }
      }
    } catch (e) { /* the summary is a courtesy; the code still works */ }
  }

  const statusWords = { awaiting_patient: ["待确认", "waiting for you"], paying: ["支付中", "paying"], paid: ["已支付", "paid"],
    declined: ["钱包拒绝", "declined"], voided: ["已取消", "cancelled"], revoked: ["医院已撤回", "withdrawn"], refunded: ["已退款", "refunded"],
    partially_refunded: ["部分退款", "partly refunded"], review: ["核查中", "under review"], completed: ["已结算", "settled"],
    reversed: ["已撤销", "reversed"], pending: ["待支付", "pending"] };
  const statusText = (s) => (statusWords[s] ? t(statusWords[s][0], statusWords[s][1]) : s);

  // bills lists the bills the hospitals pushed, each with its split and,
  // while waiting, a button that confirms it with a fresh signed code.
  async function bills() {
    try {
      const r = await api("bills");
      const ul = $("bills");
      ul.innerHTML = "";
      for (const b of r.items) {
        const li = document.createElement("li");
        li.className = "bill";
        li.dataset.id = b.pay_ord_id;
        li.dataset.status = b.status;
        li.textContent = b.fixmedins_code + " · " + (b.med_org_ord || b.mdtrt_id) + t(" · 总额 ¥", " · total ¥") + b.medfee_sumamt +
          t("：医保 ¥", ": insurance ¥") + b.fund_pay + t(" + 个人账户 ¥", " + account ¥") + b.acct_pay + t(" + 自付 ¥", " + you ¥") + b.self_pay +
          " · " + statusText(b.status);
        if (b.status === "awaiting_patient") {
          const btn = document.createElement("button");
          btn.textContent = t("确认支付", "Confirm and pay");
          btn.addEventListener("click", () => confirmBill(b));
          li.appendChild(btn);
        }
        if (b.status === "paying" && b.pay_url) showPayLink(b.pay_url);
        ul.appendChild(li);
      }
      if (!r.items.length) { const li = document.createElement("li"); li.className = "hint"; li.textContent = t("暂无账单", "No bills"); ul.appendChild(li); }
    } catch (e) { /* bills are a courtesy */ }
  }
  function showPayLink(url) { const a = $("pay-link"); a.href = url; a.hidden = false; }

  async function confirmBill(b) {
    $("error").textContent = "";
    counter = (counter + 1) % 65536;
    const code = YBCode.generate(device, Date.now(), counter); // a fresh code signed by this device is the approval
    try {
      const o = await api("bills/" + b.pay_ord_id + "/confirm", { code, channel: $("bill-channel").value });
      $("bill-status").textContent = statusText(o.status) + " · " + o.pay_ord_id;
      $("bill-status").dataset.status = o.status;
      if (o.pay_url) showPayLink(o.pay_url);
      bills();
    } catch (e) { fail(e); }
  }

  async function agreements() {
    try {
      const r = await api("agreements");
      const ul = $("agreements");
      ul.innerHTML = "";
      for (const a of r.items) {
        if (a.status !== "active") continue;
        const li = document.createElement("li");
        li.className = "agreement";
        li.dataset.channel = a.channel;
        li.textContent = a.channel + t(" · 每笔 ≤ ¥", " · per payment ≤ ¥") + a.limit + " · " + a.agreement_no;
        const btn = document.createElement("button");
        btn.className = "secondary";
        btn.textContent = t("解除", "Revoke");
        btn.addEventListener("click", async () => {
          try { await api("agreements/" + a.agreement_no, undefined, "DELETE"); agreements(); } catch (e) { fail(e); }
        });
        li.appendChild(btn);
        ul.appendChild(li);
      }
    } catch (e) { /* shown again on the next render */ }
  }
  $("f-agree").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").textContent = "";
    const f = new FormData(ev.target);
    try {
      await api("agreements", { channel: f.get("channel"), limit: f.get("limit").trim() });
      agreements();
    } catch (e) { fail(e); }
  });

  // receipts lists the person's settlements; one opens as a receipt
  // with every fee line and its split.
  async function receipts() {
    try {
      const r = await api("settlements");
      const ul = $("receipts");
      ul.innerHTML = "";
      for (const st of r.items) {
        const li = document.createElement("li");
        li.className = "receipt-row";
        li.dataset.id = st.setl_id;
        const b = document.createElement("button");
        b.className = "link";
        b.textContent = st.created_at + " · " + st.fixmedins_code + " · ¥" + st.medfee_sumamt + t("（自付 ¥", " (you ¥") + st.psn_cash_pay +
          t("）", ")") + " · " + statusText(st.status);
        b.addEventListener("click", () => receipt(st.setl_id));
        li.appendChild(b);
        ul.appendChild(li);
      }
      if (!r.items.length) { const li = document.createElement("li"); li.className = "hint"; li.textContent = t("暂无结算", "No settlements yet"); ul.appendChild(li); }
    } catch (e) { /* shown again on the next render */ }
  }
  async function receipt(id) {
    try {
      const r = await api("settlements/" + id);
      $("r-title").textContent = r.institution;
      $("r-meta").textContent = r.created_at + " · " + r.setl_id + " · " + statusText(r.status) + " · " + t("政策 ", "policy ") + r.policy_version;
      const tb = $("r-lines").tBodies[0];
      tb.innerHTML = "";
      for (const l of r.fee_lines) {
        const tr = tb.insertRow();
        const self = l.split ? (parseFloat(l.split.fulamt_ownpay_amt) + parseFloat(l.split.preselfpay_amt) + parseFloat(l.split.overlmt_amt)).toFixed(2) : "";
        [l.name + " ×" + l.quantity + " (" + ({ A: t("甲", "A"), B: t("乙", "B"), C: t("丙", "C") }[l.class] || l.class) + ")", "¥" + l.amount, self ? "¥" + self : ""]
          .forEach((v, i) => { const c = tr.insertCell(); c.textContent = v; if (i) c.className = "num"; });
      }
      const si = r.setlinfo || {};
      const tt = $("r-totals").tBodies[0];
      tt.innerHTML = "";
      for (const [zh, en, k] of [["医疗费总额", "Total", "medfee_sumamt"], ["基金支付", "Insurance funds", "fund_pay_sumamt"],
        ["个人账户", "Personal account", "acct_pay"], ["个人现金", "You paid", "psn_cash_pay"]]) {
        const tr = tt.insertRow();
        tr.insertCell().textContent = t(zh, en);
        const c = tr.insertCell(); c.textContent = "¥" + (si[k] || "0.00"); c.className = "num";
      }
      $("r-proof").href = "/app/api/settlements/" + encodeURIComponent(r.setl_id) + "/receipt.json";
      $("r-proof").setAttribute("download", "yibao-receipt-" + r.setl_id + ".json");
      $("receipt").hidden = false;
      $("receipt").dataset.id = r.setl_id;
      $("r-close").focus();
    } catch (e) { fail(e); }
  }
  $("r-close").addEventListener("click", () => { $("receipt").hidden = true; });

  const relations = { spouse: ["配偶", "spouse"], parent: ["父母", "parent"], child: ["子女", "child"], grandparent: ["祖父母", "grandparent"],
    grandchild: ["孙子女", "grandchild"], sibling: ["兄弟姐妹", "sibling"] };
  async function family() {
    try {
      const r = await api("family");
      const ul = $("family");
      ul.innerHTML = "";
      for (const f of r.items) {
        const li = document.createElement("li");
        li.className = "family";
        li.dataset.status = f.status;
        const rel = relations[f.relation] ? t(relations[f.relation][0], relations[f.relation][1]) : f.relation;
        li.textContent = f.name_masked + " · " + rel + " · " + (f.role === "holder" ? t("可用我的账户", "may use my account") : t("我可用其账户", "I may use theirs")) +
          (f.status === "active" ? "" : " · " + t("已解除", "ended"));
        ul.appendChild(li);
      }
      if (!r.items.length) { const li = document.createElement("li"); li.className = "hint"; li.textContent = t("暂无绑定的家人", "No linked family members"); ul.appendChild(li); }
    } catch (e) { /* shown again on the next render */ }
  }

  async function hospitals() {
    try {
      const r = await api("hospitals");
      const sel = $("book-hospital");
      sel.innerHTML = "";
      for (const h of r.items) {
        const o = document.createElement("option");
        o.value = h.fixmedins_code;
        o.textContent = h.name + " · " + t(h.level + "级", "level " + h.level);
        sel.appendChild(o);
      }
      slots();
    } catch (e) { /* shown again on the next render */ }
  }
  async function slots() {
    const code = $("book-hospital").value;
    if (!code) return;
    try {
      const r = await api("slots?fixmedins_code=" + encodeURIComponent(code));
      const ul = $("slots");
      ul.innerHTML = "";
      for (const sl of r.items) {
        const li = document.createElement("li");
        li.className = "slot";
        li.dataset.id = sl.slot_id;
        const b = document.createElement("button");
        b.className = "link";
        b.disabled = sl.left <= 0;
        b.textContent = sl.dept_name + " " + sl.start + "–" + sl.end + " · " + t("余 ", "left ") + sl.left;
        b.addEventListener("click", async () => {
          $("error").textContent = "";
          try {
            const v = await api("appointments", { fixmedins_code: code, slot_id: sl.slot_id, date: sl.date });
            $("book-status").textContent = t("已预约 ", "Booked ") + v.dept_name + " " + sl.start + "–" + sl.end + " · " + v.mdtrt_id;
            $("book-status").dataset.mdtrt = v.mdtrt_id;
            slots();
          } catch (e) { fail(e); }
        });
        li.appendChild(b);
        ul.appendChild(li);
      }
    } catch (e) { fail(e); }
  }
  $("book-hospital").addEventListener("change", slots);

  $("refresh").addEventListener("click", showCode);
  $("forget").addEventListener("click", () => { localStorage.removeItem(KEY); device = null; render(); });

  function render() {
    $("activate").hidden = !!device;
    $("show").hidden = !device;
    if (device) {
      $("cert-id").textContent = device.certId;
      showCode();
      summary();
      bills();
      receipts();
      family();
      hospitals();
      agreements();
      clearInterval(window.ybBills);
      window.ybBills = setInterval(bills, 5000);
    }
  }
  render();
})();
