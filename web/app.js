// mira's web page: sign-in, the study list, the patient page and the viewer, routed by the
// location's hash (#/studies, #/patient/ID, #/viewer/STUDY[/SERIES]).
import * as api from './api.js';
import { Viewer } from './viewer.js';

const $ = (id) => document.getElementById(id);
const PAGES = ['sign-in', 'studies', 'patient', 'viewer'];
let viewer = null;

function show(page) {
  for (const p of PAGES) $(p).hidden = p !== page;
  const u = api.user();
  $('nav').hidden = page === 'sign-in';
  $('who').textContent = u ? `${u.name}${u.role ? ` (${u.role})` : ''}` : '';
  if (page !== 'viewer' && viewer) {
    viewer.close();
    viewer = null;
  }
}

function text(el, s) { el.textContent = s == null ? '' : String(s); return el; }
function cell(tr, s) { tr.appendChild(text(document.createElement('td'), s)); }

// ---------------------------------------------------------------- sign-in

$('sign-in-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const button = $('sign-in-button');
  button.disabled = true;
  text($('sign-in-error'), '');
  try {
    await api.signIn($('username').value, $('password').value);
    $('password').value = '';
    const next = sessionStorage.getItem('mira.next');
    sessionStorage.removeItem('mira.next');
    if (next && next !== location.hash) location.hash = next;
    else route();
  } catch (e) {
    text($('sign-in-error'), e.message);
  } finally {
    button.disabled = false;
  }
});

$('sign-out').addEventListener('click', () => {
  api.signOut();
  location.hash = '#/studies';
  route();
});

api.setUnauthorizedHandler(() => {
  sessionStorage.setItem('mira.next', location.hash);
  show('sign-in');
  text($('sign-in-error'), 'Your session has ended: please sign in again.');
});

// ---------------------------------------------------------------- the study list

const search = { offset: 0 };

function wildcard(s) {
  s = s.trim();
  return s && !/[*?]/.test(s) ? `${s}*` : s;
}

function studyRow(tbody, st, withPatient) {
  const tr = document.createElement('tr');
  const uid = api.value(st, 'StudyInstanceUID');
  tr.dataset.study = uid;
  if (withPatient) {
    cell(tr, api.personName(api.value(st, 'PatientName')));
    cell(tr, api.value(st, 'PatientID'));
  }
  cell(tr, api.date(api.value(st, 'StudyDate')));
  cell(tr, api.values(st, 'ModalitiesInStudy').join(', '));
  cell(tr, api.value(st, 'AccessionNumber'));
  cell(tr, api.value(st, 'StudyDescription'));
  cell(tr, api.value(st, 'NumberOfStudyRelatedSeries'));
  cell(tr, api.value(st, 'NumberOfStudyRelatedInstances'));
  tr.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    location.hash = `#/viewer/${uid}`;
  });
  if (withPatient) {
    const pid = api.value(st, 'PatientID');
    if (pid) {
      const a = document.createElement('a');
      a.href = `#/patient/${encodeURIComponent(pid)}`;
      a.textContent = tr.children[0].textContent || pid;
      a.title = 'the patient page';
      tr.children[0].textContent = '';
      tr.children[0].appendChild(a);
    }
  }
  tbody.appendChild(tr);
}

const STUDY_FIELDS = ['StudyDescription', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries',
  'NumberOfStudyRelatedInstances'];

