// The viewer's browser test, run by tests/python/test_web_page.py with one JSON argument
// {base, out, chromium, username, password, wrong_password, patient, accession, scroll, roi,
// line}: signs in (a wrong password first), searches, opens the study, scrolls, changes the
// window, measures; screenshots of the canvas into out/, and prints one line of JSON with what
// the page showed (the Python side checks it against pydicom's reading of the files).
import { chromium } from 'playwright-core';

const p = JSON.parse(process.argv[2]);
const result = { shots: {}, console: [] };
const browser = await chromium.launch({ executablePath: p.chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  page.on('console', (m) => { if (m.type() === 'error') result.console.push(m.text()); });
  page.on('pageerror', (e) => result.console.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(20000);

  // sign in: a wrong password stays on the form with an error, the right one shows the list
  await page.goto(`${p.base}/`);
  await page.fill('#username', p.username);
  await page.fill('#password', p.wrong_password);
  await page.click('#sign-in-button');
  await page.waitForFunction(() => document.getElementById('sign-in-error').textContent !== '');
  result.wrong_password_error = await page.textContent('#sign-in-error');
  await page.fill('#password', p.password);
  await page.click('#sign-in-button');
  await page.waitForSelector('#study-table tbody tr');
  result.token_kept = await page.evaluate(() => !!sessionStorage.getItem('mira.token'));
  result.rows_unfiltered = await page.locator('#study-table tbody tr').count();

  // search by patient name and accession number
  await page.fill('#q-patient', p.patient);
  await page.fill('#q-accession', p.accession);
  await page.click('#search-button');
  await page.waitForFunction((n) => document.querySelectorAll('#study-table tbody tr').length < n,
    result.rows_unfiltered);
  result.rows = await page.locator('#study-table tbody tr').allInnerTexts();
  await page.screenshot({ path: `${p.out}/list.png` });

  // the patient page: the patient's studies (from the link in the list), then back
  await page.locator('#study-table tbody tr a').first().click();
  await page.waitForSelector('#patient-studies tbody tr');
  result.patient = { title: await page.textContent('#patient-title'),
    facts: await page.locator('#patient-facts').innerText(),
    studies: await page.locator('#patient-studies tbody tr').allInnerTexts() };
  // orders and reports from the patient record (HL7), once loaded
  await page.waitForFunction(() => !document.querySelector('#patient-reports').textContent.includes('Loading'));
  result.patient.orders = await page.locator('#patient-orders').innerText();
  result.patient.reports = await page.locator('#patient-reports').innerText();
  await page.locator('#patient-results details summary').first().click();
  result.patient.results = await page.locator('#patient-results').innerText();
  await page.goBack();
  await page.waitForSelector('#study-table tbody tr');

  // open the study: the viewer shows the CT series
  await page.locator('#study-table tbody tr td:nth-child(3)').first().click();
  const canvas = page.locator('.viewport canvas').first();
  const ready = async (test = () => true) => {
    await page.waitForFunction(() => {
      const c = document.querySelector('.viewport canvas');
      return c && c.dataset.state === 'ready';
    });
    return canvas.evaluate((c) => ({ ...c.dataset }));
  };
  await ready();
  await page.click('#actual-size');
  await page.click('[data-preset="abdomen"]');
  const shot = async (name, until) => {
    await page.waitForFunction(until || (() => true));
    const state = await ready();
    await canvas.screenshot({ path: `${p.out}/${name}.png` });
    result.shots[name] = state;
    return state;
  };
  const opened = await shot('opened', () => document.querySelector('.viewport canvas').dataset.center === '60');

  // scroll with the wheel, then a key
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  for (let i = 0; i < p.scroll; i++) await page.mouse.wheel(0, 100);
  const want = String(Number(opened.slice) + p.scroll);
  await shot('scrolled', `document.querySelector('.viewport canvas').dataset.slice === '${want}'`);
  await page.keyboard.press('ArrowDown');
  const want2 = String(Number(opened.slice) + p.scroll + 1);

  // the window: a preset, another, then a drag (right: wider, down: higher)
  await page.click('[data-preset="lung"]');
  await shot('lung', `document.querySelector('.viewport canvas').dataset.center === '-600'`);
  await page.click('[data-preset="abdomen"]');
  await shot('abdomen', `document.querySelector('.viewport canvas').dataset.center === '60'`);
  await page.click('[data-tool="window"]');
  await page.mouse.move(box.x + 40, box.y + 40);
  await page.mouse.down();
  await page.mouse.move(box.x + 140, box.y + 100, { steps: 5 });
  await page.mouse.up();
  await shot('dragged', `document.querySelector('.viewport canvas').dataset.center !== '60'`);
  await shot('key', `document.querySelector('.viewport canvas').dataset.slice === '${want2}'`);

  // measurements at image coordinates (the image is at 1:1 from imageX, imageY)
  const st = result.shots.key;
  const at = (x, y) => [box.x + Number(st.imageX) + x, box.y + Number(st.imageY) + y];
  const drag = async (tool, [x0, y0, x1, y1]) => {
    await page.click(`[data-tool="${tool}"]`);
    await page.mouse.move(...at(x0, y0));
    await page.mouse.down();
    await page.mouse.move(...at((x0 + x1) / 2, (y0 + y1) / 2), { steps: 2 });
    await page.mouse.move(...at(x1, y1));
    await page.mouse.up();
  };
  await drag('distance', p.line);
  await drag('rect', p.roi);
  await drag('ellipse', p.roi);
  await page.waitForFunction(() => JSON.parse(document.getElementById('viewer').dataset.measurements || '[]').length === 3);
  result.measurements = JSON.parse(await page.getAttribute('#viewer', 'data-measurements'));
  result.roi = p.roi;
  result.line = p.line;
  await canvas.screenshot({ path: `${p.out}/measured.png` });

  // layouts
  await page.click('[data-layout="2x2"]');
  result.viewports_2x2 = await page.locator('.viewport').count();
  await page.screenshot({ path: `${p.out}/layout.png` });
} catch (e) {
  // what the page showed when it went wrong, for the test's message
  result.error = e.message;
  const [page] = browser.contexts().flatMap((c) => c.pages());
  if (page) {
    result.body = await page.locator('body').innerText().catch(() => '');
    await page.screenshot({ path: `${p.out}/failure.png` }).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
