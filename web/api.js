// Requests to mira serve: the bearer token, DICOM JSON values, multipart frame bodies.

const TOKEN_KEY = 'mira.token';
const USER_KEY = 'mira.user';

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function user() { return JSON.parse(sessionStorage.getItem(USER_KEY) || 'null'); }

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// POST /auth/token with a JSON body: the token kept for this tab only (sessionStorage).
export async function signIn(username, password) {
  // credentials 'omit': a 401 with WWW-Authenticate: Basic (a wrong password) then comes back
  // to this code instead of making the browser ask for a password itself (Fetch 4.6)
  const r = await fetch('/auth/token', {
    method: 'POST',
    credentials: 'omit',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok || !data.access_token)
    throw new HttpError(r.status, r.status === 429
      ? `Too many attempts: try again in ${r.headers.get('Retry-After') || 'a few'} seconds`
      : data.message || `Sign-in failed (${r.status})`);
  sessionStorage.setItem(TOKEN_KEY, data.access_token);
  sessionStorage.setItem(USER_KEY, JSON.stringify({
    name: username, role: data.role || '', expires: data.expires_at || null,
  }));
  return data;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
}

// A request with the token; a 401 signs out. Returns the Response (ok or not).
export async function request(path, { accept, signal } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (accept) headers.Accept = accept;
  const r = await fetch(path, { headers, signal, credentials: 'omit' });
  if (r.status === 401) {
    signOut();
    onUnauthorized();
  }
  return r;
}

async function failure(r) {
  let msg = `${r.status} ${r.statusText}`;
  try {
    const j = await r.json();
    if (j && j.message) msg = j.message;
  } catch (e) { /* not JSON */ }
  return new HttpError(r.status, msg);
}

// GET of DICOM JSON: an array (empty for 204).
export async function getJson(path, opts = {}) {
  const r = await request(path, { accept: 'application/dicom+json', ...opts });
  if (r.status === 204) return [];
  if (!r.ok) throw await failure(r);
  return r.json();
}

// The search's URL: params with empty values left out.
export function query(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// ---------------------------------------------------------------- DICOM JSON (PS3.18 F.2)

export const TAG = {
  PatientName: '00100010', PatientID: '00100020', PatientBirthDate: '00100030',
  PatientSex: '00100040', StudyDate: '00080020', StudyTime: '00080030',
  AccessionNumber: '00080050', ModalitiesInStudy: '00080061', Modality: '00080060',
  StudyDescription: '00081030', SeriesDescription: '0008103E', StudyInstanceUID: '0020000D',
  SeriesInstanceUID: '0020000E', SOPInstanceUID: '00080018', SOPClassUID: '00080016',
  SeriesNumber: '00200011', InstanceNumber: '00200013', StudyID: '00200010',
  NumberOfStudyRelatedSeries: '00201206', NumberOfStudyRelatedInstances: '00201208',
  NumberOfSeriesRelatedInstances: '00201209', ReferringPhysicianName: '00080090',
  Rows: '00280010', Columns: '00280011', BitsAllocated: '00280100', BitsStored: '00280101',
  HighBit: '00280102', PixelRepresentation: '00280103', SamplesPerPixel: '00280002',
  PlanarConfiguration: '00280006', PhotometricInterpretation: '00280004',
  NumberOfFrames: '00280008', RescaleSlope: '00281053', RescaleIntercept: '00281052',
  WindowCenter: '00281050', WindowWidth: '00281051', PixelSpacing: '00280030',
  ImagerPixelSpacing: '00181164', SliceThickness: '00180050', ImagePositionPatient: '00200032',
  ImageOrientationPatient: '00200037', SliceLocation: '00201041',
  RescaleType: '00281054', SegmentSequence: '00620002', SegmentNumber: '0062000B',
  SegmentLabel: '00620005', RecommendedDisplayCIELabValue: '0062000D',
  PerFrameFunctionalGroupsSequence: '52009230', SharedFunctionalGroupsSequence: '52009229',
  DerivationImageSequence: '08089215', SourceImageSequence: '00082112',
  ReferencedSOPInstanceUID: '00081155', SegmentIdentificationSequence: '0062000A',
  ReferencedSegmentNumber: '0062000B', ReferencedSeriesSequence: '00081115',
  PlanePositionSequence: '00209113', PixelMeasuresSequence: '00289110',
  ContentDate: '00080023', ContentTime: '00080033',
};

// The first value of an attribute (a string or number; a person name's Alphabetic form).
export function value(obj, tag, i = 0) {
  const e = obj && obj[TAG[tag] || tag];
  if (!e || !e.Value || e.Value.length <= i) return undefined;
  const v = e.Value[i];
  if (e.vr === 'PN') return v && typeof v === 'object' ? (v.Alphabetic || '') : v;
  return v;
}

export function values(obj, tag) {
  const e = obj && obj[TAG[tag] || tag];
  if (!e || !e.Value) return [];
  return e.vr === 'PN' ? e.Value.map((v) => (v && v.Alphabetic) || '') : e.Value;
}

export function number(obj, tag, fallback, i = 0) {
  const v = value(obj, tag, i);
  const n = typeof v === 'number' ? v : parseFloat(v);
  return Number.isFinite(n) ? n : fallback;
}

// "Doe^John" as "Doe, John"; a date YYYYMMDD as YYYY-MM-DD.
export function personName(pn) {
  if (!pn) return '';
  const [family, given, middle, prefix, suffix] = pn.split('^');
  return [[prefix, given, middle].filter(Boolean).join(' '), family].filter(Boolean).reverse()
    .join(', ') + (suffix ? ` ${suffix}` : '');
}
export function date(d) {
  return d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : (d || '');
}

// ---------------------------------------------------------------- WADO-RS frames

// The body of the first part of a multipart/related response (RFC 2046 5.1.1).
export function firstPart(buf, contentType) {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType || '');
  const bytes = new Uint8Array(buf);
  if (!m) return bytes; // not multipart: the body is the frame
  const delim = new TextEncoder().encode(`--${m[1] || m[2]}`);
  const start = indexOf(bytes, delim, 0);
  if (start < 0) throw new Error('multipart body without its boundary');
  const crlf2 = new Uint8Array([13, 10, 13, 10]);
  const hdrEnd = indexOf(bytes, crlf2, start + delim.length);
  if (hdrEnd < 0) throw new Error('multipart part without a header end');
  const bodyStart = hdrEnd + 4;
  const closing = new Uint8Array(delim.length + 2);
  closing.set([13, 10]);
  closing.set(delim, 2);
  const end = indexOf(bytes, closing, bodyStart);
  return bytes.subarray(bodyStart, end < 0 ? bytes.length : end);
}

function indexOf(hay, needle, from) {
  const first = needle[0];
  const last = hay.length - needle.length;
  outer: for (let i = from; i <= last; i++) {
    if (hay[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// Raw little-endian bytes of one frame (WADO-RS PS3.18 10.4.1.1.3).
export async function frame(study, series, instance, n = 1, signal) {
  const r = await request(
    `/dicomweb/studies/${study}/series/${series}/instances/${instance}/frames/${n}`,
    { accept: 'multipart/related; type="application/octet-stream"', signal });
  if (!r.ok) throw await failure(r);
  return firstPart(await r.arrayBuffer(), r.headers.get('Content-Type'));
}
