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

  $("f-start").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("error").textContent = "";
    const f = new FormData(ev.target);
    try {
      activation = await api("activate", { id_number: f.get("id_number").trim().toUpperCase(), name: f.get("name").trim() });
      $("sent").textContent = "验证码已发送至 " + activation.sent_to;
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
        $("balance").textContent = "个人账户余额 Personal account: ¥" + a.acct_balc;
        for (const l of a.limits || []) {
          if (l.period === "admission") continue;
          const used = Math.min(100, (100 * parseFloat(l.used)) / Math.max(0.01, parseFloat(l.amount)));
          const div = document.createElement("div");
          div.className = "limit";
          div.textContent = (l.kind === "deductible" ? "起付线 deductible" : "封顶 cap") + " · " + l.visit_type +
            "：已用 ¥" + l.used + " / ¥" + l.amount + "，剩余 ¥" + l.left;
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

  const statusText = { awaiting_patient: "待确认 waiting for you", paying: "支付中 paying", paid: "已支付 paid", declined: "钱包拒绝 declined",
    voided: "已取消 cancelled", revoked: "医院已撤回 withdrawn", refunded: "已退款 refunded", partially_refunded: "部分退款 partly refunded", review: "核查中 under review" };

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
        li.textContent = b.fixmedins_code + " · " + (b.med_org_ord || b.mdtrt_id) + " · 总额 ¥" + b.medfee_sumamt + "：医保 ¥" + b.fund_pay +
          " + 个人账户 ¥" + b.acct_pay + " + 自付 ¥" + b.self_pay + " · " + (statusText[b.status] || b.status);
        if (b.status === "awaiting_patient") {
          const btn = document.createElement("button");
          btn.textContent = "确认支付 Confirm and pay";
          btn.addEventListener("click", () => confirmBill(b));
          li.appendChild(btn);
        }
        if (b.status === "paying" && b.pay_url) showPayLink(b.pay_url);
        ul.appendChild(li);
      }
      if (!r.items.length) ul.innerHTML = "<li class='hint'>暂无账单 No bills</li>";
    } catch (e) { /* bills are a courtesy */ }
  }
  function showPayLink(url) { const a = $("pay-link"); a.href = url; a.hidden = false; }

  async function confirmBill(b) {
    $("error").textContent = "";
    counter = (counter + 1) % 65536;
    const code = YBCode.generate(device, Date.now(), counter); // a fresh code signed by this device is the approval
    try {
      const o = await api("bills/" + b.pay_ord_id + "/confirm", { code, channel: $("bill-channel").value });
      $("bill-status").textContent = (statusText[o.status] || o.status) + " · " + o.pay_ord_id;
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
        li.textContent = a.channel + " · 每笔 ≤ ¥" + a.limit + " · " + a.agreement_no;
        const btn = document.createElement("button");
        btn.className = "secondary";
        btn.textContent = "解除 Revoke";
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
      agreements();
      clearInterval(window.ybBills);
      window.ybBills = setInterval(bills, 5000);
    }
  }
  render();
})();
