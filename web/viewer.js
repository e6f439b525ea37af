// The viewer: a study's series in 1, 2 or 4 viewports; slices fetched as raw frames (WADO-RS),
// prefetched around the one shown, cached decoded and windowed on the canvas.
import * as api from './api.js';
import { pixelFormat, decodeSlice, renderSlice, modalityValue, SliceCache } from './pixels.js';
import { loadSegmentations, drawSegmentation } from './overlay.js';

export const PRESETS = {
  lung: { center: -600, width: 1500 },
  bone: { center: 300, width: 1500 },
  brain: { center: 40, width: 80 },
  abdomen: { center: 60, width: 400 },
};
const NOT_IMAGES = new Set(['SR', 'SEG', 'PR', 'KO', 'RTSTRUCT', 'DOC', 'RWV', 'REG']);
const cache = new SliceCache(384 * 1024 * 1024);
const PARALLEL = 4; // requests at once (a browser keeps 6 connections a host)
const AHEAD = 12;   // slices prefetched in the direction of scrolling
const BEHIND = 4;

// A series: its slices in order (one per frame), each {sop, frame, format, position}.
class Series {
  constructor(study, obj) {
    this.study = study;
    this.uid = api.value(obj, 'SeriesInstanceUID');
    this.modality = api.value(obj, 'Modality') || '';
    this.number = api.value(obj, 'SeriesNumber');
    this.description = api.value(obj, 'SeriesDescription') || '';
    this.count = api.number(obj, 'NumberOfSeriesRelatedInstances', 0);
    this.slices = null;
    this.metadata = null;
  }

  get viewable() { return !NOT_IMAGES.has(this.modality); }

  async load() {
    if (this.slices) return this.slices;
    if (!this._loading) this._loading = this._load();
    return this._loading;
  }

  async _load() {
    const meta = await api.getJson(
      `/dicomweb/studies/${this.study}/series/${this.uid}/metadata`);
    this.metadata = meta;
    const slices = [];
    for (const m of meta) {
      const f = pixelFormat(m);
      if (!f.rows || !f.columns) continue;
      const pos = api.values(m, 'ImagePositionPatient').map(Number);
      const sop = api.value(m, 'SOPInstanceUID');
      const inst = api.number(m, 'InstanceNumber', 0);
      for (let k = 1; k <= f.frames; k++)
        slices.push({ sop, frame: k, format: f, instance: inst, position: pos.length === 3 ? pos : null });
    }
    // by Instance Number, then along the slice normal, then by frame
    slices.sort((a, b) => (a.instance - b.instance) ||
      ((a.position && b.position) ? a.position[2] - b.position[2] : 0) || (a.frame - b.frame));
    this.slices = slices;
    return slices;
  }

  key(i) { const s = this.slices[i]; return `${s.sop}/${s.frame}`; }
}

// Fetches slices, nearest to what the viewports show first, PARALLEL at a time.
class Loader {
  constructor(onLoaded) {
    this.onLoaded = onLoaded;
    this.wanted = [];   // [{series, index, key}] in priority order
    this.running = new Map();
    this.failed = new Map();
    this.abort = new AbortController();
  }

  want(list) {
    this.wanted = list.filter((w) => !cache.has(w.key) && !this.failed.has(w.key));
    this.pump();
  }

  pump() {
    while (this.running.size < PARALLEL && this.wanted.length) {
      const w = this.wanted.shift();
      if (this.running.has(w.key) || cache.has(w.key)) continue;
      const s = w.series.slices[w.index];
      const p = api.frame(w.series.study, w.series.uid, s.sop, s.frame, this.abort.signal)
        .then((bytes) => {
          cache.put(w.key, decodeSlice(bytes, s.format));
          this.onLoaded(w.series, w.index);
        })
        .catch((e) => {
          if (e.name === 'AbortError') return;
          this.failed.set(w.key, e.message);
          this.onLoaded(w.series, w.index, e);
        })
        .finally(() => {
          this.running.delete(w.key);
          this.pump();
        });
      this.running.set(w.key, p);
    }
  }

