// Opens wisp's dashboard in Debian's headless Chromium and waits until it shows a Service that
// tests/tests/dashboard.rs deployed and sent traffic to; then saves screenshots (light and
// dark) as the test's artifacts.
//
//   node tests/dashboard/check.mjs API_URL SCREENSHOT.png --service NAME --revision NAME --url URL
//
// Exit 0 when the page showed everything in time, 1 when it did not (a screenshot is saved
// either way), 2 when the browser or playwright-core is missing. Chromium: $CHROMIUM or
// /usr/bin/chromium (Debian's package; Playwright's own browser downloads do not work here).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const DEADLINE_MS = Number(process.env.DASHBOARD_DEADLINE_MS || 90_000);

function usage(msg) {
  console.error(`${msg}\nusage: node check.mjs API_URL SCREENSHOT.png --service NAME --revision NAME --url URL`);
  process.exit(2);
}

const [apiUrl, screenshot, ...rest] = process.argv.slice(2);
if (!apiUrl || !screenshot) usage('missing arguments');
const want = {};
for (let i = 0; i < rest.length; i += 2) {
  const k = rest[i]?.replace(/^--/, '');
  if (!['service', 'revision', 'url'].includes(k) || rest[i + 1] === undefined) usage(`bad flag ${rest[i]}`);
  want[k] = rest[i + 1];
}
if (!want.service || !want.revision || !want.url) usage('--service, --revision and --url are required');

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`playwright-core is not installed in tests/dashboard (npm ci there): ${e.message}`);
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(executablePath)) {
  console.error(`no Chromium at ${executablePath}: install Debian's chromium package (or set $CHROMIUM)`);
  process.exit(2);
}

const origin = new URL(apiUrl).origin;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'wisp-dashboard-chromium-'));
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  env: { ...process.env, HOME: profile },
});

const problems = [];
let exitCode = 1;
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1, colorScheme: 'light' });
  // The dashboard works offline: any request that leaves the daemon is a failure.
  const outside = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/') || url.startsWith('data:')) return route.continue();
    outside.push(url);
    return route.abort();
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') console.error(`console: ${m.text()}`);
  });
  const response = await page.goto(`${origin}/dashboard/`, { waitUntil: 'load' });
  if (!response || response.status() !== 200) throw new Error(`GET /dashboard/ answered ${response?.status()}`);

  // What the page shows of the Service and its Revision, read from the cells' data-field.
  const read = () => page.evaluate(({ service, revision }) => {
    const row = (table, key) => document.querySelector(`#${table} tr[data-key="${CSS.escape(key)}"]`);
    const cell = (tr, field) => tr?.querySelector(`[data-field="${field}"]`)?.textContent.trim() ?? null;
    const svc = row('services-table', `default/${service}`);
    const rev = row('revisions-table', `default/${revision}`);
    return {
      status: document.querySelector('#status-text')?.textContent,
      service: { name: cell(svc, 'name'), url: cell(svc, 'url'), ready: cell(svc, 'ready'), latest: cell(svc, 'latest'), traffic: cell(svc, 'traffic'), rps: cell(svc, 'rps') },
      revision: { name: cell(rev, 'name'), ready: cell(rev, 'ready'), replicas: cell(rev, 'replicas'), rps: cell(rev, 'rps'), requests: cell(rev, 'requests'), errors: cell(rev, 'errors'), p50: cell(rev, 'p50'), p95: cell(rev, 'p95') },
      panel: !!document.querySelector(`#traffic-grid article[data-key="${CSS.escape(`default/${revision}`)}"]`),
    };
  }, want);
  const num = (s) => Number(String(s ?? '').replace(/[^0-9.]/g, '')) || 0;
  const missing = (seen) => {
    const m = [];
    if (seen.service.name !== want.service) m.push(`service name ${want.service}`);
    if (seen.service.url !== want.url) m.push(`service URL ${want.url}`);
    if (seen.service.ready !== 'Ready') m.push('service Ready');
    if (!seen.service.latest?.includes(want.revision)) m.push(`latest ready revision ${want.revision}`);
    if (!seen.service.traffic?.includes(`${want.revision} 100%`)) m.push(`traffic ${want.revision} 100%`);
    if (seen.revision.name !== want.revision) m.push(`revision ${want.revision}`);
    if (seen.revision.ready !== 'Ready') m.push('revision Ready');
    if (!(num(seen.revision.requests) > 0)) m.push('a request count > 0');
    if (!(num(seen.revision.rps) > 0)) m.push('a request rate > 0');
    if (!seen.panel) m.push('a live traffic panel');
    return m;
  };

  const start = Date.now();
  let seen = await read();
  let lacking = missing(seen);
  while (lacking.length && Date.now() - start < DEADLINE_MS) {
    await page.waitForTimeout(500);
    seen = await read();
    lacking = missing(seen);
  }
  console.log(`the dashboard showed: ${JSON.stringify(seen)}`);
  if (lacking.length) {
    problems.push(`after ${DEADLINE_MS} ms the page still lacked: ${lacking.join('; ')}`);
  } else {
    // A few more polls so the charts have lines, not dots.
    await page.waitForTimeout(12000);
  }
  if (outside.length) problems.push(`requests left the daemon: ${outside.join(', ')}`);

  await page.screenshot({ path: screenshot, fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.waitForTimeout(300);
  const dark = screenshot.replace(/(\.png)?$/, '-dark.png');
  await page.screenshot({ path: dark, fullPage: true });
  console.log(`screenshots: ${screenshot} ${dark}`);
  exitCode = problems.length ? 1 : 0;
} catch (e) {
  problems.push(e.stack || String(e));
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
for (const p of problems) console.error(p);
process.exit(exitCode);
