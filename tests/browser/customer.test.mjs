// The customer's side of the dashboard, and what a customer cannot reach.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Shop, browser, watchedPage, until } from './lib.mjs';

test('a customer registers, places an order with a double click (one order), sees it live, cancels it', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const page = await watchedPage(await b.newContext({ viewport: { width: 1280, height: 900 } }));
    await page.goto(url);
    await page.getByRole('link', { name: /Create an account/ }).click();
    await page.getByLabel('Name').fill('Mary Jackson');
    await page.getByLabel('E-mail').fill('mary@example.com');
    await page.getByLabel(/^Password/).fill('a long enough password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Shop' }).waitFor();
    await page.getByText('Live', { exact: true }).waitFor();

    await page.getByLabel('Quantity of Wireless mouse').fill('2');
    await page.getByLabel('Quantity of USB-C hub (7 ports)').fill('1');
    await page.getByRole('button', { name: 'Place order' }).dblclick();
    await page.getByRole('table', { name: /Your orders/ }).waitFor();
    const mine = () => shop.json('order', 'list', '--customer', 'mary@example.com');
    await until(() => mine().length === 1, 3000, 'the order');
    // Give a second request every chance to land, then count again.
    await page.waitForTimeout(300);
    const orders = mine();
    assert.equal(orders.length, 1, 'a double click places one order');
    const id = orders[0].id;
    const row = page.locator(`tr[data-order="${id}"]`);
    await row.getByText('PENDING', { exact: true }).waitFor();

    // Cancel from the page; the database agrees.
    await row.getByRole('button', { name: `Cancel order ${id}` }).click();
    await row.getByText('CANCELLED', { exact: true }).waitFor();
    assert.equal(shop.json('order', 'show', String(id)).status, 'CANCELLED');

    // An order placed for this customer elsewhere appears live.
    const other = shop.json('order', 'place', '--customer', 'mary@example.com', '--item', 'CABLE-HDMI:1');
    await page.locator(`tr[data-order="${other.id}"]`).waitFor({ timeout: 1000 });
    shop.oms('order', 'pay', String(other.id));
    await page.locator(`tr[data-order="${other.id}"]`).getByText('PAID', { exact: true }).waitFor({ timeout: 1000 });
    // A PAID order offers no cancel to a customer.
    assert.equal(await page.locator(`tr[data-order="${other.id}"]`).getByRole('button').count(), 0);
    assert.deepEqual(await page.problems(), []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test("a customer cannot reach another customer's order by editing the URL", async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const page = await watchedPage(await b.newContext());
    // Register a fresh customer; Ada's orders (1, ...) belong to someone else.
    await page.goto(`${url}/?view=register`);
    await page.getByLabel('Name').fill('Eve');
    await page.getByLabel('E-mail').fill('eve@example.com');
    await page.getByLabel(/^Password/).fill('a long enough password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Shop' }).waitFor();
    const ada = shop.json('order', 'list', '--customer', 'ada@example.com')[0];
    await page.goto(`${url}/?view=order&id=${ada.id}`);
    await page.getByRole('heading', { name: 'Order not found' }).waitFor();
    const text = await page.locator('main').textContent();
    assert.ok(!text.includes('Ada'), text);
    assert.ok(!text.includes(ada.tracking_code), text);
    // Nor through the API with the page's own cookie.
    const status = await page.evaluate(async (id) => (await fetch(`/api/orders/${id}`)).status, ada.id);
    assert.equal(status, 404);
    const list = await page.evaluate(async () => (await fetch('/api/orders?customer=ada%40example.com')).status);
    assert.equal(list, 403);
    // And the admin pages' data is refused.
    const customers = await page.evaluate(async () => (await fetch('/api/customers')).status);
    assert.equal(customers, 403);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});

test('a retry after a lost answer places one order: the page resends its Idempotency-Key', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    const url = await shop.start();
    const page = await watchedPage(await b.newContext());
    await page.goto(`${url}/?view=register`);
    await page.getByLabel('Name').fill('Annie Easley');
    await page.getByLabel('E-mail').fill('annie@example.com');
    await page.getByLabel(/^Password/).fill('a long enough password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByLabel('Quantity of HD webcam').fill('1');
    // The first placement reaches the server, but its answer is lost on
    // the way back (the browser sees a network error).
    const keys = [];
    let lost = false;
    await page.route('**/api/orders', async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      keys.push(route.request().headers()['idempotency-key']);
      if (lost) return route.continue();
      lost = true;
      await route.fetch();
      return route.abort('connectionreset');
    });
    await page.getByRole('button', { name: 'Place order' }).click();
    await page.getByText('The server cannot be reached').waitFor();
    await page.getByRole('button', { name: 'Place order' }).click();
    await page.getByText(/Order #\d+ placed/).waitFor();
    assert.equal(keys.length, 2);
    assert.ok(keys[0] && keys[0] === keys[1], `the same key twice: ${keys}`);
    const orders = shop.json('order', 'list', '--customer', 'annie@example.com');
    assert.equal(orders.length, 1, 'one order');
    assert.equal(orders[0].idempotency_key, keys[0]);
    // The aborted request is logged by the browser; nothing else is.
    const problems = (await page.problems()).filter((p) => !/ERR_CONNECTION_RESET|Failed to load resource/.test(p));
    assert.deepEqual(problems, []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});
