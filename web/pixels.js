// Decoded slices and their window/level (PS3.3 C.7.6.3, C.11.1 and C.11.2).
import * as api from './api.js';

// The pixel description of an instance's metadata (DICOM JSON).
export function pixelFormat(meta) {
  const spacing = api.values(meta, 'PixelSpacing').map(Number);
  const imager = api.values(meta, 'ImagerPixelSpacing').map(Number);
  const sp = spacing.length === 2 ? spacing : imager.length === 2 ? imager : null;
  return {
    rows: api.number(meta, 'Rows', 0),
    columns: api.number(meta, 'Columns', 0),
    bitsAllocated: api.number(meta, 'BitsAllocated', 16),
    bitsStored: api.number(meta, 'BitsStored', api.number(meta, 'BitsAllocated', 16)),
    signed: api.number(meta, 'PixelRepresentation', 0) === 1,
    samples: api.number(meta, 'SamplesPerPixel', 1),
    planar: api.number(meta, 'PlanarConfiguration', 0),
    photometric: String(api.value(meta, 'PhotometricInterpretation') || 'MONOCHROME2').trim(),
    slope: api.number(meta, 'RescaleSlope', 1) || 1,
    intercept: api.number(meta, 'RescaleIntercept', 0),
    frames: api.number(meta, 'NumberOfFrames', 1),
    modality: String(api.value(meta, 'Modality') || ''),
    // row spacing (between rows, vertical), column spacing (horizontal), in mm; or null
    spacing: sp && sp[0] > 0 && sp[1] > 0 ? sp : null,
    center: api.number(meta, 'WindowCenter', undefined),
    width: api.number(meta, 'WindowWidth', undefined),
  };
}

// One frame's raw bytes as a slice: stored values in a typed array (sign-extended or masked
// to Bits Stored), their range, and the modality values' range.
export function decodeSlice(bytes, f) {
  const n = f.rows * f.columns;
  const slice = { width: f.columns, height: f.rows, format: f, rgb: null, data: null };
  if (f.samples === 3) {
    if (f.bitsAllocated !== 8) throw new Error('colour images of 16 bits are not shown');
    if (bytes.length < n * 3) throw new Error(`frame of ${bytes.length} bytes, want ${n * 3}`);
    const rgb = new Uint8Array(n * 3);
    if (f.planar === 1) {
      for (let i = 0; i < n; i++) {
        rgb[i * 3] = bytes[i]; rgb[i * 3 + 1] = bytes[n + i]; rgb[i * 3 + 2] = bytes[2 * n + i];
      }
    } else rgb.set(bytes.subarray(0, n * 3));
    slice.rgb = rgb;
    slice.bytes = rgb.byteLength;
    return slice;
  }
  const bpp = f.bitsAllocated / 8;
  if (![1, 2, 4].includes(bpp)) throw new Error(`Bits Allocated ${f.bitsAllocated} is not shown`);
  if (bytes.length < n * bpp) throw new Error(`frame of ${bytes.length} bytes, want ${n * bpp}`);
  const copy = bytes.slice(0, n * bpp).buffer; // aligned, and little-endian like the host
  const T = bpp === 1 ? (f.signed ? Int8Array : Uint8Array)
    : bpp === 2 ? (f.signed ? Int16Array : Uint16Array) : (f.signed ? Int32Array : Uint32Array);
  const data = new T(copy);
  if (f.bitsStored < f.bitsAllocated) {
    const shift = 32 - f.bitsStored;
    const mask = f.bitsStored >= 32 ? 0xffffffff : (2 ** f.bitsStored) - 1;
    for (let i = 0; i < n; i++)
      data[i] = f.signed ? (data[i] << shift) >> shift : data[i] & mask;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  slice.data = data;
  slice.rawMin = lo;
  slice.rawMax = hi;
  slice.min = Math.min(lo * f.slope + f.intercept, hi * f.slope + f.intercept);
  slice.max = Math.max(lo * f.slope + f.intercept, hi * f.slope + f.intercept);
  slice.bytes = copy.byteLength;
  return slice;
}

// The modality value (Hounsfield units for CT) at a pixel.
export function modalityValue(slice, x, y) {
  return slice.data[y * slice.width + x] * slice.format.slope + slice.format.intercept;
}

// PS3.3 C.11.2.1.2.1, the LINEAR function, to 0..255 (inverted for MONOCHROME1).
export function windowValue(x, center, width) {
  const w = Math.max(width, 1);
  const c = center - 0.5;
  if (x <= c - (w - 1) / 2) return 0;
  if (x > c + (w - 1) / 2) return 255;
  return Math.round(((x - c) / (w - 1) + 0.5) * 255);
}

// The slice windowed into the RGBA pixels of imageData (its size: the slice's).
export function renderSlice(slice, center, width, imageData) {
  const out = imageData.data;
  const n = slice.width * slice.height;
  if (slice.rgb) {
    for (let i = 0; i < n; i++) {
      out[i * 4] = slice.rgb[i * 3]; out[i * 4 + 1] = slice.rgb[i * 3 + 1];
      out[i * 4 + 2] = slice.rgb[i * 3 + 2]; out[i * 4 + 3] = 255;
    }
    return;
  }
  const f = slice.format;
  const invert = f.photometric === 'MONOCHROME1';
  const data = slice.data;
  const span = slice.rawMax - slice.rawMin + 1;
  if (span <= 1 << 20) {
    // a table over the stored values: one lookup a pixel
    const lut = new Uint8Array(span);
    for (let v = 0; v < span; v++) {
      const g = windowValue((v + slice.rawMin) * f.slope + f.intercept, center, width);
      lut[v] = invert ? 255 - g : g;
    }
    const lo = slice.rawMin;
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      const g = lut[data[i] - lo];
      out[j] = g; out[j + 1] = g; out[j + 2] = g; out[j + 3] = 255;
    }
  } else {
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      let g = windowValue(data[i] * f.slope + f.intercept, center, width);
      if (invert) g = 255 - g;
      out[j] = g; out[j + 1] = g; out[j + 2] = g; out[j + 3] = 255;
    }
  }
}

// A cache of decoded slices shared by the viewports, least recently used first out.
export class SliceCache {
  constructor(maxBytes) {
    this.maxBytes = maxBytes;
    this.bytes = 0;
    this.map = new Map();
  }

  get(key) {
    const s = this.map.get(key);
    if (s) { this.map.delete(key); this.map.set(key, s); }
    return s;
  }

  has(key) { return this.map.has(key); }

  put(key, slice) {
    if (this.map.has(key)) return;
    this.map.set(key, slice);
    this.bytes += slice.bytes;
    for (const [k, s] of this.map) {
      if (this.bytes <= this.maxBytes || k === key) break;
      this.map.delete(k);
      this.bytes -= s.bytes;
    }
  }
}
