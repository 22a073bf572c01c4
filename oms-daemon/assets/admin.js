// oms dashboard: the admin's views. Orders (live table, filters in the
// URL, cursor paging, status buttons, export), an order's detail, stock
// with restock, and customers. Every view reloads what it shows when a
// change it cares about arrives on the live stream.

import {
  h, fill, main, toast, time, statusBadge, money, NEXT, ACTION, api, ApiError,
  query, errorBox, go, link, setNav, live, debounce,
} from './app.js';

const NAV = [['Orders', ''], ['Stock', 'stock'], ['Customers', 'customers']];
const PAGE = 50;
/** Products with at most this many units available are highlighted. */
const LOW_STOCK = 5;

export function view() {
  setNav(NAV);
  const params = new URLSearchParams(location.search);
  switch (params.get('view')) {
    case 'order': return orderView(params.get('id'));
    case 'stock': return stockView(params);
    case 'customers': return customersView(params);
    default: return ordersView(params);
  }
}

// ---------------------------------------------------------------- customers' names

const names = new Map();

/** Loads the customers of these orders that are not known yet, in one
 *  request (`GET /api/customers?id=...`). */
async function loadNames(orders) {
  const missing = [...new Set(orders.map((o) => o.customer_id))].filter((id) => !names.has(id));
  if (missing.length === 0) return;
  const page = await api('GET', `/api/customers?id=${missing.join(',')}`);
  for (const c of page.items) names.set(c.id, c);
}

function customerCell(id) {
  const c = names.get(id);
  if (!c) return h('span', { class: 'muted' }, `#${id}`);
  return h('span', {}, c.name, h('br'), h('span', { class: 'muted' }, c.email));
}

// ---------------------------------------------------------------- status buttons

/** Buttons for the statuses the order may move to next; the move is sent
 *  with `If-Match` of the version shown, so a change made meanwhile by
 *  someone else is refused (412) and shown, not overwritten. */
function statusButtons(order, after) {
  return NEXT[order.status].map((to) => h('button', {
    type: 'button',
    class: to === 'CANCELLED' ? 'danger' : '',
    'aria-label': `${ACTION[to]} order ${order.id}`,
    onclick: async (e) => {
      e.currentTarget.disabled = true;
      try {
        await api('PUT', `/api/orders/${order.id}/status`, {
          body: { status: to },
          headers: { 'if-match': `"${order.version}"` },
        });
        toast(`Order #${order.id} is now ${to}.`);
      } catch (err) {
        const why = err instanceof ApiError && err.status === 412
          ? `Order #${order.id} was changed by someone else meanwhile; it has been reloaded.`
          : `Order #${order.id}: ${err.message}`;
        toast(why, true);
      }
      after();
    },
  }, ACTION[to]));
}

// ---------------------------------------------------------------- orders

const FILTERS = ['status', 'customer', 'since', 'until', 'q'];

/** The API's filters from the view's URL: dates are local days. */
function apiFilters(params) {
  const out = {};
  for (const name of FILTERS) {
    const v = params.get(name);
    if (!v) continue;
    if ((name === 'since' || name === 'until') && /^\d{4}-\d{2}-\d{2}$/.test(v)) {
      // A day in the browser's time zone; `until` is exclusive, so it
      // names the day after.
      const day = new Date(`${v}T00:00:00`);
      if (name === 'until') day.setDate(day.getDate() + 1);
      out[name] = day.toISOString();
    } else {
      out[name] = v;
    }
  }
  return out;
}

