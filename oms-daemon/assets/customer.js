// oms dashboard: the customer's views. The catalogue with availability and
// a basket, the customer's own orders (live, with cancel for PENDING
// ones), and one order's detail. The server limits a customer to its own
// data: another customer's order answers 404 whatever the URL says.

import {
  h, fill, main, toast, time, statusBadge, money, api, ApiError, query, errorBox, link,
  setNav, live, debounce,
} from './app.js';

const NAV = [['Shop', ''], ['My orders', 'orders']];

export function view() {
  setNav(NAV);
  const params = new URLSearchParams(location.search);
  switch (params.get('view')) {
    case 'order': return orderView(params.get('id'));
    case 'orders': return ordersView(params);
    default: return shopView();
  }
}

/** A fresh idempotency key: one per basket, so resending the same basket
 *  (a double click, a retry after a lost answer) places one order. */
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------- shop

function shopView() {
  const basket = new Map(); // product id -> quantity
  let key = newKey();
  let products = [];
  const catalogue = h('div', {}, h('p', { class: 'state' }, 'Loading the catalogue…'));
  const summary = h('div', { class: 'card', 'aria-live': 'polite' });
  const mine = h('div', {});
  fill(main(),
    h('h1', {}, 'Shop'),
    h('h2', {}, 'Your basket'),
    summary,
    h('h2', {}, 'Catalogue'),
    catalogue,
    h('h2', {}, 'Your recent orders'),
    mine);

  const renderSummary = () => {
    const lines = products.filter((p) => basket.get(p.id) > 0);
    if (!lines.length) {
      fill(summary, h('p', { class: 'muted' }, 'Your basket is empty. Choose quantities above.'));
      return;
    }
    const button = h('button', { type: 'button', onclick: () => place(button) }, 'Place order');
    fill(summary,
      h('ul', {}, lines.map((p) => h('li', {}, `${basket.get(p.id)} × `, p.name, ` (${p.sku})`))),
      h('div', { class: 'row' }, button,
        h('button', { type: 'button', class: 'secondary', onclick: () => { basket.clear(); key = newKey(); cards = new Map(); loadCatalogue(); } }, 'Empty basket')));
  };

  const place = async (button) => {
    button.disabled = true;
    const items = [...basket].filter(([, q]) => q > 0).map(([id, quantity]) => ({ product_id: id, quantity }));
    try {
      const order = await api('POST', '/api/orders', { body: { items }, headers: { 'idempotency-key': key } });
      toast(`Order #${order.id} placed.`);
      basket.clear();
      key = newKey();
      cards = new Map();
      loadCatalogue();
      loadMine();
    } catch (err) {
      if (err instanceof ApiError && err.status === 409 && /in progress/.test(err.message)) {
        // The same basket is being placed by an earlier click: its answer
        // will arrive on the live stream.
        return;
      }
      toast(err.message, true);
      button.disabled = false;
    }
  };

  // Cards by product id, so a live update changes availability in place
  // instead of redrawing the inputs a customer may be typing in.
  let cards = new Map();
  const loadCatalogue = async () => {
    try {
      const page = await api('GET', '/api/products?limit=500');
      const fresh = page.items.filter((p) => p.active);
      const same = fresh.length === cards.size && fresh.every((p) => cards.has(p.id));
      products = fresh;
      if (same) {
        for (const p of fresh) cards.get(p.id).update(p);
      } else if (!products.length) {
        cards = new Map();
        fill(catalogue, h('p', { class: 'notice' }, 'Nothing is for sale right now.'));
      } else {
        cards = new Map();
        fill(catalogue, h('div', { class: 'catalogue' }, products.map((p) => productCard(p))));
      }
      renderSummary();
    } catch (err) {
      fill(catalogue, errorBox(err, loadCatalogue));
    }
  };

  const productCard = (p) => {
    const available = h('span', {});
    const quantity = h('input', {
      type: 'number', min: 0, step: 1, value: basket.get(p.id) || 0,
      'aria-label': `Quantity of ${p.name}`,
      oninput: () => {
        const n = Math.max(0, Math.floor(Number(quantity.value) || 0));
        if (n > 0) basket.set(p.id, n); else basket.delete(p.id);
        // Another basket is another order.
        key = newKey();
        renderSummary();
      },
    });
    const update = (fresh) => {
      available.textContent = fresh.stock_available > 0 ? `${fresh.stock_available} available` : 'Out of stock';
      quantity.max = String(Math.max(fresh.stock_available, 0));
      quantity.disabled = fresh.stock_available <= 0 && !basket.get(fresh.id);
      if (!basket.get(fresh.id)) quantity.value = '0';
    };
    update(p);
    cards.set(p.id, { update });
    return h('div', { class: 'card product' },
      h('span', { class: 'name' }, p.name),
      h('span', { class: 'muted' }, p.sku),
      h('span', {}, p.price),
      available,
      h('label', {}, 'Quantity', quantity));
  };

  const loadMine = async () => {
    try {
      const page = await api('GET', `/api/orders${query({ direction: 'desc', limit: 5 })}`);
      fill(mine, ordersTable(page.items, loadMine), link('/?view=orders', 'All my orders →'));
    } catch (err) {
      fill(mine, errorBox(err, loadMine));
    }
  };

  const reloadCatalogue = debounce(loadCatalogue, 200);
  const reloadMine = debounce(loadMine, 60);
  const off = live.on((change) => {
    if (change.type === 'reconnected') { reloadCatalogue(); reloadMine(); }
    if (change.entity === 'order') { reloadMine(); reloadCatalogue(); }
  });
  loadCatalogue();
  loadMine();
  return { stop() { off(); reloadCatalogue.cancel(); reloadMine.cancel(); } };
}

