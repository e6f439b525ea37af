// One call of the dicomweb-client package (the DICOMweb client OHIF uses) against a server, for
// the Python tests (tests/python/test_web_dicomweb_client.py) to compare with the archive.
//
//   node dicomweb.mjs URL TOKEN OPERATION ARGS_JSON [OUT_DIR]
//
// URL is the DICOMweb base (http://127.0.0.1:PORT/dicomweb), TOKEN a bearer token sent through
// the client's `headers` option, OPERATION a method of DICOMwebClient (searchForStudies,
// retrieveSeries, retrieveInstanceFrames, storeInstances...) and ARGS_JSON its options object.
// For storeInstances, ARGS_JSON names files instead of data: {"files": [path, ...]} becomes
// `datasets` (their bytes as ArrayBuffers).
//
// One JSON object is written to stdout:
//   {"json": value}          a JSON answer (searches, metadata; an empty search is [])
//   {"text": string}         a text answer (the Store Instances Response)
//   {"parts": [{"file", "length", "contentType", "transferSyntaxUID"}]}
//                            binary answers (retrieve, frames, rendered), each part written to
//                            OUT_DIR/part-N.bin; the part headers are the ones the client
//                            gives (it reads the first part's headers for all of them)
//   {"error": message, "status": http status, "response": body as text}   exit status 2
import fs from 'node:fs';
import path from 'node:path';

import XMLHttpRequest from 'xhr2';
import dicomweb from 'dicomweb-client';

// dicomweb-client is written for browsers: it makes its requests with XMLHttpRequest
globalThis.XMLHttpRequest = XMLHttpRequest;

const OPERATIONS = new Set([
  'searchForStudies', 'searchForSeries', 'searchForInstances',
  'retrieveStudy', 'retrieveSeries', 'retrieveInstance',
  'retrieveStudyMetadata', 'retrieveSeriesMetadata', 'retrieveInstanceMetadata',
  'retrieveInstanceFrames', 'retrieveInstanceRendered', 'retrieveInstanceFramesRendered',
  'retrieveInstanceThumbnail', 'retrieveBulkData', 'storeInstances',
]);

function usage(message) {
  process.stderr.write(`dicomweb.mjs: ${message}\n` +
    'usage: node dicomweb.mjs URL TOKEN OPERATION ARGS_JSON [OUT_DIR]\n');
  process.exit(64);
}

function bodyText(response) {
  if (response === undefined || response === null) return null;
  if (typeof response === 'string') return response;
  if (response instanceof ArrayBuffer) return Buffer.from(response).toString('latin1');
  return JSON.stringify(response);
}

function writeParts(parts, outDir) {
  if (!outDir) usage('a binary answer needs OUT_DIR');
  fs.mkdirSync(outDir, { recursive: true });
  return parts.map((part, i) => {
    const bytes = ArrayBuffer.isView(part)
      ? Buffer.from(part.buffer, part.byteOffset, part.byteLength)
      : Buffer.from(part);
    const file = path.join(outDir, `part-${i}.bin`);
    fs.writeFileSync(file, bytes);
    return {
      file,
      length: bytes.length,
      contentType: part.contentType ?? null,
      transferSyntaxUID: part.transferSyntaxUID ?? null,
    };
  });
}

function isBinary(v) {
  return v instanceof ArrayBuffer || ArrayBuffer.isView(v);
}

// dicomweb-client 0.11.3 refuses every mediaTypes option of retrieveStudy, retrieveSeries and
// retrieveInstance: it compares the common type of the media types ("application/") with
// "application/dicom". With mediaTypes (a transfer syntax asked for) those three make the
// request the way the methods would have: the same URL, and the client's own
// _httpGetMultipartApplicationDicom for the Accept header and the multipart decoding.
function call(client, operation, options) {
  const retrieves = ['retrieveStudy', 'retrieveSeries', 'retrieveInstance'];
  if (!retrieves.includes(operation) || !options.mediaTypes) {
    return client[operation](options);
  }
  let url = `${client.wadoURL}/studies/${options.studyInstanceUID}`;
  if (operation !== 'retrieveStudy') url += `/series/${options.seriesInstanceUID}`;
  if (operation === 'retrieveInstance') url += `/instances/${options.sopInstanceUID}`;
  const got = client._httpGetMultipartApplicationDicom(url, options.mediaTypes, false, {});
  return operation === 'retrieveInstance' ? got.then((p) => p[0]) : got;
}

async function main() {
  const [url, token, operation, argsJson, outDir] = process.argv.slice(2);
  if (!url || !token || !operation || argsJson === undefined) usage('missing arguments');
  if (!OPERATIONS.has(operation)) usage(`unknown operation ${operation}`);
  const options = JSON.parse(argsJson);
  if (operation === 'storeInstances') {
    const files = options.files || [];
    delete options.files;
    options.datasets = files.map((f) => {
      const b = fs.readFileSync(f);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    });
  }

  const client = new dicomweb.api.DICOMwebClient({
    url,
    headers: { Authorization: `Bearer ${token}` },
    verbose: false,
  });

  let result;
  try {
    result = await call(client, operation, options);
  } catch (err) {
    process.stdout.write(JSON.stringify({
      error: String(err && err.message ? err.message : err),
      status: err && err.status !== undefined ? err.status : null,
      response: err ? bodyText(err.response) : null,
    }) + '\n');
    process.exit(2);
  }

  let out;
  if (isBinary(result)) {
    out = { parts: writeParts([result], outDir) };
  } else if (Array.isArray(result) && result.length > 0 && result.every(isBinary)) {
    out = { parts: writeParts(result, outDir) };
  } else if (typeof result === 'string') {
    out = { text: result };
  } else {
    out = { json: result === undefined ? null : result };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  // (the HTTP agent keeps its connection open: do not wait for it)
  process.exit(0);
}

main();
