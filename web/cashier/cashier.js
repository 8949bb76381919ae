// The cashier's counter page: scan the e-certificate (a scanner gun types
// the code and Enter), open the visit with the ecToken, add fee lines from
// the catalog, show the split, then settle and collect in one step (the
// patient's wallet agreement, or the counter) with each leg's status;
// print, refund. An inpatient stay is discharged before it is settled, and
// a patient with credit payment gets a credit guarantee instead of a
// deposit; the out-of-pocket part can go on the credit line (a line with
// too little left falls back to the counter). Keyboard only works. The
// camera can stand in for the scanner gun: jsQR (vendor/, Apache-2.0)
// reads the code from the video. Face payment (刷脸): this page is a
// registered face terminal with its own SM2 key; a match opens the visit
// just as a scanned code does, and scanning the code is always offered.
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
      $("p-face").hidden = true; $("p-face").textContent = "";
      $("patient").dataset.via = "code";
      $("patient").hidden = false;
      // A bill refused as too large for a face alone moves to a visit
      // under this code when it is the same person.
      const carry = faceCarry;
      faceCarry = null;
      $("face-limit").hidden = true;
      if (carry && carry.psn === r.person.psn_no && !r.shown_by_proxy) { await carryOver(carry); return; }
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
    stopFace();
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
    stopFace();
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

  // openVisit opens a visit for the patient on the panel (the ecToken of
  // the scanned code or of the matched face); a new visit starts with an
  // empty bill.
  async function openVisit(type) {
    visit = await api("POST", "/api/v1/visits", { ec_token: ecToken, fixmedins_code: me.fixmedins_code, visit_type: type });
    order = null; lines.length = 0;
    $("lines").tBodies[0].innerHTML = ""; clearHits(); $("q").value = "";
    $("settle").disabled = true; $("split").hidden = true; $("legs").hidden = true;
    $("declined").hidden = true; $("after").hidden = true;
    $("result").textContent = ""; delete $("result").dataset.status;
    $("mdtrt").textContent = visit.mdtrt_id;
    $("visit").hidden = false;
    $("visit").dataset.via = $("patient").dataset.via || "";
    delete $("visit").dataset.carried;
    $("credit-refused").hidden = true;
    $("face-limit").hidden = true;
  }
  $("open").addEventListener("click", async () => {
    ok();
    try {
      await openVisit($("vtype").value);
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
      drawLines();
      clearHits(); $("q").value = "";
      staleSplit();
      if (isInpatient() && $("guarantee").dataset.status === "open") loadGuarantee(true);
      // The next item, or Tab on to the account and pre-settlement.
      $("q").focus();
    } catch (e) { fail(e); } finally { adding = false; }
  }

  function drawLines() {
    const tb = $("lines").tBodies[0];
    tb.innerHTML = "";
    for (const l of visit.fee_lines || []) {
      if (l.status && l.status !== "active") continue;
      const tr = tb.insertRow();
      tr.dataset.sn = l.feedetl_sn;
      [l.name, { A: "甲", B: "乙", C: "丙" }[l.class], yuan(l.unit_price), l.quantity, yuan(l.amount)].forEach((v, i) => {
        const td = tr.insertCell(); td.textContent = v; if (i >= 2) td.className = "num";
      });
    }
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
      // Above what a face alone may pay: nothing was settled. Scanning the
      // patient's code (the second factor) carries the bill over.
      if (/face_limit_exceeded/.test(e.message)) {
        faceCarry = { psn: visit.psn_no, visit };
        $("face-limit-why").textContent = "超出仅凭刷脸可付的限额，未结算。请扫描患者的医保电子凭证码，账单将转入扫码就诊继续结算；或请患者到人工窗口办理 · " +
          "Above what a face alone may pay; nothing was settled. Scan the patient's e-certificate code and the bill moves to a visit under the code, " +
          "or send the patient to the staffed counter. (" + e.message + ")";
        $("face-limit").hidden = false;
        $("face-limit-scan").focus();
        return;
      }
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


  // --- Face payment (刷脸). This page is a registered face terminal: its
  // SM2 key is made once and kept in this browser (one per institution),
  // the public half registered with the platform. The cashier types the
  // patient's ID number (1:1) or the last four digits of their phone (1:N);
  // the platform answers with a liveness challenge (come closer, or move
  // back); while the prompt shows, the page takes five frames over about
  // two seconds, signs them (the SM3 of each frame inside an SM2
  // signature over the request) and sends them. A match gives an ecToken
  // that opens the visit just as a scanned code does.
  const FACE_FRAMES = 5, FACE_GAP_MS = 550, FACE_READ_MS = 600;
  let faceStream = null, faceBusy = false, faceTerm = null, faceCarry = null, faceStatus = null;
  const faceCanvas = document.createElement("canvas");
  // faceSent: the SM3 of every frame this page has sent. The platform
  // refuses a frame it has seen before (replayed_frame), so a frame equal
  // to one sent already — a camera that did not move on — is taken again.
  const faceSent = new Set();
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  function randomText(n) {
    const b = new Uint8Array(n);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => URLSAFE[x & 63]).join("");
  }
  function base64(bytes) {
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }
  const hexBytes = (hex) => Uint8Array.from(hex.match(/../g), (h) => parseInt(h, 16));

  // ensureTerminal registers this page's terminal key (again: the same id
  // and key are accepted); an id taken by another key gets a new id.
  async function ensureTerminal() {
    if (faceTerm) return faceTerm;
    const store = "yibao.cashier.faceTerminal." + me.fixmedins_code;
    let t = JSON.parse(localStorage.getItem(store) || "null");
    for (let attempt = 0; ; attempt++) {
      if (!t) {
        const k = window.sm2.generateKeyPairHex();
        t = { id: "T-" + me.fixmedins_code + "-" + randomText(8).replace(/[-_]/g, "0"), privateKey: k.privateKey, publicKey: k.publicKey };
        localStorage.setItem(store, JSON.stringify(t));
      }
      try {
        await api("POST", "/api/v1/face/terminals", { terminal_id: t.id, name: "收费窗口 cashier page · " + (me.subject || ""), public_key: t.publicKey });
        faceTerm = t;
        return t;
      } catch (e) {
        if (e.code !== "conflict" || attempt > 0) throw e;
        t = null;
      }
    }
  }

  function facePrompt(text, kind) {
    $("face-prompt").textContent = text;
    if (kind) $("face-prompt").dataset.kind = kind; else delete $("face-prompt").dataset.kind;
  }

  async function openFace() {
    ok();
    if (faceStream) { $("face-id").focus(); return; }
    if (!window.sm2 || !window.sm3) { fail(new Error("签名组件未加载 The signing library (/app/vendor/sm-crypto) did not load.")); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail(new Error("此浏览器或页面无法使用摄像头（需 HTTPS 或本机地址）：请扫码 · No camera is available to this page (it needs HTTPS or localhost): scan the code."));
      return;
    }
    // Face payment may be off on this platform (no models): say why.
    try { faceStatus = faceStatus || await api("GET", "/api/v1/face/status"); } catch (e) { faceStatus = { on: false, message: e.message }; }
    if (!faceStatus.on) {
      fail(new Error("刷脸支付暂不可用，请扫码 · Face payment is not available here; scan the code. (" + faceStatus.message + ")"));
      faceStatus = null;
      $("face").focus();
      return;
    }
    showConsent();
    stopCamera();
    try {
      const s = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
      if (faceStream) { for (const t of s.getTracks()) t.stop(); return; }
      faceStream = s;
    } catch (e) { fail(new Error(cameraError(e))); $("face").focus(); return; }
    const video = $("face-video");
    video.srcObject = faceStream;
    $("face-panel").hidden = false;
    $("face").setAttribute("aria-expanded", "true");
    $("face-refused").hidden = true; $("face-refused").textContent = ""; delete $("face-refused").dataset.reason;
    facePrompt("请输入身份证号或手机号后四位，再请患者看摄像头 · Type the ID number or the last four phone digits, then the patient looks at the camera");
    $("face-id").focus();
    try { await video.play(); } catch (e) { /* muted; frames still arrive */ }
    // Register early, so the first check does not wait for it.
    ensureTerminal().catch((e) => faceRefuse(e));
  }

  function stopFace() {
    if (faceStream) { for (const t of faceStream.getTracks()) t.stop(); faceStream = null; }
    $("face-video").srcObject = null;
    $("face-panel").hidden = true;
    $("face").setAttribute("aria-expanded", "false");
  }

  async function grabFrame() {
    const v = $("face-video");
    for (let i = 0; i < 40 && !(v.videoWidth && v.readyState >= 2); i++) await sleep(50);
    if (!v.videoWidth) throw new Error("摄像头没有画面 The camera shows nothing.");
    const k = Math.min(1, 960 / Math.max(v.videoWidth, v.videoHeight));
    faceCanvas.width = Math.round(v.videoWidth * k); faceCanvas.height = Math.round(v.videoHeight * k);
    faceCanvas.getContext("2d").drawImage(v, 0, 0, faceCanvas.width, faceCanvas.height);
    const blob = await new Promise((res) => faceCanvas.toBlob(res, "image/jpeg", 0.9));
    return new Uint8Array(await blob.arrayBuffer());
  }

  // The platform's refusals, in words for the counter; the reason stays on
  // data-reason.
  const faceWhy = [
    ["face_not_matched", "未通过：人脸与所填身份不符，未确认身份。请扫描医保码，或请患者凭身份证到人工窗口 · Not verified: the face does not match; nobody was identified. Scan the e-certificate code, or send the patient to the staffed counter with the ID card."],
    ["liveness_failed", "活体检测未通过：请患者按提示慢慢移动后重试 · The liveness check failed: ask the patient to move slowly as the prompt says, and try again."],
    ["bad_challenge", "本次核验已过期：请重试 · The check expired: try again."],
    ["unknown_terminal", "本窗口不是已登记的刷脸终端：请重试（将重新登记） · This counter is not a registered face terminal: try again (it registers again)."],
    ["terminal_revoked", "本窗口的刷脸终端已停用：请扫码 · This counter's face terminal was revoked: scan the code."],
    ["stale_request", "本机时钟不准：请校准时间后重试 · This computer's clock is off: set it right and try again."],
    ["replayed", "请求或画面重复：请重试 · A repeated request or frame: try again."],
    ["bad_signature", "终端签名未通过核验：请重试 · The terminal's signature did not verify: try again."],
    ["no_face", "画面中没有人脸：请患者正对摄像头 · No face in the picture: the patient faces the camera."],
    ["many_faces", "画面中不止一人：请只留患者本人 · More than one person in the picture: only the patient."],
    ["too_small", "人脸太小：请患者靠近摄像头 · The face is too small: the patient comes closer."],
    ["too_dark", "画面太暗：请补光 · Too dark: more light."],
  ];
  function faceRefuse(e, text) {
    const msg = e ? (e.detail || e.message || String(e)) : "";
    let reason = "", words = text || "";
    if (e) {
      const hit = faceWhy.find(([k]) => msg.includes(k) || (e.code === "replayed_request" && k === "replayed"));
      if (hit) { reason = hit[0]; words = hit[1]; }
      else if (e.code === "unavailable") { reason = "unavailable"; words = "刷脸支付暂不可用：请扫码 · Face payment is not available: scan the code."; }
      else { reason = e.code || "error"; words = "刷脸未完成 · Face payment did not go through."; }
      if (reason === "unknown_terminal") faceTerm = null;
      words += " (" + (e.message || msg) + ")";
    }
    facePrompt("");
    $("face-refused").textContent = words;
    $("face-refused").dataset.reason = reason || "input";
    $("face-refused").hidden = false;
  }

  $("f-face").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ok();
    if (faceBusy) return;
    const id = $("face-id").value.trim().toUpperCase(), last4 = $("face-last4").value.trim();
    const refuse = (text, el) => { faceRefuse(null, text); el.focus(); };
    if (id && last4) return refuse("只填一项：身份证号（1:1）或手机号后四位（1:N） · Fill in only one: the ID number (1:1) or the phone's last four digits (1:N).", $("face-last4"));
    if (!id && !last4) return refuse("刷脸须填写身份证号或手机号后四位 · Paying by face needs the ID number or the phone's last four digits.", $("face-id"));
    if (id && !/^[0-9]{17}[0-9X]$/.test(id)) return refuse("身份证号应为 18 位 · The ID number has 18 characters.", $("face-id"));
    if (last4 && !/^[0-9]{4}$/.test(last4)) return refuse("手机号后四位应为 4 位数字 · The last four phone digits are 4 digits.", $("face-last4"));
    if (!faceStream) return openFace();
    faceBusy = true;
    $("face-go").disabled = true;
    $("face-refused").hidden = true;
    let next = null; // where the focus goes after a refusal
    try {
      const term = await ensureTerminal();
      const ch = await api("POST", "/api/v1/face/challenges", { terminal_id: term.id });
      facePrompt(ch.prompt, ch.kind);
      await sleep(FACE_READ_MS); // time to read the prompt and start moving
      const frames = [], hashes = [];
      for (let i = 0; i < FACE_FRAMES; i++) {
        if (i) await sleep(FACE_GAP_MS);
        for (let tries = 0; ; tries++) {
          if (!faceStream) throw new Error("刷脸已关闭 Face payment was closed.");
          const f = await grabFrame(), h = window.sm3(f);
          if (!faceSent.has(h) && !hashes.includes(h)) { frames.push(f); hashes.push(h); break; }
          if (tries === 12) throw new Error("摄像头画面没有变化，可能卡住了：请检查摄像头，或改为扫码 · The camera picture does not change (it may be stuck): check the camera, or scan the code.");
          await sleep(40);
        }
        facePrompt(ch.prompt + " · " + (i + 1) + "/" + FACE_FRAMES, ch.kind);
      }
      facePrompt("核验中… Checking…");
      for (const h of hashes) faceSent.add(h);
      const nonce = randomText(24), ts = Math.floor(Date.now() / 1000);
      const signed = ["YBFACE1", term.id, ch.challenge_id, nonce, String(ts), id, last4, hashes.join(",")].join("\n");
      const der = window.sm2.doSignature(signed, term.privateKey, { hash: true, der: true, publicKey: term.publicKey });
      const body = { terminal_id: term.id, challenge_id: ch.challenge_id, nonce, timestamp: ts, frames: frames.map(base64), signature: base64(hexBytes(der)) };
      if (id) body.id_number = id; else body.phone_last4 = last4;
      faceMatched(await api("POST", "/api/v1/face/verify", body));
    } catch (e) {
      faceRefuse(e);
      next = /face_not_matched/.test(e.message) ? $("face-to-scan") : $("face-go");
    } finally {
      faceBusy = false;
      $("face-go").disabled = false;
      if (next && faceStream) next.focus();
    }
  });

  // faceMatched: the platform identified the patient; the panel shows
  // them as after a scan, with the limit a face alone may pay.
  function faceMatched(r) {
    stopFace();
    $("face-id").value = ""; $("face-last4").value = "";
    ecToken = r.ec_token;
    faceCarry = null;
    $("face-limit").hidden = true;
    $("p-name").textContent = r.name_masked + " · 刷脸核验通过 verified by face (" + (r.mode === "one_to_n" ? "1:N" : "1:1") + ")";
    $("p-cov").textContent = "参保信息在开始就诊时核对 · Coverage is checked when the visit opens";
    $("p-face").textContent = "仅凭刷脸每笔最多支付 ¥" + r.face_only_cap + "，超出请扫描医保码 · By face alone a bill may be up to ¥" + r.face_only_cap +
      "; above it scan the e-certificate code";
    $("p-face").hidden = false;
    $("patient").dataset.via = "face";
    $("patient").hidden = false;
    $("vtype").focus();
  }

  // carryOver moves a bill refused as too large for a face alone to a new
  // visit under the scanned code: the same type and fee lines; the face
  // visit's lines are cancelled and the visit with them.
  async function carryOver(c) {
    const old = c.visit;
    const keep = (old.fee_lines || []).filter((l) => !l.status || l.status === "active");
    try {
      await openVisit(old.visit_type);
      $("vtype").value = old.visit_type;
      if (keep.length) {
        visit = await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/fee-lines", { lines: keep.map((l) => ({ feedetl_sn: l.feedetl_sn,
          catalog_code: l.catalog_code, unit_price: l.unit_price, quantity: l.quantity, fee_date: l.fee_date })) });
        for (const l of keep) lines.push(l.feedetl_sn);
      }
      drawLines();
      inpatientState();
      guaranteeReset(!isInpatient());
      $("visit").dataset.carried = old.mdtrt_id;
      $("result").textContent = "账单已从刷脸就诊 " + old.mdtrt_id + " 转入，请预结算 · The bill moved over from the face visit " + old.mdtrt_id + ": pre-settle";
      try {
        if (keep.length) await api("POST", "/api/v1/visits/" + old.mdtrt_id + "/fee-lines/cancel", { feedetl_sns: keep.map((l) => l.feedetl_sn) });
        await api("POST", "/api/v1/visits/" + old.mdtrt_id + "/cancel", {});
      } catch (e) { fail(new Error("刷脸就诊未能取消，请手工处理 · The face visit " + old.mdtrt_id + " could not be cancelled: " + e.message)); }
      (isInpatient() ? $("discharge") : $("presettle")).focus();
    } catch (e) { fail(e); $("scan").focus(); }
  }

  // --- Enrolment at the counter: the patient, with the ID card, reads the
  // consent and agrees; the face camera takes the photo. ---
  function showConsent() {
    const c = faceStatus && faceStatus.consent_text;
    $("en-consent").textContent = c ? c.zh + "\n\n" + c.en
      : "请向患者出示并由其完整阅读刷脸支付授权书（版本 " + faceStatus.consent_version + "），与其他授权分开 · Show the patient the face-payment consent (version " +
        faceStatus.consent_version + ") to read in full, apart from any other consent.";
  }
  function enrolSay(text, status) {
    $("en-status").textContent = text;
    if (status) $("en-status").dataset.status = status; else delete $("en-status").dataset.status;
  }
  $("f-enrol").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    ok();
    if (faceBusy) return;
    const id = $("en-id").value.trim().toUpperCase(), name = $("en-name").value.trim();
    if (!/^[0-9]{17}[0-9X]$/.test(id)) { enrolSay("身份证号应为 18 位 · The ID number has 18 characters.", "refused"); $("en-id").focus(); return; }
    if (!name) { enrolSay("请填写姓名 · Type the name on the ID card.", "refused"); $("en-name").focus(); return; }
    if (!$("en-accept").checked) {
      enrolSay("患者须阅读并同意刷脸支付授权，再勾选 · The patient must read and accept the consent; then tick the box.", "refused");
      $("en-accept").focus();
      return;
    }
    if (!faceStream) { enrolSay("摄像头未打开 · The camera is not on.", "refused"); return; }
    faceBusy = true;
    $("en-go").disabled = true;
    enrolSay("登记中… Enrolling…");
    try {
      const c = await api("POST", "/api/v1/face/enrolments", { id_number: id, name, accept: true, image: base64(await grabFrame()) });
      enrolSay("已登记：该患者有人脸特征 " + c.templates + " 份（加密保存，不含照片） · Enrolled: the patient has " + c.templates +
        " face template(s), encrypted; no photo kept.", "enrolled");
      $("en-id").value = ""; $("en-name").value = ""; $("en-accept").checked = false;
    } catch (e) {
      const hit = faceWhy.find(([k]) => (e.detail || e.message).includes(k));
      enrolSay((hit ? hit[1] : e.status === 404 ? "身份证号与姓名不符 · No insured person with that ID number and name." : "未能登记 · Not enrolled.") +
        " (" + e.message + ")", "refused");
      $("en-id").focus();
    } finally {
      faceBusy = false;
      $("en-go").disabled = false;
    }
  });

  $("face").addEventListener("click", openFace);
  $("face-close").addEventListener("click", () => { stopFace(); $("face").focus(); });
  $("face-to-scan").addEventListener("click", () => { stopFace(); $("scan").focus(); });
  $("face-limit-scan").addEventListener("click", () => { $("scan").focus(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && faceStream && !faceBusy) { ev.preventDefault(); stopFace(); $("face").focus(); }
  });
  window.addEventListener("pagehide", () => stopFace());

  if (token) start(); else $("login").hidden = false;
})();