  close() { this.abort.abort(); this.wanted = []; }
}

// One viewport: a canvas showing one slice of a series.
class Viewport {
  constructor(viewer, el) {
    this.viewer = viewer;
    this.el = el;
    this.canvas = document.createElement('canvas');
    this.info = {};
    el.appendChild(this.canvas);
    for (const c of ['tl', 'tr', 'bl', 'br']) {
      const d = document.createElement('div');
      d.className = `info ${c}`;
      el.appendChild(d);
      this.info[c] = d;
    }
    this.image = document.createElement('canvas'); // the windowed slice at its own size
    this.series = null;
    this.index = 0;
    this.window = null;  // {center, width}
    this.view = null;    // {scale (0: fit), cx, cy}: image point at the canvas centre
    this.measurements = [];
    this.drawing = null;
    this.direction = 1;
    this.shownKey = null;
    this.shownWindow = null;
    this.attach();
  }

  setSeries(series, index) {
    this.series = series;
    this.index = Math.max(0, Math.min(index || 0, series.slices.length - 1));
    this.window = null;
    this.view = { scale: 0, cx: 0, cy: 0 };
    this.measurements = [];
    this.shownKey = null;
    this.el.dataset.series = series.uid;
    this.viewer.schedule();
  }

  slice() { return this.series && cache.get(this.series.key(this.index)); }

  scroll(delta) {
    if (!this.series) return;
    const n = this.series.slices.length;
    const i = Math.max(0, Math.min(n - 1, this.index + delta));
    if (delta) this.direction = Math.sign(delta);
    if (i !== this.index) {
      this.index = i;
      this.viewer.schedule();
    }
  }

  setWindow(center, width) {
    this.window = { center, width: Math.max(1, width) };
    this.viewer.schedule();
  }

  defaultWindow(slice) {
    const f = slice.format;
    if (f.center !== undefined && f.width !== undefined && f.width > 0)
      return { center: f.center, width: f.width };
    return { center: (slice.min + slice.max) / 2, width: Math.max(1, slice.max - slice.min) };
  }

  // the mapping image → canvas pixels: x' = ox + x * sx
  transform(slice) {
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    const sp = slice.format.spacing;
    // square screen pixels for non-square image pixels: x stretched by column/row spacing
    const ax = sp ? sp[1] / Math.min(sp[0], sp[1]) : 1;
    const ay = sp ? sp[0] / Math.min(sp[0], sp[1]) : 1;
    const fit = Math.min(cw / (slice.width * ax), ch / (slice.height * ay));
    const scale = this.view.scale || fit;
    const cx = this.view.scale ? this.view.cx : slice.width / 2;
    const cy = this.view.scale ? this.view.cy : slice.height / 2;
    const sx = scale * ax;
    const sy = scale * ay;
    return { sx, sy, ox: Math.round(cw / 2 - cx * sx), oy: Math.round(ch / 2 - cy * sy), scale };
  }

  toImage(ev, slice) {
    const r = this.canvas.getBoundingClientRect();
    const dpr = this.canvas.width / Math.max(1, r.width);
    const t = this.transform(slice);
    return { x: ((ev.clientX - r.left) * dpr - t.ox) / t.sx, y: ((ev.clientY - r.top) * dpr - t.oy) / t.sy };
  }

