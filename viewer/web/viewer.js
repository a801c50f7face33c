// spaceport view: a WebGL2 Gaussian splat renderer for SOG v2 and 3DGS PLY.
//
// Image formation follows splat-core's CPU renderer (splat-core/src/render): OpenCV pinhole
// cameras (x right, y down, z forward; world-to-camera R, t), EWA projection with the Jacobian
// clamped to a 30 % guard band, a 0.3 px² low-pass, the 3-sigma radius rounded out to 16 px tiles,
// alpha = min(0.99, o·exp(power)) skipped below 1/255, SH colour + 0.5 clamped below at 0, and
// depth order by camera-space z. Splats are drawn back to front into a float target (the same
// sum as front-to-back compositing) and copied to the canvas.
'use strict';

const $ = (id) => document.getElementById(id);
// report.html inlines the model, the scene description and the worker (no server there).
const EMBED = window.SPACEPORT_EMBED || null;
const Q = new URLSearchParams((() => {
  if (!EMBED) return location.search;
  try { return window.parent.location.search; } catch (_) { return ''; }
})());
const errors = [];
{
  const orig = console.error.bind(console);
  console.error = (...a) => { errors.push(a.map(String).join(' ')); orig(...a); };
  window.addEventListener('error', (e) => errors.push('uncaught: ' + e.message));
  window.addEventListener('unhandledrejection', (e) =>
    errors.push('unhandled rejection: ' + ((e.reason && e.reason.message) || e.reason)));
}

const SH_C0 = 0.28209479177387814;
const NEAR = 0.01;
const GUARD = 0.3;

// ---------------------------------------------------------------- messages and reports

async function postReport(obj) {
  if (Q.get('report') !== '1') return;
  try {
    await fetch('/api/report', { method: 'POST', body: JSON.stringify(obj) });
  } catch (_) { /* the test notices the missing report */ }
}

function showMessage(text, info) {
  const m = $('msg');
  m.textContent = text;
  m.className = info ? 'info' : '';
  m.style.display = text ? 'block' : 'none';
}

let failed = false;
function fail(text) {
  failed = true;
  showMessage(text, false);
  document.title = 'error: ' + text;
  console.info('spaceport-view status: ' + document.title);
  const m = $('msg');
  postReport({ status: 'error: ' + text, message: m.textContent, shown: getComputedStyle(m).display !== 'none', errors });
}

class ViewerError extends Error {}
const bad = (text) => new ViewerError(text);

// ---------------------------------------------------------------- fetching

async function fetchBytes(url, label) {
  if (EMBED) {
    const b64 = EMBED.files[url];
    if (b64 === undefined) throw bad(`${label}: not embedded in this report`);
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  let r;
  try {
    r = await fetch(url);
  } catch (e) {
    throw bad(`${label}: cannot fetch (${e.message})`);
  }
  if (!r.ok) throw bad(`${label}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

// ---------------------------------------------------------------- ZIP (the .sog bundle)

async function unzip(bytes, label) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  let eocd = -1;
  for (let i = len - 22; i >= Math.max(0, len - 22 - 65535); i--) {
    if (dv.getUint32(i, true) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw bad(`${label}: truncated or not a .sog bundle (no ZIP end-of-central-directory record)`);
  const entries = dv.getUint16(eocd + 10, true);
  const cdSize = dv.getUint32(eocd + 12, true);
  const cdOff = dv.getUint32(eocd + 16, true);
  if (cdOff + cdSize > eocd) throw bad(`${label}: truncated or corrupt (central directory outside the file)`);
  const files = new Map();
  let p = cdOff;
  for (let k = 0; k < entries; k++) {
    if (p + 46 > eocd || dv.getUint32(p, true) !== 0x02014b50) throw bad(`${label}: corrupt central directory entry ${k}`);
    const method = dv.getUint16(p + 10, true);
    const csize = dv.getUint32(p + 20, true);
    const usize = dv.getUint32(p + 24, true);
    const nlen = dv.getUint16(p + 28, true), xlen = dv.getUint16(p + 30, true), clen = dv.getUint16(p + 32, true);
    const local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nlen));
    p += 46 + nlen + xlen + clen;
    if (local + 30 > len || dv.getUint32(local, true) !== 0x04034b50) throw bad(`${label}: ${name}: corrupt local header`);
    const start = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    if (start + csize > len) throw bad(`${label}: ${name}: truncated (entry runs past the end of the file)`);
    const raw = bytes.subarray(start, start + csize);
    let data;
    if (method === 0) data = raw;
    else if (method === 8) {
      const ds = new Blob([raw]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
      data = new Uint8Array(await new Response(ds).arrayBuffer());
    } else throw bad(`${label}: ${name}: unsupported ZIP compression method ${method}`);
    if (data.length !== usize) throw bad(`${label}: ${name}: size ${data.length}, directory says ${usize}`);
    files.set(name, data);
  }
  return files;
}

// ---------------------------------------------------------------- WebP -> exact bytes

// Lossless WebP decoded by the browser, read back through a texture so that no colour management
// or alpha premultiplication touches the bytes (they are indices and quantised values).
async function decodeImage(gl, bytes, label) {
  let bmp;
  try {
    bmp = await createImageBitmap(new Blob([bytes], { type: 'image/webp' }),
      { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch (e) {
    throw bad(`${label}: not a decodable WebP image (${e.message})`);
  }
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
  gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
  gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, bmp);
  const fb = gl.createFramebuffer();
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
  const w = bmp.width, h = bmp.height;
  const out = new Uint8Array(w * h * 4);
  gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, out);
  gl.bindFramebuffer(gl.FRAMEBUFFER, null);
  gl.deleteFramebuffer(fb);
  gl.deleteTexture(tex);
  bmp.close();
  return { width: w, height: h, data: out };
}

// ---------------------------------------------------------------- SOG v2

function shCoeffs(deg) { return (deg + 1) * (deg + 1); }

// The image readers of a SOG folder: `img` decodes a file, `perSplat` also checks that it holds a
// texel for each of the `n` Gaussians and returns its RGBA bytes.
function sogImages(gl, getFile, label, n) {
  const img = async (name) => decodeImage(gl, await getFile(name), `${label}: ${name}`);
  const perSplat = async (name) => {
    const im = await img(name);
    if (im.width * im.height < n) throw bad(`${label}: ${name}: ${im.width}x${im.height} texels cannot hold ${n} Gaussians`);
    return im.data;
  };
  return { img, perSplat };
}

// Zeroed arrays for `n` Gaussians of SH degree `deg`.
function newGaussians(n, deg) {
  const nc = shCoeffs(deg);
  return {
    n, degree: deg,
    means: new Float32Array(3 * n), logScales: new Float32Array(3 * n), quats: new Float32Array(4 * n),
    opacity: new Float32Array(n), sh: new Float32Array(n * nc * 3),
  };
}

// Gaussian i's position: 16 bits per axis split over the `lo` and `hi` images, spread over
// mins..maxs in log space (sign(v) * (e^|v| - 1) undoes it).
function decodeMean(g, i, lo, hi, mins, maxs) {
  for (let a = 0; a < 3; a++) {
    const q = lo[4 * i + a] | (hi[4 * i + a] << 8);
    let span = maxs[a] - mins[a];
    if (span === 0) span = 1;
    const v = mins[a] + span * (q / 65535);
    g.means[3 * i + a] = Math.sign(v) * Math.expm1(Math.abs(v));
  }
}

// Gaussian i's rotation: the three smallest components in RGB, the index m of the largest as
// 252 + m in alpha (the largest is recovered from the unit norm).
function decodeQuat(g, i, qd, label) {
  const tag = qd[4 * i + 3];
  if (tag < 252) throw bad(`${label}: Gaussian ${i}: quaternion tag ${tag} is not 252..255`);
  const m = tag - 252;
  let j = 0, ss = 0;
  for (let k = 0; k < 4; k++) {
    if (k === m) continue;
    const c = (qd[4 * i + j] / 255 * 2 - 1) / Math.SQRT2;
    g.quats[4 * i + k] = c;
    ss += c * c;
    j++;
  }
  g.quats[4 * i + m] = Math.sqrt(Math.max(0, 1 - ss));
}

async function readSog(gl, getFile, label) {
  const metaBytes = await getFile('meta.json');
  let meta;
  try {
    meta = JSON.parse(new TextDecoder().decode(metaBytes));
  } catch (e) {
    throw bad(`${label}: meta.json is not valid JSON (${e.message})`);
  }
  if (meta.version === undefined) return readSogV1(gl, getFile, label, meta);
  if (meta.version !== 2) throw bad(`${label}: SOG version ${meta.version} (1 and 2 are supported)`);
  const n = meta.count;
  if (!Number.isInteger(n) || n <= 0) throw bad(`${label}: meta.json count ${n} is not a positive integer`);
  const need = (obj, what, k) => {
    if (!obj || !Array.isArray(obj.files) || obj.files.length < k) throw bad(`${label}: meta.json: \`${what}.files\` needs ${k} entries`);
    return obj.files;
  };
  const cb = (obj, what) => {
    const c = obj && obj.codebook;
    if (!Array.isArray(c) || c.length < 1 || c.length > 256 || c.some((v) => typeof v !== 'number' || !isFinite(v))) {
      throw bad(`${label}: meta.json: \`${what}.codebook\` must hold 1..256 finite numbers`);
    }
    return c;
  };
  const { img, perSplat } = sogImages(gl, getFile, label, n);
  const mf = need(meta.means, 'means', 2);
  const mins = meta.means.mins, maxs = meta.means.maxs;
  if (![mins, maxs].every((a) => Array.isArray(a) && a.length === 3 && a.every(isFinite))) throw bad(`${label}: meta.json: means mins/maxs must be 3 finite numbers`);
  const lo = await perSplat(mf[0]), hi = await perSplat(mf[1]);
  const qd = await perSplat(need(meta.quats, 'quats', 1)[0]);
  const scb = cb(meta.scales, 'scales');
  const sd = await perSplat(need(meta.scales, 'scales', 1)[0]);
  const ccb = cb(meta.sh0, 'sh0');
  const cd = await perSplat(need(meta.sh0, 'sh0', 1)[0]);
  const shn = meta.shN;
  const deg = shn ? shn.bands : 0;
  if (!(deg >= 0 && deg <= 3)) throw bad(`${label}: meta.json: shN.bands ${deg} (1..3)`);
  const nc = shCoeffs(deg);
  const g = newGaussians(n, deg);
  for (let i = 0; i < n; i++) {
    decodeMean(g, i, lo, hi, mins, maxs);
    decodeQuat(g, i, qd, label);
    for (let a = 0; a < 3; a++) {
      const si = sd[4 * i + a], ci = cd[4 * i + a];
      if (si >= scb.length || ci >= ccb.length) throw bad(`${label}: Gaussian ${i}: codebook index beyond the codebook`);
      g.logScales[3 * i + a] = scb[si];
      g.sh[i * nc * 3 + a] = ccb[ci];
    }
    g.opacity[i] = Math.min(Math.max(cd[4 * i + 3] / 255, 1e-6), 1 - 1e-6);
  }
  if (deg > 0) {
    const ncb = cb(shn, 'shN');
    const files = need(shn, 'shN', 2);
    const k = nc - 1;
    const cen = await img(files[0]);
    if (cen.width !== 64 * k) throw bad(`${label}: ${files[0]}: centroid image is ${cen.width} wide; ${deg} bands need ${64 * k}`);
    if (!(shn.count <= 64 * cen.height)) throw bad(`${label}: ${files[0]}: ${cen.height} rows cannot hold ${shn.count} palette entries`);
    const lab = await perSplat(files[1]);
    for (let i = 0; i < n; i++) {
      const l = lab[4 * i] | (lab[4 * i + 1] << 8);
      if (l >= shn.count) throw bad(`${label}: Gaussian ${i}: SH label ${l} beyond the ${shn.count}-entry palette`);
      const x0 = (l % 64) * k, y = Math.floor(l / 64);
      for (let jj = 0; jj < k; jj++) {
        const t = 4 * (y * cen.width + x0 + jj);
        for (let ch = 0; ch < 3; ch++) {
          const b = cen.data[t + ch];
          if (b >= ncb.length) throw bad(`${label}: Gaussian ${i}: SH codebook index beyond the codebook`);
          g.sh[(i * nc + 1 + jj) * 3 + ch] = ncb[b];
        }
      }
    }
  }
  return g;
}

