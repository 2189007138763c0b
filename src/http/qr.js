// A small QR code encoder for the flow page (ISO/IEC 18004): byte mode, error
// correction level M, versions 1–40, the mask with the lowest penalty. It draws the
// TOTP setup's `config_url` as an inline SVG, in the browser, so the secret in that URL
// never leaves the page (no image URL, no server log). Inlined into page.html under the
// page's CSP nonce; e2e/qr-check.mjs decodes its output with zbarimg.
"use strict";
const authflowQr = (function () {
  // Error-correction codewords per block and number of blocks, level M, by version.
  const ECC_PER_BLOCK = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26,
    28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28];
  const BLOCKS = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23,
    25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49];
  const LEVEL_M_BITS = 0; // format-information bits of level M

  // Modules available for data and error correction (function patterns excluded).
  function rawModules(ver) {
    let n = (16 * ver + 128) * ver + 64;
    if (ver >= 2) {
      const align = Math.floor(ver / 7) + 2;
      n -= (25 * align - 10) * align - 55;
      if (ver >= 7) n -= 36;
    }
    return n;
  }
  function dataCodewords(ver) {
    return Math.floor(rawModules(ver) / 8) - ECC_PER_BLOCK[ver] * BLOCKS[ver];
  }

  // GF(256) arithmetic over x^8 + x^4 + x^3 + x^2 + 1.
  function gfMul(a, b) {
    let r = 0;
    for (let i = 7; i >= 0; i--) {
      r = (r << 1) ^ ((r >>> 7) * 0x11d);
      r ^= ((b >>> i) & 1) * a;
    }
    return r & 0xff;
  }
  // Coefficients of the generator polynomial of degree `n`, highest first, leading 1 dropped.
  function generator(n) {
    const g = new Array(n).fill(0);
    g[n - 1] = 1;
    let root = 1;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        g[j] = gfMul(g[j], root);
        if (j + 1 < n) g[j] ^= g[j + 1];
      }
      root = gfMul(root, 0x02);
    }
    return g;
  }
  function remainder(data, gen) {
    const r = new Array(gen.length).fill(0);
    for (const b of data) {
      const factor = b ^ r.shift();
      r.push(0);
      for (let i = 0; i < gen.length; i++) r[i] ^= gfMul(gen[i], factor);
    }
    return r;
  }

  // Data codewords split into blocks, each followed by its ECC, then interleaved.
  function interleave(data, ver) {
    const blocks = BLOCKS[ver];
    const eccLen = ECC_PER_BLOCK[ver];
    const raw = Math.floor(rawModules(ver) / 8);
    const shortBlocks = blocks - (raw % blocks);
    const shortLen = Math.floor(raw / blocks);
    const gen = generator(eccLen);
    const parts = [];
    for (let i = 0, k = 0; i < blocks; i++) {
      const len = shortLen - eccLen + (i < shortBlocks ? 0 : 1);
      const d = data.slice(k, k + len);
      k += len;
      parts.push({ d, e: remainder(d, gen) });
    }
    const out = [];
    const longest = shortLen - eccLen + 1;
    for (let i = 0; i < longest; i++) for (const p of parts) if (i < p.d.length) out.push(p.d[i]);
    for (let i = 0; i < eccLen; i++) for (const p of parts) out.push(p.e[i]);
    return out;
  }

  function encodeData(bytes) {
    for (let ver = 1; ver <= 40; ver++) {
      const countBits = ver < 10 ? 8 : 16;
      const capacity = dataCodewords(ver) * 8;
      if (4 + countBits + bytes.length * 8 > capacity) continue;
      const bits = [];
      const put = (value, n) => { for (let i = n - 1; i >= 0; i--) bits.push((value >>> i) & 1); };
      put(0x4, 4);
      put(bytes.length, countBits);
      for (const b of bytes) put(b, 8);
      put(0, Math.min(4, capacity - bits.length));
      put(0, (8 - (bits.length % 8)) % 8);
      for (let pad = 0xec; bits.length < capacity; pad ^= 0xec ^ 0x11) put(pad, 8);
      const words = [];
      for (let i = 0; i < bits.length; i += 8) words.push(parseInt(bits.slice(i, i + 8).join(""), 2));
      return { ver, words };
    }
    throw new Error("text too long for a QR code");
  }

  function alignmentPositions(ver) {
    if (ver === 1) return [];
    const count = Math.floor(ver / 7) + 2;
    const size = ver * 4 + 17;
    const step = ver === 32 ? 26 : Math.ceil((ver * 4 + 4) / (count * 2 - 2)) * 2;
    const pos = [6];
    for (let p = size - 7; pos.length < count; p -= step) pos.splice(1, 0, p);
    return pos;
  }

  // BCH code of `value` (`bits` long) with generator `poly` of degree `degree`.
  function bch(value, poly, degree) {
    let r = value;
    for (let i = 0; i < degree; i++) r = (r << 1) ^ ((r >>> (degree - 1)) * poly);
    return (value << degree) | (r & ((1 << degree) - 1));
  }

  const MASKS = [
    (x, y) => (x + y) % 2 === 0,
    (x, y) => y % 2 === 0,
    (x) => x % 3 === 0,
    (x, y) => (x + y) % 3 === 0,
    (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
    (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
    (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
    (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
  ];

  function build(ver, codewords, mask) {
    const size = ver * 4 + 17;
    const dark = Array.from({ length: size }, () => new Array(size).fill(false));
    const fixed = Array.from({ length: size }, () => new Array(size).fill(false));
    const set = (x, y, on) => { dark[y][x] = on; fixed[y][x] = true; };

    for (let i = 0; i < size; i++) { set(6, i, i % 2 === 0); set(i, 6, i % 2 === 0); }
    for (const [cx, cy] of [[3, 3], [size - 4, 3], [3, size - 4]]) {
      for (let dy = -4; dy <= 4; dy++) {
        for (let dx = -4; dx <= 4; dx++) {
          const x = cx + dx, y = cy + dy;
          if (x < 0 || y < 0 || x >= size || y >= size) continue;
          const d = Math.max(Math.abs(dx), Math.abs(dy));
          set(x, y, d !== 2 && d !== 4);
        }
      }
    }
    const align = alignmentPositions(ver);
    for (const ax of align) {
      for (const ay of align) {
        if ((ax === 6 && ay === 6) || (ax === 6 && ay === size - 7) || (ax === size - 7 && ay === 6)) continue;
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) set(ax + dx, ay + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
        }
      }
    }
    const format = bch((LEVEL_M_BITS << 3) | mask, 0x537, 10) ^ 0x5412;
    const fbit = (i) => ((format >>> i) & 1) === 1;
    for (let i = 0; i <= 5; i++) set(8, i, fbit(i));
    set(8, 7, fbit(6));
    set(8, 8, fbit(7));
    set(7, 8, fbit(8));
    for (let i = 9; i < 15; i++) set(14 - i, 8, fbit(i));
    for (let i = 0; i < 8; i++) set(size - 1 - i, 8, fbit(i));
    for (let i = 8; i < 15; i++) set(8, size - 15 + i, fbit(i));
    set(8, size - 8, true);
    if (ver >= 7) {
      const v = bch(ver, 0x1f25, 12);
      for (let i = 0; i < 18; i++) {
        const on = ((v >>> i) & 1) === 1;
        const a = size - 11 + (i % 3), b = Math.floor(i / 3);
        set(a, b, on);
        set(b, a, on);
      }
    }

    let i = 0;
    for (let right = size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      const upward = ((right + 1) & 2) === 0;
      for (let vert = 0; vert < size; vert++) {
        const y = upward ? size - 1 - vert : vert;
        for (let j = 0; j < 2; j++) {
          const x = right - j;
          if (fixed[y][x]) continue;
          let on = false;
          if (i < codewords.length * 8) on = ((codewords[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
          i++;
          dark[y][x] = on !== MASKS[mask](x, y);
        }
      }
    }
    return dark;
  }

  // The standard's penalty score: runs, 2×2 blocks, finder-like patterns, balance.
  function penalty(m) {
    const size = m.length;
    let score = 0;
    const lines = [];
    for (let y = 0; y < size; y++) lines.push(m[y]);
    for (let x = 0; x < size; x++) lines.push(m.map((row) => row[x]));
    for (const line of lines) {
      let run = 1;
      for (let i = 1; i <= size; i++) {
        if (i < size && line[i] === line[i - 1]) { run++; continue; }
        if (run >= 5) score += run - 2;
        run = 1;
      }
      const s = line.map((d) => (d ? "1" : "0")).join("");
      for (const p of ["10111010000", "00001011101"]) {
        for (let k = s.indexOf(p); k !== -1; k = s.indexOf(p, k + 1)) score += 40;
      }
    }
    for (let y = 0; y + 1 < size; y++) {
      for (let x = 0; x + 1 < size; x++) {
        const c = m[y][x];
        if (c === m[y][x + 1] && c === m[y + 1][x] && c === m[y + 1][x + 1]) score += 3;
      }
    }
    let darkCount = 0;
    for (const row of m) for (const d of row) if (d) darkCount++;
    const total = size * size;
    score += Math.floor(Math.abs(darkCount * 20 - total * 10) / total) * 10;
    return score;
  }

  /** The modules of `text` (UTF-8) as rows of booleans (true = dark). */
  function encode(text) {
    const bytes = Array.from(new TextEncoder().encode(text));
    const { ver, words } = encodeData(bytes);
    const codewords = interleave(words, ver);
    let best = null, bestScore = Infinity;
    for (let mask = 0; mask < 8; mask++) {
      const m = build(ver, codewords, mask);
      const s = penalty(m);
      if (s < bestScore) { best = m; bestScore = s; }
    }
    return best;
  }

  /** `text` as an `<svg>` element (4-module quiet zone, one path). */
  function svg(text, label) {
    const m = encode(text);
    const ns = "http://www.w3.org/2000/svg";
    const side = m.length + 8;
    const root = document.createElementNS(ns, "svg");
    root.setAttribute("viewBox", "0 0 " + side + " " + side);
    root.setAttribute("shape-rendering", "crispEdges");
    root.setAttribute("role", "img");
    root.setAttribute("aria-label", label || "QR code");
    const bg = document.createElementNS(ns, "rect");
    bg.setAttribute("width", side);
    bg.setAttribute("height", side);
    bg.setAttribute("fill", "#fff");
    root.appendChild(bg);
    let d = "";
    m.forEach((row, y) => row.forEach((on, x) => { if (on) d += "M" + (x + 4) + " " + (y + 4) + "h1v1h-1z"; }));
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "#000");
    root.appendChild(path);
    return root;
  }

  return { encode, svg };
})();
