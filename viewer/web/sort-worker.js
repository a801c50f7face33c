// Depth sort off the main thread. Receives the splat centres once, then view rows; answers with
// the indices of the splats in front of the near plane, farthest first (back-to-front blending
// gives the same image as the CPU renderer's front-to-back compositing).
//
// Keys are the float bits of the camera-space depth (positive floats order like their bits), sorted
// by a stable two-pass 16-bit radix sort, so equal depths keep index order exactly as splat-core's
// (depth bits, index) keys do; the list is then walked backwards.
'use strict';
let means = null;
let n = 0;
let keys = null, idxA = null, idxB = null;
const counts = new Uint32Array(65536);

function sort(view, near) {
  // The CPU renderer converts the camera to float32 before use.
  const [r0, r1, r2, t] = view.map(Math.fround);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let m = 0;
  for (let i = 0; i < n; i++) {
    // Same arithmetic order as the renderer: W mu then + t, in float32.
    f[0] = Math.fround(Math.fround(Math.fround(r0 * means[3 * i]) + Math.fround(r1 * means[3 * i + 1])) +
      Math.fround(r2 * means[3 * i + 2]));
    f[0] = f[0] + t;
    const z = f[0];
    if (z > Math.fround(near)) {
      keys[m] = u[0];
      idxA[m] = i;
      m++;
    }
  }
  // Pass 1: low 16 bits, idxA -> idxB (keys carried through a parallel array).
  const keysB = new Uint32Array(m);
  counts.fill(0);
  for (let i = 0; i < m; i++) counts[keys[i] & 0xffff]++;
  let sum = 0;
  for (let b = 0; b < 65536; b++) { const c = counts[b]; counts[b] = sum; sum += c; }
  for (let i = 0; i < m; i++) {
    const d = counts[keys[i] & 0xffff]++;
    idxB[d] = idxA[i];
    keysB[d] = keys[i];
  }
  // Pass 2: high 16 bits, idxB -> out, then reversed (farthest first).
  counts.fill(0);
  for (let i = 0; i < m; i++) counts[keysB[i] >>> 16]++;
  sum = 0;
  for (let b = 0; b < 65536; b++) { const c = counts[b]; counts[b] = sum; sum += c; }
  const out = new Uint32Array(m);
  for (let i = 0; i < m; i++) {
    const d = counts[keysB[i] >>> 16]++;
    out[m - 1 - d] = idxB[i];
  }
  return out;
}

self.onmessage = (e) => {
  const msg = e.data;
  if (msg.means) {
    means = msg.means;
    n = means.length / 3;
    keys = new Uint32Array(n);
    idxA = new Uint32Array(n);
    idxB = new Uint32Array(n);
    return;
  }
  const t0 = performance.now();
  const order = sort(msg.view, msg.near);
  self.postMessage({ id: msg.id, model: msg.model, order, ms: performance.now() - t0 }, [order.buffer]);
};