// SOG v1 (the original SOGS layout, no `version` key): per-channel min/max instead of codebooks,
// opacity as a logit in sh0's alpha, SH palette bands told by the centroid image width.
async function readSogV1(gl, getFile, label, meta) {
  const n = meta.means && Array.isArray(meta.means.shape) ? meta.means.shape[0] : undefined;
  if (!Number.isInteger(n) || n <= 0) throw bad(`${label}: meta.json (SOG v1): means.shape[0] is not a positive count`);
  const range = (obj, what, k) => {
    const ok = (a) => (k === 1 ? typeof a === 'number' && isFinite(a) : Array.isArray(a) && a.length >= k && a.every(isFinite));
    if (!obj || !ok(obj.mins) || !ok(obj.maxs) || !Array.isArray(obj.files) || !obj.files.length) {
      throw bad(`${label}: meta.json (SOG v1): \`${what}\` needs mins, maxs and files`);
    }
    return obj;
  };
  const { img, perSplat } = sogImages(gl, getFile, label, n);
  const lerp = (b, lo, hi) => lo + (hi - lo) * (b / 255);
  const mm = range(meta.means, 'means', 3), sm = range(meta.scales, 'scales', 3), cm = range(meta.sh0, 'sh0', 4);
  if (mm.files.length < 2) throw bad(`${label}: meta.json (SOG v1): means needs two files`);
  const quatFiles = Array.isArray(meta.quats) ? meta.quats : meta.quats && meta.quats.files;
  if (!Array.isArray(quatFiles) || !quatFiles.length) throw bad(`${label}: meta.json (SOG v1): quats needs a file`);
  const lo = await perSplat(mm.files[0]), hi = await perSplat(mm.files[1]);
  const qd = await perSplat(quatFiles[0]), sd = await perSplat(sm.files[0]), cd = await perSplat(cm.files[0]);
  let deg = 0, cen = null;
  const shn = meta.shN;
  if (shn) {
    range(shn, 'shN', 1);
    if (shn.files.length < 2) throw bad(`${label}: meta.json (SOG v1): shN needs two files`);
    cen = await img(shn.files[0]);
    deg = { 192: 1, 512: 2, 960: 3 }[cen.width];
    if (!deg) throw bad(`${label}: ${shn.files[0]}: centroid image is ${cen.width} wide; expected 192, 512 or 960`);
  }
  const nc = shCoeffs(deg);
  const g = newGaussians(n, deg);
  for (let i = 0; i < n; i++) {
    decodeMean(g, i, lo, hi, mm.mins, mm.maxs);
    for (let a = 0; a < 3; a++) {
      g.logScales[3 * i + a] = lerp(sd[4 * i + a], sm.mins[a], sm.maxs[a]);
      g.sh[i * nc * 3 + a] = lerp(cd[4 * i + a], cm.mins[a], cm.maxs[a]);
    }
    const logit = Math.fround(lerp(cd[4 * i + 3], cm.mins[3], cm.maxs[3]));
    g.opacity[i] = 1 / (1 + Math.exp(-logit));
    decodeQuat(g, i, qd, label);
  }
  if (deg > 0) {
    const k = nc - 1, palette = 64 * cen.height;
    const lab = await perSplat(shn.files[1]);
    for (let i = 0; i < n; i++) {
      const l = lab[4 * i] | (lab[4 * i + 1] << 8);
      if (l >= palette) throw bad(`${label}: Gaussian ${i}: SH label ${l} beyond the ${palette}-entry palette`);
      const x0 = (l % 64) * k, y = Math.floor(l / 64);
      for (let jj = 0; jj < k; jj++) {
        const t = 4 * (y * cen.width + x0 + jj);
        for (let ch = 0; ch < 3; ch++) g.sh[(i * nc + 1 + jj) * 3 + ch] = lerp(cen.data[t + ch], shn.mins, shn.maxs);
      }
    }
  }
  return g;
}

// ---------------------------------------------------------------- PLY

const PLY_TYPES = {
  char: ['getInt8', 1], int8: ['getInt8', 1], uchar: ['getUint8', 1], uint8: ['getUint8', 1],
  short: ['getInt16', 2], int16: ['getInt16', 2], ushort: ['getUint16', 2], uint16: ['getUint16', 2],
  int: ['getInt32', 4], int32: ['getInt32', 4], uint: ['getUint32', 4], uint32: ['getUint32', 4],
  float: ['getFloat32', 4], float32: ['getFloat32', 4], double: ['getFloat64', 8], float64: ['getFloat64', 8],
};

