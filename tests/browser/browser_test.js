// Headless-chromium test of report.html and of mia-server's web dashboard.
//
// 1. `mia make-bundle` + `mia score` write a small report; chromium opens its
//    report.html from disk: no console errors, no request but the file
//    itself, both ROC plots drawn (svg with curves), and every figure of the
//    per-attack tables equal to result.json (the exact data-value and the
//    rounded text). Screenshot: report.png.
// 2. A real mia-server (dashboard on its metrics port); the dashboard page is
//    open while `mia submit` sends a bundle audit: the page shows it without
//    a reload, its progress changes, it reaches SUCCEEDED; its audit page
//    then frames its report.html and lists its files. Screenshots:
//    dashboard-*.png, audit.png.
// 3. A mia-server with a tokens file: the dashboard's data is refused without
//    a token (401) and the page shows its token form; signed in with tenant
//    A's token it lists A's audit and not tenant B's, frames A's report,
//    and finds B's audit as missing; the token is never in a URL.
//    Screenshots: auth-login.png, auth-dashboard.png, auth-audit.png.
//
// Usage: node browser_test.js --mia MIA --server MIA_SERVER --chromium CHROMIUM
//          --puppeteer DIR_OF_PUPPETEER_CORE --out SCREENSHOT_DIR
// Exit 0: passed; 1: failed; 77: skipped (chromium or puppeteer-core missing).
// As root, chromium needs --no-sandbox (its sandbox refuses to run as root);
// the test adds it only then.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const net = require('net');
const {spawn, execFileSync} = require('child_process');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];

function skip(why) {
  console.log('SKIP: ' + why);
  process.exit(77);
}
let puppeteer;
try {
  puppeteer = require(path.resolve(args.puppeteer));
} catch (e) {
  skip('puppeteer-core is not installed (' + args.puppeteer + '); MIA_OFFLINE set?');
}
try {
  execFileSync(args.chromium, ['--version'], {stdio: 'ignore'});
} catch (e) {
  skip('chromium is not installed (scripts/install-deps.sh installs it)');
}

let failures = 0;
function check(ok, what) {
  console.log((ok ? 'ok   ' : 'FAIL ') + what);
  if (!ok) failures++;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function httpGet(port, p) {
  return new Promise((resolve) => {
    const req = http.get({host: '127.0.0.1', port, path: p, timeout: 2000}, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({status: res.statusCode, body}));
    });
    req.on('error', () => resolve({status: 0, body: ''}));
    req.on('timeout', () => req.destroy());
  });
}

