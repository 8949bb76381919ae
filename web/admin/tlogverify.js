// tlogverify.js: checks a yibao audit receipt in the browser, with
// WebCrypto only — the checkpoint's Ed25519 signature against the log's
// published key, the entry's RFC 6962 leaf hash and its inclusion proof
// up to the signed root. (The SM2 signature line is checked by
// `yibao verify`; browsers have no SM2.)
(function (root) {
  "use strict";
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const cat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) { out.set(p, o); o += p.length; }
    return out;
  };
  const sha256 = async (b) => new Uint8Array(await crypto.subtle.digest("SHA-256", b));
  const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  // parseNote splits a signed note into its text and signature lines.
  function parseNote(s) {
    const i = s.indexOf("\n\n");
    if (i < 0) throw new Error("checkpoint: no signature block");
    const text = s.slice(0, i + 1);
    const sigs = s.slice(i + 2).split("\n").filter(Boolean).map((l) => {
      const m = l.match(/^\u2014 (\S+) (\S+)$/);
      if (!m) throw new Error("checkpoint: bad signature line");
      const raw = b64(m[2]);
      return { name: m[1], hash: raw.slice(0, 4), sig: raw.slice(4) };
    });
    const lines = text.split("\n");
    return { text, origin: lines[0], size: BigInt(lines[1]), root: b64(lines[2]), sigs };
  }

  // verifyEd25519 checks the note's signature by the Ed25519 verifier key
  // "name+hash+base64(0x01‖pub)".
  async function verifyEd25519(note, vkey) {
    // name+hash+key, and the base64 key may itself contain '+'.
    const i = vkey.indexOf("+"), j = vkey.indexOf("+", i + 1);
    const name = vkey.slice(0, i), hash = vkey.slice(i + 1, j), key = vkey.slice(j + 1);
    const k = b64(key);
    if (k[0] !== 1) throw new Error("not an Ed25519 verifier key");
    const want = Uint8Array.from(hash.match(/../g).map((h) => parseInt(h, 16)));
    const s = note.sigs.find((x) => x.name === name && eq(x.hash, want));
    if (!s) throw new Error("checkpoint not signed by " + name);
    const pub = await crypto.subtle.importKey("raw", k.slice(1), { name: "Ed25519" }, false, ["verify"]);
    if (!(await crypto.subtle.verify({ name: "Ed25519" }, pub, s.sig, new TextEncoder().encode(note.text)))) {
      throw new Error("the checkpoint's Ed25519 signature does not verify");
    }
  }

  // verifyInclusion is RFC 9162 §2.1.3.2.
  async function verifyInclusion(index, size, leaf, proof, root) {
    if (index >= size) throw new Error("index beyond the tree");
    let fn = index, sn = size - 1n;
    let r = await sha256(cat(new Uint8Array([0]), leaf));
    for (const p of proof) {
      if (sn === 0n) throw new Error("proof too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(cat(new Uint8Array([1]), p, r));
        if ((fn & 1n) === 0n) while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await sha256(cat(new Uint8Array([1]), r, p));
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n || !eq(r, root)) throw new Error("the inclusion proof does not lead to the signed root");
  }

  // verifyReceipt resolves with the checkpoint's size and origin, or
  // rejects saying what failed.
  root.TLogVerify = async function verifyReceipt(receipt, ed25519Key) {
    const note = parseNote(receipt.checkpoint);
    await verifyEd25519(note, ed25519Key);
    await verifyInclusion(BigInt(receipt.index), note.size, b64(receipt.data), receipt.proof.map(b64), note.root);
    return { size: note.size.toString(), origin: note.origin };
  };
})(self);