function ordersView(params) {
  const filters = apiFilters(params);
  const after = params.get('after');
  const field = (name, label, input) => {
    input.name = name;
    input.value = params.get(name) || '';
    return h('label', {}, label, input);
  };
  const status = h('select', {},
    h('option', { value: '' }, 'Any status'),
    Object.keys(NEXT).map((s) => h('option', { value: s }, s)));
  const form = h('form', {
    class: 'filters',
    role: 'search',
    onsubmit: (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const next = {};
      for (const name of FILTERS) next[name] = (data.get(name) || '').trim();
      go(`/${query(next)}`);
    },
  },
  field('status', 'Status', status),
  field('customer', 'Customer (id or e-mail)', h('input', { type: 'text', autocomplete: 'off' })),
  field('since', 'Placed from', h('input', { type: 'date' })),
  field('until', 'Placed until', h('input', { type: 'date' })),
  field('q', 'Search', h('input', { type: 'search', placeholder: 'name, e-mail, SKU, code' })),
  h('div', { class: 'actions' },
    h('button', { type: 'submit' }, 'Apply'),
    link('/', 'Clear'),
    h('a', {
      class: 'button secondary',
      href: `/api/orders/export.csv${query(filters)}`,
      download: 'export.csv',
    }, 'Export CSV')));

  const body = h('div', {}, h('p', { class: 'state' }, 'Loading orders…'));
  fill(main(), h('h1', {}, 'Orders'), form, body);

  let shown = new Set();
  let first = true;
  const load = async () => {
    try {
      const page = await api('GET', `/api/orders${query({ ...filters, direction: 'desc', limit: PAGE, after })}`);
      await loadNames(page.items);
      fill(body, ordersTable(page, shown, first, after, load));
      shown = new Set(page.items.map((o) => o.id));
      first = false;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && filters.customer) {
        fill(body, h('p', { class: 'notice' }, 'No customer matches ', h('strong', {}, filters.customer), '.'));
      } else {
        fill(body, errorBox(err, load));
      }
    }
  };
  const reload = debounce(load, 60);
  const off = live.on((change) => {
    if (change.type === 'reconnected' || change.entity === 'order') reload();
    if (change.entity === 'customer') { names.delete(change.entity_id); reload(); }
  });
  load();
  return { stop() { off(); reload.cancel(); } };
}

function ordersTable(page, shown, first, after, reload) {
  if (page.items.length === 0) {
    return h('p', { class: 'notice' }, after ? 'No older orders.' : 'No orders match these filters.');
  }
  const here = new URLSearchParams(location.search);
  const pageLink = (cursor) => {
    const p = new URLSearchParams(here);
    if (cursor) p.set('after', cursor); else p.delete('after');
    const s = p.toString();
    return s ? `/?${s}` : '/';
  };
  return h('div', {},
    h('table', { 'aria-label': 'Orders, newest first' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Order'), h('th', {}, 'Placed'), h('th', {}, 'Customer'), h('th', {}, 'Items'),
        h('th', { class: 'num' }, 'Total'), h('th', {}, 'Status'), h('th', {}, 'Actions'))),
      h('tbody', {}, page.items.map((o) => h('tr', { class: !first && !shown.has(o.id) ? 'fresh' : null, 'data-order': o.id },
        h('td', { 'data-label': 'Order' }, link(`/?view=order&id=${o.id}`, `#${o.id}`)),
        h('td', { 'data-label': 'Placed' }, time(o.created_at)),
        h('td', { 'data-label': 'Customer' }, customerCell(o.customer_id)),
        h('td', { 'data-label': 'Items', class: 'items' }, o.items.map((i) => `${i.quantity} × ${i.name}`).join(', ')),
        h('td', { 'data-label': 'Total', class: 'num' }, money(o.total, o.currency)),
        h('td', { 'data-label': 'Status' }, statusBadge(o.status)),
        h('td', { 'data-label': 'Actions', class: 'actions' }, h('div', { class: 'row' }, statusButtons(o, reload))))))),
    h('div', { class: 'pager' },
      after ? link(pageLink(null), '← Newest') : null,
      page.next ? link(pageLink(page.next), 'Older →') : null));
}

// ---------------------------------------------------------------- one order

