// Segmentation masks (DICOM SEG, PS3.3 C.8.20) drawn over the slices they were made on.
import * as api from './api.js';

const PALETTE = [[255, 64, 64], [64, 200, 255], [255, 210, 0], [90, 230, 90], [220, 90, 255],
  [255, 140, 0], [0, 230, 200], [255, 120, 200]];
const ALPHA = 0.4;

function item(obj, tag) { const v = api.value(obj, tag); return v && typeof v === 'object' ? v : null; }

function posKey(p) { return p && p.length === 3 ? p.map((x) => Number(x).toFixed(2)).join('\\') : null; }

// CIELab (PS3.3 C.10.7.1.1: scaled to 0..65535) to sRGB.
function labToRgb(lab) {
  const L = (lab[0] / 65535) * 100; const a = (lab[1] / 65535) * 255 - 128; const b = (lab[2] / 65535) * 255 - 128;
  const fy = (L + 16) / 116; const fx = fy + a / 500; const fz = fy - b / 200;
  const f = (t) => (t ** 3 > 0.008856 ? t ** 3 : (t - 16 / 116) / 7.787);
  const X = 0.95047 * f(fx); const Y = f(fy); const Z = 1.08883 * f(fz);
  const g = (c) => Math.round(255 * Math.min(1, Math.max(0, c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055)));
  return [g(3.2406 * X - 1.5372 * Y - 0.4986 * Z), g(-0.9689 * X + 1.8758 * Y + 0.0415 * Z),
    g(0.0557 * X - 0.204 * Y + 1.057 * Z)];
}

// The masks of the SEG series: by referenced source frame ("sop/frame") and by plane position.
// Frames arrive in the background; onFrame() is called as each does.
export async function loadSegmentations(segSeries, onFrame) {
  const found = { bySource: new Map(), byPosition: new Map(), count: 0 };
  const jobs = [];
  for (const s of segSeries) {
    const meta = await api.getJson(`/dicomweb/studies/${s.study}/series/${s.uid}/metadata`);
    for (const m of meta) {
      const rows = api.number(m, 'Rows', 0); const cols = api.number(m, 'Columns', 0);
      const bits = api.number(m, 'BitsAllocated', 1);
      const colours = new Map();
      for (const seg of (m[api.TAG.SegmentSequence] || {}).Value || []) {
        const n = api.number(seg, 'SegmentNumber', 0);
        const lab = api.values(seg, 'RecommendedDisplayCIELabValue');
        colours.set(n, lab.length === 3 ? labToRgb(lab) : PALETTE[(n - 1 + PALETTE.length) % PALETTE.length]);
      }
      const shared = item(m, 'SharedFunctionalGroupsSequence');
      const perFrame = (m[api.TAG.PerFrameFunctionalGroupsSequence] || {}).Value || [];
      perFrame.forEach((fg, i) => {
        const segId = item(fg, 'SegmentIdentificationSequence') || (shared && item(shared, 'SegmentIdentificationSequence'));
        const n = segId ? api.number(segId, 'ReferencedSegmentNumber', 1) : 1;
        const der = item(fg, 'DerivationImageSequence');
        const src = der && item(der, 'SourceImageSequence');
        const plane = item(fg, 'PlanePositionSequence');
        const mask = { rows, cols, bits, colour: colours.get(n) || PALETTE[0], data: null };
        if (src && api.value(src, 'ReferencedSOPInstanceUID')) {
          const key = `${api.value(src, 'ReferencedSOPInstanceUID')}/${api.number(src, '00081160', 1)}`;
          if (!found.bySource.has(key)) found.bySource.set(key, []);
          found.bySource.get(key).push(mask);
        } else if (plane) {
          const key = posKey(api.values(plane, 'ImagePositionPatient'));
          if (key) {
            if (!found.byPosition.has(key)) found.byPosition.set(key, []);
            found.byPosition.get(key).push(mask);
          }
        }
        jobs.push({ s, sop: api.value(m, 'SOPInstanceUID'), frame: i + 1, mask });
      });
    }
  }
  (async () => {
    for (let i = 0; i < jobs.length; i += 4) {
      await Promise.all(jobs.slice(i, i + 4).map(async (j) => {
        try {
          j.mask.data = await api.frame(j.s.study, j.s.uid, j.sop, j.frame);
          found.count++;
          onFrame();
        } catch (e) { /* a mask that does not load is not shown */ }
      }));
    }
  })();
  return found;
}

// Blend the masks made on this slice ({sop, frame, position}) into the RGBA pixels.
export function drawSegmentation(found, slice, imageData) {
  if (!found) return;
  const masks = [...(found.bySource.get(`${slice.sop}/${slice.frame}`) || []),
    ...(found.byPosition.get(posKey(slice.position)) || [])];
  const out = imageData.data;
  for (const m of masks) {
    if (!m.data || m.rows !== imageData.height || m.cols !== imageData.width) continue;
    const n = m.rows * m.cols;
    const [r, g, b] = m.colour;
    for (let i = 0; i < n; i++) {
      const on = m.bits === 1 ? (m.data[i >> 3] >> (i & 7)) & 1 : m.data[i] > 0;
      if (!on) continue;
      const j = i * 4;
      out[j] = out[j] * (1 - ALPHA) + r * ALPHA;
      out[j + 1] = out[j + 1] * (1 - ALPHA) + g * ALPHA;
      out[j + 2] = out[j + 2] * (1 - ALPHA) + b * ALPHA;
    }
  }
}
