// Checks the flow page's QR encoder (src/http/qr.js) against an independent decoder:
// encodes texts whose lengths reach every version from 1 to 40 (and the page's real use,
// TOTP `otpauth://` URLs with non-ASCII user names), renders each as a PGM image and
// decodes it with zbarimg (Debian's zbar-tools); the decoded text must be the input.
//
// Needs no server. Exits 0 on success, 1 otherwise.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = readFileSync(join(ROOT, "src/http/qr.js"), "utf8");
const qr = vm.runInNewContext(`${source}\nauthflowQr`, { TextEncoder });

// Byte-mode capacity at level M for the last version of each group of the encoder's
// count-field widths, plus a few in between: every length below decodes only if the
// version tables, block interleaving and placement are right for the version chosen.
const CAPACITY_M = [14, 26, 42, 62, 84, 106, 122, 152, 180, 213, 251, 287, 331, 362, 412, 450, 504, 560, 624, 666,
  711, 779, 857, 911, 997, 1059, 1125, 1190, 1264, 1370, 1452, 1538, 1628, 1722, 1809, 1911, 1989, 2099, 2213, 2331];

function pgm(matrix, scale) {
  const side = (matrix.length + 8) * scale;
  const pixels = Buffer.alloc(side * side, 255);
  matrix.forEach((row, y) => row.forEach((on, x) => {
    if (!on) return;
    for (let dy = 0; dy < scale; dy++) {
      pixels.fill(0, ((y + 4) * scale + dy) * side + (x + 4) * scale, ((y + 4) * scale + dy) * side + (x + 5) * scale);
    }
  }));
  return Buffer.concat([Buffer.from(`P5\n${side} ${side}\n255\n`), pixels]);
}

function text(length, seed) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?&=%";
  let s = "";
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    s += alphabet[x % alphabet.length];
  }
  return s;
}

const cases = [
  "otpauth://totp/authentik:akadmin?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30&issuer=authentik",
  "otpauth://totp/authflow%20%C3%A9:j%C3%BCrgen%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=8&period=30&issuer=authflow%20%C3%A9",
  "jürgen ✓ 日本",
  "a",
];
CAPACITY_M.forEach((cap, i) => {
  cases.push(text(cap, i + 1));
  if (i % 4 === 0 && cap > 20) cases.push(text(cap - 7, i + 100));
});

const dir = mkdtempSync(join(tmpdir(), "authflow-qr-"));
let failed = 0;
try {
  for (const [i, t] of cases.entries()) {
    const m = qr.encode(t);
    const version = (m.length - 17) / 4;
    const file = join(dir, `${i}.pgm`);
    writeFileSync(file, pgm(m, m.length > 100 ? 3 : 4));
    let out = "";
    try {
      out = execFileSync("zbarimg", ["--raw", "-q", "-Sbinary", file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch (e) {
      out = `(zbarimg failed: ${e.status})`;
    }
    if (out.replace(/\n$/, "") !== t) {
      failed++;
      console.log(`  FAIL version ${version}, ${t.length} chars: decoded ${JSON.stringify(out.slice(0, 60))}`);
    } else {
      console.log(`  ok   version ${version}, ${Buffer.byteLength(t)} bytes`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`qr-check: ${cases.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