function parsePly(bytes, label) {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, Math.min(bytes.length, 65536)));
  const endTag = head.indexOf('end_header');
  if (!head.startsWith('ply') || endTag < 0) throw bad(`${label}: not a PLY file (no ply/end_header header)`);
  let bodyStart = endTag + 'end_header'.length;
  if (head[bodyStart] === '\r') bodyStart++;
  if (head[bodyStart] !== '\n') throw bad(`${label}: bad PLY header end`);
  bodyStart++;
  const lines = head.slice(0, endTag).split(/\r?\n/);
  let format = null;
  const elements = [];
  for (const line of lines) {
    const w = line.trim().split(/\s+/);
    if (w[0] === 'format') format = w[1];
    else if (w[0] === 'element') elements.push({ name: w[1], count: parseInt(w[2], 10), props: [] });
    else if (w[0] === 'property') {
      const el = elements[elements.length - 1];
      if (!el) throw bad(`${label}: property before any element`);
      if (w[1] === 'list') el.list = true;
      else if (!PLY_TYPES[w[1]]) throw bad(`${label}: unknown PLY property type ${w[1]}`);
      else el.props.push({ name: w[2], type: w[1] });
    }
  }
  if (format !== 'binary_little_endian' && format !== 'binary_big_endian') {
    throw bad(`${label}: PLY format ${format} not supported by the viewer (binary only)`);
  }
  const little = format === 'binary_little_endian';
  let off = bodyStart;
  let vertex = null, vOff = 0, stride = 0;
  for (const el of elements) {
    const s = el.props.reduce((a, p) => a + PLY_TYPES[p.type][1], 0);
    if (el.name === 'vertex') { vertex = el; vOff = off; stride = s; break; }
    if (el.list) throw bad(`${label}: list properties before the vertex element are not supported`);
    off += s * el.count;
  }
  if (!vertex) throw bad(`${label}: no vertex element`);
  if (vertex.list) throw bad(`${label}: list property in the vertex element`);
  const n = vertex.count;
  if (!(n > 0)) throw bad(`${label}: holds no Gaussians`);
  if (vOff + stride * n > bytes.length) {
    throw bad(`${label}: truncated: header promises ${stride * n} bytes of vertex data, file has ${bytes.length - vOff}`);
  }
  const col = {};
  let o = 0;
  for (const p of vertex.props) { col[p.name] = { off: o, t: PLY_TYPES[p.type] }; o += PLY_TYPES[p.type][1]; }
  const req = ['x', 'y', 'z', 'f_dc_0', 'f_dc_1', 'f_dc_2', 'opacity', 'scale_0', 'scale_1', 'scale_2', 'rot_0', 'rot_1', 'rot_2', 'rot_3'];
  for (const r of req) if (!col[r]) throw bad(`${label}: missing vertex property \`${r}\``);
  let nrest = 0;
  while (col['f_rest_' + nrest]) nrest++;
  const degByRest = { 0: 0, 9: 1, 24: 2, 45: 3 };
  const deg = degByRest[nrest];
  if (deg === undefined) throw bad(`${label}: ${nrest} f_rest properties (0, 9, 24 or 45 expected)`);
  const nc = shCoeffs(deg), K = nc - 1;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const getter = (name) => {
    const c = col[name];
    const fn = DataView.prototype[c.t[0]];
    return (i) => fn.call(dv, vOff + i * stride + c.off, little);
  };
  const g = {
    n, degree: deg,
    means: new Float32Array(3 * n), logScales: new Float32Array(3 * n), quats: new Float32Array(4 * n),
    opacity: new Float32Array(n), sh: new Float32Array(n * nc * 3),
  };
  const check = (v, i, name) => {
    if (!Number.isFinite(v)) throw bad(`${label}: Gaussian ${i}: \`${name}\` is ${v} (NaN or infinite values cannot be shown)`);
    return v;
  };
  const fill = (name, arr, stepN, k) => {
    const get = getter(name);
    for (let i = 0; i < n; i++) arr[i * stepN + k] = check(get(i), i, name);
  };
  ['x', 'y', 'z'].forEach((nm, a) => fill(nm, g.means, 3, a));
  [0, 1, 2].forEach((a) => fill('scale_' + a, g.logScales, 3, a));
  [0, 1, 2, 3].forEach((a) => fill('rot_' + a, g.quats, 4, a));
  [0, 1, 2].forEach((a) => fill('f_dc_' + a, g.sh, nc * 3, a));
  for (let c = 0; c < 3; c++) for (let k = 0; k < K; k++) fill('f_rest_' + (c * K + k), g.sh, nc * 3, (1 + k) * 3 + c);
  const gop = getter('opacity');
  for (let i = 0; i < n; i++) {
    const x = Math.fround(check(gop(i), i, 'opacity'));
    g.opacity[i] = 1 / (1 + Math.exp(-x));
  }
  return g;
}

// ---------------------------------------------------------------- GPU data

// One RGBA32F texture, `stride` texels per splat: [mean, opacity], [Σ00 Σ01 Σ02 Σ11], [Σ12 Σ22 - -],
// then the SH coefficients (coefficient-major, RGB inner), 4 floats a texel.
function packSplats(gl, g) {
  const nc = shCoeffs(g.degree);
  const stride = 3 + Math.ceil(nc * 3 / 4);
  const maxTex = gl.getParameter(gl.MAX_TEXTURE_SIZE);
  const perRow = Math.floor(Math.min(4096, maxTex) / stride);
  const rows = Math.ceil(g.n / perRow);
  if (rows > maxTex) throw bad(`${g.n} Gaussians do not fit in this GPU's ${maxTex}px textures`);
  const width = perRow * stride;
  const buf = new Float32Array(width * rows * 4);
  for (let i = 0; i < g.n; i++) {
    const base = ((Math.floor(i / perRow) * width) + (i % perRow) * stride) * 4;
    buf[base] = g.means[3 * i]; buf[base + 1] = g.means[3 * i + 1]; buf[base + 2] = g.means[3 * i + 2];
    buf[base + 3] = g.opacity[i];
    // Σ = R S Sᵀ Rᵀ in float32 like the CPU renderer (quaternion normalised first).
    const f = Math.fround;
    let [w, x, y, z] = [g.quats[4 * i], g.quats[4 * i + 1], g.quats[4 * i + 2], g.quats[4 * i + 3]];
    const qn = f(Math.sqrt(f(f(f(w * w) + f(x * x)) + f(y * y)) + f(z * z)));
    w = f(w / qn); x = f(x / qn); y = f(y / qn); z = f(z / qn);
    const R = [
      [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ];
    const s = [Math.exp(g.logScales[3 * i]), Math.exp(g.logScales[3 * i + 1]), Math.exp(g.logScales[3 * i + 2])];
    const M = R.map((row) => row.map((v, k) => v * s[k]));
    const S = (a, b) => M[a][0] * M[b][0] + M[a][1] * M[b][1] + M[a][2] * M[b][2];
    buf[base + 4] = S(0, 0); buf[base + 5] = S(0, 1); buf[base + 6] = S(0, 2); buf[base + 7] = S(1, 1);
    buf[base + 8] = S(1, 2); buf[base + 9] = S(2, 2);
    const sh = g.sh.subarray(i * nc * 3, (i + 1) * nc * 3);
    buf.set(sh, base + 12);
  }
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, width, rows, 0, gl.RGBA, gl.FLOAT, buf);
  return { tex, stride, perRow };
}

// ---------------------------------------------------------------- shaders

