// ybcode.js: makes yibao e-certificate codes (docs/ecert.md, version 1) on
// the device. The device key never leaves it. Needs sm-crypto's sm2
// (vendor/sm2-0.5.8.js) for SM2 signatures with a user ID.
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory;
  else root.YBCode = factory(root.sm2);
})(typeof self !== "undefined" ? self : this, function (sm2) {
  "use strict";
  const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
  const CREDENTIAL_LEN = 154;

  // RFC 9285: two bytes → three characters, a last odd byte → two.
  function base45(bytes) {
    let out = "";
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      const n = bytes[i] * 256 + bytes[i + 1];
      out += ALPHABET[n % 45] + ALPHABET[Math.floor(n / 45) % 45] + ALPHABET[Math.floor(n / 2025)];
    }
    if (bytes.length % 2 === 1) {
      const n = bytes[bytes.length - 1];
      out += ALPHABET[n % 45] + ALPHABET[Math.floor(n / 45)];
    }
    return out;
  }

  function fromHex(hex) {
    if (hex.length % 2) throw new Error("odd hex");
    const b = new Uint8Array(hex.length / 2);
    for (let i = 0; i < b.length; i++) b[i] = parseInt(hex.substr(2 * i, 2), 16);
    return b;
  }

  // generate returns the text of a code for time nowMs (milliseconds).
  function generate(device, nowMs, counter) {
    const cred = fromHex(device.credential);
    if (cred.length !== CREDENTIAL_LEN) throw new Error("credential must be 154 bytes");
    const step = Math.floor(nowMs / 1000 / device.stepSeconds);
    const tbs = new Uint8Array(8 + CREDENTIAL_LEN);
    tbs[0] = 1; // version
    tbs[1] = (step >>> 24) & 255; tbs[2] = (step >>> 16) & 255; tbs[3] = (step >>> 8) & 255; tbs[4] = step & 255;
    tbs[5] = (counter >>> 8) & 255; tbs[6] = counter & 255;
    tbs[7] = device.stepSeconds;
    tbs.set(cred, 8);
    const sig = sm2.doSignature(Array.from(tbs), device.privateKey,
      { hash: true, der: false, userId: "YBECERT-CODE-V1", publicKey: device.publicKey });
    const all = new Uint8Array(tbs.length + 64);
    all.set(tbs, 0);
    all.set(fromHex(sig.padStart(128, "0")), tbs.length);
    return "YB1:" + base45(all);
  }

  // newKey makes a device key pair: {privateKey, publicKey} in hex, the
  // public key as the 65-byte uncompressed point.
  function newKey() {
    const k = sm2.generateKeyPairHex();
    return { privateKey: k.privateKey, publicKey: k.publicKey };
  }

  return { generate, newKey, base45 };
});
