// Browser test of /cashier, the counter, in real headless Chromium:
//  - the camera: a patient's real e-certificate code (made in /app) is drawn
//    into a Y4M file that Chromium's fake camera plays; the cashier presses
//    "scan with the camera", jsQR reads the code from the video, and the
//    server resolves it to the patient;
//  - the keyboard alone: sign in, scan (a scanner gun types the code and
//    Enter), open the visit, find a drug with the arrows, Esc and Tab, add
//    it, pre-settle, pay at the counter, settle, refund — no clicks;
//  - every input has a label, the text and buttons reach a WCAG contrast
//    ratio of 4.5, and the focus ring is always visible.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, openSync, writeSync, closeSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { startDemo, root } from "./demo.mjs";
import { contrastProblems } from "./contrast.mjs";

const started = Date.now();
const results = join(root, "web", "test-results");
const { base, bin, dir, server, api } = await startDemo("cashier");

// The QR's modules from the SVG that /api/v1/ecert/render draws: a white
// square of n×n units, and one "M x yh1v1h-1z" unit square per dark module
// (the quiet zone is inside the n units).
function modulesFromSVG(svg) {
  const n = Number(svg.match(/viewBox="0 0 (\d+) \1"/)[1]);
  const dark = Array.from({ length: n }, () => new Uint8Array(n));
  const d = svg.match(/<path[^>]* d="([^"]*)"/)[1];
  let count = 0;
  for (const m of d.matchAll(/M(\d+) (\d+)h1v1h-1z/g)) { dark[Number(m[2])][Number(m[1])] = 1; count++; }
  assert.ok(count > n && d.replace(/M\d+ \d+h1v1h-1z/g, "") === "", "the SVG is one path of unit squares");
  return dark;
}

// A YUV4MPEG2 file for Chromium's fake camera: 640×480, 4:2:0, a black-on-
// white QR in the middle (or, with no modules, a grey card with a black
// frame); the same frame a few times (the camera loops).
function writeY4M(path, dark, frames = 5) {
  const W = 640, H = 480;
  if (!dark) { // no code: a frame, nothing to read
    dark = Array.from({ length: 40 }, (_, r) => Uint8Array.from({ length: 40 }, (_, c) => Number(r === 0 || c === 0 || r === 39 || c === 39)));
  }
  const n = dark.length, unit = Math.floor(Math.min(W, H) * 0.92 / n);
  const x0 = Math.floor((W - n * unit) / 2), y0 = Math.floor((H - n * unit) / 2);
  const y = Buffer.alloc(W * H, 235); // white (a little under full scale, like a screen)
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (!dark[r][c]) continue;
      for (let dy = 0; dy < unit; dy++) y.fill(16, (y0 + r * unit + dy) * W + x0 + c * unit, (y0 + r * unit + dy) * W + x0 + (c + 1) * unit);
    }
  }
  const chroma = Buffer.alloc((W / 2) * (H / 2) * 2, 128); // U then V: no colour
  const fd = openSync(path, "w");
  writeSync(fd, `YUV4MPEG2 W${W} H${H} F10:1 Ip A1:1 C420jpeg\n`);
  for (let i = 0; i < frames; i++) { writeSync(fd, "FRAME\n"); writeSync(fd, y); writeSync(fd, chroma); }
  closeSync(fd);
  return unit;
}

