// The 1,000-slice test of tests/python/test_web_page.py, with one JSON argument {base, out,
// chromium, username, password, study, back}: signs in, opens the study, goes to the last slice
// (End) and back by `back` presses of ArrowUp; prints the times, the longest task the page ran
// while opening and while scrolling (PerformanceObserver "longtask") and the final canvas state, with a screenshot in out/.
import { chromium } from 'playwright-core';

const p = JSON.parse(process.argv[2]);
const result = {};
const browser = await chromium.launch({ executablePath: p.chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const state = (c) => ({ ...c.dataset });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
  page.setDefaultTimeout(60000);
  await page.goto(`${p.base}/`);
  await page.fill('#username', p.username);
  await page.fill('#password', p.password);
  await page.click('#sign-in-button');
  await page.waitForSelector('#study-table tbody tr');
  await page.evaluate(() => {
    window.longest = 0;
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.longest = Math.max(window.longest, e.duration);
    }).observe({ type: 'longtask', buffered: false });
  });
  const canvas = page.locator('.viewport canvas').first();
  const at = (slice) => page.waitForFunction((s) => {
    const c = document.querySelector('.viewport canvas');
    return c && c.dataset.state === 'ready' && (s === null || c.dataset.slice === s);
  }, slice, { polling: 'raf' });
  let t = Date.now();
  await page.evaluate((s) => { location.hash = `#/viewer/${s}`; }, p.study);
  await at(null);
  result.open_ms = Date.now() - t;
  result.opened = await canvas.evaluate(state);
  const n = Number(result.opened.slices);
  result.longest_open_task_ms = await page.evaluate(() => { const l = window.longest; window.longest = 0; return l; });
  await canvas.hover();
  t = Date.now();
  await page.keyboard.press('End');
  await at(String(n - 1));
  result.end_ms = Date.now() - t;
  t = Date.now();
  for (let i = 0; i < p.back; i++) await page.keyboard.press('ArrowUp');
  await at(String(n - 1 - p.back));
  result.back_ms = Date.now() - t;
  await page.click('#actual-size');
  await page.click('[data-preset="bone"]');
  await page.waitForFunction(() => document.querySelector('.viewport canvas').dataset.center === '300');
  await at(String(n - 1 - p.back));
  result.final = await canvas.evaluate(state);
  await canvas.screenshot({ path: `${p.out}/final.png` });
  result.longest_task_ms = await page.evaluate(() => window.longest);
} catch (e) {
  result.error = e.message;
  process.exitCode = 1;
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
