// demo.mjs: what every browser suite does first — build the binary, run
// `yibao demo` on a free port in a fresh temporary folder (PostgreSQL
// when YIBAO_TEST_PG is set), and call its API. startRegions does the
// same for `yibao demo --regions 3`: three province nodes and the hub.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const root = new URL("../..", import.meta.url).pathname;

// build makes a fresh temporary folder and builds the binary into it, to
// run directly, so that stopping it stops the server.
function build(name) {
  const dir = mkdtempSync(join(tmpdir(), "yibao-" + name + "-"));
  const bin = join(dir, "yibao");
  execFileSync("go", ["build", "-o", bin, "./cmd/yibao"], { cwd: root, stdio: "inherit" });
  return { dir, bin };
}

// waitFor resolves with the server's output so far once it matches re.
function waitFor(server, re, what) {
  return new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error(what + " did not start in 120 s:\n" + out)), 120000);
    server.stdout.on("data", (d) => {
      out += d;
      if (re.test(out)) { clearTimeout(t); resolve(out); }
    });
    server.on("exit", (c) => { clearTimeout(t); reject(new Error(what + " exited " + c + "\n" + out)); });
  });
}

// client is api(method, path, token, body) against base: it answers
// { status, body } (JSON, or text); a POST carries an Idempotency-Key.
function client(base, name) {
  let seq = 0;
  return async function api(method, path, token, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    if (method !== "GET") headers["Idempotency-Key"] = name + "-test-" + Date.now() + "-" + seq++;
    const r = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const type = r.headers.get("content-type") || "";
    return { status: r.status, body: type.includes("json") ? await r.json().catch(() => ({})) : await r.text() };
  };
}

// startDemo resolves with { base, bin, dir, server, api }.
export async function startDemo(name) {
  const { dir, bin } = build(name);
  const args = ["demo", "--addr", "127.0.0.1:0", "--data-dir", join(dir, "demo"), "--log-level", "warn"];
  if (process.env.YIBAO_TEST_PG) args.push("--db", process.env.YIBAO_TEST_PG);
  const server = spawn(bin, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const out = await waitFor(server, /running on (http:\/\/[0-9.:]+)/, "demo");
  const base = out.match(/running on (http:\/\/[0-9.:]+)/)[1];
  return { base, bin, dir, server, api: client(base, name) };
}

// freePorts finds a port P such that P, P+1, P+2 and P+10 are free on
// 127.0.0.1 (the nodes of `demo --regions 3` and the hub).
async function freePorts() {
  const free = (port) => new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
  for (let i = 0; i < 100; i++) {
    const p = 20000 + Math.floor(Math.random() * 40000);
    let ok = true;
    for (const q of [p, p + 1, p + 2, p + 10]) if (!(ok = await free(q))) break;
    if (ok) return p;
  }
  throw new Error("no free ports for the regions demo");
}

// startRegions runs `yibao demo --regions 3` (SQLite, a database per
// node) and resolves with { bin, dir, server, hub, nodes, persons }:
// nodes maps a province ("37", "32", "44") to { name, base, api };
// persons maps it to the cross-region persons the demo printed, in its
// order, each { psn_no, filing } (filing: "long_term" … or "" for none).
export async function startRegions(name) {
  const { dir, bin } = build(name);
  const port = await freePorts();
  const args = ["demo", "--regions", "3", "--addr", "127.0.0.1:" + port, "--data-dir", join(dir, "regions"), "--log-level", "warn"];
  const server = spawn(bin, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const out = await waitFor(server, /ready in [\s\S]*Ctrl-C stops everything/, "regions demo");
  const hub = out.match(/national hub\s+(http:\/\/[0-9.:]+)/)[1];
  const urls = new Map([...out.matchAll(/^(\S+) .* node\s+(http:\/\/[0-9.:]+)/gm)].map((m) => [m[1], m[2]]));
  const nodes = {}, persons = {};
  for (const m of out.matchAll(/^ {2}(\S+) .*→.*?: (.+)$/gm)) {
    const list = [...m[2].matchAll(/(\d{20}) \((\S+?) ?filing\)/g)].map((p) => ({ psn_no: p[1], filing: p[2] === "no" ? "" : p[2] }));
    const prov = list[0].psn_no.slice(0, 2), base = urls.get(m[1]);
    persons[prov] = list;
    nodes[prov] = { name: m[1], base, api: client(base, name + "-" + prov) };
  }
  if (Object.keys(nodes).length !== 3) throw new Error("regions demo: three nodes expected in its output:\n" + out);
  return { bin, dir, server, hub, nodes, persons, out };
}
