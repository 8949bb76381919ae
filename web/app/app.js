// The official-app channel's patient page. The device key is made here and
// kept in this browser's storage; only its public half is sent. Besides
// the code: bills, receipts, booking, family, wallet agreements and credit
// payment (apply with consent, statements, repay, close).
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
    if (!r.ok) {
      const e = new Error(data.message || r.status);
      e.code = data.code; e.field = data.field; e.status = r.status;
      throw e;
    }
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
    if (device) { summary(); bills(); receipts(); family(); hospitals(); agreements(); credit(true); drawFace(); }
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
      signedWallets = new Set(r.items.filter((a) => a.status === "active").map((a) => a.channel));
      drawCredit();
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
        hospitalNames.set(h.fixmedins_code, h.name);
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

  // --- Credit payment (信用就医) ---
  // A bank grants a line; the out-of-pocket part of a settlement paid on
  // credit becomes a statement with a due date; the patient repays from a
  // wallet with a withholding agreement. With no live agreement the page
  // shows the banks and the consent in full, with an unticked box.
  const hospitalNames = new Map(); // fixmedins_code → name (from /app/api/hospitals)
  const creditWords = {
    applying: ["审批中：等待银行答复", "Applying: waiting for the bank"],
    active: ["已开通，可用于医保结算后的自付部分", "Active: pays your part after insurance"],
    declined: ["银行未批准", "Declined by the bank"],
    suspended: ["已暂停：有逾期欠款或银行暂停，还清后可恢复", "Suspended: something is overdue or the bank paused it; repaying can restore it"],
    closed: ["已关闭", "Closed"],
  };
  const statementWords = { open: ["待还款", "to repay"], paid: ["已还清", "paid"], overdue: ["已逾期", "overdue"] };
  const repayWords = { paying: ["扣款中", "collecting"], applied: ["已入账", "applied"], declined: ["扣款失败", "declined"] };
  const walletWords = { wechat: ["微信支付", "WeChat Pay"], alipay: ["支付宝", "Alipay"] };
  const sceneWords = { all: ["门诊和住院", "outpatient and inpatient"], outpatient: ["仅门诊", "outpatient only"], inpatient: ["仅住院", "inpatient only"] };
  const words = (table, k) => (table[k] ? t(table[k][0], table[k][1]) : k);
  const chinaDay = (ts) => new Date(Date.parse(ts) + 8 * 3600e3).toISOString().slice(0, 10);
  const chinaTime = (ts) => new Date(Date.parse(ts) + 8 * 3600e3).toISOString().slice(0, 16).replace("T", " ");
  const AMOUNT = /^\d{1,7}(\.\d{1,2})?$/;
  // yuan2 writes a checked amount with two decimals ("609.7" → "609.70").
  const yuan2 = (s) => { const [i, d = ""] = s.split("."); return String(Number(i)) + "." + (d + "00").slice(0, 2); };
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
  const LIVE = ["applying", "active", "suspended"];
  let creditData = null, creditJSON = "", consent = null;
  let signedWallets = new Set(); // wallets with an active withholding agreement (repayments need one)
  const openStatements = new Set(); // statements the patient has expanded stay so across refreshes

  // credit loads the section; a periodic refresh (force false) redraws
  // only when something changed, so the focus and the form stay put.
  async function credit(force) {
    let r;
    try { r = await api("credit"); } catch (e) { if (e.status === 404) $("credit-card").hidden = true; return; }
    if (!hospitalNames.size) {
      try { for (const h of (await api("hospitals")).items) hospitalNames.set(h.fixmedins_code, h.name); } catch (e) { /* codes then */ }
    }
    const json = JSON.stringify(r);
    if (!force && json === creditJSON) return;
    creditJSON = json; creditData = r;
    drawCredit();
  }

  function liveAgreement() { return creditData && creditData.agreements.find((a) => LIVE.includes(a.status)); }

  function drawCredit() {
    const r = creditData;
    if (!r) return;
    $("credit-card").hidden = false;
    const live = liveAgreement();
    const box = $("credit-agreement");
    box.innerHTML = "";
    box.hidden = !live;
    if (live) {
      box.dataset.status = live.status;
      box.dataset.agreement = live.agreement_no;
      box.appendChild(el("p", "cr-bank", (live.bank_name || live.bank_code) + " · " + words(sceneWords, live.scene)));
      const state = el("p", "cr-state st-" + live.status, words(creditWords, live.status));
      state.id = "cr-state";
      box.appendChild(state);
      if (live.overdue_since) box.appendChild(el("p", "cr-warn", t("逾期自 ", "Overdue since ") + chinaDay(live.overdue_since)));
      if (live.reason && live.status !== "active") box.appendChild(el("p", "cr-warn", live.reason));
      const dl = el("dl", "cr-figures");
      const row = (k, zh, en, v) => { const dt = el("dt", "", t(zh, en)); const dd = el("dd", "", v); dd.dataset.k = k; dl.append(dt, dd); };
      row("limit", "信用额度", "Credit limit", "¥" + live.limit);
      row("available", "可用额度", "Available now", "¥" + live.available);
      row("outstanding", "欠款（待还）", "Owed", "¥" + live.outstanding);
      row("held", "占用（住院担保、支付中）", "Held (hospital stays, payments in progress)", "¥" + live.held);
      row("interest_free_days", "免息期", "Interest-free", t(live.interest_free_days + " 天", live.interest_free_days + " days"));
      row("agreement_no", "协议号", "Agreement", live.agreement_no);
      row("consent", "授权书", "Consent", live.consent_version + " · " + chinaDay(live.consent_at));
      box.appendChild(dl);
    }
    const hist = $("credit-history");
    hist.innerHTML = "";
    for (const a of r.agreements) {
      if (a === live) continue;
      const li = el("li", "cr-old", (a.bank_name || a.bank_code) + " · " + words(creditWords, a.status) + (a.reason ? t("：", ": ") + a.reason : "") +
        " · " + chinaDay(a.created_at));
      li.dataset.status = a.status;
      li.dataset.agreement = a.agreement_no;
      hist.appendChild(li);
    }
    // No live agreement: the application form with the banks and the consent.
    $("f-credit").hidden = !!live;
    if (!live) {
      const sel = $("cr-bank"), keep = sel.value;
      sel.innerHTML = "";
      for (const b of r.banks) sel.add(new Option(b.name + t(" · 免息 ", " · interest-free ") + b.interest_free_days + t(" 天", " days"), b.bank_code));
      if (r.banks.some((b) => b.bank_code === keep)) sel.value = keep;
      $("cr-apply").disabled = !r.banks.length;
      loadConsent();
    }
    // A usable (or suspended) line: statements, repayment, closing.
    $("credit-use").hidden = !live || live.status === "applying";
    drawStatements(r.statements);
    const wsel = $("cr-wallet"), wkeep = wsel.value;
    wsel.innerHTML = "";
    for (const w of r.wallets || []) {
      wsel.add(new Option(words(walletWords, w) + " · " + (signedWallets.has(w) ? t("已开通免密支付", "agreement signed") : t("未开通免密支付", "no agreement")), w));
    }
    const signed = (r.wallets || []).find((w) => signedWallets.has(w));
    if ((r.wallets || []).includes(wkeep) && wsel.dataset.chosen === "1") wsel.value = wkeep;
    else if (signed) wsel.value = signed;
    // The amount starts as everything owed, unless the patient is typing one.
    const amt = $("cr-amount");
    if (live && document.activeElement !== amt && (!amt.value || amt.dataset.auto === "1")) { amt.value = live.outstanding; amt.dataset.auto = "1"; }
    $("cr-repay").disabled = !live || live.outstanding === "0.00";
    const rps = $("credit-repayments");
    rps.innerHTML = "";
    for (const p of r.repayments) {
      const li = el("li", "cr-repayment", chinaTime(p.paid_at) + " · ¥" + p.amount + " · " + (p.source === "bank" ? t("银行柜台/App", "at the bank") : words(walletWords, p.channel)) +
        " · " + words(repayWords, p.status) + (p.excess && p.excess !== "0.00" ? t(" · 多还 ¥", " · overpaid ¥") + p.excess + t("（银行退回）", " (the bank returns it)") : ""));
      li.dataset.status = p.status;
      li.dataset.id = p.repay_id;
      rps.appendChild(li);
    }
    if (!r.repayments.length) rps.appendChild(el("li", "hint", t("暂无还款", "No repayments yet")));
    const ns = $("credit-notices");
    ns.innerHTML = "";
    for (const n of r.notices) {
      const li = el("li", "cr-notice");
      li.dataset.kind = n.kind;
      li.append(el("span", "cr-at", chinaTime(n.at)), " ", n.message);
      ns.appendChild(li);
    }
    if (!r.notices.length) ns.appendChild(el("li", "hint", t("暂无消息", "No messages")));
  }

  // drawStatements: one expandable entry per credit-paid settlement, with
  // its lines, the split and the due date; overdue ones stand out.
  function drawStatements(list) {
    const ul = $("credit-statements");
    ul.innerHTML = "";
    for (const st of list) {
      const li = el("li", "statement st-" + st.status);
      li.dataset.statement = st.statement_no;
      li.dataset.status = st.status;
      const det = el("details");
      det.open = openStatements.has(st.statement_no);
      det.addEventListener("toggle", () => { if (det.open) openStatements.add(st.statement_no); else openStatements.delete(st.statement_no); });
      const sum = el("summary");
      const left = (Math.round(parseFloat(st.amount) * 100) - Math.round(parseFloat(st.repaid) * 100)) / 100;
      sum.append(el("span", "", chinaDay(st.issued_at) + " · " + (hospitalNames.get(st.fixmedins_code) || st.fixmedins_code) + " · "),
        el("strong", "st-amount", "¥" + st.amount), " · ");
      const due = el("span", "st-due", t("到期日 ", "due ") + st.due_date);
      due.dataset.due = st.due_date;
      sum.append(due, " · ", el("span", "st-state", words(statementWords, st.status)));
      det.appendChild(sum);
      const tb = el("table", "st-lines");
      const head = tb.createTHead().insertRow();
      for (const [zh, en, num] of [["项目", "Item", false], ["金额", "Amount", true], ["其中自费", "Self-pay part", true]]) {
        const th = el("th", num ? "num" : "", t(zh, en)); head.appendChild(th);
      }
      const body = tb.createTBody();
      for (const l of (st.items && st.items.lines) || []) {
        const tr = body.insertRow();
        [l.name + (l.class ? " (" + ({ A: t("甲", "A"), B: t("乙", "B"), C: t("丙", "C") }[l.class] || l.class) + ")" : ""), "¥" + l.amount, "¥" + l.own_pay_line]
          .forEach((v, i) => { const c = tr.insertCell(); c.textContent = v; if (i) c.className = "num"; });
      }
      det.appendChild(tb);
      const tot = el("table", "st-totals");
      const it = st.items || {};
      for (const [zh, en, v, k] of [["医疗费总额", "Total", it.medfee_sumamt, "medfee"], ["医保基金支付", "Insurance funds", it.fund_pay, "fund"],
        ["个人账户", "Personal account", it.acct_pay, "acct"], ["信用支付（本账单）", "Paid on credit (this statement)", st.amount, "amount"],
        ["已还", "Repaid", st.repaid, "repaid"], ["未还", "Still owed", left.toFixed(2), "left"]]) {
        const tr = tot.insertRow();
        tr.dataset.k = k;
        tr.insertCell().textContent = t(zh, en);
        const c = tr.insertCell(); c.textContent = "¥" + (v || "0.00"); c.className = "num";
      }
      det.appendChild(tot);
      det.appendChild(el("p", "hint", t("账单号 ", "Statement ") + st.statement_no + " · " + t("结算号 ", "settlement ") + st.setl_id +
        (st.paid_at ? " · " + t("还清于 ", "paid on ") + chinaDay(st.paid_at) : " · " + t("免息期内还款不收利息", "no interest if repaid by the due date"))));
      li.appendChild(det);
      ul.appendChild(li);
    }
    if (!list.length) ul.appendChild(el("li", "hint", t("暂无信用账单", "No statements yet")));
  }

  // loadConsent shows the chosen bank's consent in full, in the page's
  // language; a new text needs a new tick.
  async function loadConsent() {
    const code = $("cr-bank").value;
    if (!code) { $("cr-consent").textContent = ""; consent = null; return; }
    if (!consent || consent.bank !== code) {
      try {
        const c = await api("credit/consent?bank_code=" + encodeURIComponent(code));
        if ($("cr-bank").value !== code) return; // another bank was chosen meanwhile
        if (consent && consent.version !== c.version) $("cr-accept").checked = false;
        consent = { bank: code, version: c.version, zh: c.zh, en: c.en };
      } catch (e) { fail(e); return; }
    }
    $("cr-consent").textContent = lang === "en" ? consent.en : consent.zh;
    $("cr-consent").dataset.version = consent.version;
  }
  $("cr-bank").addEventListener("change", () => { $("cr-accept").checked = false; consent = null; loadConsent(); });

  $("f-credit").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").textContent = "";
    $("cr-status").textContent = "";
    if (!$("cr-accept").checked) {
      fail(new Error(t("请先完整阅读授权书，并勾选“我已阅读并同意”。", "Read the consent in full and tick “I have read and accept” first.")));
      $("cr-accept").focus();
      return;
    }
    if (!consent) { fail(new Error(t("授权书尚未加载", "The consent has not loaded yet"))); return; }
    const want = $("cr-want").value.trim();
    if (want && !AMOUNT.test(want)) { fail(new Error(t("希望额度须为金额，例如 3000.00", "The limit must be an amount in yuan, e.g. 3000.00"))); $("cr-want").focus(); return; }
    const body = { bank_code: $("cr-bank").value, scene: $("cr-scene").value, consent_version: consent.version, accept: true };
    if (want) body.requested_limit = yuan2(want);
    $("cr-apply").disabled = true;
    try {
      const a = await api("credit/applications", body);
      const st = $("cr-status");
      st.dataset.status = a.status;
      st.textContent = a.status === "active" ? t("银行已批准，信用额度 ¥", "Approved: credit limit ¥") + a.limit
        : a.status === "declined" ? t("银行未批准：", "The bank declined: ") + (a.reason || "")
        : t("申请已提交，等待银行答复", "Applied: waiting for the bank's answer");
      $("cr-accept").checked = false;
      $("cr-want").value = "";
      await credit(true);
    } catch (e) { fail(e); } finally { $("cr-apply").disabled = false; }
  });

  $("cr-amount").addEventListener("input", () => { $("cr-amount").dataset.auto = "0"; });
  $("cr-wallet").addEventListener("change", () => { $("cr-wallet").dataset.chosen = "1"; });
  $("f-repay").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").textContent = "";
    const live = liveAgreement();
    if (!live) return;
    const amt = $("cr-amount").value.trim();
    if (amt && !AMOUNT.test(amt)) { fail(new Error(t("还款金额须为金额，例如 609.70（留空则还清全部欠款）", "Enter an amount in yuan, e.g. 609.70 (empty repays everything owed)"))); $("cr-amount").focus(); return; }
    const wallet = $("cr-wallet").value;
    $("cr-repay").disabled = true;
    $("cr-status").textContent = t("扣款中…", "Collecting…");
    try {
      const p = await api("credit/agreements/" + encodeURIComponent(live.agreement_no) + "/repay", { amount: amt ? yuan2(amt) : "0.00", wallet });
      const st = $("cr-status");
      st.dataset.status = p.status;
      st.textContent = (p.status === "applied" ? t("还款成功 ¥", "Repaid ¥") + p.applied : words(repayWords, p.status) + " ¥" + p.amount) +
        " · " + words(walletWords, p.channel || wallet) + (p.excess && p.excess !== "0.00" ? t("，多还 ¥", "; overpaid ¥") + p.excess + t("（银行退回）", " (the bank returns it)") : "");
      $("cr-amount").dataset.auto = "1";
      $("cr-amount").value = "";
      await credit(true);
    } catch (e) {
      $("cr-status").textContent = "";
      if (/^no_withholding_agreement/.test(e.message)) {
        fail(new Error(t("该钱包未开通免密支付，请先在上方“免密支付”开通，或到银行柜台/App 还款。", "That wallet has no withholding agreement: sign one under “Wallet agreement” above, or repay at the bank.")));
      } else if (/^exceeds_agreement_limit/.test(e.message)) {
        fail(new Error(t("超过该钱包免密支付的每笔限额，请分次还款或提高限额：", "Above the wallet agreement's limit per payment; repay in parts or raise the limit: ") + e.message));
      } else fail(e);
      $("cr-repay").disabled = false;
    }
  });

  $("cr-close").addEventListener("click", async () => {
    $("error").textContent = "";
    const live = liveAgreement();
    if (!live) return;
    if (!confirm(t("关闭后将不能再用信用支付，确定关闭吗？", "Close credit payment? You will no longer be able to pay on credit."))) return;
    try {
      const a = await api("credit/agreements/" + encodeURIComponent(live.agreement_no) + "/close", {});
      $("cr-status").dataset.status = a.status;
      $("cr-status").textContent = t("信用就医已关闭", "Credit payment is closed");
      await credit(true);
    } catch (e) {
      if (e.code === "failed_precondition") fail(new Error(t("尚有欠款或占用额度，还清后才能关闭：", "Something is still owed or held; repay it before closing: ") + e.message));
      else fail(e);
    }
  });

  // --- Face payment (刷脸支付) ---
  // Its own consent (the full text and an unticked box, apart from every
  // other consent), then one photo — from the camera, or a file on a
  // device without one — that the server turns into a sealed template and
  // does not keep; a button withdraws the consent and deletes every
  // template.
  let faceData = null, faceStream = null, faceBusy = false;
  const faceErrors = {
    no_face: ["照片中没有找到人脸：请正对镜头再拍一张。", "No face was found in the photo: face the camera and try again."],
    many_faces: ["照片中不止一张人脸：请只拍您本人。", "There is more than one face in the photo: only you, please."],
    too_small: ["人脸或照片太小：请靠近镜头再拍。", "The face (or the photo) is too small: come closer."],
    too_dark: ["照片太暗：请到光线充足处再拍。", "The photo is too dark: find more light."],
    bad_image: ["无法读取这张图片：请换一张 JPEG 或 PNG 照片。", "This image cannot be read: choose a JPEG or PNG photo."],
    no_face_consent: ["请先阅读并同意刷脸支付授权。", "Give your consent to face payment first."],
    no_phone: ["您没有登记手机号，刷脸时须核对手机号后四位：请到医保经办窗口补登。", "No phone number is on record, and paying by face needs its last four digits: add one at the insurance office."],
    minor: ["不满 14 周岁须由监护人授权，本应用暂不支持：请继续使用医保码。", "Children under 14 need a guardian's consent, which this app does not offer yet: keep using the code."],
  };
  function faceFail(e) {
    const k = /^([a-z_]+):/.exec(e.message || "");
    if (e.code === "unavailable") fail(new Error(t("刷脸支付暂不可用：", "Face payment is not available: ") + e.message));
    else if (k && faceErrors[k[1]]) fail(new Error(t(faceErrors[k[1]][0], faceErrors[k[1]][1]) + " (" + e.message + ")"));
    else fail(e);
  }
  function faceSay(text, status) {
    const s = $("face-state");
    s.textContent = text;
    if (status) s.dataset.status = status; else delete s.dataset.status;
  }

  async function face() {
    try { faceData = await api("face"); } catch (e) {
      if (e.status === 404) { $("face-card").hidden = true; return; }
      // Face payment switched off on this server: say why, offer nothing.
      faceData = { on: false, message: e.message, consent: null };
    }
    drawFace();
  }

  function drawFace() {
    const r = faceData;
    if (!r) return;
    $("face-card").hidden = false;
    const c = r.consent || { status: "none", templates: 0 };
    const given = c.status === "given";
    $("face-card").dataset.status = c.status;
    $("face-card").dataset.templates = String(c.templates);
    $("face-off").hidden = !!r.on;
    $("face-off").textContent = r.on ? "" : t("刷脸支付暂不可用：", "Face payment is not available: ") + (r.message || "");
    if (given && c.templates > 0) {
      faceSay(t("已开通：已登记人脸特征 " + c.templates + " 份（加密保存，不含照片）", "Enrolled: " + c.templates + " face template" + (c.templates > 1 ? "s" : "") +
        " (encrypted; no photo kept)") + (c.given_at ? t("，授权于 ", "; consent given on ") + chinaDay(c.given_at) : ""), "enrolled");
    } else if (given) {
      faceSay(t("已授权，尚未登记人脸：请拍照或选择照片。", "Consent given; no face enrolled yet: take or choose a photo."), "consented");
    } else if (c.status === "withdrawn") {
      faceSay(t("已撤回授权，人脸数据已全部删除", "Consent withdrawn; all face data deleted") +
        (c.withdrawn_at ? " · " + chinaDay(c.withdrawn_at) : "") + t("。扫码就医不受影响。", ". Your code keeps working."), "withdrawn");
    } else {
      faceSay(r.on ? t("未开通刷脸支付", "Face payment is not turned on") : "", "none");
    }
    const text = r.consent_text;
    $("f-face-consent").hidden = given || !r.on || !text;
    if (text) {
      $("face-consent").textContent = lang === "en" ? text.en : text.zh;
      $("face-consent").dataset.version = text.version;
    }
    $("face-enrol").hidden = !given || !r.on;
    if ($("face-enrol").hidden) faceCamera(false);
    $("face-withdraw").hidden = !(given || c.templates > 0);
  }

  $("f-face-consent").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").textContent = "";
    if (!$("face-accept").checked) {
      fail(new Error(t("请先完整阅读刷脸支付授权书，并勾选“我已阅读并同意”。", "Read the face-payment consent in full and tick “I have read and accept” first.")));
      $("face-accept").focus();
      return;
    }
    $("face-give").disabled = true;
    try {
      faceData.consent = await api("face/consent", { consent_version: $("face-consent").dataset.version, accept: true });
      $("face-accept").checked = false;
      drawFace();
      $("face-camera").focus();
    } catch (e) { faceFail(e); } finally { $("face-give").disabled = false; }
  });

  // faceCamera opens (on) or closes the front camera for the photo.
  async function faceCamera(on) {
    if (!on) {
      if (faceStream) for (const tr of faceStream.getTracks()) tr.stop();
      faceStream = null;
      $("face-video").srcObject = null;
      $("face-cam").hidden = true;
      $("face-camera").setAttribute("aria-expanded", "false");
      return;
    }
    $("error").textContent = "";
    if (faceStream) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail(new Error(t("此设备无法使用摄像头：请选择一张照片。", "No camera is available here: choose a photo instead.")));
      $("face-file").focus();
      return;
    }
    try {
      const s = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user", width: { ideal: 1280 } }, audio: false });
      if (faceStream) { for (const tr of s.getTracks()) tr.stop(); return; }
      faceStream = s;
    } catch (e) {
      fail(new Error(e && (e.name === "NotAllowedError" || e.name === "SecurityError")
        ? t("摄像头权限被拒绝：请在浏览器中允许，或选择一张照片。", "Camera permission was denied: allow it in the browser, or choose a photo.")
        : t("摄像头无法打开：请选择一张照片。", "The camera could not be started: choose a photo instead.") + " (" + ((e && (e.name || e.message)) || e) + ")"));
      $("face-file").focus();
      return;
    }
    $("face-video").srcObject = faceStream;
    $("face-cam").hidden = false;
    $("face-camera").setAttribute("aria-expanded", "true");
    try { await $("face-video").play(); } catch (e) { /* muted; frames still arrive */ }
    $("face-snap").focus();
  }
  $("face-camera").addEventListener("click", () => faceCamera(true));
  $("face-cam-close").addEventListener("click", () => { faceCamera(false); $("face-camera").focus(); });
  window.addEventListener("pagehide", () => faceCamera(false));

  $("face-snap").addEventListener("click", async () => {
    const v = $("face-video");
    if (!v.videoWidth) { fail(new Error(t("摄像头画面尚未就绪，请稍候再拍。", "The camera is not ready yet; try again in a moment."))); return; }
    const canvas = document.createElement("canvas");
    scaleInto(canvas, v, v.videoWidth, v.videoHeight);
    faceCamera(false);
    await enrolFace(canvas, $("face-camera"));
  });

  // A chosen file is decoded here and drawn again (at most 1600 px): the
  // upload is a plain JPEG, upright, with no location or other metadata.
  $("face-file").addEventListener("change", async () => {
    const f = $("face-file").files[0];
    if (!f) return;
    $("error").textContent = "";
    let bmp;
    try { bmp = await createImageBitmap(f); } catch (e) {
      fail(new Error(t(faceErrors.bad_image[0], faceErrors.bad_image[1])));
      $("face-file").value = "";
      return;
    }
    const canvas = document.createElement("canvas");
    scaleInto(canvas, bmp, bmp.width, bmp.height);
    bmp.close();
    await enrolFace(canvas, $("face-file"));
    $("face-file").value = "";
  });

  function scaleInto(canvas, src, w, h) {
    const k = Math.min(1, 1600 / Math.max(w, h));
    canvas.width = Math.round(w * k); canvas.height = Math.round(h * k);
    canvas.getContext("2d").drawImage(src, 0, 0, canvas.width, canvas.height);
  }

  async function enrolFace(canvas, back) {
    if (faceBusy) return;
    faceBusy = true;
    $("error").textContent = "";
    faceSay(t("正在登记…", "Enrolling…"), "enrolling");
    try {
      const blob = await new Promise((res, rej) => canvas.toBlob((b) => (b ? res(b) : rej(new Error("toBlob"))), "image/jpeg", 0.92));
      faceData.consent = await api("face/enrol", { image: await blobBase64(blob) });
      drawFace();
      $("face-state").focus();
    } catch (e) {
      drawFace();
      faceFail(e);
      if (back) back.focus();
    } finally { faceBusy = false; canvas.width = 0; }
  }

  async function blobBase64(blob) {
    const b = new Uint8Array(await blob.arrayBuffer());
    let s = "";
    for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
    return btoa(s);
  }

  $("face-withdraw").addEventListener("click", async () => {
    $("error").textContent = "";
    if (!confirm(t("撤回刷脸支付授权并删除您的全部人脸数据？撤回后不能刷脸支付，扫码就医不受影响。",
      "Withdraw your face-payment consent and delete all your face data? You will no longer pay by face; your code keeps working."))) return;
    try {
      faceData.consent = await api("face", undefined, "DELETE");
      drawFace();
      $("face-state").focus();
    } catch (e) { faceFail(e); }
  });

  $("refresh").addEventListener("click", showCode);
  $("forget").addEventListener("click", () => { localStorage.removeItem(KEY); device = null; faceCamera(false); render(); });

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
      credit(true);
      face();
      clearInterval(window.ybBills);
      window.ybBills = setInterval(() => { bills(); credit(false); }, 5000);
    }
  }
  render();
})();