// ---------------------------------------------------------------- own orders

function cancelButton(order, after) {
  if (order.status !== 'PENDING') return null;
  return h('button', {
    type: 'button',
    class: 'danger',
    'aria-label': `Cancel order ${order.id}`,
    onclick: async (e) => {
      e.currentTarget.disabled = true;
      try {
        await api('PUT', `/api/orders/${order.id}/status`, {
          body: { status: 'CANCELLED' },
          headers: { 'if-match': `"${order.version}"` },
        });
        toast(`Order #${order.id} is cancelled.`);
      } catch (err) {
        toast(err.status === 412 ? `Order #${order.id} changed meanwhile; it has been reloaded.` : err.message, true);
      }
      after();
    },
  }, 'Cancel');
}

function ordersTable(orders, after) {
  if (!orders.length) return h('p', { class: 'notice' }, 'You have no orders yet.');
  return h('table', { 'aria-label': 'Your orders, newest first' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Order'), h('th', {}, 'Placed'), h('th', {}, 'Items'), h('th', { class: 'num' }, 'Total'),
      h('th', {}, 'Status'), h('th', {}, 'Actions'))),
    h('tbody', {}, orders.map((o) => h('tr', { 'data-order': o.id },
      h('td', { 'data-label': 'Order' }, link(`/?view=order&id=${o.id}`, `#${o.id}`)),
      h('td', { 'data-label': 'Placed' }, time(o.created_at)),
      h('td', { 'data-label': 'Items', class: 'items' }, o.items.map((i) => `${i.quantity} × ${i.name}`).join(', ')),
      h('td', { 'data-label': 'Total', class: 'num' }, money(o.total, o.currency)),
      h('td', { 'data-label': 'Status' }, statusBadge(o.status)),
      h('td', { 'data-label': 'Actions', class: 'actions' }, cancelButton(o, after))))));
}

function ordersView(params) {
  const after = params.get('after');
  const body = h('div', {}, h('p', { class: 'state' }, 'Loading your orders…'));
  fill(main(), h('h1', {}, 'My orders'), body);
  const load = async () => {
    try {
      const page = await api('GET', `/api/orders${query({ direction: 'desc', limit: 50, after })}`);
      fill(body, ordersTable(page.items, load),
        h('div', { class: 'pager' },
          after ? link('/?view=orders', '← Newest') : null,
          page.next ? link(`/?view=orders&after=${page.next}`, 'Older →') : null));
    } catch (err) {
      fill(body, errorBox(err, load));
    }
  };
  const reload = debounce(load, 60);
  const off = live.on((change) => {
    if (change.type === 'reconnected' || change.entity === 'order') reload();
  });
  load();
  return { stop() { off(); reload.cancel(); } };
}

function orderView(id) {
  const body = h('div', {}, h('p', { class: 'state' }, 'Loading order…'));
  fill(main(), h('p', {}, link('/?view=orders', '← My orders')), body);
  const load = async () => {
    try {
      const order = await api('GET', `/api/orders/${encodeURIComponent(id)}`);
      fill(body,
        h('h1', {}, `Order #${order.id} `, statusBadge(order.status)),
        h('div', { class: 'row' }, cancelButton(order, load)),
        h('div', { class: 'card' }, h('dl', { class: 'grid kv' },
          h('div', {}, h('dt', {}, 'Placed'), h('dd', {}, time(order.created_at))),
          h('div', {}, h('dt', {}, 'Last updated'), h('dd', {}, time(order.updated_at))),
          h('div', {}, h('dt', {}, 'Tracking'), h('dd', {},
            h('a', { class: 'code', href: `/track/${encodeURIComponent(order.tracking_code)}` }, order.tracking_code))))),
        h('table', { 'aria-label': 'Order lines' },
          h('thead', {}, h('tr', {},
            h('th', {}, 'Product'), h('th', { class: 'num' }, 'Unit price'), h('th', { class: 'num' }, 'Quantity'),
            h('th', { class: 'num' }, 'Line total'))),
          h('tbody', {},
            order.items.map((i) => h('tr', {},
              h('td', { 'data-label': 'Product' }, i.name, h('span', { class: 'muted' }, ` (${i.sku})`)),
              h('td', { 'data-label': 'Unit price', class: 'num' }, money(i.unit_price, order.currency)),
              h('td', { 'data-label': 'Quantity', class: 'num' }, i.quantity),
              h('td', { 'data-label': 'Line total', class: 'num' }, money(i.line_total, order.currency)))),
            h('tr', {},
              h('td', { colspan: 3, class: 'total-label' }, h('strong', {}, 'Total')),
              h('td', { class: 'num', 'data-label': 'Total' }, h('strong', {}, money(order.total, order.currency)))))));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        fill(body, h('h1', {}, 'Order not found'), h('p', { class: 'notice' }, `You have no order ${id}.`));
      } else {
        fill(body, errorBox(err, load));
      }
    }
  };
  const reload = debounce(load, 60);
  const off = live.on((change) => {
    if (change.type === 'reconnected' || (change.entity === 'order' && String(change.entity_id) === String(id))) reload();
  });
  load();
  return { stop() { off(); reload.cancel(); } };
}