async function loadStudies() {
  const limit = parseInt($('q-limit').value, 10);
  const params = {
    PatientName: wildcard($('q-patient').value),
    PatientID: $('q-patient-id').value.trim(),
    StudyDate: $('q-date').value.trim().replace(/[-.](?=\d{2}(\D|$))/g, ''),
    ModalitiesInStudy: $('q-modality').value.trim().toUpperCase(),
    AccessionNumber: $('q-accession').value.trim(),
    includefield: STUDY_FIELDS,
    limit: limit + 1, // one more than shown: is there a next page?
    offset: search.offset,
  };
  const status = $('studies-status');
  const tbody = $('study-table').tBodies[0];
  text(status, 'Searching…');
  $('search-button').disabled = true;
  try {
    const found = await api.getJson(api.query('/dicomweb/studies', params));
    tbody.replaceChildren();
    found.slice(0, limit).forEach((st) => studyRow(tbody, st, true));
    const shown = Math.min(found.length, limit);
    text(status, shown ? '' : 'No study matches.');
    text($('page-info'), shown
      ? `Studies ${search.offset + 1}–${search.offset + shown}` : '');
    $('prev-page').disabled = search.offset === 0;
    $('next-page').disabled = found.length <= limit;
    $('study-table').dataset.count = String(shown);
  } catch (e) {
    text(status, `Search failed: ${e.message}`);
  } finally {
    $('search-button').disabled = false;
  }
}

$('search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  search.offset = 0;
  loadStudies();
});
$('prev-page').addEventListener('click', () => {
  search.offset = Math.max(0, search.offset - parseInt($('q-limit').value, 10));
  loadStudies();
});
$('next-page').addEventListener('click', () => {
  search.offset += parseInt($('q-limit').value, 10);
  loadStudies();
});

// ---------------------------------------------------------------- the patient page

