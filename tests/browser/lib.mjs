// Shared fixtures of the browser tests: a real `oms serve` on 127.0.0.1:0
// with its own database, the `oms` CLI on the same database, and Debian's
// Chromium driven by playwright-core (nothing downloads a browser).
//
// The database is a SQLite file, or with OMS_TEST_BACKEND=postgres a
// PostgreSQL database of its own on the cluster OMS_TEST_PG names (created
// and dropped with psql, named like tools/oms-testdb's).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../..');

/** The `oms` binary under test (scripts/browser-test sets OMS_BIN). */
export const OMS = process.env.OMS_BIN
  || join(process.env.CARGO_TARGET_DIR || join(root, 'target'), 'debug', 'oms');

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const ADMIN = { email: 'admin@example.com', password: 'demo-admin-password' };

/** Where screenshots go: docs/screenshots with OMS_SCREENSHOTS=1 (then
 *  committed), a scratch directory otherwise. */
export const SHOTS = process.env.OMS_SCREENSHOTS
  ? join(root, 'docs', 'screenshots')
  : mkdtempSync(join(tmpdir(), 'oms-shots-'));
if (!process.env.OMS_SCREENSHOTS) {
  process.on('exit', () => rmSync(SHOTS, { recursive: true, force: true }));
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function until(fn, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

const BACKEND = process.env.OMS_TEST_BACKEND || 'sqlite';
if (!['sqlite', 'postgres'].includes(BACKEND)) {
  throw new Error(`OMS_TEST_BACKEND=${BACKEND}: expected sqlite or postgres`);
}
let databases = 0;

/** Runs one SQL statement on the PostgreSQL database at `url`. */
function psql(url, sql) {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

/** A new PostgreSQL database on the OMS_TEST_PG cluster: its name and URL. */
function createPostgresDatabase() {
  const server = process.env.OMS_TEST_PG;
  if (!server) {
    throw new Error('OMS_TEST_BACKEND=postgres needs OMS_TEST_PG (eval "$(scripts/pg start)")');
  }
  const name = `oms_test_${process.pid}_${databases++}_${randomBytes(4).toString('hex')}`;
  psql(server, `CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' `
    + "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'");
  const url = new URL(server);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

/** A scratch directory with a database, removed by `cleanup()`. */
export class Shop {
  constructor({ demo = true } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'oms-browser-'));
    if (BACKEND === 'postgres') {
      this.postgres = createPostgresDatabase();
      this.db = this.postgres.url;
    } else {
      this.postgres = null;
      this.db = join(this.dir, 'oms.db');
    }
    this.daemon = null;
    if (demo) this.oms('init', '--demo');
  }

  /** Runs the CLI on this shop's database; answers stdout. */
  oms(...args) {
    return execFileSync(OMS, ['--db', this.db, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
  }

  /** The CLI with JSON output, parsed. */
  json(...args) {
    return JSON.parse(this.oms('--format', 'json', ...args));
  }

  /** Starts `oms serve` (on `listen`, default a free port); resolves once
   *  it prints its address. */
  async start(listen = '127.0.0.1:0') {
    const child = spawn(OMS, ['--db', this.db, 'serve', '--listen', listen], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, OMS_LOG: 'warn', NO_COLOR: '1' },
    });
    let log = '';
    const address = await new Promise((resolveAddr, reject) => {
      const timer = setTimeout(() => reject(new Error(`oms serve did not start:\n${log}`)), 20000);
      child.stderr.on('data', (chunk) => {
        log += chunk;
        const m = /oms serving http:\/\/([^/\s]+)\//.exec(log);
        if (m) { clearTimeout(timer); resolveAddr(m[1]); }
      });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`oms serve exited ${code}:\n${log}`)); });
    });
    child.removeAllListeners('exit');
    this.daemon = child;
    this.address = address;
    this.url = `http://${address}`;
    return this.url;
  }

  /** SIGTERM, and waits for the daemon to exit. */
  async stop() {
    const child = this.daemon;
    if (!child) return;
    this.daemon = null;
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  async cleanup() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
    if (this.postgres) {
      psql(process.env.OMS_TEST_PG, `DROP DATABASE IF EXISTS ${this.postgres.name} WITH (FORCE)`);
    }
  }
}

/** Launches Chromium with the flags this machine needs (and a fresh
 *  profile: playwright makes one per launch). */
export async function browser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** Endpoints the order detail asks for that this daemon may not serve
 *  yet (payments and notifications, DESIGN §7): the page then says "not
 *  available", and the browser logs the 404. Once docs/openapi.json
 *  documents them, a 404 from them is a failure like any other. */
const openapi = JSON.parse(readFileSync(join(root, 'docs', 'openapi.json'), 'utf8'));
const NOT_YET_SERVED = [
  ['/api/orders/{id}/payments', /\/api\/orders\/\d+\/payments$/],
  ['/api/notifications', /\/api\/notifications\?/],
].filter(([path]) => !openapi.paths[path]).map(([, pattern]) => pattern);

/** A page that records what a user must never see: console errors,
 *  uncaught exceptions, CSP violations and dialogs (an `alert` from
 *  injected markup). `page.problems()` lists them. */
export async function watchedPage(context) {
  const page = await context.newPage();
  const problems = [];
  // Resources a test expects to be missing (a wrong tracking code on
  // purpose): the browser logs their 404 as a console error.
  const allowed = [...NOT_YET_SERVED];
  page.allow404 = (pattern) => allowed.push(pattern);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location().url || '';
    if (/status of 404/.test(msg.text()) && allowed.some((p) => p.test(where))) return;
    problems.push(`console error: ${msg.text()} (${where})`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('dialog', async (dialog) => {
    problems.push(`dialog: ${dialog.message()}`);
    await dialog.dismiss();
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  page.problems = async () => {
    const csp = await page.evaluate(() => window.__csp || []).catch(() => []);
    return [...problems, ...csp.map((v) => `CSP violation: ${v}`)];
  };
  return page;
}

/** Logs in through the dashboard's form. */
export async function login(page, url, { email, password }) {
  await page.goto(url);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
  // The role's view has replaced the login form (the header changes first,
  // then its module loads: until then `main` still holds the form, which
  // has no "Loading…" line to wait for)...
  await page.getByRole('button', { name: 'Log in' }).waitFor({ state: 'detached' });
  // ...and its first view has loaded (its "Loading…" line is gone).
  await page.locator('main p.state').waitFor({ state: 'detached' });
}

export function shot(name) {
  mkdirSync(SHOTS, { recursive: true });
  return join(SHOTS, `${name}.png`);
}

/** Loads the dashboard in `context` (already logged in) and answers every
 *  request the first load made, until the order table shows and the live
 *  stream is open, with their body sizes. */
export async function firstLoad(context, url) {
  const page = await context.newPage();
  const requests = [];
  const pending = [];
  page.on('requestfinished', (req) => {
    pending.push((async () => {
      const res = await req.response();
      const body = res ? await res.body().catch(() => Buffer.alloc(0)) : Buffer.alloc(0);
      requests.push({ url: req.url(), bytes: body.length });
    })());
  });
  // The event stream never finishes: count it when it starts.
  page.on('request', (req) => {
    if (req.url().includes('/api/changes/stream')) requests.push({ url: req.url(), bytes: 0 });
  });
  await page.goto(url);
  await page.locator('tbody tr[data-order]').first().waitFor({ timeout: 30000 });
  await page.getByText('Live', { exact: true }).waitFor();
  await page.waitForTimeout(300);
  await Promise.all(pending);
  await page.close();
  return { requests, bytes: requests.reduce((s, r) => s + r.bytes, 0) };
}