  render() {
    // the canvas on whole device pixels inside the viewport (a grid cell's box is fractional):
    // one canvas pixel is one screen pixel, so 1:1 is not resampled
    const dpr = window.devicePixelRatio || 1;
    const r = this.el.getBoundingClientRect();
    const left = Math.ceil(r.left * dpr); const top = Math.ceil(r.top * dpr);
    const w = Math.max(1, Math.floor(r.right * dpr) - left);
    const h = Math.max(1, Math.floor(r.bottom * dpr) - top);
    if (this.canvas.width !== w || this.canvas.height !== h || this.placed !== `${left},${top}`) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.placed = `${left},${top}`;
      Object.assign(this.canvas.style, { left: `${left / dpr - r.left}px`, top: `${top / dpr - r.top}px`,
        width: `${w / dpr}px`, height: `${h / dpr}px` });
    }
    const ctx = this.canvas.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, w, h);
    if (!this.series) {
      this.text('', '', '', '');
      return;
    }
    const n = this.series.slices.length;
    const key = this.series.key(this.index);
    let slice = cache.get(key);
    const loading = !slice;
    if (!slice && this.lastSlice) slice = this.lastSlice; // keep showing the last one
    if (!slice) {
      const err = this.viewer.loader.failed.get(key);
      this.text(this.header(), `${this.series.description}\nIm ${this.index + 1}/${n}`,
        err ? `cannot load: ${err}` : 'loading…', '');
      this.canvas.dataset.state = err ? 'error' : 'loading';
      return;
    }
    if (!this.window) this.window = this.defaultWindow(slice);
    const wkey = `${this.window.center}/${this.window.width}`;
    if (slice !== this.lastSlice || wkey !== this.shownWindow || this.overlayStale) {
      if (this.image.width !== slice.width || this.image.height !== slice.height) {
        this.image.width = slice.width;
        this.image.height = slice.height;
      }
      const ictx = this.image.getContext('2d');
      const data = ictx.createImageData(slice.width, slice.height);
      renderSlice(slice, this.window.center, this.window.width, data);
      if (this.viewer.showOverlay && !loading)
        drawSegmentation(this.viewer.segmentations, this.series.slices[this.index], data);
      ictx.putImageData(data, 0, 0);
      this.lastSlice = slice;
      this.shownWindow = wkey;
      this.overlayStale = false;
    }
    const t = this.transform(slice);
    ctx.imageSmoothingEnabled = t.scale < 1;
    ctx.drawImage(this.image, t.ox, t.oy, slice.width * t.sx, slice.height * t.sy);
    this.drawMeasurements(ctx, t, slice);
    // for tests and tools: where the image is and what it shows
    Object.assign(this.canvas.dataset, {
      state: loading ? 'loading' : 'ready', slice: String(this.index), slices: String(n),
      sop: this.series.slices[this.index].sop, frame: String(this.series.slices[this.index].frame),
      imageX: String(t.ox), imageY: String(t.oy), scaleX: String(t.sx), scaleY: String(t.sy),
      center: String(this.window.center), width: String(this.window.width),
    });
    const zoom = `zoom ${(t.scale * 100 / dpr).toFixed(0)}%`;
    this.text(this.header(), `${this.series.description}\nIm ${this.index + 1}/${n}${loading ? ' (loading)' : ''}`,
      `W ${Math.round(this.window.width)} L ${Math.round(this.window.center)}`,
      [zoom, ...this.results(slice)].join('\n'));
  }

  header() {
    const v = this.viewer;
    return `${v.patientName}\n${v.patientId}\n${v.studyDate}`;
  }

  text(tl, tr, bl, br) {
    this.info.tl.textContent = tl;
    this.info.tr.textContent = tr;
    this.info.bl.textContent = bl;
    this.info.br.textContent = br;
  }

  // ---------------------------------------------------------------- measurements

  measurementsHere() {
    const key = this.series.key(this.index);
    return [...this.measurements.filter((m) => m.key === key), ...(this.drawing ? [this.drawing] : [])];
  }

  drawMeasurements(ctx, t, slice) {
    const dpr = window.devicePixelRatio || 1;
    ctx.save();
    ctx.lineWidth = 1.5 * dpr;
    ctx.strokeStyle = '#3ee07a';
    ctx.fillStyle = '#3ee07a';
    ctx.font = `${12 * dpr}px ui-monospace, monospace`;
    for (const m of this.measurementsHere()) {
      const [a, b] = m.points;
      const ax = t.ox + a.x * t.sx; const ay = t.oy + a.y * t.sy;
      const bx = t.ox + b.x * t.sx; const by = t.oy + b.y * t.sy;
      ctx.beginPath();
      if (m.type === 'distance') {
        ctx.moveTo(ax, ay);
        ctx.lineTo(bx, by);
      } else if (m.type === 'rect') {
        ctx.rect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
      } else {
        ctx.ellipse((ax + bx) / 2, (ay + by) / 2, Math.abs(bx - ax) / 2, Math.abs(by - ay) / 2, 0, 0, 2 * Math.PI);
      }
      ctx.stroke();
      ctx.fillText(measure(m, slice).label, Math.max(ax, bx) + 4 * dpr, Math.max(ay, by) + 4 * dpr);
    }
    ctx.restore();
  }

  results(slice) {
    return this.measurementsHere().map((m) => measure(m, slice).label);
  }

  // ---------------------------------------------------------------- input

  attach() {
    const c = this.canvas;
    c.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      this.viewer.activate(this);
      // a notch of a mouse wheel is a slice; a touchpad's small deltas add up to one
      if (Math.abs(ev.deltaY) >= 50 || ev.deltaMode !== 0) {
        this.wheel = 0;
        this.scroll(Math.sign(ev.deltaY));
      } else {
        this.wheel = (this.wheel || 0) + ev.deltaY;
        if (Math.abs(this.wheel) >= 50) {
          this.scroll(Math.sign(this.wheel));
          this.wheel = 0;
        }
      }
    }, { passive: false });
    c.addEventListener('contextmenu', (ev) => ev.preventDefault());
    c.addEventListener('pointerdown', (ev) => {
      this.viewer.activate(this);
      const slice = this.slice();
      if (!slice) return;
      c.setPointerCapture(ev.pointerId);
      let tool = this.viewer.tool;
      if (ev.button === 1 || (ev.button === 0 && ev.shiftKey)) tool = 'pan';
      if (ev.button === 2) tool = 'zoom';
      const t = this.transform(slice);
      const start = { x: ev.clientX, y: ev.clientY, window: { ...this.window }, t,
        view: { scale: t.scale, cx: (c.width / 2 - t.ox) / t.sx, cy: (c.height / 2 - t.oy) / t.sy } };
      if (['distance', 'rect', 'ellipse'].includes(tool)) {
        const p = this.toImage(ev, slice);
        this.drawing = { type: tool, key: this.series.key(this.index), points: [p, { ...p }] };
      }
      const move = (e) => {
        const dx = e.clientX - start.x;
        const dy = e.clientY - start.y;
        if (tool === 'window') {
          const range = Math.max(1, slice.max - slice.min);
          const k = Math.max(range / 1024, 0.25);
          this.setWindow(start.window.center + dy * k, start.window.width + dx * k * 2);
        } else if (tool === 'pan') {
          const dpr = c.width / Math.max(1, c.getBoundingClientRect().width);
          this.view = { scale: start.view.scale, cx: start.view.cx - (dx * dpr) / start.t.sx,
            cy: start.view.cy - (dy * dpr) / start.t.sy };
          this.viewer.schedule();
        } else if (tool === 'zoom') {
          const scale = Math.max(0.05, Math.min(64, start.view.scale * Math.exp(-dy / 200)));
          this.view = { scale, cx: start.view.cx, cy: start.view.cy };
          this.viewer.schedule();
        } else if (this.drawing) {
          this.drawing.points[1] = this.toImage(e, slice);
          this.viewer.schedule();
        }
      };
      const up = () => {
        c.removeEventListener('pointermove', move);
        c.removeEventListener('pointerup', up);
        c.removeEventListener('pointercancel', up);
        if (this.drawing) {
          const [a, b] = this.drawing.points;
          if (Math.hypot(a.x - b.x, a.y - b.y) > 0.5) this.measurements.push(this.drawing);
          this.drawing = null;
          this.viewer.schedule();
          this.viewer.reportMeasurements();
        }
      };
      c.addEventListener('pointermove', move);
      c.addEventListener('pointerup', up);
      c.addEventListener('pointercancel', up);
    });
  }

  zoomBy(f) {
    const slice = this.slice() || this.lastSlice;
    if (!slice) return;
    const t = this.transform(slice);
    const c = this.canvas;
    this.view = { scale: Math.max(0.05, Math.min(64, t.scale * f)),
      cx: (c.width / 2 - t.ox) / t.sx, cy: (c.height / 2 - t.oy) / t.sy };
    this.viewer.schedule();
  }

  // one image pixel a device pixel (along the finer spacing), the image centred
  actualSize() {
    const slice = this.slice() || this.lastSlice;
    if (!slice) return;
    this.view = { scale: 1, cx: slice.width / 2, cy: slice.height / 2 };
    this.viewer.schedule();
  }
}