// Projection of one splat (shared by the one-pass vertex shader and the per-splat pre-pass).
const PROJECT_GLSL = `
precision highp float;
precision highp int;
precision highp sampler2D;
uniform sampler2D u_data;
uniform int u_stride, u_perRow, u_deg;
uniform mat3 u_W;
uniform vec3 u_t, u_center;
uniform vec4 u_intr;
uniform vec2 u_size;
uniform vec4 u_lim;
uniform float u_scale2, u_near;
uniform bool u_points;

vec4 fetch(int i, int k) {
  return texelFetch(u_data, ivec2((i % u_perRow) * u_stride + k, i / u_perRow), 0);
}

// False for a splat the CPU renderer culls; else its quad box [lo, hi] in pixels, centre,
// conic, opacity and SH colour.
// axes: the alpha ellipse's major-axis angle and semi-axes (pixels); semi-axis < 0 means the
// box is the smaller cover.
bool projectSplat(int i, out vec4 box, out vec2 mean, out vec3 conic, out float opacity, out vec3 color, out vec3 axes) {
  vec4 p0 = fetch(i, 0);
  vec3 mu = p0.xyz;
  vec3 t = u_W * mu + u_t;
  if (!(t.z > u_near)) return false;
  vec4 c0 = fetch(i, 1), c1 = fetch(i, 2);
  mat3 S = mat3(c0.x, c0.y, c0.z, c0.y, c0.w, c1.x, c0.z, c1.x, c1.y) * u_scale2;
  mat3 C = u_W * S * transpose(u_W);
  float fx = u_intr.x, fy = u_intr.y;
  float xc = clamp(t.x / t.z, u_lim.x, u_lim.y), yc = clamp(t.y / t.z, u_lim.z, u_lim.w);
  float z2 = t.z * t.z;
  vec3 j0 = vec3(fx / t.z, 0.0, -fx * (xc * t.z) / z2);
  vec3 j1 = vec3(0.0, fy / t.z, -fy * (yc * t.z) / z2);
  float a = dot(j0, C * j0) + 0.3;
  float b = dot(j0, C * j1);
  float c = dot(j1, C * j1) + 0.3;
  float op = p0.w;
  if (u_points) { a = 1.0; b = 0.0; c = 1.0; op = 1.0; }
  float det = a * c - b * b;
  if (!(det > 0.0)) return false;
  vec2 m = vec2(fx * t.x / t.z + u_intr.z, fy * t.y / t.z + u_intr.w);
  float mid = 0.5 * (a + c);
  float r = ceil(3.0 * sqrt(mid + sqrt(max(mid * mid - det, 0.1))));
  // The CPU renderer bins by the 3-sigma square rounded out to 16 px tiles; a pixel outside that
  // tile rectangle never sees the splat, even where its alpha would pass.
  vec2 tiles = ceil(u_size / 16.0);
  vec2 lo = clamp(floor((m - r) / 16.0), vec2(0.0), tiles) * 16.0;
  vec2 hi = clamp(ceil((m + r) / 16.0), vec2(0.0), tiles) * 16.0;
  float k = 2.0 * log(op * 255.0);
  if (!(k > 0.0) || lo.x >= hi.x || lo.y >= hi.y) return false;
  // Only the box where alpha can reach 1/255 needs fragments.
  vec2 h = sqrt(k * vec2(a, c)) * 1.001 + 1e-3;
  lo = max(lo, m - h);
  hi = min(hi, m + h);
  if (lo.x >= hi.x || lo.y >= hi.y) return false;
  box = vec4(lo, hi);
  // Thin splats: a quad along the ellipse's axes covers far fewer pixels than the box; the
  // fragment shader still discards outside the box, so the image is the same.
  float disc = sqrt(max(mid * mid - det, 0.0));
  float l1 = mid + disc, l2 = max(mid - disc, 0.0);
  vec2 v1 = abs(b) > 1e-20 ? normalize(vec2(b, l1 - a)) : (a >= c ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
  axes = vec3(atan(v1.y, v1.x), sqrt(k * l1) * 1.001 + 1e-3, sqrt(k * l2) * 1.001 + 1e-3);
  if ((hi.x - lo.x) * (hi.y - lo.y) <= 4.0 * axes.y * axes.z) axes.y = -1.0;
  mean = m;
  conic = vec3(c / det, -b / det, a / det);
  opacity = op;

  float sh[48];
  int nt = (u_deg + 1) * (u_deg + 1) * 3;
  for (int q = 0; q < 12; q++) {
    if (q * 4 >= nt) break;
    vec4 v = fetch(i, 3 + q);
    sh[q * 4] = v.x; sh[q * 4 + 1] = v.y; sh[q * 4 + 2] = v.z; sh[q * 4 + 3] = v.w;
  }
  #define SH(j) vec3(sh[(j) * 3], sh[(j) * 3 + 1], sh[(j) * 3 + 2])
  vec3 col = 0.5 + 0.28209479177387814 * SH(0);
  if (u_deg >= 1) {
    vec3 d = normalize(mu - u_center);
    float x = d.x, y = d.y, z = d.z;
    float C1 = 0.4886025119029199;
    col += -C1 * y * SH(1) + C1 * z * SH(2) - C1 * x * SH(3);
    if (u_deg >= 2) {
      float xx = x * x, yy = y * y, zz = z * z;
      col += 1.0925484305920792 * x * y * SH(4)
        - 1.0925484305920792 * y * z * SH(5)
        + 0.31539156525252005 * (2.0 * zz - xx - yy) * SH(6)
        - 1.0925484305920792 * x * z * SH(7)
        + 0.5462742152960396 * (xx - yy) * SH(8);
      if (u_deg >= 3) {
        col += -0.5900435899266435 * y * (3.0 * xx - yy) * SH(9)
          + 2.890611442640554 * x * y * z * SH(10)
          - 0.4570457994644658 * y * (4.0 * zz - xx - yy) * SH(11)
          + 0.3731763325901154 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * SH(12)
          - 0.4570457994644658 * x * (4.0 * zz - xx - yy) * SH(13)
          + 1.445305721320277 * z * (xx - yy) * SH(14)
          - 0.5900435899266435 * x * (xx - 3.0 * yy) * SH(15);
      }
    }
  }
  color = max(col, vec3(0.0));
  return true;
}
`;

// The depth order, 4096 splat indices a row; slot k of the back-to-front order is drawn by
// vertices 6k..6k+5 (two triangles). Not instanced: SwiftShader pays per instance.
const ORDER_GLSL = `
uniform highp usampler2D u_order;
const vec2 CORNERS[6] = vec2[6](vec2(0.0, 0.0), vec2(1.0, 0.0), vec2(0.0, 1.0), vec2(0.0, 1.0), vec2(1.0, 0.0), vec2(1.0, 1.0));
flat out vec2 v_mean;
flat out vec3 v_conic;
flat out float v_opacity;
flat out vec3 v_color;
flat out vec4 v_box;
void emit(vec4 box, vec2 m, vec3 axes, vec2 corner) {
  vec2 px;
  if (axes.y < 0.0) px = mix(box.xy, box.zw, corner);
  else {
    vec2 v1 = vec2(cos(axes.x), sin(axes.x)), v2 = vec2(-v1.y, v1.x);
    vec2 s = corner * 2.0 - 1.0;
    px = m + s.x * axes.y * v1 + s.y * axes.z * v2;
  }
  gl_Position = vec4(px.x / u_size.x * 2.0 - 1.0, 1.0 - px.y / u_size.y * 2.0, 0.0, 1.0);
  v_box = box;
}
`;

// One pass: every vertex projects its splat (6 times per splat).
const SPLAT_VS = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
${PROJECT_GLSL}
${ORDER_GLSL}
void main() {
  gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
  int slot = gl_VertexID / 6;
  int i = int(texelFetch(u_order, ivec2(slot & 4095, slot >> 12), 0).r);
  vec4 box; vec2 m; vec3 conic; float op; vec3 col; vec3 axes;
  if (!projectSplat(i, box, m, conic, op, col, axes)) return;
  emit(box, m, axes, CORNERS[gl_VertexID - slot * 6]);
  v_mean = m; v_conic = conic; v_opacity = op; v_color = col;
}`;

// One triangle over the whole viewport (the pre-pass and the copy draw every pixel once).
const FULLSCREEN_VS = `#version 300 es
const vec2 P[3] = vec2[3](vec2(-1.0, -1.0), vec2(3.0, -1.0), vec2(-1.0, 3.0));
void main() { gl_Position = vec4(P[gl_VertexID], 0.0, 1.0); }`;

// Pre-pass: one fragment per splat (texel i % 4096, i / 4096) writes its projection once.
const PRE_FS = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
${PROJECT_GLSL}
uniform int u_count;
layout(location = 0) out vec4 o_box;
layout(location = 1) out vec4 o_mean;
layout(location = 2) out vec4 o_conic;
layout(location = 3) out vec4 o_color;
void main() {
  int i = int(gl_FragCoord.y) * 4096 + int(gl_FragCoord.x);
  vec4 box; vec2 m; vec3 conic; float op; vec3 col; vec3 axes;
  if (i >= u_count || !projectSplat(i, box, m, conic, op, col, axes)) {
    o_box = vec4(1.0, 1.0, 0.0, 0.0);
    return;
  }
  o_box = box; o_mean = vec4(m, op, axes.x); o_conic = vec4(conic, axes.y); o_color = vec4(col, axes.z);
}`;

// Quads from the pre-pass.
const QUAD_VS = `#version 300 es
precision highp float;
precision highp int;
precision highp sampler2D;
uniform vec2 u_size;
uniform sampler2D u_box, u_mean, u_conic, u_color;
${ORDER_GLSL}
void main() {
  gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
  int slot = gl_VertexID / 6;
  int i = int(texelFetch(u_order, ivec2(slot & 4095, slot >> 12), 0).r);
  ivec2 at = ivec2(i & 4095, i >> 12);
  vec4 box = texelFetch(u_box, at, 0);
  if (box.x >= box.z || box.y >= box.w) return;
  vec4 mo = texelFetch(u_mean, at, 0), co = texelFetch(u_conic, at, 0), cl = texelFetch(u_color, at, 0);
  emit(box, mo.xy, vec3(mo.w, co.w, cl.w), CORNERS[gl_VertexID - slot * 6]);
  v_mean = mo.xy; v_opacity = mo.z;
  v_conic = co.xyz;
  v_color = cl.xyz;
}`;

const SPLAT_FS = `#version 300 es
precision highp float;
flat in vec2 v_mean;
flat in vec3 v_conic;
flat in float v_opacity;
flat in vec3 v_color;
flat in vec4 v_box;
uniform float u_height;
out vec4 o;
void main() {
  vec2 p = vec2(gl_FragCoord.x, u_height - gl_FragCoord.y);
  if (p.x < v_box.x || p.x > v_box.z || p.y < v_box.y || p.y > v_box.w) discard;
  vec2 d = v_mean - p;
  float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
  if (power > 0.0) discard;
  float alpha = min(0.99, v_opacity * exp(power));
  if (alpha < 1.0 / 255.0) discard;
  o = vec4(v_color * alpha, alpha);
}`;

const COPY_FS = `#version 300 es
precision highp float;
uniform sampler2D u_img;
out vec4 o;
void main() { o = vec4(clamp(texelFetch(u_img, ivec2(gl_FragCoord.xy), 0).rgb, 0.0, 1.0), 1.0); }`;