const launchArgs = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: launchArgs });
let camBrowser = null;
let failed = false;
try {
  const admin = (await api("POST", "/api/v1/auth/login", null, { username: "admin", password: "admin123" })).body.token;
  const cashier = (await api("POST", "/api/v1/auth/login", null, { username: "cashier.h37010000001", password: "cashier123" })).body.token;
  const list = (await api("GET", "/api/v1/persons?category=active&limit=1", admin)).body.items;
  const person = (await api("GET", "/api/v1/persons/" + list[0].psn_no + "?reveal=true", admin)).body;
  const masked = [...person.name][0] + "*".repeat([...person.name].length - 1);
  const errors = [];
  // Page errors and Content-Security-Policy refusals (an inline style or
  // script would be one) fail the test.
  const watch = (page, name) => {
    page.on("pageerror", (e) => errors.push(name + ": " + e.message));
    page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) errors.push(name + ": " + m.text()); });
  };

  // The patient activates the e-certificate in /app, as app.test.mjs does.
  const app = await browser.newPage({ viewport: { width: 420, height: 900 } });
  watch(app, "app");
  await app.goto(base + "/app/");
  await app.fill("input[name=id_number]", person.id_number);
  await app.fill("input[name=name]", person.name);
  await app.click("#f-start button");
  await app.waitForSelector("#f-confirm:not([hidden])");
  const sms = (await api("GET", "/api/v1/ecert/dev/sms?limit=1", admin)).body.items[0].text;
  await app.fill("input[name=otp]", sms.match(/验证码 ([0-9]{6})/)[1]);
  await app.click("#f-confirm button");
  await app.waitForSelector("#qr svg");

  // ---- The camera. First with nothing to read: it opens, shows the
  // video, and its close button stops it. ----
  const y4m = join(dir, "camera.y4m");
  writeY4M(y4m, null);
  camBrowser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
    args: [...launchArgs, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--use-file-for-fake-video-capture=" + y4m] });
  const ctx = await camBrowser.newContext({ viewport: { width: 1100, height: 1000 } });
  await ctx.grantPermissions(["camera"], { origin: base });
  const cam = await ctx.newPage();
  watch(cam, "cashier camera");
  await cam.goto(base + "/cashier/");
  await cam.fill("#u", "cashier.h37010000001");
  await cam.fill("#p", "cashier123");
  await cam.press("#p", "Enter");
  await cam.waitForSelector("#desk:not([hidden])");
  const camOff = () => cam.evaluate(() => document.getElementById("cam").hidden && !document.getElementById("cam-video").srcObject);
  await cam.click("#camera");
  await cam.waitForFunction(() => { const v = document.getElementById("cam-video"); return v.videoWidth === 640 && !v.paused; });
  assert.equal(await cam.evaluate(() => document.activeElement.id), "cam-close");
  await cam.waitForTimeout(400); // a few frames sampled, none with a code
  assert.ok(await cam.isHidden("#patient"));
  mkdirSync(results, { recursive: true });
  await cam.screenshot({ path: join(results, "cashier-camera-open.png"), fullPage: true });
  const track = await cam.evaluateHandle(() => document.getElementById("cam-video").srcObject.getVideoTracks()[0]);
  await cam.click("#cam-close");
  assert.ok(await camOff(), "the close button closes the camera");
  assert.equal(await track.evaluate((t) => t.readyState), "ended", "and stops the stream");
  assert.equal(await cam.evaluate(() => document.activeElement.id), "camera");
  // Esc closes it too.
  await cam.keyboard.press("Enter");
  await cam.waitForSelector("#cam:not([hidden])");
  await cam.keyboard.press("Escape");
  assert.ok(await camOff(), "Esc closes the camera");

  // Now the patient's code, as the counter's camera would see it (drawn
  // from the SVG the platform renders). The file is read at each start.
  const code = await app.getAttribute("#qr", "data-code");
  assert.match(code, /^YB1:[0-9A-Z $%*+\-./:]+$/);
  const svg = await api("POST", "/api/v1/ecert/render", cashier, { code, format: "svg" });
  assert.equal(svg.status, 200, String(svg.body));
  const unit = writeY4M(y4m, modulesFromSVG(svg.body));
  assert.ok(unit >= 4, "each module is at least 4 pixels");
  await cam.click("#camera");
  await cam.waitForSelector("#patient:not([hidden])", { timeout: 20000 });
  const camName = await cam.textContent("#p-name");
  assert.ok(camName.startsWith(masked + " · "), `the patient panel shows the masked name ${masked}: ${camName}`);
  assert.equal(await cam.evaluate(() => document.activeElement.id), "vtype", "after the scan the visit type has the focus");
  // The code stopped the camera.
  assert.ok(await camOff(), "a code closes the camera");
  assert.equal(await cam.textContent("#error"), "");
  await cam.screenshot({ path: join(results, "cashier-camera.png"), fullPage: true });
  // The same screen shown again: the code is a replay, refused, and the
  // camera closes.
  await cam.click("#camera");
  await cam.waitForFunction(() => document.getElementById("error").textContent !== "", null, { timeout: 20000 });
  assert.match(await cam.textContent("#error"), /code_replayed/);
  assert.ok(await camOff());
  await camBrowser.close(); camBrowser = null;

  // A browser with no camera and no permission for one: a clear message.
  const denied = await (await browser.newContext()).newPage();
  watch(denied, "cashier without a camera");
  await denied.goto(base + "/cashier/");
  await denied.fill("#u", "cashier.h37010000001");
  await denied.fill("#p", "cashier123");
  await denied.press("#p", "Enter");
  await denied.waitForSelector("#desk:not([hidden])");
  await denied.click("#camera");
  await denied.waitForFunction(() => document.getElementById("error").textContent !== "");
  assert.match(await denied.textContent("#error"), /Camera permission was denied|No camera was found/);
  assert.ok(await denied.evaluate(() => document.getElementById("cam").hidden));
  await denied.close();

  // ---- The keyboard alone. A fresh code from the phone. ----
  await app.click("#refresh");
  await app.waitForFunction((old) => document.getElementById("qr").dataset.code !== old, code);
  const next = await app.getAttribute("#qr", "data-code");
  const drug = (await api("GET", "/api/v1/catalog?class=A&kind=drug&limit=1", admin)).body.items[0];
  // A code prefix with a few results, to walk the list.
  let q = drug.code;
  while (q.length > 1 && (await api("GET", "/api/v1/catalog?limit=8&q=" + encodeURIComponent(q), admin)).body.items.length < 3) q = q.slice(0, -1);

  const desk = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  watch(desk, "cashier");
  await desk.goto(base + "/cashier/");
  const kb = desk.keyboard;
  // focused: the element with the focus, with a visible focus ring.
  async function focused(want) {
    const f = await desk.evaluate(() => {
      const el = document.activeElement, cs = getComputedStyle(el);
      return { id: el.id, ring: cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) >= 2 };
    });
    if (want) assert.equal(f.id, want, "focus");
    assert.ok(f.ring, `#${f.id} shows the focus ring`);
    return f.id;
  }
  await desk.waitForSelector("#login:not([hidden])");
  const loginContrast = await desk.evaluate(contrastProblems);
  await kb.press("Tab");
  await focused("u");
  await kb.type("cashier.h37010000001");
  await kb.press("Tab");
  await focused("p");
  await kb.type("cashier123");
  await kb.press("Enter");
  await desk.waitForSelector("#desk:not([hidden])");
  await focused("scan");
  await kb.type(next); // the scanner gun: the code's characters, then Enter
  await kb.press("Enter");
  await desk.waitForSelector("#patient:not([hidden])");
  assert.ok((await desk.textContent("#p-name")).startsWith(masked + " · "));
  await focused("vtype");
  await kb.press("Tab");
  await focused("open");
  await kb.press("Enter");
  await desk.waitForSelector("#visit:not([hidden])");
  await focused("q");
  // Price and quantity come before the search: the picked item is added
  // at them.
  await kb.press("Shift+Tab");
  await focused("qty");
  await kb.press("ControlOrMeta+a");
  await kb.type("2");
  await kb.press("Shift+Tab");
  await focused("price");
  await kb.press("ControlOrMeta+a");
  await kb.type("480.00");
  await kb.press("Tab");
  await kb.press("Tab");
  await focused("q");
  await kb.type(q);
  await desk.waitForFunction(() => document.querySelectorAll("#hits li").length >= 3);
  const hits = await desk.$$eval("#hits li", (ls) => ls.map((l) => ({ id: l.id, text: l.textContent, off: l.getAttribute("aria-disabled") === "true" })));
  // The result to add: the first one in force today after the first.
  const pick = hits.findIndex((h, i) => i >= 1 && !h.off);
  assert.ok(pick >= 1, "a result in force today: " + JSON.stringify(hits));
  // Down into the list, down past it and up again; Esc back to the search;
  // Tab returns to the chosen result; Enter adds it.
  await kb.press("ArrowDown");
  await focused(hits[0].id);
  for (let i = 0; i < pick; i++) await kb.press("ArrowDown");
  await focused(hits[pick].id);
  if (pick + 1 < hits.length) {
    await kb.press("ArrowDown");
    await focused(hits[pick + 1].id);
    await kb.press("ArrowUp");
    await focused(hits[pick].id);
  }
  assert.equal(await desk.getAttribute("#" + hits[pick].id, "aria-selected"), "true");
  // An item not in force today (the demo catalog has one) is marked and
  // not added.
  const off = hits.findIndex((h) => h.off);
  if (off >= 0 && off < pick) {
    for (let i = off; i < pick; i++) await kb.press("ArrowUp");
    await focused(hits[off].id);
    await kb.press("Enter");
    assert.match(await desk.textContent("#error"), /is not valid today/);
    for (let i = off; i < pick; i++) await kb.press("ArrowDown");
    await focused(hits[pick].id);
  }
  await kb.press("Escape");
  await focused("q");
  await kb.press("Tab");
  await focused(hits[pick].id);
  await kb.press("Enter");
  await desk.waitForSelector("#lines tbody tr");
  await focused("q");
  assert.equal(await desk.textContent("#error"), "");
  const line = await desk.$$eval("#lines tbody tr td", (tds) => tds.map((t) => t.textContent));
  assert.ok(hits[pick].text.startsWith(line[0] + " · "), `the chosen result was added: ${line[0]}`);
  assert.deepEqual(line.slice(2), ["¥480.00", "2", "¥960.00"]);
  // Tab on: the personal account (Space: not used), pre-settle.
  await kb.press("Tab");
  await focused("acct");
  await kb.press("Space");
  assert.equal(await desk.isChecked("#acct"), false);
  await kb.press("Tab");
  await focused("presettle");
  await kb.press("Enter");
  await desk.waitForSelector("#split:not([hidden])");
  await desk.waitForSelector("#settle:not([disabled])");
  await focused("settle");
  // Back one to the pay-with select: the counter collects the self-pay part.
  await kb.press("Shift+Tab");
  await focused("paywith");
  await kb.press("ArrowDown");
  assert.equal(await desk.inputValue("#paywith"), "counter");
  await kb.press("Tab");
  await focused("settle");
  await kb.press("Enter");
  await desk.waitForSelector("#result[data-status=paid]", { timeout: 30000 });
  await desk.waitForSelector("#legs tr[data-leg=fund][data-status=paid]");
  assert.match(await desk.textContent("#result"), /counter/);
  await focused("print");
  const paidContrast = await desk.evaluate(contrastProblems);
  const unlabelled = await desk.evaluate(() => [...document.querySelectorAll("input, select, textarea")]
    .filter((el) => !el.labels || el.labels.length === 0 || !el.labels[0].textContent.trim()).map((el) => el.id));
  assert.deepEqual(unlabelled, [], "every input and select has a label");
  await desk.screenshot({ path: join(results, "cashier-keyboard.png"), fullPage: true });
  // The refund, too: Tab, Enter; then the scan field waits for the next.
  await kb.press("Tab");
  await focused("refund");
  await kb.press("Enter");
  await desk.waitForSelector("#result[data-status=refunded]", { timeout: 30000 });
  await focused("scan");
  assert.deepEqual(loginContrast, [], "contrast on the sign-in screen");
  assert.deepEqual(paidContrast, [], "contrast on the paid bill");
  assert.deepEqual(errors, []);
  console.log(`ok  /cashier: jsQR read a real e-certificate from the (fake) camera and the patient came up; ` +
    `signed in, scanned, opened, searched, picked with the arrows, pre-settled, paid at the counter and refunded with the keyboard alone; ` +
    `labels, contrast ≥ 4.5 and focus rings checked (${((Date.now() - started) / 1000).toFixed(0)} s)`);
} catch (e) {
  failed = true;
  console.error("FAIL /cashier:", e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    const shown = await p.evaluate(() => document.getElementById("error")?.textContent).catch(() => null);
    if (shown) console.error("  " + p.url() + " shows the error: " + shown);
  }
} finally {
  if (camBrowser) await camBrowser.close();
  await browser.close();
  server.kill("SIGINT");
  if (server.exitCode === null) await new Promise((r) => { server.on("exit", r); setTimeout(r, 10000); });
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