// A measurement's values: distance in mm (pixels without Pixel Spacing); a region's mean,
// standard deviation and count of the pixels whose centres are inside it, and its area.
export function measure(m, slice) {
  const sp = slice.format.spacing;
  const unit = sp ? 'mm' : 'px';
  const rs = sp ? sp[0] : 1; // row spacing: along y
  const cs = sp ? sp[1] : 1; // column spacing: along x
  const [a, b] = m.points;
  if (m.type === 'distance') {
    const d = Math.hypot((b.x - a.x) * cs, (b.y - a.y) * rs);
    return { distance: d, unit, label: `${d.toFixed(1)} ${unit}` };
  }
  const x0 = Math.min(a.x, b.x); const x1 = Math.max(a.x, b.x);
  const y0 = Math.min(a.y, b.y); const y1 = Math.max(a.y, b.y);
  const ex = (x0 + x1) / 2; const ey = (y0 + y1) / 2;
  const rx = (x1 - x0) / 2; const ry = (y1 - y0) / 2;
  let sum = 0; let sum2 = 0; let count = 0;
  if (slice.data) {
    for (let y = Math.max(0, Math.ceil(y0 - 0.5)); y <= Math.min(slice.height - 1, Math.floor(y1 - 0.5)); y++) {
      for (let x = Math.max(0, Math.ceil(x0 - 0.5)); x <= Math.min(slice.width - 1, Math.floor(x1 - 0.5)); x++) {
        // pixel (x, y) covers [x, x+1) × [y, y+1): its centre is (x+0.5, y+0.5)
        if (m.type === 'ellipse') {
          const u = (x + 0.5 - ex) / (rx || 1); const v = (y + 0.5 - ey) / (ry || 1);
          if (u * u + v * v > 1) continue;
        }
        const val = modalityValue(slice, x, y);
        sum += val; sum2 += val * val; count++;
      }
    }
  }
  const area = (m.type === 'ellipse' ? Math.PI * rx * ry : (x1 - x0) * (y1 - y0)) * cs * rs;
  const mean = count ? sum / count : NaN;
  const sd = count ? Math.sqrt(Math.max(0, sum2 / count - mean * mean)) : NaN;
  const hu = slice.format.modality === 'CT' ? ' HU' : '';
  return { mean, sd, count, area, unit,
    label: `mean ${mean.toFixed(1)}${hu} sd ${sd.toFixed(1)} area ${area.toFixed(1)} ${unit}²` };
}