function orderView(id) {
  const body = h('div', {}, h('p', { class: 'state' }, 'Loading order…'));
  fill(main(), h('p', {}, link('/', '← All orders')), body);
  const load = async () => {
    let order;
    try {
      order = await api('GET', `/api/orders/${encodeURIComponent(id)}`);
      await loadNames([order]);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        fill(body, h('h1', {}, 'Order not found'), h('p', { class: 'notice' }, `There is no order ${id}.`));
      } else {
        fill(body, errorBox(err, load));
      }
      return;
    }
    const c = names.get(order.customer_id);
    fill(body,
      h('h1', {}, `Order #${order.id} `, statusBadge(order.status)),
      h('div', { class: 'row' }, statusButtons(order, load)),
      h('div', { class: 'card' }, h('dl', { class: 'grid kv' },
        h('div', {}, h('dt', {}, 'Customer'), h('dd', {},
          c ? [c.name, h('br'), link(`/?customer=${encodeURIComponent(c.email)}`, c.email)] : `#${order.customer_id}`)),
        h('div', {}, h('dt', {}, 'Placed'), h('dd', {}, time(order.created_at))),
        h('div', {}, h('dt', {}, 'Last updated'), h('dd', {}, time(order.updated_at))),
        h('div', {}, h('dt', {}, 'Tracking'), h('dd', {},
          h('a', { class: 'code', href: `/track/${encodeURIComponent(order.tracking_code)}` }, order.tracking_code))),
        h('div', {}, h('dt', {}, 'Payment collected'), h('dd', {}, order.payment_collected ? 'Yes' : 'No')),
        h('div', {}, h('dt', {}, 'Reference'), h('dd', {}, order.idempotency_key || '—')))),
      h('h2', {}, 'Lines'),
      linesTable(order),
      section('Payments', paymentsSection(order)),
      section('Notifications', notificationsSection(order)),
      section('History', historySection(order)));
  };
  const reload = debounce(load, 60);
  const off = live.on((change) => {
    if (change.type === 'reconnected'
      || (change.entity === 'order' && String(change.entity_id) === String(id))
      || (change.entity === 'payment' && change.data && String(change.data.order_id) === String(id))) reload();
  });
  load();
  return { stop() { off(); reload.cancel(); } };
}

export function linesTable(order) {
  return h('table', { 'aria-label': 'Order lines' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'SKU'), h('th', {}, 'Product'), h('th', { class: 'num' }, 'Unit price'),
      h('th', { class: 'num' }, 'Quantity'), h('th', { class: 'num' }, 'Line total'))),
    h('tbody', {},
      order.items.map((i) => h('tr', {},
        h('td', { 'data-label': 'SKU' }, i.sku),
        h('td', { 'data-label': 'Product' }, i.name),
        h('td', { 'data-label': 'Unit price', class: 'num' }, money(i.unit_price, order.currency)),
        h('td', { 'data-label': 'Quantity', class: 'num' }, i.quantity),
        h('td', { 'data-label': 'Line total', class: 'num' }, money(i.line_total, order.currency)))),
      h('tr', {},
        h('td', { colspan: 4, class: 'total-label' }, h('strong', {}, 'Total')),
        h('td', { class: 'num', 'data-label': 'Total' }, h('strong', {}, money(order.total, order.currency))))));
}

/** A titled part of the detail that loads on its own. */
function section(title, content) {
  return h('section', {}, h('h2', {}, title), content);
}

/** Loads `path` into a box; a 404 means this server has no such endpoint
 *  (an older daemon), said plainly instead of as an error. */
function loadInto(path, render, what) {
  const box = h('div', {}, h('p', { class: 'state' }, 'Loading…'));
  api('GET', path).then(
    (data) => fill(box, render(data)),
    (err) => fill(box, err instanceof ApiError && err.status === 404
      ? h('p', { class: 'notice' }, `${what} are not available on this server.`)
      : errorBox(err)));
  return box;
}

