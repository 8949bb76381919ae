// The cashier's counter page: scan the e-certificate (a scanner gun types
// the code and Enter), open the visit with the ecToken, add fee lines from
// the catalog, show the split, then settle and collect in one step (the
// patient's wallet agreement, or the counter) with each leg's status;
// print, refund. An inpatient stay is discharged before it is settled, and
// a patient with credit payment gets a credit guarantee instead of a
// deposit; the out-of-pocket part can go on the credit line (a line with
// too little left falls back to the counter). Keyboard only works. The
// camera can stand in for the scanner gun: jsQR (vendor/, Apache-2.0)
// reads the code from the video.
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
    if (!r.ok) {
      const issues = (data.issues || []).map((i) => (i.field ? i.field + ": " : "") + i.message).join("; ");
      const e = new Error((data.code ? data.code + ": " : "") + (data.message || r.status) + (issues ? " — " + issues : ""));
      e.code = data.code; e.status = r.status; e.detail = data.message || "";
      throw e;
    }
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

  // resolveCode is the one path from a scanned code to the patient panel,
  // whether the scanner gun typed it or the camera read it. back is where
  // the focus returns when the code is refused.
  async function resolveCode(code, back) {
    ok();
    try {
      const r = await api("POST", "/api/v1/ecert/resolve", { code });
      ecToken = r.ec_token;
      $("p-name").textContent = r.person.name_masked + " · " + r.person.id_masked + (r.shown_by_proxy ? " · 代为出示 shown by a guardian" : "");
      $("p-cov").textContent = r.coverages.map((c) => c.insutype + " " + c.admdvs).join(", ") || "无有效参保 no coverage today";
      $("patient").hidden = false;
      $("vtype").focus();
    } catch (e) { fail(e); back.focus(); }
  }

  $("scan").addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    const code = $("scan").value.trim();
    $("scan").value = "";
    if (!code) return;
    stopCamera();
    resolveCode(code, $("scan"));
  });

  // The camera: the rear camera's video, a frame every ~150 ms drawn to a
  // canvas and given to jsQR; the first code that is an e-certificate
  // (YB1:…) stops the camera and goes the scanner gun's way.
  const SAMPLE_MS = 150;
  let stream = null, sampler = null;
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });

  function camStatus(text) { $("cam-status").textContent = text; }

  function stopCamera() {
    clearTimeout(sampler); sampler = null;
    if (stream) { for (const t of stream.getTracks()) t.stop(); stream = null; }
    $("cam-video").srcObject = null;
    $("cam").hidden = true;
    $("camera").setAttribute("aria-expanded", "false");
  }

  function cameraError(e) {
    switch (e && e.name) {
      case "NotAllowedError": case "SecurityError":
        return "摄像头权限被拒绝：请在浏览器地址栏允许本页使用摄像头，或改用扫码枪 · Camera permission was denied: allow this page to use the camera in the browser, or use the scanner gun.";
      case "NotFoundError": case "OverconstrainedError": case "DevicesNotFoundError":
        return "未找到摄像头：请连接摄像头，或改用扫码枪 · No camera was found: connect one, or use the scanner gun.";
      case "NotReadableError": case "TrackStartError": case "AbortError":
        return "摄像头无法打开（可能被其他程序占用） · The camera could not be started (another program may be using it).";
      default:
        return "摄像头无法打开 The camera could not be started: " + ((e && e.message) || String(e));
    }
  }

  async function openCamera() {
    ok();
    if (stream) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail(new Error("此浏览器或页面无法使用摄像头（需 HTTPS 或本机地址）：请改用扫码枪 · No camera is available to this page (it needs HTTPS or localhost): use the scanner gun."));
      return;
    }
    if (typeof window.jsQR !== "function") { fail(new Error("扫码组件未加载 The QR reader (vendor/jsQR) did not load.")); return; }
    try {
      const s = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      if (stream) { for (const t of s.getTracks()) t.stop(); return; } // opened twice
      stream = s;
    } catch (e) { fail(new Error(cameraError(e))); $("camera").focus(); return; }
    const video = $("cam-video");
    video.srcObject = stream;
    $("cam").hidden = false;
    $("camera").setAttribute("aria-expanded", "true");
    camStatus("请患者出示医保码 Hold the patient's code up to the camera");
    $("cam-close").focus();
    try { await video.play(); } catch (e) { /* muted video; a frame still arrives */ }
    sampler = setTimeout(sample, SAMPLE_MS);
  }

  function sample() {
    sampler = null;
    if (!stream) return;
    const video = $("cam-video");
    const w = video.videoWidth, h = video.videoHeight;
    if (w && h && video.readyState >= 2) {
      // Large frames are scaled down: jsQR's time grows with the pixels.
      const k = Math.min(1, 960 / Math.max(w, h));
      canvas.width = Math.round(w * k); canvas.height = Math.round(h * k);
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const found = window.jsQR(img.data, img.width, img.height, { inversionAttempts: "dontInvert" });
      if (found && found.data) {
        const text = found.data.trim();
        if (text.startsWith("YB1:")) {
          stopCamera();
          resolveCode(text, $("camera"));
          return;
        }
        camStatus("这不是医保电子凭证 That QR code is not an e-certificate (YB1:…)");
      }
    }
    sampler = setTimeout(sample, SAMPLE_MS);
  }

  $("camera").addEventListener("click", openCamera);
  $("cam-close").addEventListener("click", () => { stopCamera(); $("camera").focus(); });
  // Esc closes the camera wherever the focus is.
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && stream) { ev.preventDefault(); stopCamera(); $("camera").focus(); }
  });
  window.addEventListener("pagehide", () => stopCamera());

  $("open").addEventListener("click", async () => {
    ok();
    try {
      visit = await api("POST", "/api/v1/visits", { ec_token: ecToken, fixmedins_code: me.fixmedins_code, visit_type: $("vtype").value });
      // A new visit starts with an empty bill.
      order = null; lines.length = 0;
      $("lines").tBodies[0].innerHTML = ""; clearHits(); $("q").value = "";
      $("settle").disabled = true; $("split").hidden = true; $("legs").hidden = true;
      $("declined").hidden = true; $("after").hidden = true;
      $("result").textContent = ""; delete $("result").dataset.status;
      $("mdtrt").textContent = visit.mdtrt_id;
      $("visit").hidden = false;
      $("credit-refused").hidden = true;
      inpatientState();
      if (isInpatient()) {
        // Admission: a patient with credit payment needs no deposit.
        await loadGuarantee(false);
        if (!$("g-open").hidden) { $("g-open").focus(); return; }
      } else {
        guaranteeReset(true);
      }
      $("q").focus();
    } catch (e) { fail(e); }
  });

  // --- Inpatient stays: discharge before the discharge settlement, and
  // the credit guarantee (信用担保) instead of a deposit. ---
  const isInpatient = () => !!visit && visit.visit_type === "inpatient";
  // inpatientState shows the discharge button while the stay goes on;
  // pre-settlement waits for the discharge.
  function inpatientState() {
    const stay = isInpatient(), open = stay && visit.status === "open";
    $("discharge").hidden = !open;
    $("inp-help").hidden = !open;
    $("presettle").disabled = open;
  }
  $("discharge").addEventListener("click", async () => {
    ok();
    try {
      visit = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/discharge", {});
      inpatientState();
      $("result").textContent = "";
      if (!$("guarantee").hidden) await loadGuarantee(true);
      $("presettle").focus();
    } catch (e) { fail(e); }
  });

  const guaranteeWords = { open: "担保中 holding", settled: "已用于出院结算 used by the discharge settlement", released: "已释放 released" };
  function guaranteeReset(hide) {
    $("g-figures").tBodies[0].innerHTML = "";
    $("g-status").textContent = ""; delete $("g-status").dataset.status;
    $("g-warn").hidden = true; $("g-warn").textContent = "";
    $("g-open").hidden = false; $("g-refresh").hidden = true; $("g-release").hidden = true;
    delete $("guarantee").dataset.status;
    if (hide) $("guarantee").hidden = true;
  }
  // showGuarantee draws what is held, the stay's estimated out-of-pocket
  // part, the line's room, and a warning when the line ran out of room.
  function showGuarantee(g) {
    $("guarantee").hidden = false;
    $("guarantee").dataset.status = g.status;
    const tb = $("g-figures").tBodies[0];
    tb.innerHTML = "";
    for (const [k, label, v] of [["bank", "担保银行 Bank", g.bank_name || g.bank_code], ["held", "已担保 Held on the line", yuan(g.held)],
      ["estimated_self_pay", "预计自付 Estimated out-of-pocket", yuan(g.estimated_self_pay)], ["shortfall", "缺口 Shortfall", yuan(g.shortfall)],
      ["line_available", "额度余额 Line still available", yuan(g.line_available)], ["status", "状态 Status", guaranteeWords[g.status] || g.status]]) {
      const tr = tb.insertRow();
      tr.dataset.k = k;
      tr.insertCell().textContent = label;
      const td = tr.insertCell(); td.textContent = v; td.className = "num";
    }
    const short = parseFloat(g.shortfall) > 0;
    tb.querySelector("tr[data-k=shortfall]").classList.toggle("bad", short);
    $("g-status").dataset.status = g.status;
    $("g-status").textContent = g.status === "open"
      ? "信用担保 " + yuan(g.held) + "，免交押金 · Credit guarantee of " + yuan(g.held) + ": no deposit needed"
      : (guaranteeWords[g.status] || g.status) + " · " + yuan(g.held);
    $("g-warn").hidden = !short;
    $("g-warn").textContent = short ? "信用额度不足，缺口 " + yuan(g.shortfall) + "：请考虑收取押金 · The credit line has no more room (short by " + yuan(g.shortfall) +
      "): consider a deposit" : "";
    $("g-open").hidden = true;
    $("g-refresh").hidden = g.status !== "open";
    $("g-release").hidden = g.status !== "open";
  }
  // loadGuarantee reads the stay's guarantee (the server grows it first
  // when the bill outgrew it); none yet offers to open one.
  async function loadGuarantee(quiet) {
    if (!isInpatient()) return;
    try {
      showGuarantee(await api("GET", "/api/v1/visits/" + visit.mdtrt_id + "/credit-guarantee"));
    } catch (e) {
      if (e.status !== 404) { if (!quiet) fail(e); return; }
      guaranteeReset(false);
      $("guarantee").hidden = false;
      $("g-status").textContent = "尚未开通信用担保：可开通（免押金），或按常规收取押金 · No credit guarantee yet: open one (no deposit), or take a deposit as usual";
    }
  }
  $("g-open").addEventListener("click", async () => {
    ok();
    try {
      showGuarantee(await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/credit-guarantee", {}));
      $("q").focus();
    } catch (e) {
      if (/no_credit_agreement/.test(e.message)) fail(new Error("该患者未开通信用就医，请收取押金 · The patient has no credit agreement: take a deposit. (" + e.message + ")"));
      else if (/credit_suspended/.test(e.message)) fail(new Error("该患者的信用就医已暂停，请收取押金 · The patient's credit payment is suspended: take a deposit. (" + e.message + ")"));
      else if (e.code === "credit_limit_exceeded") fail(new Error("信用额度已用完，请收取押金 · The credit line has nothing left: take a deposit. (" + e.message + ")"));
      else fail(e);
    }
  });
  $("g-refresh").addEventListener("click", () => { ok(); loadGuarantee(false); });
  $("g-release").addEventListener("click", async () => {
    ok();
    if (!confirm("释放信用担保？患者需改交押金。\nRelease the credit guarantee? The patient will need to pay a deposit.")) return;
    try { showGuarantee(await api("DELETE", "/api/v1/visits/" + visit.mdtrt_id + "/credit-guarantee")); $("g-open").hidden = true; } catch (e) { fail(e); }
  });

  // The catalog search is a combobox: the results are a listbox with one
  // tab stop (roving tabindex). Down or Tab from the search enters the
  // list, the arrows, Home and End move, Enter or Space adds the line,
  // Esc (or Up on the first result) goes back to the search.
  let searchTimer = null, searchSeq = 0;
  const hitItems = () => [...$("hits").children];
  function clearHits() {
    $("hits").innerHTML = "";
    $("q").setAttribute("aria-expanded", "false");
  }
  function selectHit(li, focus) {
    for (const o of hitItems()) {
      const on = o === li;
      o.tabIndex = on ? 0 : -1;
      o.setAttribute("aria-selected", on ? "true" : "false");
    }
    if (li && focus) li.focus();
  }
  async function search() {
    clearTimeout(searchTimer); searchTimer = null;
    const q = $("q").value.trim();
    const seq = ++searchSeq;
    if (!q) { clearHits(); return []; }
    try {
      const page = await api("GET", "/api/v1/catalog?limit=8&q=" + encodeURIComponent(q));
      if (seq !== searchSeq) return null; // a newer search is on its way
      // The old list goes; a focus inside it goes back to the search.
      if ($("hits").contains(document.activeElement)) $("q").focus();
      clearHits();
      const ul = $("hits");
      const today = chinaToday();
      page.items.forEach((it, i) => {
        const li = document.createElement("li");
        li.id = "hit-" + i;
        li.setAttribute("role", "option");
        li.dataset.code = it.code;
        li.textContent = it.name + " · " + it.code + " · " + ({ A: "甲", B: "乙", C: "丙" }[it.class] || it.class);
        // Items not in force today stay in the list, marked, and are not added.
        if ((it.valid_from && it.valid_from > today) || (it.valid_to && it.valid_to < today)) {
          li.setAttribute("aria-disabled", "true");
          li.append(" · 今日不可用 not valid today (" + (it.valid_from || "…") + "–" + (it.valid_to || "…") + ")");
        }
        li.addEventListener("click", () => addLine(it, li));
        li.addEventListener("keydown", (ev) => {
          const all = hitItems(), at = all.indexOf(li);
          let to = null;
          switch (ev.key) {
            case "Enter": case " ": ev.preventDefault(); addLine(it, li); return;
            case "ArrowDown": to = all[Math.min(at + 1, all.length - 1)]; break;
            case "ArrowUp": if (at === 0) { ev.preventDefault(); $("q").focus(); return; } to = all[at - 1]; break;
            case "Home": to = all[0]; break;
            case "End": to = all[all.length - 1]; break;
            case "Escape": ev.preventDefault(); $("q").focus(); return;
            default: return;
          }
          ev.preventDefault();
          selectHit(to, true);
        });
        ul.appendChild(li);
      });
      if (page.items.length) { $("q").setAttribute("aria-expanded", "true"); selectHit(ul.firstElementChild, false); }
      return page.items;
    } catch (e) { if (seq === searchSeq) fail(e); return null; }
  }
  $("q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 150);
  });
  $("q").addEventListener("keydown", async (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "Enter") {
      ev.preventDefault();
      // A result list still to come (typed fast, or a barcode and Enter).
      if (searchTimer !== null || !hitItems().length) await search();
      const all = hitItems();
      if (!all.length) return;
      // Enter on a search with a single result (a full code) adds it.
      if (ev.key === "Enter" && all.length === 1 && !all[0].getAttribute("aria-disabled")) { all[0].click(); return; }
      selectHit(all.find((o) => o.tabIndex === 0) || all[0], true);
    } else if (ev.key === "Escape") {
      clearHits();
    }
  });

  // chinaToday is today's date in China (UTC+8), as the platform dates fee lines.
  function chinaToday() { return new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10); }

  let adding = false;
  async function addLine(it, li) {
    if (adding) return; // Enter pressed twice
    ok();
    if (li && li.getAttribute("aria-disabled") === "true") {
      fail(new Error(it.name + " " + it.code + " 今日不在目录有效期内 is not valid today (" + (it.valid_from || "…") + "–" + (it.valid_to || "…") + ")"));
      return;
    }
    const price = $("price").value.trim(), qty = $("qty").value.trim();
    if (!/^\d+(\.\d{1,2})?$/.test(price) || !(parseFloat(qty) > 0)) { fail(new Error("单价须为金额，数量须大于 0 (price in yuan, quantity > 0)")); return; }
    adding = true;
    try {
      const sn = String(lines.length + 1);
      visit = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/fee-lines",
        { lines: [{ feedetl_sn: sn, catalog_code: it.code, unit_price: Number(price).toFixed(2), quantity: qty }] });
      lines.push(sn);
      const tb = $("lines").tBodies[0];
      tb.innerHTML = "";
      for (const l of visit.fee_lines) {
        const tr = tb.insertRow();
        tr.dataset.sn = l.feedetl_sn;
        [l.name, { A: "甲", B: "乙", C: "丙" }[l.class], yuan(l.unit_price), l.quantity, yuan(l.amount)].forEach((v, i) => {
          const td = tr.insertCell(); td.textContent = v; if (i >= 2) td.className = "num";
        });
      }
      clearHits(); $("q").value = "";
      staleSplit();
      if (isInpatient() && $("guarantee").dataset.status === "open") loadGuarantee(true);
      // The next item, or Tab on to the account and pre-settlement.
      $("q").focus();
    } catch (e) { fail(e); } finally { adding = false; }
  }

  // staleSplit: a change of the lines or of the account flag after a
  // pre-settlement needs a new one before settling.
  function staleSplit() {
    if ($("settle").disabled || order) return;
    $("settle").disabled = true;
    $("result").textContent = "明细已变更，请重新预结算 · The bill changed: pre-settle again";
  }
  $("acct").addEventListener("change", staleSplit);

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
      showReview([]);
      const p = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/presettle", { acct_used_flag: $("acct").checked });
      showReview(p.review_hits || []);
      showSplit(p.result.setlinfo, "预结算 pre-settlement — nothing has been charged yet");
      $("settle").disabled = false;
      $("settle").focus();
    } catch (e) {
      // A blocked bill names its lines: mark them too.
      const m = /review_blocked: (.*)/.exec(e.message || "");
      if (m) showReview(m[1].split("; ").map((x) => ({ feedetl_sn: x.split(": ")[0], action: "block", message: x.slice(x.indexOf(": ") + 2) })));
      fail(e);
    }
  });

  // showReview marks each fee line smart review found something on: a
  // note under the line with the rule's message and what it does.
  const reviewWords = { warn: "提示 warning", self_pay: "转自费 moved to self-pay", block: "拒付 blocked" };
  function showReview(hits) {
    const tb = $("lines").tBodies[0];
    for (const r of [...tb.querySelectorAll("tr.review-hit")]) r.remove();
    for (const tr of tb.rows) delete tr.dataset.review;
    for (const h of hits) {
      const row = [...tb.rows].find((r) => r.dataset.sn === h.feedetl_sn);
      if (!row) continue;
      row.dataset.review = h.action;
      const note = document.createElement("tr");
      note.className = "review-hit";
      note.dataset.action = h.action;
      const td = note.insertCell();
      td.colSpan = 5;
      td.textContent = "⚠ " + (reviewWords[h.action] || h.action) + " · " + h.message;
      row.after(note);
    }
  }

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
    const via = o.channel === "credit" ? " · credit 信用 · " + (o.agreement_no || "") : o.channel ? " · " + o.channel : "";
    $("result").textContent = (statusNames[o.status] || o.status) + " · " + o.pay_ord_id + via + (o.reason ? " · " + o.reason : "");
    $("result").dataset.status = o.status;
    $("declined").hidden = o.status !== "declined";
    $("after").hidden = !(o.status === "paid" || o.status === "partially_refunded");
    if (o.status === "paid") $("print").focus();
    if (o.status === "declined") $("collect").focus();
    // Done with this bill (refunded, cancelled): on to the next patient.
    if (o.status === "refunded" || o.status === "voided") $("scan").focus();
  }

  // follow polls an order whose out-of-pocket leg is still in flight.
  async function follow(o) {
    for (let i = 0; o.status === "paying" && i < 60; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      o = await api("GET", "/api/v1/payments/" + o.pay_ord_id);
      showOrder(o);
    }
  }

  async function pay(channel) {
    ok();
    $("credit-refused").hidden = true;
    try {
      const o = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/pay", { channel, acct_used_flag: $("acct").checked });
      $("settle").disabled = true;
      showOrder(o);
      if (!$("guarantee").hidden) loadGuarantee(true);
      await follow(o);
    } catch (e) {
      // Credit refused (the line has not enough left, or no usable
      // agreement): nothing was settled; the counter can collect instead.
      if (channel === "credit" && (e.code === "credit_limit_exceeded" || e.code === "failed_precondition" && /credit/.test(e.message))) {
        $("credit-why").textContent = (e.code === "credit_limit_exceeded"
          ? "信用额度不足，未结算 · Not enough left on the credit line; nothing was settled. "
          : "无法使用信用支付，未结算 · Credit payment cannot be used; nothing was settled. ") + "(" + e.message + ")";
        $("credit-refused").hidden = false;
        $("to-counter").focus();
        return;
      }
      fail(e);
    }
  }
  $("settle").addEventListener("click", () => pay($("paywith").value));
  $("to-counter").addEventListener("click", () => { $("paywith").value = "counter"; pay("counter"); });

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