const LINE_VS = `#version 300 es
precision highp float;
uniform mat3 u_W;
uniform vec3 u_t;
uniform vec4 u_intr;
uniform vec2 u_size;
in vec3 a_pos;
in vec3 a_color;
out vec3 v_color;
void main() {
  vec3 p = u_W * a_pos + u_t;
  // Pinhole projection as a clip-space position (w = z), so GL clips lines at the near plane.
  float x = 2.0 * (u_intr.x * p.x + u_intr.z * p.z) / u_size.x - p.z;
  float y = -(2.0 * (u_intr.y * p.y + u_intr.w * p.z) / u_size.y - p.z);
  gl_Position = vec4(x, y, p.z - 0.02, p.z);
  v_color = a_color;
}`;

const LINE_FS = `#version 300 es
precision highp float;
in vec3 v_color;
out vec4 o;
void main() { o = vec4(v_color, 1.0); }`;

function program(gl, vs, fs) {
  const mk = (type, src) => {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error('shader: ' + gl.getShaderInfoLog(s));
    return s;
  };
  const p = gl.createProgram();
  gl.attachShader(p, mk(gl.VERTEX_SHADER, vs));
  gl.attachShader(p, mk(gl.FRAGMENT_SHADER, fs));
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error('link: ' + gl.getProgramInfoLog(p));
  const u = {};
  const nu = gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS);
  for (let k = 0; k < nu; k++) {
    const name = gl.getActiveUniform(p, k).name;
    u[name] = gl.getUniformLocation(p, name);
  }
  return { p, u };
}

// ---------------------------------------------------------------- small linear algebra

const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const mul = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => mul(a, 1 / Math.hypot(a[0], a[1], a[2]));
// Rodrigues rotation of v about unit axis k by angle th.
function rotate(v, k, th) {
  const c = Math.cos(th), s = Math.sin(th);
  return add(add(mul(v, c), mul(cross(k, v), s)), mul(k, dot(k, v) * (1 - c)));
}

// A view: camera centre and its axes in world coordinates (right, down, forward = rows of R),
// plus intrinsics for the current canvas.
class View {
  constructor(R, t, intr) {
    this.right = R.slice(0, 3); this.down = R.slice(3, 6); this.fwd = R.slice(6, 9);
    // centre = -Rᵀ t
    this.center = mul(add(add(mul(this.right, t[0]), mul(this.down, t[1])), mul(this.fwd, t[2])), -1);
    this.intr = intr;
    this.exact = { R: R.slice(), t: t.slice() };
  }
  R() { return [...this.right, ...this.down, ...this.fwd]; }
  t() {
    if (this.exact) return this.exact.t;
    return [-dot(this.right, this.center), -dot(this.down, this.center), -dot(this.fwd, this.center)];
  }
  Rm() { return this.exact ? this.exact.R : this.R(); }
  moved() { this.exact = null; }
}

// ---------------------------------------------------------------- training curves

// Loss (red, log scale) and training-view PSNR (cyan) against iteration.
function drawCurves(canvas, steps) {
  const c = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height;
  c.clearRect(0, 0, W, H);
  c.fillStyle = 'rgba(0,0,0,0.4)';
  c.fillRect(0, 0, W, H);
  if (steps.length < 2) return;
  const it0 = steps[0][0], it1 = steps[steps.length - 1][0];
  const series = (k, f) => {
    const v = steps.map((s) => f(s[k])).filter(Number.isFinite);
    return [Math.min(...v), Math.max(...v)];
  };
  const plot = (k, f, color) => {
    const [lo, hi] = series(k, f);
    c.strokeStyle = color;
    c.beginPath();
    steps.forEach((s, i) => {
      const x = 4 + (s[0] - it0) / Math.max(1, it1 - it0) * (W - 8);
      const y = H - 14 - (f(s[k]) - lo) / Math.max(1e-9, hi - lo) * (H - 28);
      if (i === 0) c.moveTo(x, y); else c.lineTo(x, y);
    });
    c.stroke();
  };
  plot(1, Math.log, '#f66');
  plot(2, (v) => v, '#6cf');
  const last = steps[steps.length - 1];
  c.font = '11px sans-serif';
  c.fillStyle = '#f66';
  c.fillText(`loss ${last[1].toFixed(4)}`, 4, 11);
  c.fillStyle = '#6cf';
  c.fillText(`PSNR ${last[2].toFixed(2)} dB`, 110, 11);
  c.fillStyle = '#aaa';
  c.fillText(`iteration ${it0}..${it1}`, 4, H - 2);
}

// ---------------------------------------------------------------- the viewer