function paymentsSection(order) {
  return loadInto(`/api/orders/${order.id}/payments`, (page) => {
    if (!page.items.length) return h('p', { class: 'notice' }, 'No payments recorded.');
    return h('table', { 'aria-label': 'Payments' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Payment'), h('th', {}, 'Provider'), h('th', { class: 'num' }, 'Amount'),
        h('th', {}, 'Status'), h('th', {}, 'Outcome'), h('th', { class: 'num' }, 'Refunded'), h('th', {}, 'When'))),
      h('tbody', {}, page.items.map((p) => h('tr', {},
        h('td', { 'data-label': 'Payment' }, p.provider_payment_id || `#${p.id}`),
        h('td', { 'data-label': 'Provider' }, p.provider),
        h('td', { 'data-label': 'Amount', class: 'num' }, money(p.amount, p.currency)),
        h('td', { 'data-label': 'Status' }, p.status),
        h('td', { 'data-label': 'Outcome' }, p.outcome),
        h('td', { 'data-label': 'Refunded', class: 'num' }, money(p.refunded_amount, p.currency)),
        h('td', { 'data-label': 'When' }, time(p.created_at))))));
  }, 'Payments');
}

function notificationsSection(order) {
  return loadInto(`/api/notifications?order=${order.id}`, (page) => {
    if (!page.items.length) return h('p', { class: 'notice' }, 'No notifications.');
    return h('table', { 'aria-label': 'Notifications' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'Kind'), h('th', {}, 'To'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Attempts'),
        h('th', {}, 'Created'), h('th', {}, 'Sent'), h('th', {}, 'Last error'))),
      h('tbody', {}, page.items.map((n) => h('tr', {},
        h('td', { 'data-label': 'Kind' }, n.kind),
        h('td', { 'data-label': 'To' }, n.recipient),
        h('td', { 'data-label': 'Status' }, n.status),
        h('td', { 'data-label': 'Attempts', class: 'num' }, n.attempts),
        h('td', { 'data-label': 'Created' }, time(n.created_at)),
        h('td', { 'data-label': 'Sent' }, time(n.sent_at)),
        h('td', { 'data-label': 'Last error' }, n.last_error || '—')))));
  }, 'Notifications');
}

function describe(change) {
  const d = change.data || {};
  switch (change.type) {
    case 'order.placed': return `Placed (${d.status || 'PENDING'}), total ${money(d.total, d.currency)}`;
    case 'order.status_changed': return `${d.from} → ${d.to}${d.reason ? ` (${d.reason})` : ''}`;
    case 'order.updated': return `Lines edited, total ${money(d.total, d.currency)}`;
    case 'order.deleted': return 'Removed';
    default: return change.type;
  }
}

function historySection(order) {
  return loadInto(`/api/changes?entity=order&entity_id=${order.id}&limit=1000`, (page) => {
    if (!page.changes.length) return h('p', { class: 'notice' }, 'No history recorded.');
    return h('ol', { class: 'history' }, page.changes.map((c) => h('li', {},
      time(c.at), ' — ', describe(c), h('span', { class: 'muted' }, ` by ${c.actor}`))));
  }, 'History');
}

// ---------------------------------------------------------------- stock

function stockView(params) {
  const after = params.get('after');
  const body = h('div', {}, h('p', { class: 'state' }, 'Loading stock…'));
  fill(main(), h('h1', {}, 'Stock'),
    h('p', { class: 'muted' }, `Rows marked “Low” have ${LOW_STOCK} or fewer units available.`), body);
  const load = async () => {
    try {
      const page = await api('GET', `/api/products${query({ limit: 100, after })}`);
      fill(body, stockTable(page, after, load));
    } catch (err) {
      fill(body, errorBox(err, load));
    }
  };
  const reload = debounce(load, 60);
  const off = live.on((change) => {
    if (change.type === 'reconnected' || change.entity === 'product') reload();
  });
  load();
  return { stop() { off(); reload.cancel(); } };
}