function mia(...argv) {
  return execFileSync(args.mia, argv, {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']});
}

// Browser errors of a page: console errors, uncaught exceptions, failed
// requests; and every URL it requested.
function watch(page) {
  const seen = {errors: [], requests: []};
  page.on('console', (m) => { if (m.type() === 'error') seen.errors.push('console: ' + m.text()); });
  page.on('pageerror', (e) => seen.errors.push('page error: ' + e.message));
  page.on('requestfailed', (r) => seen.errors.push('request failed: ' + r.url()));
  page.on('request', (r) => seen.requests.push(r.url()));
  return seen;
}

// Every figure row of report.html's per-attack tables, from the DOM.
async function tableFigures(frame) {
  return frame.evaluate(() => {
    const rows = [];
    for (const tr of document.querySelectorAll('#results tr.result')) {
      const cells = {};
      for (const td of tr.querySelectorAll('td[data-field]')) {
        const key = td.dataset.field + (td.dataset.fpr ? '@' + Number(td.dataset.fpr) : '');
        cells[key] = {value: td.dataset.value, text: td.textContent};
      }
      rows.push({attack: tr.dataset.attack, target: Number(tr.dataset.target), cells});
    }
    const plots = [...document.querySelectorAll('#roc svg')].map(
        (svg) => svg.querySelectorAll('polyline.curve').length);
    const spread = {};
    for (const tr of document.querySelectorAll('#spread tr[data-figure="auc"]')) {
      spread[tr.dataset.attack] = tr.querySelector('td[data-field="mean"]').dataset.value;
    }
    const epsilon = [...document.querySelectorAll('#epsilon tbody tr')].map(
        (tr) => tr.querySelector('td[data-field="value"]').dataset.value);
    return {rows, plots, spread, epsilon};
  });
}

// The figures of result.json against the DOM's: exact values and rounding.
function compareFigures(result, dom, label) {
  const failuresBefore = failures;
  check(dom.rows.length === result.results.length,
        `${label}: ${dom.rows.length} result rows, result.json has ${result.results.length}`);
  let compared = 0;
  const same = (cell, value, decimals) => {
    if (!cell) return false;
    if (value === null) return cell.value === 'null';
    if (Number(cell.value) !== value) return false;
    const shown = cell.text.split(' ')[0];
    return decimals < 0 ? Number(shown) === value : shown === value.toFixed(decimals);
  };
  for (const r of result.results) {
    const row = dom.rows.find((x) => x.attack === r.attack && x.target === r.target);
    if (!row) {
      check(false, `${label}: no row for ${r.attack} target ${r.target}`);
      continue;
    }
    const expected = [
      ['members', r.counts.members, -1], ['non_members', r.counts.non_members, -1],
      ['excluded', r.counts.excluded, -1], ['auc', r.auc, 4], ['epsilon', r.epsilon.value, 3]];
    for (const t of r.tpr_at_fpr) expected.push(['tpr@' + Number(t.fpr), t.tpr, 4]);
    for (const [field, value, decimals] of expected) {
      compared++;
      if (!same(row.cells[field], value, decimals)) {
        check(false, `${label}: ${r.attack} target ${r.target} ${field}: page ` +
                     `${JSON.stringify(row.cells[field])}, result.json ${value}`);
      }
    }
  }
  for (const sm of result.summaries) {
    compared++;
    if (Number(dom.spread[sm.attack]) !== sm.auc.mean) {
      check(false, `${label}: ${sm.attack} mean AUC: page ${dom.spread[sm.attack]}, ` +
                   `result.json ${sm.auc.mean}`);
    }
  }
  const epsilons = result.results.map((r) => String(r.epsilon.value));
  compared += epsilons.length;
  if (JSON.stringify(dom.epsilon.map((v) => String(Number(v)))) !== JSON.stringify(epsilons)) {
    check(false, `${label}: epsilon table ${JSON.stringify(dom.epsilon)} vs ${epsilons}`);
  }
  check(compared > 0 && failures === failuresBefore,
        `${label}: ${compared} figures equal result.json`);
}

async function main() {
  const out = path.resolve(args.out);
  fs.mkdirSync(out, {recursive: true});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mia-browser-'));
  let server = null;
  let browser = null;
  try {
    // ---- 1. report.html from disk -----------------------------------------
    const root = path.join(work, 'root');
    fs.mkdirSync(root);
    mia('make-bundle', '--out', path.join(root, 'small.npz'), '--models', '8', '--points', '400',
        '--population', '200', '--leak', '1', '--targets', '2');
    const report = path.join(work, 'report');
    mia('score', '--bundle', path.join(root, 'small.npz'), '--out', report, '--attack',
        'rmia,lira', '--bootstrap', '50', '--quiet');
    const result = JSON.parse(fs.readFileSync(path.join(report, 'result.json'), 'utf8'));

    browser = await puppeteer.launch({
      executablePath: args.chromium,
      headless: true,
      args: (process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [])
                .concat(['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run']),
    });
    const page = await browser.newPage();
    await page.setViewport({width: 1280, height: 900});
    let seen = watch(page);
    const fileUrl = 'file://' + path.join(report, 'report.html');
    await page.goto(fileUrl, {waitUntil: 'load'});
    check(seen.errors.length === 0, 'report.html: no console errors ' + JSON.stringify(seen.errors));
    check(seen.requests.every((u) => u === fileUrl),
          'report.html: loads nothing but itself ' + JSON.stringify(seen.requests));
    const dom = await tableFigures(page.mainFrame());
    check(dom.plots.length === 2 && dom.plots.every((n) => n === result.results.length),
          `report.html: 2 ROC plots with ${result.results.length} curves each: ` +
          JSON.stringify(dom.plots));
    compareFigures(result, dom, 'report.html');
    const boxes = await page.$$eval('#roc svg', (svgs) => svgs.map((s) => {
      const b = s.getBoundingClientRect();
      return b.width * b.height;
    }));
    check(boxes.length === 2 && boxes.every((a) => a > 10000), 'report.html: plots are visible');
    await page.screenshot({path: path.join(out, 'report.png'), fullPage: true});
    check(fs.statSync(path.join(out, 'report.png')).size > 10000, 'report.png written');
    // Printable: the print style hides the navigation.
    await page.emulateMediaType('print');
    check(await page.$eval('nav', (n) => getComputedStyle(n).display === 'none'),
          'report.html: navigation hidden in print');
    await page.emulateMediaType('screen');

    // ---- 2. the dashboard of a real server --------------------------------
    mia('make-bundle', '--out', path.join(root, 'big.npz'), '--models', '16', '--points', '20000',
        '--population', '4000', '--leak', '1', '--targets', '2');
    const grpcPort = await freePort();
    const httpPort = await freePort();
    const log = fs.openSync(path.join(work, 'server.log'), 'w');
    server = spawn(args.server, [
      `--listen_address=127.0.0.1:${grpcPort}`, `--data_dir=${path.join(work, 'data')}`,
      `--data_roots=${root}`, `--metrics_port=${httpPort}`, '--workers=1', '--threads_per_job=1',
    ], {stdio: ['ignore', log, log]});
    let up = false;
    for (let i = 0; i < 150 && !up; i++) {
      up = (await httpGet(httpPort, '/metrics')).status === 200;
      if (!up) await sleep(200);
    }
    check(up, 'mia-server serves /metrics and the dashboard on one port');
    if (!up) throw new Error(fs.readFileSync(path.join(work, 'server.log'), 'utf8'));

    seen = watch(page);
    await page.goto(`http://127.0.0.1:${httpPort}/`, {waitUntil: 'load'});
    await page.waitForFunction(() => /Updated/.test(document.getElementById('status').textContent));
    check(await page.$eval('#audits tbody', (b) => b.children.length === 0),
          'dashboard: no audits before the submission');
    await page.screenshot({path: path.join(out, 'dashboard-empty.png')});

    // One worker: three audits (a second or two each) run before the last
    // one, which waits PENDING for seconds, longer than a poll (1.5 s); the
    // page must show it change to RUNNING or SUCCEEDED without a reload.
    const job = path.join(work, 'job.yaml');
    fs.writeFileSync(job, 'bundle:\n  path: big.npz\n  attacks: [rmia, lira]\n' +
                          '  targets: [0, 1]\n  bootstrap: 1000\n');
    const server_flag = `--server=127.0.0.1:${grpcPort}`;
    const names = [];
    for (let i = 0; i < 4; i++) names.push(mia('submit', job, server_flag).trim());
    check(names.every((n) => /^audits\/\S+$/.test(n)), 'mia submit printed the audit names');
    const id = names[3].replace(/^audits\//, '');
    const observed = [];
    let shotRunning = false;
    const deadline = Date.now() + 150000;
    for (;;) {
      const row = await page.evaluate((id) => {
        const tr = document.querySelector(`#audits tr[data-id="${id}"]`);
        if (!tr) return null;
        return {state: tr.dataset.state, fraction: tr.querySelector('.progress').dataset.fraction};
      }, id);
      if (row) {
        const last = observed[observed.length - 1];
        if (!last || last.state !== row.state || last.fraction !== row.fraction) observed.push(row);
        if (!shotRunning && row.state !== 'SUCCEEDED') {
          await page.screenshot({path: path.join(out, 'dashboard-running.png')});
          shotRunning = true;
        }
        if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(row.state)) break;
      }
      if (Date.now() > deadline) break;
      await sleep(100);
    }
    console.log('     observed: ' + JSON.stringify(observed));
    check(observed.length > 0 && observed[observed.length - 1].state === 'SUCCEEDED',
          'dashboard: the audit reached SUCCEEDED');
    check(observed.length >= 2, 'dashboard: the page updated as the audit progressed');
    check(observed.length > 0 && observed[observed.length - 1].fraction === '1',
          'dashboard: progress 100% once done');
    await page.screenshot({path: path.join(out, 'dashboard-done.png')});
    check(seen.errors.length === 0, 'dashboard: no console errors ' + JSON.stringify(seen.errors));

    // The audit's page: its report framed, its files listed.
    seen = watch(page);
    await page.goto(`http://127.0.0.1:${httpPort}/audits/${id}`, {waitUntil: 'load'});
    await page.waitForFunction(() => document.getElementById('state').textContent === 'SUCCEEDED' &&
                                      document.querySelectorAll('#files li').length > 0);
    const files = await page.$$eval('#files a', (as) => as.map((a) => a.textContent));
    check(['report.html', 'result.json', 'scores.csv', 'summary.md'].every((f) => files.includes(f)),
          'audit page: downloads listed ' + JSON.stringify(files));
    const frameHandle = await page.waitForSelector('#report');
    let frame = null;
    for (let i = 0; i < 100 && !frame; i++) {
      frame = await frameHandle.contentFrame();
      if (frame && !(await frame.$('#roc svg').catch(() => null))) frame = null;
      if (!frame) await sleep(100);
    }
    check(frame !== null, 'audit page: report.html framed');
    const served = JSON.parse((await httpGet(httpPort, `/audits/${id}/result.json`)).body);
    if (frame) compareFigures(served, await tableFigures(frame), 'framed report.html');
    await page.screenshot({path: path.join(out, 'audit.png'), fullPage: true});
    check(seen.errors.length === 0, 'audit page: no console errors ' + JSON.stringify(seen.errors));
    const traversal = await httpGet(httpPort, `/audits/${id}/..%2f..%2fjobs.db`);
    check(traversal.status === 404 || traversal.status === 400,
          'no file outside the report folder: ' + traversal.status);

    // ---- 3. the dashboard with tokens --------------------------------------
    const crypto = require('crypto');
    const sha = (t) => crypto.createHash('sha256').update(t).digest('hex');
    const tokenA = 'browser-token-a-71c3e9d2b5';
    const tokenB = 'browser-token-b-0f8a6e4c13';
    const tokens = path.join(work, 'tokens.yaml');
    fs.writeFileSync(tokens, 'tokens:\n' +
        `  - {sha256: ${sha(tokenA)}, tenant: team-a, role: submitter}\n` +
        `  - {sha256: ${sha(tokenB)}, tenant: team-b, role: submitter}\n`);
    const authGrpc = await freePort();
    const authHttp = await freePort();
    const authLog = fs.openSync(path.join(work, 'auth-server.log'), 'w');
    const authServer = spawn(args.server, [
      `--listen_address=127.0.0.1:${authGrpc}`, `--data_dir=${path.join(work, 'data-auth')}`,
      `--data_roots=${root}`, `--metrics_port=${authHttp}`, '--workers=1', '--threads_per_job=1',
      `--auth_tokens_file=${tokens}`,
    ], {stdio: ['ignore', authLog, authLog]});
    try {
      let authUp = false;
      for (let i = 0; i < 150 && !authUp; i++) {
        authUp = (await httpGet(authHttp, '/metrics')).status === 200;
        if (!authUp) await sleep(200);
      }
      check(authUp, 'auth: mia-server with a tokens file serves the dashboard');
      const small = path.join(work, 'small-job.yaml');
      fs.writeFileSync(small, 'bundle:\n  path: small.npz\n  attacks: [rmia]\n  bootstrap: 20\n');
      const auth_flag = `--server=127.0.0.1:${authGrpc}`;
      const nameA = mia('submit', small, auth_flag, '--follow', '--token', tokenA).split('\n')[0].trim();
      const nameB = mia('submit', small, auth_flag, '--follow', '--token', tokenB).split('\n')[0].trim();
      const idA = nameA.replace(/^audits\//, '');
      const idB = nameB.replace(/^audits\//, '');
      check((await httpGet(authHttp, '/api/audits')).status === 401,
            'auth: /api/audits without a token is 401');
      check((await httpGet(authHttp, `/audits/${idA}/result.json`)).status === 401,
            'auth: a report file without a token is 401');

      seen = watch(page);
      await page.goto(`http://127.0.0.1:${authHttp}/`, {waitUntil: 'load'});
      await page.waitForFunction(() => !document.getElementById('login').hidden);
      check(await page.$eval('#audits tbody', (b) => b.children.length === 0),
            'auth: no audits shown before signing in');
      await page.screenshot({path: path.join(out, 'auth-login.png')});
      await page.type('#token', tokenA);
      await page.click('#signin');
      await page.waitForFunction((id) => !!document.querySelector(`#audits tr[data-id="${id}"]`),
                                 {timeout: 30000}, idA);
      check(await page.$eval('#login', (f) => f.hidden), 'auth: the form hides once signed in');
      const shown = await page.$$eval('#audits tbody tr', (trs) => trs.map((t) => t.dataset.id));
      check(shown.includes(idA) && !shown.includes(idB),
            'auth: tenant A sees its audit and not tenant B\'s ' + JSON.stringify(shown));
      check(await page.evaluate(() => sessionStorage.getItem('mia-token') !== null),
            'auth: the token is kept in sessionStorage');
      await page.screenshot({path: path.join(out, 'auth-dashboard.png')});

      await page.goto(`http://127.0.0.1:${authHttp}/audits/${idA}`, {waitUntil: 'load'});
      await page.waitForFunction(() => document.getElementById('state').textContent === 'SUCCEEDED' &&
                                        document.querySelectorAll('#files li').length > 0,
                                 {timeout: 30000});
      const authFrameHandle = await page.waitForSelector('#report');
      let authFrame = null;
      for (let i = 0; i < 100 && !authFrame; i++) {
        authFrame = await authFrameHandle.contentFrame();
        if (authFrame && !(await authFrame.$('#roc svg').catch(() => null))) authFrame = null;
        if (!authFrame) await sleep(100);
      }
      check(authFrame !== null, 'auth: the audit page frames its report (fetched with the token)');
      await page.screenshot({path: path.join(out, 'auth-audit.png'), fullPage: true});

      await page.goto(`http://127.0.0.1:${authHttp}/audits/${idB}`, {waitUntil: 'load'});
      await page.waitForFunction(() => /404/.test(document.getElementById('status').textContent),
                                 {timeout: 30000});
      check(await page.$eval('#state', (e) => e.textContent === ''),
            'auth: tenant B\'s audit is not found for tenant A');
      check(seen.requests.every((u) => !u.includes(tokenA) && !u.includes(tokenB)),
            'auth: no URL holds the token');
      const pageErrors = seen.errors.filter((e) => e.startsWith('page error'));
      check(pageErrors.length === 0, 'auth: no script errors ' + JSON.stringify(pageErrors));
    } finally {
      const exited = new Promise((r) => authServer.once('exit', r));
      authServer.kill('SIGTERM');
      await Promise.race([exited, sleep(10000)]);
      if (authServer.exitCode === null && authServer.signalCode === null) authServer.kill('SIGKILL');
    }
    const authServerLog = fs.readFileSync(path.join(work, 'auth-server.log'), 'utf8');
    check(!authServerLog.includes(tokenA) && !authServerLog.includes(tokenB),
          'auth: no token in the server\'s log');
  } finally {
    if (browser) await browser.close();
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await Promise.race([exited, sleep(10000)]);
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    }
    if (failures === 0 && !process.env.MIA_KEEP_WORK) {
      fs.rmSync(work, {recursive: true, force: true});
    } else {
      console.log('work dir kept: ' + work);
    }
  }
  console.log(failures === 0 ? 'all passed' : failures + ' failed');
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error('FAIL ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