export class Viewer {
  constructor(root) {
    this.root = root;
    this.box = root.querySelector('#viewports');
    this.list = root.querySelector('#series-list');
    this.status = root.querySelector('#viewer-status');
    this.tool = 'window';
    this.showOverlay = true;
    this.series = [];
    this.segmentations = null;
    this.viewports = [];
    this.active = null;
    this.study = null;
    this.patientName = ''; this.patientId = ''; this.studyDate = '';
    this.loader = new Loader((series) => {
      if (this.viewports.some((v) => v.series === series)) this.schedule();
    });
    this.frame = 0;
    this.onKey = (ev) => this.key(ev);
    this.onResize = () => this.schedule();
    document.addEventListener('keydown', this.onKey);
    window.addEventListener('resize', this.onResize);
    this.controls();
    this.setLayout('1x1');
  }

  controls() {
    this.handlers = [];
    const on = (el, type, fn) => { el.addEventListener(type, fn); this.handlers.push([el, type, fn]); };
    for (const b of this.root.querySelectorAll('[data-layout]'))
      on(b, 'click', () => this.setLayout(b.dataset.layout));
    for (const b of this.root.querySelectorAll('[data-tool]')) {
      on(b, 'click', () => {
        this.tool = b.dataset.tool;
        for (const o of this.root.querySelectorAll('[data-tool]')) o.classList.toggle('on', o === b);
      });
    }
    for (const b of this.root.querySelectorAll('[data-preset]'))
      on(b, 'click', () => this.preset(b.dataset.preset));
    on(this.root.querySelector('#fit'), 'click', () => this.fit());
    on(this.root.querySelector('#actual-size'), 'click', () => this.active && this.active.actualSize());
    on(this.root.querySelector('#clear-measurements'), 'click', () => {
      for (const v of this.viewports) v.measurements = [];
      this.reportMeasurements();
      this.schedule();
    });
    on(this.root.querySelector('#show-overlay'), 'change', (ev) => {
      this.showOverlay = ev.target.checked;
      for (const v of this.viewports) v.overlayStale = true;
      this.schedule();
    });
  }