function stockTable(page, after, reload) {
  if (!page.items.length) return h('p', { class: 'notice' }, 'No products yet.');
  return h('div', {},
    h('table', { 'aria-label': 'Stock' },
      h('thead', {}, h('tr', {},
        h('th', {}, 'SKU'), h('th', {}, 'Product'), h('th', { class: 'num' }, 'Price'),
        h('th', { class: 'num' }, 'On hand'), h('th', { class: 'num' }, 'Reserved'),
        h('th', { class: 'num' }, 'Available'), h('th', {}, 'Restock'))),
      h('tbody', {}, page.items.map((p) => {
        const low = p.active && p.stock_available <= LOW_STOCK;
        const amount = h('input', { type: 'number', min: 1, step: 1, value: 10, 'aria-label': `Units of ${p.sku} received`, class: 'qty' });
        return h('tr', { class: low ? 'low' : null },
          h('td', { 'data-label': 'SKU' }, p.sku),
          h('td', { 'data-label': 'Product' }, p.name, p.active ? null : h('span', { class: 'muted' }, ' (inactive)')),
          h('td', { 'data-label': 'Price', class: 'num' }, p.price),
          h('td', { 'data-label': 'On hand', class: 'num' }, p.stock_on_hand),
          h('td', { 'data-label': 'Reserved', class: 'num' }, p.stock_reserved),
          h('td', { 'data-label': 'Available', class: 'num' }, low ? h('span', { class: 'badge-low' }, `Low: ${p.stock_available}`) : p.stock_available),
          h('td', { 'data-label': 'Restock', class: 'actions' }, h('form', {
            class: 'row',
            onsubmit: async (e) => {
              e.preventDefault();
              const button = e.currentTarget.querySelector('button');
              button.disabled = true;
              try {
                const n = Number(amount.value);
                const product = await api('POST', `/api/products/${p.id}/restock`, { body: { add: n } });
                toast(`${p.sku}: ${product.stock_available} available.`);
              } catch (err) {
                toast(`${p.sku}: ${err.message}`, true);
              }
              button.disabled = false;
              reload();
            },
          }, amount, h('button', { type: 'submit', class: 'secondary' }, 'Add'))));
      }))),
    h('div', { class: 'pager' },
      after ? link('/?view=stock', '← First') : null,
      page.next ? link(`/?view=stock&after=${page.next}`, 'More →') : null));
}

// ---------------------------------------------------------------- customers

function customersView(params) {
  const after = params.get('after');
  const q = params.get('q') || '';
  const search = h('input', { type: 'search', name: 'q', value: q, placeholder: 'name or e-mail' });
  const body = h('div', {}, h('p', { class: 'state' }, 'Loading customers…'));
  fill(main(), h('h1', {}, 'Customers'),
    h('form', {
      class: 'filters',
      role: 'search',
      onsubmit: (e) => { e.preventDefault(); go(`/${query({ view: 'customers', q: search.value.trim() })}`); },
    }, h('label', {}, 'Search', search), h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Search'))),
    body);
  const load = async () => {
    try {
      const page = await api('GET', `/api/customers${query({ q, limit: PAGE, after })}`);
      for (const c of page.items) names.set(c.id, c);
      if (!page.items.length) {
        fill(body, h('p', { class: 'notice' }, q ? 'No customer matches.' : 'No customers yet.'));
        return;
      }
      fill(body,
        h('table', { 'aria-label': 'Customers' },
          h('thead', {}, h('tr', {},
            h('th', {}, 'Name'), h('th', {}, 'E-mail'), h('th', {}, 'Phone'), h('th', {}, 'Since'), h('th', {}, 'Orders'))),
          h('tbody', {}, page.items.map((c) => h('tr', {},
            h('td', { 'data-label': 'Name' }, c.name),
            h('td', { 'data-label': 'E-mail' }, c.email),
            h('td', { 'data-label': 'Phone' }, c.phone || '—'),
            h('td', { 'data-label': 'Since' }, time(c.created_at)),
            h('td', { 'data-label': 'Orders' }, link(`/?customer=${c.id}`, 'Orders')))))),
        h('div', { class: 'pager' },
          after ? link(`/${query({ view: 'customers', q })}`, '← First') : null,
          page.next ? link(`/${query({ view: 'customers', q, after: page.next })}`, 'More →') : null));
    } catch (err) {
      fill(body, errorBox(err, load));
    }
  };
  const reload = debounce(load, 60);
  const off = live.on((change) => {
    if (change.type === 'reconnected' || change.entity === 'customer') reload();
  });
  load();
  return { stop() { off(); reload.cancel(); } };
}