async function loadPatient(pid) {
  text($('patient-title'), pid);
  const facts = $('patient-facts');
  facts.replaceChildren();
  const tbody = $('patient-studies').tBodies[0];
  tbody.replaceChildren();
  text($('patient-orders'), 'Loading…');
  text($('patient-reports'), 'Loading…');
  text($('patient-results'), '');
  try {
    const studies = await api.getJson(api.query('/dicomweb/studies', {
      PatientID: pid, includefield: [...STUDY_FIELDS, 'PatientBirthDate', 'PatientSex'],
    }));
    studies.sort((a, b) => String(api.value(b, 'StudyDate') || '')
      .localeCompare(String(api.value(a, 'StudyDate') || '')));
    const first = studies[0];
    if (first) {
      text($('patient-title'), api.personName(api.value(first, 'PatientName')) || pid);
      for (const [k, v] of [['Patient ID', pid],
        ['Birth date', api.date(api.value(first, 'PatientBirthDate'))],
        ['Sex', api.value(first, 'PatientSex')], ['Studies', studies.length]]) {
        facts.appendChild(text(document.createElement('dt'), k));
        facts.appendChild(text(document.createElement('dd'), v || '—'));
      }
    }
    studies.forEach((st) => studyRow(tbody, st, false));
    // The patient record (GET /api/patients/ID: HL7 demographics, orders, reports); the roles
    // that may not read it (researchers) see the studies only.
    let record = null;
    let forbidden = false;
    try {
      record = await api.getJson(`/api/patients/${encodeURIComponent(pid)}`,
        { accept: 'application/json' });
    } catch (e) {
      if (e.status === 403) forbidden = true;
      else if (e.status !== 404) throw e;
    }
    if (record && record.patient && record.patient.from_hl7) {
      const p = record.patient;
      if (p.name) text($('patient-title'), api.personName(p.name));
      facts.replaceChildren();
      const ids = (record.identifiers || []).map((i) => `${i.id}${i.issuer ? ` (${i.issuer}${i.type ? ` ${i.type}` : ''})` : ''}`);
      for (const [k, v] of [['Patient ID', p.patient_id], ['Identifiers', ids.join(', ')],
        ['Birth date', api.date(p.birth_date)], ['Sex', p.sex],
        ['Studies', (record.studies || []).length], ['Updated', p.updated_at]]) {
        facts.appendChild(text(document.createElement('dt'), k));
        facts.appendChild(text(document.createElement('dd'), v || '—'));
      }
    }
    const obox = $('patient-orders');
    obox.replaceChildren();
    const orders = record ? record.orders || [] : [];
    if (forbidden) text(obox, 'Orders are shown to clinicians and admins.');
    else if (!orders.length) text(obox, 'No orders.');
    for (const o of orders) {
      const p = document.createElement('p');
      const when = `${api.date(o.scheduled_date)} ${o.scheduled_time || ''}`.trim();
      const line = `${when} ${o.modality || ''} ${o.procedure || ''} — accession ${o.accession || '—'}, ${o.status || ''}`;
      if (o.linked_study_uid) {
        const a = document.createElement('a');
        a.href = `#/viewer/${o.linked_study_uid}`;
        a.textContent = line;
        p.appendChild(a);
      } else {
        text(p, line);
      }
      obox.appendChild(p);
    }
    const box = $('patient-reports');
    box.replaceChildren();
    const texts = record ? record.reports || [] : [];
    for (const r of texts) {
      const d = document.createElement('details');
      const sum = document.createElement('summary');
      const status = { P: 'preliminary', F: 'final', C: 'corrected' }[r.status] || r.status || '';
      text(sum, `${r.procedure || 'Report'} — accession ${r.accession || '—'}, version ${r.version}, ${status}`);
      d.appendChild(sum);
      const pre = document.createElement('pre');
      text(pre, r.text || '');
      d.appendChild(pre);
      if (r.study_uid) {
        const a = document.createElement('a');
        a.href = `#/viewer/${r.study_uid}`;
        a.textContent = 'the study';
        d.appendChild(a);
      }
      box.appendChild(d);
    }
    // analysis results kept with the patient's studies (mira features --study), a table each
    const rbox = $('patient-results');
    rbox.replaceChildren();
    const results = record ? record.results || [] : [];
    if (!forbidden && !results.length) text(rbox, 'No analysis results.');
    const groups = new Map();
    for (const r of results) {
      const k = `${r.study_uid} ${r.method}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(r);
    }
    for (const rows of groups.values()) {
      const d = document.createElement('details');
      const sum = document.createElement('summary');
      const study = (record.studies || []).find((st) => st.study_uid === rows[0].study_uid);
      text(sum, `${rows[0].method.toUpperCase()} features of the study ${study && study.accession ? `with accession ${study.accession}` : rows[0].study_uid} — ${rows.length} values, ${rows[0].created_at}`);
      d.appendChild(sum);
      const table = document.createElement('table');
      table.className = 'list';
      for (const r of rows) {
        const tr = table.insertRow();
        text(tr.insertCell(), r.tag);
        text(tr.insertCell(), r.value === null ? '—' : String(r.value));
      }
      d.appendChild(table);
      rbox.appendChild(d);
    }
    // reports held as DICOM SR
    const reports = await api.getJson(api.query('/dicomweb/series', {
      PatientID: pid, Modality: 'SR', includefield: ['SeriesDescription', 'StudyDate'],
    }));
    if (!reports.length && !texts.length) text(box, 'No reports.');
    for (const r of reports) {
      const a = document.createElement('a');
      a.href = `#/viewer/${api.value(r, 'StudyInstanceUID')}`;
      a.textContent = `${api.date(api.value(r, 'StudyDate'))} ${api.value(r, 'SeriesDescription') || 'Structured report'}`;
      const p = document.createElement('p');
      p.appendChild(a);
      box.appendChild(p);
    }
  } catch (e) {
    text($('patient-orders'), '');
    text($('patient-reports'), `Failed: ${e.message}`);
  }
}

// ---------------------------------------------------------------- routing

function route() {
  if (!api.token()) {
    show('sign-in');
    $('username').focus();
    return;
  }
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'viewer' && parts[1]) {
    show('viewer');
    if (!viewer) viewer = new Viewer($('viewer'));
    viewer.openStudy(parts[1], parts[2]);
  } else if (parts[0] === 'patient' && parts[1]) {
    show('patient');
    loadPatient(parts[1]);
  } else {
    show('studies');
    if (!$('study-table').dataset.count) loadStudies();
  }
}

window.addEventListener('hashchange', route);
$('sign-in-button').disabled = false; // (disabled until this module has loaded)
route();
