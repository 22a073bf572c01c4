// Every page: the security headers of DESIGN §9, no CSP violation, no
// console error, usable at 360 px and on a desktop, and the screenshots
// the README shows (docs/screenshots with OMS_SCREENSHOTS=1).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Shop, browser, watchedPage, login, ADMIN, shot, firstLoad } from './lib.mjs';

const SIZES = { desktop: { width: 1280, height: 860 }, phone: { width: 360, height: 740 } };

function checkHeaders(res, path) {
  const headers = res.headers();
  const csp = headers['content-security-policy'] || '';
  assert.match(csp, /default-src 'self'/, `${path}: CSP`);
  assert.match(csp, /frame-ancestors 'none'/, `${path}: CSP`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `${path}: CSP`);
  assert.equal(headers['x-content-type-options'], 'nosniff', path);
  assert.equal(headers['referrer-policy'], 'no-referrer', path);
}

test('every page has the security headers and runs under its CSP without errors; screenshots', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const order = shop.json('order', 'list', '--status', 'paid')[0];
    const url = await shop.start();
    for (const [size, viewport] of Object.entries(SIZES)) {
      const admin = await watchedPage(await b.newContext({ viewport }));
      const res = await admin.goto(url);
      checkHeaders(res, '/');
      await login(admin, url, ADMIN);
      await admin.locator('tbody tr[data-order]').first().waitFor();
      // No horizontal scrolling at 360 px: everything fits the screen.
      const overflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${size}: the orders page is ${overflow}px too wide`);
      await admin.screenshot({ path: shot(`admin-orders-${size}`), fullPage: size === 'desktop' });

      await admin.goto(`${url}/?view=order&id=${order.id}`);
      await admin.getByRole('heading', { name: 'History' }).waitFor();
      await admin.locator('section li').first().waitFor();
      const detailOverflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(detailOverflow <= 0, `${size}: the order page is ${detailOverflow}px too wide`);
      await admin.screenshot({ path: shot(`admin-order-${size}`), fullPage: true });

      for (const view of ['stock', 'customers']) {
        await admin.goto(`${url}/?view=${view}`);
        await admin.locator('tbody tr').first().waitFor();
      }
      assert.deepEqual(await admin.problems(), [], `${size}: admin pages`);

      const customer = await watchedPage(await b.newContext({ viewport }));
      await customer.goto(`${url}/?view=register`);
      await customer.getByLabel('Name').fill('Dorothy Vaughan');
      await customer.getByLabel('E-mail').fill(`dorothy-${size}@example.com`);
      await customer.getByLabel(/^Password/).fill('a long enough password');
      await customer.getByRole('button', { name: 'Create account' }).click();
      await customer.getByLabel('Quantity of Wireless mouse').fill('1');
      await customer.getByRole('button', { name: 'Place order' }).click();
      await customer.locator('tr[data-order]').first().waitFor();
      await customer.getByLabel('Quantity of Mechanical keyboard').fill('1');
      await customer.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
      const shopOverflow = await customer.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(shopOverflow <= 0, `${size}: the shop is ${shopOverflow}px too wide`);
      await customer.screenshot({ path: shot(`customer-${size}`), fullPage: size === 'desktop' });
      await customer.getByRole('link', { name: 'My orders', exact: true }).click();
      await customer.locator('tr[data-order]').first().waitFor();
      assert.deepEqual(await customer.problems(), [], `${size}: customer pages`);

      const visitor = await watchedPage(await b.newContext({ viewport }));
      const track = await visitor.goto(`${url}/track/${order.tracking_code}`);
      checkHeaders(track, '/track/{code}');
      await visitor.getByText('PAID', { exact: true }).waitFor();
      await visitor.screenshot({ path: shot(`tracking-${size}`) });
      const text = await visitor.locator('main').textContent();
      assert.ok(!/example\.com|Grace|Linus/.test(text), `no personal data: ${text}`);
      assert.deepEqual(await visitor.problems(), [], `${size}: tracking page`);
    }
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('keyboard alone reaches the login form and the order table', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const page = await watchedPage(await b.newContext());
    await page.goto(url);
    await page.getByLabel('E-mail').waitFor();
    await page.keyboard.type(ADMIN.email);
    await page.keyboard.press('Tab');
    await page.keyboard.type(ADMIN.password);
    await page.keyboard.press('Enter');
    await page.locator('tbody tr[data-order]').first().waitFor();
    // Tab until the first "Mark paid" button has focus, then press it.
    let focused = '';
    for (let i = 0; i < 40 && focused !== 'Mark paid'; i += 1) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    }
    assert.equal(focused, 'Mark paid');
    const label = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
    const id = label.replace(/\D+/g, '');
    await page.keyboard.press('Enter');
    await page.locator(`tr[data-order="${id}"]`).getByText('PAID', { exact: true }).waitFor();
    assert.deepEqual(await page.problems(), []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('page weight: the first load of the order table needs at most 150 KB and 10 requests', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const context = await b.newContext();
    const setup = await context.newPage();
    await login(setup, url, ADMIN);
    await setup.close();
    const { requests, bytes } = await firstLoad(context, url);
    const list = requests.map((r) => `${r.bytes}\t${r.url.replace(url, '')}`).join('\n');
    assert.ok(requests.length <= 10, `${requests.length} requests:\n${list}`);
    assert.ok(bytes <= 150 * 1024, `${bytes} bytes:\n${list}`);
    // Revalidation: a second load gets 304s for the page and its assets.
    const again = await context.newPage();
    const statuses = [];
    again.on('response', (res) => { if (!res.url().includes('/api/')) statuses.push(res.status()); });
    await again.goto(url);
    await again.locator('tbody tr[data-order]').first().waitFor();
    assert.ok(statuses.length > 0 && statuses.every((s) => s === 304 || s === 200), `${statuses}`);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});