  close() {
    this.loader.close();
    document.removeEventListener('keydown', this.onKey);
    window.removeEventListener('resize', this.onResize);
    for (const [el, type, fn] of this.handlers) el.removeEventListener(type, fn);
    this.box.replaceChildren();
    this.list.replaceChildren();
    cancelAnimationFrame(this.frame);
  }

  setLayout(layout) {
    const n = { '1x1': 1, '1x2': 2, '2x2': 4 }[layout];
    this.box.className = `layout-${layout}`;
    for (const b of this.root.querySelectorAll('[data-layout]'))
      b.classList.toggle('on', b.dataset.layout === layout);
    while (this.viewports.length > n) this.viewports.pop().el.remove();
    const viewable = this.series.filter((s) => s.viewable);
    while (this.viewports.length < n) {
      const el = document.createElement('div');
      el.className = 'viewport';
      this.box.appendChild(el);
      const v = new Viewport(this, el);
      this.viewports.push(v);
      // a new viewport shows the next series not shown yet
      const next = viewable.find((s) => !this.viewports.some((o) => o.series === s));
      if (next) this.show(next, v);
    }
    if (!this.viewports.includes(this.active)) this.activate(this.viewports[0]);
    this.schedule();
  }

  activate(v) {
    this.active = v;
    for (const o of this.viewports) o.el.classList.toggle('active', o === v);
    for (const li of this.list.children) li.classList.toggle('on', v && v.series && li.dataset.series === v.series.uid);
  }

  async openStudy(study, seriesUid) {
    if (this.study === study) return;
    this.study = study;
    this.status.textContent = 'Loading the study…';
    this.list.replaceChildren();
    try {
      const [studies, series] = await Promise.all([
        api.getJson(api.query('/dicomweb/studies', { StudyInstanceUID: study, includefield: 'StudyDescription' })),
        api.getJson(api.query(`/dicomweb/studies/${study}/series`, {
          includefield: ['SeriesDescription', 'NumberOfSeriesRelatedInstances'] })),
      ]);
      const st = studies[0] || {};
      this.patientName = api.personName(api.value(st, 'PatientName'));
      this.patientId = api.value(st, 'PatientID') || '';
      this.studyDate = api.date(api.value(st, 'StudyDate'));
      this.root.querySelector('#viewer-title').textContent = api.value(st, 'StudyDescription') || 'Study';
      this.root.querySelector('#viewer-patient').textContent = `${this.patientName} ${this.patientId}`;
      this.series = series.map((s) => new Series(study, s))
        .sort((a, b) => (a.number || 0) - (b.number || 0));
      for (const s of this.series) this.listItem(s);
      this.status.textContent = '';
      this.segmentations = null;
      const segs = this.series.filter((s) => s.modality === 'SEG');
      if (segs.length) {
        const redraw = () => {
          for (const v of this.viewports) v.overlayStale = true;
          this.schedule();
        };
        loadSegmentations(segs, redraw).then((m) => {
          this.segmentations = m;
          redraw();
        }).catch((e) => { this.status.textContent = `segmentation: ${e.message}`; });
      }
      const first = this.series.find((s) => s.uid === seriesUid) || this.series.find((s) => s.viewable);
      const viewable = this.series.filter((s) => s.viewable);
      for (let i = 0; i < this.viewports.length; i++) {
        const s = i === 0 ? first : viewable.filter((x) => x !== first)[i - 1];
        if (s) await this.show(s, this.viewports[i]);
      }
      this.activate(this.viewports[0]);
    } catch (e) {
      this.status.textContent = `Cannot open the study: ${e.message}`;
    }
  }

