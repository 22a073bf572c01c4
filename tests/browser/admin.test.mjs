// The admin's dashboard in a real browser against a real `oms serve`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Shop, browser, watchedPage, login, until, ADMIN, shot } from './lib.mjs';

/** The order ids the table shows, top to bottom. */
async function tableIds(page) {
  return page.$$eval('tbody tr[data-order]', (rows) => rows.map((r) => Number(r.dataset.order)));
}

function row(page, id) {
  return page.locator(`tbody tr[data-order="${id}"]`);
}

test('an order placed with the CLI appears live; a status button changes it; a second browser sees it', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const first = await watchedPage(await b.newContext({ viewport: { width: 1280, height: 900 } }));
    const second = await watchedPage(await b.newContext({ viewport: { width: 1280, height: 900 } }));
    await login(first, url, ADMIN);
    await login(second, url, ADMIN);
    await first.getByText('Live', { exact: true }).waitFor();
    await second.getByText('Live', { exact: true }).waitFor();
    const before = await tableIds(first);
    assert.deepEqual(before, [...before].sort((a, c) => c - a), 'newest first');

    // Another process places an order: it shows within 1 s, no reload.
    const placedAt = Date.now();
    const order = shop.json('order', 'place', '--customer', 'ada@example.com', '--item', 'MOUSE-WL:2');
    await row(first, order.id).waitFor({ timeout: 1000 });
    const seenAfter = Date.now() - placedAt;
    assert.ok(seenAfter <= 1000, `seen after ${seenAfter} ms`);
    assert.equal((await tableIds(first))[0], order.id, 'the new order is on top');
    await row(second, order.id).waitFor({ timeout: 1000 });

    // Only the allowed next states are offered: PENDING -> PAID, CANCELLED.
    const buttons = await row(first, order.id).getByRole('button').allTextContents();
    assert.deepEqual(buttons, ['Mark paid', 'Cancel']);
    await row(first, order.id).getByRole('button', { name: 'Mark paid' }).click();
    await row(first, order.id).getByText('PAID', { exact: true }).waitFor();
    assert.deepEqual(await row(first, order.id).getByRole('button').allTextContents(), ['Fulfil', 'Cancel']);
    assert.equal(shop.json('order', 'show', String(order.id)).status, 'PAID');

    // The second browser sees the change without a reload.
    await row(second, order.id).getByText('PAID', { exact: true }).waitFor({ timeout: 1000 });

    // A change by another process reaches both: the buttons follow.
    await second.evaluate(() => { window.__keep = true; });
    shop.oms('order', 'fulfill', String(order.id));
    await row(second, order.id).getByText('FULFILLED', { exact: true }).waitFor({ timeout: 1000 });
    assert.deepEqual(await row(second, order.id).getByRole('button').allTextContents(), []);
    assert.equal(await second.evaluate(() => window.__keep), true, 'no reload happened');

    for (const page of [first, second]) assert.deepEqual(await page.problems(), []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('a refused status change (someone else got there first) is shown', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const page = await watchedPage(await b.newContext());
    await login(page, url, ADMIN);
    const order = shop.json('order', 'place', '--customer', 'ada@example.com', '--item', 'MOUSE-WL:1');
    await row(page, order.id).waitFor();
    // Hold the page's reloads so it keeps showing the order as PENDING
    // while the CLI cancels it.
    await page.route('**/api/orders?*', () => {});
    shop.oms('order', 'cancel', String(order.id));
    await row(page, order.id).getByRole('button', { name: 'Mark paid' }).click();
    await page.getByRole('alert').filter({ hasText: `Order #${order.id}` }).waitFor();
    const text = await page.locator('#toast').textContent();
    assert.match(text, /changed by someone else/);
    await page.unroute('**/api/orders?*');
    assert.equal(shop.json('order', 'show', String(order.id)).status, 'CANCELLED');
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('the page reconnects after a daemon restart and shows an order placed while it was down', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const page = await watchedPage(await b.newContext());
    await login(page, url, ADMIN);
    await page.getByText('Live', { exact: true }).waitFor();
    await page.evaluate(() => { window.__keep = true; });
    await shop.stop();
    await page.getByText('Reconnecting…').waitFor({ timeout: 5000 });
    const order = shop.json('order', 'place', '--customer', 'grace@example.com', '--item', 'CABLE-HDMI:3');
    await shop.start(shop.address); // the same address: the page's URL
    await row(page, order.id).waitFor({ timeout: 10000 });
    await page.getByText('Live', { exact: true }).waitFor();
    assert.equal(await page.evaluate(() => window.__keep), true, 'no reload happened');
    // The browser logs the refused connections while the daemon is down;
    // nothing else may appear.
    const problems = (await page.problems()).filter((p) => !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(p));
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('filters and search narrow the table, live in the URL, survive a reload; Export carries them', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const context = await b.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    const page = await watchedPage(context);
    await login(page, url, ADMIN);
    await page.locator('tbody tr[data-order]').first().waitFor();
    const all = await tableIds(page);
    assert.ok(all.length >= 6, `${all}`);

    await page.getByLabel('Status').selectOption('PENDING');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/status=PENDING/);
    // The table is empty for a moment while it reloads: wait for exactly
    // the pending orders rather than for "fewer rows than before".
    const pending = shop.json('order', 'list', '--status', 'pending').map((o) => o.id).sort((a, c) => c - a);
    assert.ok(pending.length >= 1 && pending.length < all.length, `${pending} of ${all}`);
    await until(async () => JSON.stringify(await tableIds(page)) === JSON.stringify(pending), 3000, 'the table to narrow');

    await page.getByLabel('Search').fill('headset');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/q=headset/);
    const matching = shop.json('order', 'list', '--status', 'pending', '--search', 'headset')
      .map((o) => o.id).sort((a, c) => c - a);
    assert.ok(matching.length >= 1 && matching.length < pending.length, `${matching} of ${pending}`);
    await until(async () => JSON.stringify(await tableIds(page)) === JSON.stringify(matching), 3000, 'the search');

    // A reload keeps the view and the login.
    await page.reload();
    await page.locator('tbody tr[data-order]').first().waitFor();
    assert.deepEqual(await tableIds(page), matching);
    assert.equal(await page.getByLabel('Status').inputValue(), 'PENDING');
    assert.equal(await page.getByLabel('Search').inputValue(), 'headset');
    await page.screenshot({ path: shot('admin-filtered') });

    // Export: export.csv with exactly the filtered orders.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export CSV' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'export.csv');
    const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
    assert.match(csv[0], /^order_id,order_ref,/);
    const ids = [...new Set(csv.slice(1).map((line) => Number(line.split(',')[0])))];
    assert.deepEqual(ids, [...matching].sort((a, c) => a - c), "the CSV holds exactly the filtered orders");

    // A customer filter by e-mail, and the way back.
    await page.goto(`${url}/?customer=ada%40example.com`);
    await page.locator('tbody tr[data-order]').first().waitFor();
    const ada = shop.json('order', 'list', '--customer', 'ada@example.com').map((o) => o.id).sort((a, c) => c - a);
    assert.deepEqual(await tableIds(page), ada);
    await page.getByRole('link', { name: 'Clear' }).click();
    await until(async () => (await tableIds(page)).length === all.length, 3000, 'all orders again');
    assert.deepEqual(await page.problems(), []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('cursor paging walks older orders', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    for (let i = 0; i < 55; i += 1) shop.oms('order', 'place', '--customer', 'alan@example.com', '--item', 'CABLE-HDMI:1');
    const url = await shop.start();
    const page = await watchedPage(await b.newContext());
    await login(page, url, ADMIN);
    const firstPage = await tableIds(page);
    assert.equal(firstPage.length, 50);
    await page.getByRole('link', { name: 'Older →' }).click();
    await page.waitForURL(/after=/);
    await until(async () => (await tableIds(page))[0] < firstPage[49], 3000, 'the next page');
    const secondPage = await tableIds(page);
    const total = shop.json('order', 'list', '--limit', '0').length;
    assert.equal(firstPage.length + secondPage.length, total);
    assert.ok(secondPage.every((id) => id < Math.min(...firstPage)));
    await page.getByRole('link', { name: '← Newest' }).click();
    await until(async () => (await tableIds(page))[0] === firstPage[0], 3000, 'the first page');
    assert.deepEqual(await page.problems(), []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('stock: low stock is marked in words; restock adds units', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    shop.oms('product', 'add', '--sku', 'RARE-1', '--name', 'Rare widget', '--price', '5.00', '--stock', '2');
    const url = await shop.start();
    const page = await watchedPage(await b.newContext({ viewport: { width: 1280, height: 900 } }));
    await login(page, url, ADMIN);
    await page.getByRole('link', { name: 'Stock' }).click();
    const rare = page.locator('tr', { hasText: 'RARE-1' });
    await rare.getByText('Low: 2').waitFor();
    await rare.getByLabel('Units of RARE-1 received').fill('7');
    await rare.getByRole('button', { name: 'Add' }).click();
    await rare.getByText('9', { exact: true }).first().waitFor();
    assert.equal(shop.json('product', 'show', 'RARE-1').stock_on_hand, 9);
    assert.equal(await rare.getByText(/^Low/).count(), 0);
    // A restock from the CLI shows up live.
    shop.oms('product', 'restock', 'RARE-1', '--set', '1');
    await rare.getByText('Low: 1').waitFor({ timeout: 1000 });
    await page.screenshot({ path: shot('admin-stock') });
    await page.getByRole('link', { name: 'Customers' }).click();
    await page.getByRole('cell', { name: 'ada@example.com' }).waitFor();
    assert.deepEqual(await page.problems(), []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});