async function main() {
  const canvas = $('c');
  const fixed = Q.has('w') && Q.has('h');
  if (fixed) {
    document.body.classList.add('fixed');
    canvas.width = +Q.get('w'); canvas.height = +Q.get('h');
    canvas.style.width = canvas.width + 'px'; canvas.style.height = canvas.height + 'px';
  }
  const gl = canvas.getContext('webgl2', { antialias: false, alpha: false, depth: false, premultipliedAlpha: false, preserveDrawingBuffer: true });
  if (!gl) throw bad('WebGL2 is not available in this browser');

  const scene = EMBED ? EMBED.scene : await (await fetch('/api/scene')).json();
  const label = scene.name || scene.url;
  $('name').textContent = label;
  if (scene.problem) throw bad(scene.problem);
  showMessage('loading ' + label + ' …', true);
  let g;
  let modelVersion = 0;
  // A live training view: wait for the first snapshot the trainer publishes.
  async function fetchSnapshot() {
    for (;;) {
      const r = await fetch('/api/snapshot.ply', { cache: 'no-store' });
      if (r.status === 200) {
        const v = +(r.headers.get('X-Snapshot-Version') || 0);
        return { v, g: parsePly(new Uint8Array(await r.arrayBuffer()), 'snapshot') };
      }
      if (r.status !== 204) throw bad(`live view: snapshot: HTTP ${r.status}`);
      showMessage('waiting for the first training snapshot …', true);
      await new Promise((res) => setTimeout(res, 500));
    }
  }
  if (scene.live) {
    const snap = await fetchSnapshot();
    g = snap.g;
    modelVersion = snap.v;
    // The trainer names its cameras once its scene is loaded, before its first snapshot.
    try {
      scene.cameras = (await (await fetch('/api/scene', { cache: 'no-store' })).json()).cameras || [];
    } catch (_) { /* no frusta, the splats still show */ }
  } else if (scene.kind === 'ply') g = parsePly(await fetchBytes(scene.url, label), label);
  else if (scene.kind === 'sog') {
    const files = await unzip(await fetchBytes(scene.url, label), label);
    g = await readSog(gl, async (name) => {
      const f = files.get(name);
      if (!f) throw bad(`${label}: ${name} is missing from the bundle`);
      return f;
    }, label);
  } else {
    const dir = scene.url.slice(0, scene.url.lastIndexOf('/') + 1);
    g = await readSog(gl, (name) => fetchBytes(dir + name.split('/').map(encodeURIComponent).join('/'), `${label}: ${name}`), label);
  }
  for (let i = 0; i < g.means.length; i++) if (!Number.isFinite(g.means[i])) throw bad(`${label}: Gaussian ${Math.floor(i / 3)} has a non-finite position`);
  showMessage('', true);
  $('count').textContent = `${g.n.toLocaleString()} Gaussians · SH ${g.degree}`;

  const shSel = $('sh');
  function fillShOptions(keep) {
    shSel.innerHTML = '';
    for (let d = 0; d <= g.degree; d++) shSel.add(new Option(String(d), String(d)));
    shSel.value = String(Math.min(keep, g.degree));
  }
  fillShOptions(Q.has('sh') ? +Q.get('sh') : 3);

  let data = packSplats(gl, g);
  const splat = program(gl, SPLAT_VS, SPLAT_FS);
  // The per-splat pre-pass needs float colour targets (4 of them); else every vertex projects.
  const canPre = !!gl.getExtension('EXT_color_buffer_float') && gl.getParameter(gl.MAX_DRAW_BUFFERS) >= 4 && Q.get('prepass') !== '0';
  const pre = canPre ? program(gl, FULLSCREEN_VS, PRE_FS) : null;
  const quad = canPre ? program(gl, QUAD_VS, SPLAT_FS) : null;
  let preTarget = null;
  function ensurePre(n) {
    const rows = Math.max(1, Math.ceil(n / 4096));
    if (preTarget && preTarget.rows === rows) return preTarget;
    if (preTarget) { preTarget.tex.forEach((t) => gl.deleteTexture(t)); gl.deleteFramebuffer(preTarget.fb); }
    const fb = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
    const tex = [0, 1, 2, 3].map((k) => {
      const t = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.texStorage2D(gl.TEXTURE_2D, 1, gl.RGBA32F, 4096, rows);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0 + k, gl.TEXTURE_2D, t, 0);
      return t;
    });
    gl.drawBuffers([0, 1, 2, 3].map((k) => gl.COLOR_ATTACHMENT0 + k));
    const ok = gl.checkFramebufferStatus(gl.FRAMEBUFFER) === gl.FRAMEBUFFER_COMPLETE;
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    preTarget = ok ? { fb, tex, rows } : null;
    return preTarget;
  }
  const copy = program(gl, FULLSCREEN_VS, COPY_FS);
  const lines = program(gl, LINE_VS, LINE_FS);

  // Float target: 8-bit blending would round every one of the many layers of a pixel.
  const hasFloat = !!gl.getExtension('EXT_color_buffer_float');
  const f32 = hasFloat && !!gl.getExtension('EXT_float_blend');
  const wanted = Q.get('target'); // tests and benchmarks: rgba8 | rgba16f | rgba32f
  const floatTarget = wanted === 'rgba8' ? null : wanted === 'rgba16f' && hasFloat ? gl.RGBA16F
    : hasFloat ? (f32 ? gl.RGBA32F : gl.RGBA16F) : null;
  let target = null;
  function ensureTarget(w, h) {
    if (!floatTarget) return null;
    if (target && target.w === w && target.h === h) return target;
    if (target) { gl.deleteTexture(target.tex); gl.deleteFramebuffer(target.fb); }
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texStorage2D(gl.TEXTURE_2D, 1, floatTarget, w, h);
    const fb = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
    const ok = gl.checkFramebufferStatus(gl.FRAMEBUFFER) === gl.FRAMEBUFFER_COMPLETE;
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    target = ok ? { tex, fb, w, h } : null;
    return target;
  }

  // The sort's output as an R32UI texture (the vertex shader reads it by gl_VertexID).
  const vao = gl.createVertexArray();
  const orderTex = gl.createTexture();
  let orderRows = 0;
  function uploadOrder(order) {
    const rows = Math.max(1, Math.ceil(order.length / 4096));
    const padded = new Uint32Array(rows * 4096);
    padded.set(order);
    gl.bindTexture(gl.TEXTURE_2D, orderTex);
    if (rows !== orderRows) {
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32UI, 4096, rows, 0, gl.RED_INTEGER, gl.UNSIGNED_INT, padded);
      orderRows = rows;
    } else {
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 4096, rows, gl.RED_INTEGER, gl.UNSIGNED_INT, padded);
    }
  }
  let drawCount = 0;

  // Scene extent for default views and frustum size.
  const lo3 = [Infinity, Infinity, Infinity], hi3 = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < g.n; i++) for (let a = 0; a < 3; a++) {
    const v = g.means[3 * i + a];
    if (v < lo3[a]) lo3[a] = v;
    if (v > hi3[a]) hi3[a] = v;
  }
  const sceneCenter = mul(add(lo3, hi3), 0.5);
  const extent = Math.max(1e-6, Math.hypot(...sub(hi3, lo3)));

  // Cameras.
  const cams = scene.cameras || [];
  const camSel = $('cams');
  cams.forEach((c, k) => camSel.add(new Option(c.name, String(k))));
  const frustaVao = gl.createVertexArray();
  let frustaCount = 0, frustumSize = 0, frustaCams = 0;
  if (Q.get('frusta') === '0') $('frusta').checked = false;
  function buildFrusta(selected) {
    const verts = [];
    // A third of the median spacing between neighbouring cameras, so frusta do not overlap.
    const ctrs = cams.map((c) => [0, 1, 2].map((a) => -(c.R[a] * c.t[0] + c.R[3 + a] * c.t[1] + c.R[6 + a] * c.t[2])));
    const nn = ctrs.map((p, k) => Math.min(...ctrs.map((q, j) => (j === k ? Infinity : Math.hypot(...sub(p, q))))))
      .filter(Number.isFinite).sort((a, b) => a - b);
    const s = nn.length ? 0.33 * nn[Math.floor(nn.length / 2)] : 0.04 * extent;
    frustumSize = s;
    cams.forEach((c, k) => {
      if (k === selected) return; // the camera we look through would frame the whole canvas
      const R = c.R, t = c.t;
      const toWorld = (p) => { // Rᵀ (p - t)
        const q = sub(p, t);
        return [R[0] * q[0] + R[3] * q[1] + R[6] * q[2], R[1] * q[0] + R[4] * q[1] + R[7] * q[2], R[2] * q[0] + R[5] * q[1] + R[8] * q[2]];
      };
      const ctr = toWorld([0, 0, 0]);
      const corner = (u, v) => toWorld([(u - c.cx) / c.fx * s, (v - c.cy) / c.fy * s, s]);
      const cs = [corner(0, 0), corner(c.width, 0), corner(c.width, c.height), corner(0, c.height)];
      const col = [1, 0.85, 0.1];
      const seg = (a, b) => { verts.push(...a, ...col, ...b, ...col); };
      for (let q = 0; q < 4; q++) { seg(ctr, cs[q]); seg(cs[q], cs[(q + 1) % 4]); }
      seg(cs[0], mul(add(cs[0], cs[1]), 0.5)); // a tick on the top edge shows which way is up
    });
    gl.bindVertexArray(frustaVao);
    const b = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, b);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(verts), gl.STATIC_DRAW);
    const ap = gl.getAttribLocation(lines.p, 'a_pos'), ac = gl.getAttribLocation(lines.p, 'a_color');
    gl.enableVertexAttribArray(ap); gl.vertexAttribPointer(ap, 3, gl.FLOAT, false, 24, 0);
    gl.enableVertexAttribArray(ac); gl.vertexAttribPointer(ac, 3, gl.FLOAT, false, 24, 12);
    gl.bindVertexArray(null);
    frustaCount = verts.length / 6;
    frustaCams = cams.length - (selected >= 0 && selected < cams.length ? 1 : 0);
  }
  buildFrusta(-1);

  // Initial view: URL camera, else the first training camera, else framing the scene.
  const bg = (Q.get('bg') || '0,0,0').split(',').map(Number);
  let up = [0, -1, 0];
  let view;
  let orbitTarget;
  function intrFor(w, h, c) {
    if (!c) { const f = 0.5 * w / Math.tan(0.5 * 1.0); return [f, f, w / 2, h / 2]; }
    const s = Math.min(w / c.width, h / c.height);
    return [c.fx * s, c.fy * s, w / 2 + (c.cx - c.width / 2) * s, h / 2 + (c.cy - c.height / 2) * s];
  }
  function resize() {
    if (fixed) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (w === canvas.width && h === canvas.height) return;
    const old = [canvas.width, canvas.height];
    canvas.width = w; canvas.height = h;
    if (view) {
      const [fx, fy, cx, cy] = view.intr;
      const s = Math.min(w / old[0], h / old[1]);
      view.intr = [fx * s, fy * s, w / 2 + (cx - old[0] / 2) * s, h / 2 + (cy - old[1] / 2) * s];
    }
  }
  resize();
  function setOrbitTarget() {
    const d = Math.max(dot(sub(sceneCenter, view.center), view.fwd), 0.05 * extent);
    orbitTarget = add(view.center, mul(view.fwd, d));
  }
  if (fixed) {
    const R = (Q.get('R') || '1,0,0,0,1,0,0,0,1').split(',').map(Number);
    const t = (Q.get('t') || '0,0,0').split(',').map(Number);
    const W = canvas.width, H = canvas.height;
    const intr = [+(Q.get('fx') || W), +(Q.get('fy') || Q.get('fx') || W), +(Q.get('cx') || W / 2), +(Q.get('cy') || H / 2)];
    view = new View(R, t, intr);
    up = mul(view.down, -1);
  } else if (cams.length) {
    const c = cams[0];
    view = new View(c.R, c.t, intrFor(canvas.width, canvas.height, c));
    camSel.value = '0';
    buildFrusta(0);
    let u = [0, 0, 0];
    for (const c2 of cams) u = sub(u, c2.R.slice(3, 6));
    up = norm(u);
  } else {
    const eye = add(sceneCenter, mul(norm([0.4, -0.5, -0.75]), 0.9 * extent));
    const f = norm(sub(sceneCenter, eye)), r = norm(cross(f, up)), d = cross(f, r);
    view = new View([...r, ...d, ...f], [0, 0, 0], intrFor(canvas.width, canvas.height, null));
    view.center = eye; view.moved();
  }
  setOrbitTarget();
  const upNames = { '-y': [0, -1, 0], '+y': [0, 1, 0], '+z': [0, 0, 1], '-z': [0, 0, -1] };
  let best = '-y';
  for (const [k, v] of Object.entries(upNames)) if (dot(v, up) > dot(upNames[best], up)) best = k;
  $('up').value = best;

  // Sorting worker.
  const worker = EMBED
    ? new Worker(URL.createObjectURL(new Blob([EMBED.worker], { type: 'text/javascript' })))
    : new Worker('/sort-worker.js');
  worker.onerror = (e) => fail('sort worker failed: ' + e.message);
  worker.postMessage({ means: g.means.slice(), model: modelVersion });
  let sortId = 0, sortBusy = false, sortedFor = -1, viewVersion = 0, sortMs = 0;
  function requestSort() {
    if (sortBusy) return;
    sortBusy = true;
    const R = view.Rm(), t = view.t();
    worker.postMessage({ id: viewVersion, model: modelVersion, view: [R[6], R[7], R[8], t[2]], near: NEAR });
    sortId = viewVersion;
  }
  worker.onmessage = (e) => {
    sortBusy = false;
    if (e.data.model !== modelVersion) { requestSort(); return; } // sorted for the previous snapshot
    sortMs = e.data.ms;
    uploadOrder(e.data.order);
    drawCount = e.data.order.length;
    sortedFor = e.data.id;
    dirty = true;
    if (sortedFor !== viewVersion) requestSort();
  };

  let dirty = true;
  let reportedVersion = -1;
  let liveSteps = 0;
  let pendingPick = Q.get('pick');
  let frameMs = 0;
  // What the page reports to tests: status, timings, model, the camera it looks from and what
  // it drew on top (frusta: cameras whose frustum is drawn in this frame).
  const status = () => ({
    status: document.title, errors, frameMs, sortMs, drawn: drawCount, n: g.n, degree: g.degree,
    floatTarget: !!target, prepass: !!preTarget, version: modelVersion, liveSteps,
    camera: +camSel.value, photo: $('side').classList.contains('open') ? $('photo').getAttribute('src') : null,
    cameras: cams.length, frusta: $('frusta').checked && !fixed ? frustaCams : 0,
    eye: view.center,
    fwd: view.fwd, right: view.right, sh: +shSel.value, points: $('points').checked, scale: +$('scale').value,
  });
  // Tests drive the controls through the URL, after the first report: act=STEP;STEP;... with
  // STEP drag:DX,DY (left-button drag from the canvas centre, CSS pixels), key:K:MS (hold key K
  // for MS ms), sh:D, scale:S, points:0|1, frusta:0|1. The controls get the events a user's
  // input sends; after each step, once the new frame is drawn, canvas and status are posted.
  let acts = Q.get('act') ? Q.get('act').split(';').filter(Boolean) : null;
  const nextFrame = () => new Promise((res) => requestAnimationFrame(() => res()));
  async function settled() {
    for (let i = 0; i < 600; i++) {
      await nextFrame();
      if (!dirty && !sortBusy && sortedFor === viewVersion && !keys.size) { await nextFrame(); return; }
    }
  }
  async function runActs(list) {
    for (const a of list) {
      const [kind, arg, arg2] = a.split(':');
      if (kind === 'drag') {
        const [dx, dy] = arg.split(',').map(Number);
        const r = canvas.getBoundingClientRect();
        const x0 = r.left + r.width / 2, y0 = r.top + r.height / 2;
        const fire = (type, x, y) => canvas.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: y, button: 0, buttons: type === 'pointerup' ? 0 : 1, pointerId: 1, bubbles: true }));
        fire('pointerdown', x0, y0);
        for (let i = 1; i <= 10; i++) { fire('pointermove', x0 + dx * i / 10, y0 + dy * i / 10); await nextFrame(); }
        fire('pointerup', x0 + dx, y0 + dy);
      } else if (kind === 'key') {
        canvas.dispatchEvent(new KeyboardEvent('keydown', { key: arg, bubbles: true }));
        await new Promise((res) => setTimeout(res, +arg2 || 200));
        canvas.dispatchEvent(new KeyboardEvent('keyup', { key: arg, bubbles: true }));
      } else if (kind === 'sh' || kind === 'scale') {
        $(kind).value = arg;
        $(kind).dispatchEvent(new Event('input', { bubbles: true }));
      } else if (kind === 'points' || kind === 'frusta') {
        $(kind).checked = arg === '1';
        $(kind).dispatchEvent(new Event('input', { bubbles: true }));
      } else {
        errors.push('unknown act ' + a);
      }
      await settled();
      await capture();
      await postReport({ ...status(), act: a });
    }
  }
  function changed() { viewVersion++; dirty = true; requestSort(); }

  const syncPixel = new Uint8Array(4);
  function draw() {
    const W = canvas.width, H = canvas.height;
    const t0 = performance.now();
    const tg = ensureTarget(W, H);
    gl.bindFramebuffer(gl.FRAMEBUFFER, tg ? tg.fb : null);
    gl.viewport(0, 0, W, H);
    gl.clearColor(bg[0] || 0, bg[1] || 0, bg[2] || 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    const R = view.Rm(), t = view.t();
    const [fx, fy, cx, cy] = view.intr;
    const Wm = [R[0], R[3], R[6], R[1], R[4], R[7], R[2], R[5], R[8]]; // column-major for GL
    const pt = pre ? ensurePre(g.n) : null;
    const proj = pt ? pre : splat;
    gl.useProgram(proj.p);
    const u = proj.u;
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, data.tex);
    gl.uniform1i(u.u_data, 0);
    gl.uniform1i(u.u_stride, data.stride);
    gl.uniform1i(u.u_perRow, data.perRow);
    gl.uniform1i(u.u_deg, +shSel.value);
    gl.uniformMatrix3fv(u.u_W, false, Wm);
    gl.uniform3fv(u.u_t, t);
    gl.uniform3fv(u.u_center, view.exact ? mul(add(add(mul(R.slice(0, 3), t[0]), mul(R.slice(3, 6), t[1])), mul(R.slice(6, 9), t[2])), -1) : view.center);
    gl.uniform4f(u.u_intr, fx, fy, cx, cy);
    gl.uniform2f(u.u_size, W, H);
    const tx = 0.5 * W / fx, ty = 0.5 * H / fy;
    gl.uniform4f(u.u_lim, -(cx / fx + GUARD * tx), (W - cx) / fx + GUARD * tx, -(cy / fy + GUARD * ty), (H - cy) / fy + GUARD * ty);
    const sc = +$('scale').value;
    gl.uniform1f(u.u_scale2, sc * sc);
    gl.uniform1f(u.u_near, NEAR);
    gl.uniform1i(u.u_points, $('points').checked ? 1 : 0);
    gl.bindVertexArray(vao);
    let q = splat;
    if (pt) {
      // Project every splat once into the pre-pass textures, then draw quads from them.
      gl.uniform1i(u.u_count, g.n);
      gl.bindFramebuffer(gl.FRAMEBUFFER, pt.fb);
      gl.viewport(0, 0, 4096, pt.rows);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
      gl.bindFramebuffer(gl.FRAMEBUFFER, tg ? tg.fb : null);
      gl.viewport(0, 0, W, H);
      q = quad;
      gl.useProgram(q.p);
      gl.uniform2f(q.u.u_size, W, H);
      ['u_box', 'u_mean', 'u_conic', 'u_color'].forEach((name, k) => {
        gl.activeTexture(gl.TEXTURE2 + k);
        gl.bindTexture(gl.TEXTURE_2D, pt.tex[k]);
        gl.uniform1i(q.u[name], 2 + k);
      });
    }
    gl.uniform1f(q.u.u_height, H);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, orderTex);
    gl.uniform1i(q.u.u_order, 1);
    if (drawCount > 0) gl.drawArrays(gl.TRIANGLES, 0, 6 * drawCount);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindVertexArray(null);
    gl.disable(gl.BLEND);
    if (tg) {
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.useProgram(copy.p);
      gl.bindTexture(gl.TEXTURE_2D, tg.tex);
      gl.uniform1i(copy.u.u_img, 0);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }
    if ($('frusta').checked && frustaCount > 0 && !fixed) {
      gl.useProgram(lines.p);
      gl.uniformMatrix3fv(lines.u.u_W, false, Wm);
      gl.uniform3fv(lines.u.u_t, t);
      gl.uniform4f(lines.u.u_intr, fx, fy, cx, cy);
      gl.uniform2f(lines.u.u_size, W, H);
      gl.bindVertexArray(frustaVao);
      gl.drawArrays(gl.LINES, 0, frustaCount);
      gl.bindVertexArray(null);
    }
    // gl.finish() does not wait for Chrome's GPU process; reading a pixel back does.
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, syncPixel);
    frameMs = performance.now() - t0;
    $('stats').textContent = `frame ${frameMs.toFixed(1)} ms · sort ${sortMs.toFixed(1)} ms · ${drawCount.toLocaleString()} drawn` +
      (tg ? '' : ' · 8-bit blending');
    const err = gl.getError();
    if (err !== gl.NO_ERROR) errors.push('WebGL error 0x' + err.toString(16));
  }

  async function capture() {
    const W = canvas.width, H = canvas.height;
    const px = new Uint8Array(W * H * 4);
    gl.readPixels(0, 0, W, H, gl.RGBA, gl.UNSIGNED_BYTE, px);
    const flipped = new Uint8Array(W * H * 4);
    for (let y = 0; y < H; y++) flipped.set(px.subarray((H - 1 - y) * W * 4, (H - y) * W * 4), y * W * 4);
    await fetch(`/api/capture?w=${W}&h=${H}`, { method: 'POST', body: flipped });
  }

  // bench=N: after the first report, N more frames of the same view, then their timings.
  let bench = Q.has('bench') ? { left: +Q.get('bench'), gaps: [], draws: [], last: 0, ready: false } : null;
  const stats = (a) => {
    const b = a.slice().sort((x, y) => x - y);
    return { n: b.length, median: b[b.length >> 1], mean: b.reduce((x, y) => x + y, 0) / Math.max(1, b.length), min: b[0], max: b[b.length - 1] };
  };
  function frame() {
    resize();
    if (bench && bench.ready) {
      const now = performance.now();
      if (bench.last) { bench.gaps.push(now - bench.last); bench.draws.push(frameMs); }
      bench.last = now;
      if (bench.left-- > 0) dirty = true;
      else {
        postReport({ status: 'bench', frameIntervalMs: stats(bench.gaps), drawMs: stats(bench.draws), width: canvas.width, height: canvas.height, n: g.n });
        bench = null;
      }
    }
    if (dirty && sortedFor >= 0) {
      dirty = false;
      draw();
      const reported = reportedVersion === modelVersion;
      if (!reported && sortedFor === viewVersion && pendingPick) {
        // Tests click a frustum through the URL: pick=x,y in canvas pixels, after the first frame.
        const [x, y] = pendingPick.split(',').map(Number);
        pendingPick = null;
        pickAt(x, y, 25);
      } else if (!reported && sortedFor === viewVersion) {
        reportedVersion = modelVersion;
        document.title = errors.length ? 'error: ' + errors[0] : 'ok';
        // Where nothing can be posted back (report.html from disk), tests read the console.
        console.info('spaceport-view status: ' + document.title);
        if (Q.get('report') === '1') {
          capture().then(() => postReport(status()))
            .then(() => { if (bench) bench.ready = true; if (acts) runActs(acts); acts = null; });
        }
      }
    }
    requestAnimationFrame(frame);
  }
  requestSort();
  requestAnimationFrame(frame);

  // ---- live training view
  function setModel(newG, version) {
    const keep = +shSel.value === g.degree ? 3 : +shSel.value; // at the top: follow the new top
    g = newG;
    gl.deleteTexture(data.tex);
    data = packSplats(gl, g);
    fillShOptions(keep);
    $('count').textContent = `${g.n.toLocaleString()} Gaussians · SH ${g.degree}`;
    modelVersion = version;
    worker.postMessage({ means: g.means.slice(), model: version });
    changed();
  }
  if (scene.live) {
    const curves = $('curves');
    curves.style.display = 'block';
    let steps = [];
    let latest = modelVersion, loading = false;
    const reload = async () => {
      if (loading || latest <= modelVersion) return;
      loading = true;
      try {
        const snap = await fetchSnapshot();
        if (snap.v > modelVersion) setModel(snap.g, snap.v);
      } catch (e) {
        errors.push('live snapshot: ' + e.message);
      }
      loading = false;
      reload();
    };
    const es = new EventSource('/api/events');
    es.onmessage = (e) => {
      const d = JSON.parse(e.data);
      steps = d.reset ? d.steps : steps.concat(d.steps);
      liveSteps = steps.length;
      drawCurves(curves, steps);
      $('name').textContent = d.done ? `training finished at iteration ${d.iteration}` : `training: iteration ${d.iteration} / ${d.total}`;
      latest = d.version;
      reload();
    };
    es.onerror = () => { $('name').textContent += ' (training process gone; last snapshot kept)'; es.close(); };
  }

  // ---- controls
  const scale = () => extent;
  function orbit(dx, dy) {
    const off = sub(view.center, orbitTarget);
    const a = -dx * 0.005, b = -dy * 0.005;
    let o = rotate(off, up, a);
    let r = rotate(view.right, up, a), d = rotate(view.down, up, a), f = rotate(view.fwd, up, a);
    o = rotate(o, r, b); d = rotate(d, r, b); f = rotate(f, r, b);
    view.center = add(orbitTarget, o);
    view.right = norm(r); view.down = norm(d); view.fwd = norm(f);
    view.moved();
  }
  function pan(dx, dy) {
    const dist = Math.hypot(...sub(view.center, orbitTarget));
    const k = dist / view.intr[0];
    const m = add(mul(view.right, -dx * k), mul(view.down, -dy * k));
    view.center = add(view.center, m); orbitTarget = add(orbitTarget, m);
    view.moved();
  }
  let drag = null;
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  canvas.addEventListener('pointerdown', (e) => {
    canvas.focus();
    drag = { x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY, pan: e.button === 2 || e.shiftKey };
    try { canvas.setPointerCapture(e.pointerId); } catch (_) { /* a synthetic pointer (tests) */ }
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dpr = window.devicePixelRatio || 1;
    const dx = (e.clientX - drag.x) * dpr, dy = (e.clientY - drag.y) * dpr;
    drag.x = e.clientX; drag.y = e.clientY;
    if (drag.pan) pan(dx, dy); else orbit(dx, dy);
    leaveCamera();
    changed();
  });
  canvas.addEventListener('pointerup', (e) => {
    const d = drag;
    drag = null;
    if (d && Math.hypot(e.clientX - d.x0, e.clientY - d.y0) < 4) pick(e);
  });
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    const f = Math.exp(e.deltaY * 0.001);
    view.center = add(orbitTarget, mul(sub(view.center, orbitTarget), f));
    view.moved();
    changed();
  }, { passive: false });
  const keys = new Set();
  canvas.addEventListener('keydown', (e) => keys.add(e.key.toLowerCase()));
  canvas.addEventListener('keyup', (e) => keys.delete(e.key.toLowerCase()));
  setInterval(() => {
    if (!keys.size) return;
    const s = 0.01 * scale();
    let m = [0, 0, 0];
    if (keys.has('w')) m = add(m, view.fwd);
    if (keys.has('s')) m = sub(m, view.fwd);
    if (keys.has('d')) m = add(m, view.right);
    if (keys.has('a')) m = sub(m, view.right);
    if (keys.has('e')) m = add(m, up);
    if (keys.has('q')) m = sub(m, up);
    if (dot(m, m) === 0) return;
    m = mul(m, s);
    view.center = add(view.center, m); orbitTarget = add(orbitTarget, m);
    view.moved();
    leaveCamera();
    changed();
  }, 16);

  function leaveCamera() {
    if (camSel.value === '-1') return;
    camSel.value = '-1';
    buildFrusta(-1);
  }
  function jumpTo(k) {
    const c = cams[k];
    if (!c) return;
    view = new View(c.R, c.t, intrFor(canvas.width, canvas.height, c));
    setOrbitTarget();
    camSel.value = String(k);
    buildFrusta(k);
    const side = $('side');
    if (c.image) {
      side.classList.add('open');
      $('photo').src = c.image;
      $('photoName').textContent = c.name;
    } else {
      side.classList.remove('open');
    }
    setTimeout(() => { resize(); changed(); }, 0);
    changed();
  }
  function pick(e) {
    const rect = canvas.getBoundingClientRect();
    const sx = canvas.width / rect.width, sy = canvas.height / rect.height;
    pickAt((e.clientX - rect.left) * sx, (e.clientY - rect.top) * sy, 25 * sx);
  }
  // Jumps to the camera whose frustum (its centre or the middle of its image rectangle) lies
  // nearest to canvas pixel (px, py), within `radius` pixels.
  function pickAt(px, py, radius) {
    if (!cams.length || !$('frusta').checked) return;
    const R = view.Rm(), t = view.t();
    const [fx, fy, cx, cy] = view.intr;
    let bestK = -1, bestD = radius;
    cams.forEach((c, k) => {
      const cr = c.R, ct = c.t;
      const ctr = [0, 1, 2].map((a) => -(cr[a] * ct[0] + cr[3 + a] * ct[1] + cr[6 + a] * ct[2]));
      for (const w of [ctr, add(ctr, mul(cr.slice(6, 9), frustumSize))]) {
        const p = [dot(R.slice(0, 3), w) + t[0], dot(R.slice(3, 6), w) + t[1], dot(R.slice(6, 9), w) + t[2]];
        if (p[2] <= NEAR) continue;
        const d = Math.hypot(fx * p[0] / p[2] + cx - px, fy * p[1] / p[2] + cy - py);
        if (d < bestD) { bestD = d; bestK = k; }
      }
    });
    if (bestK >= 0) jumpTo(bestK);
  }
  camSel.addEventListener('change', () => {
    const k = +camSel.value;
    if (k >= 0) jumpTo(k);
    else { $('side').classList.remove('open'); buildFrusta(-1); changed(); }
  });
  for (const id of ['sh', 'scale', 'points', 'frusta']) $(id).addEventListener('input', () => { dirty = true; });
  $('up').addEventListener('change', () => { up = upNames[$('up').value]; });
  window.addEventListener('resize', () => { dirty = true; });
}

main().catch((e) => {
  if (e instanceof ViewerError) fail(e.message);
  else {
    errors.push(String(e && e.stack || e));
    fail('viewer failed: ' + (e && e.message || e));
  }
});
