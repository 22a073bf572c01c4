// Text from the database is rendered as text, never as markup: a product
// and a customer whose names are HTML show up verbatim, run nothing and
// add no element, in the table, the detail and the tracking page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Shop, browser, watchedPage, login, ADMIN } from './lib.mjs';

const PRODUCT = '<img src=x onerror=alert(1)>';
const CUSTOMER = '<script>alert(1)</script>';

/** Elements a successful injection would add. */
async function injected(page) {
  return page.evaluate(() => ({
    img: document.querySelectorAll('main img').length,
    script: document.querySelectorAll('main script').length,
  }));
}

test('names that look like HTML render as text everywhere', async () => {
  const shop = new Shop();
  const b = await browser();
  try {
    shop.oms('product', 'add', '--sku', 'XSS-1', '--name', PRODUCT, '--price', '1.00', '--stock', '5');
    shop.oms('customer', 'add', '--name', CUSTOMER, '--email', 'mallory@example.com');
    const order = shop.json('order', 'place', '--customer', 'mallory@example.com', '--item', 'XSS-1:1');
    const url = await shop.start();
    const page = await watchedPage(await b.newContext());
    await login(page, url, ADMIN);

    const row = page.locator(`tr[data-order="${order.id}"]`);
    await row.waitFor();
    assert.ok((await row.textContent()).includes(CUSTOMER), 'the customer name as text in the table');
    assert.ok((await row.textContent()).includes(PRODUCT), 'the product name as text in the table');
    assert.deepEqual(await injected(page), { img: 0, script: 0 });

    await row.getByRole('link', { name: `#${order.id}` }).click();
    await page.getByRole('heading', { name: 'History' }).waitFor();
    const detail = await page.locator('main').textContent();
    assert.ok(detail.includes(CUSTOMER) && detail.includes(PRODUCT), detail);
    assert.deepEqual(await injected(page), { img: 0, script: 0 });

    await page.getByRole('link', { name: 'Stock' }).click();
    await page.getByRole('cell', { name: PRODUCT }).waitFor();
    await page.getByRole('link', { name: 'Customers' }).click();
    await page.getByRole('cell', { name: CUSTOMER }).waitFor();
    assert.deepEqual(await injected(page), { img: 0, script: 0 });

    // The tracking page, with markup in the code itself too.
    await page.goto(`${url}/track/${order.tracking_code}`);
    await page.getByText('PENDING', { exact: true }).waitFor();
    page.allow404(/\/api\/track\//);
    await page.goto(`${url}/track/${encodeURIComponent(PRODUCT)}`);
    await page.getByText('No order has the tracking code').waitFor();
    assert.ok((await page.locator('main').textContent()).includes(PRODUCT));
    assert.deepEqual(await injected(page), { img: 0, script: 0 });

    // The customer's own view.
    const customerPage = await watchedPage(await b.newContext());
    await customerPage.goto(`${url}/?view=register`);
    await customerPage.getByLabel('Name').fill(CUSTOMER);
    await customerPage.getByLabel('E-mail').fill('mallory2@example.com');
    await customerPage.getByLabel(/^Password/).fill('a long enough password');
    await customerPage.getByRole('button', { name: 'Create account' }).click();
    await customerPage.getByText(PRODUCT, { exact: true }).waitFor();
    assert.deepEqual(await injected(customerPage), { img: 0, script: 0 });

    // No dialog opened, nothing was blocked, nothing failed.
    assert.deepEqual(await page.problems(), []);
    assert.deepEqual(await customerPage.problems(), []);
  } finally {
    await b.close();
    await shop.cleanup();
  }
});