  listItem(s) {
    const li = document.createElement('li');
    li.dataset.series = s.uid;
    li.dataset.modality = s.modality;
    const title = document.createElement('span');
    title.textContent = `${s.modality} ${s.number !== undefined ? `#${s.number}` : ''} ${s.description}`;
    const small = document.createElement('small');
    small.textContent = s.viewable ? `${s.count} images`
      : s.modality === 'SEG' ? 'segmentation: shown over its images' : s.modality === 'SR' ? 'results (structured report)' : s.modality;
    li.append(title, small);
    if (s.viewable) li.addEventListener('click', () => this.show(s, this.active || this.viewports[0]));
    else li.classList.add('result');
    this.list.appendChild(li);
  }

  async show(series, viewport) {
    this.status.textContent = `Loading series ${series.description || series.uid}…`;
    try {
      await series.load();
      if (!series.slices.length) throw new Error('the series has no images');
      viewport.setSeries(series, Math.floor(series.slices.length / 2));
      this.status.textContent = '';
      this.activate(this.active || viewport);
    } catch (e) {
      this.status.textContent = `Cannot show the series: ${e.message}`;
    }
  }

  preset(name) {
    const v = this.active;
    if (!v || !v.series) return;
    if (name === 'default') {
      const s = v.slice() || v.lastSlice;
      if (s) v.window = v.defaultWindow(s);
      this.schedule();
      return;
    }
    const p = PRESETS[name];
    v.setWindow(p.center, p.width);
  }

  fit() {
    if (this.active) { this.active.view = { scale: 0, cx: 0, cy: 0 }; this.schedule(); }
  }

  key(ev) {
    if (this.root.hidden || ev.target.closest('input, select, textarea')) return;
    const v = this.active;
    if (!v) return;
    const n = v.series ? v.series.slices.length : 0;
    const steps = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1,
      PageUp: -10, PageDown: 10, Home: -n, End: n }[ev.key];
    if (steps) { v.scroll(steps); ev.preventDefault(); return; }
    const presets = { 1: 'lung', 2: 'bone', 3: 'brain', 4: 'abdomen', 0: 'default' };
    if (ev.key in presets && !ev.ctrlKey && !ev.altKey) { this.preset(presets[ev.key]); return; }
    if (ev.key === 'f') this.fit();
    else if (ev.key === '=' || ev.key === '+') v.zoomBy(1.25);
    else if (ev.key === '-') v.zoomBy(0.8);
    else if (ev.key === 'a') v.actualSize();
  }

  reportMeasurements() {
    const all = [];
    for (const v of this.viewports) {
      for (const m of v.measurements) {
        const s = cache.get(m.key);
        if (s) all.push({ type: m.type, ...measure(m, s) });
      }
    }
    this.root.dataset.measurements = JSON.stringify(all);
  }

  // redraw on the next animation frame, and fetch what the viewports need next
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      for (const v of this.viewports) v.render();
      this.prefetch();
    });
  }

  prefetch() {
    const want = [];
    const seen = new Set();
    const add = (series, i) => {
      if (i < 0 || i >= series.slices.length) return;
      const key = series.key(i);
      if (seen.has(key)) return;
      seen.add(key);
      want.push({ series, index: i, key });
    };
    const shown = this.viewports.filter((v) => v.series);
    for (const v of shown) add(v.series, v.index);
    for (let k = 1; k <= AHEAD; k++) {
      for (const v of shown) {
        add(v.series, v.index + v.direction * k);
        if (k <= BEHIND) add(v.series, v.index - v.direction * k);
      }
    }
    this.loader.want(want);
  }
}
