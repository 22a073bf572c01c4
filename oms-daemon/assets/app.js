// oms dashboard: the shell (routing, session, API calls, live updates)
// and the views anyone may see (login, register, tracking). The admin and
// customer views live in admin.js and customer.js, loaded by role.
//
// Rules kept everywhere: text from the server goes into the page only as
// text nodes (never innerHTML), so a product named `<img onerror=...>`
// stays a name; no inline script or style (the CSP forbids both); times
// are shown in the browser's time zone with UTC on hover.

// ---------------------------------------------------------------- DOM

/** Builds an element. `attrs`: `class`, `on<event>` (a listener), boolean
 *  `true`/`false`, `null`/`undefined` (skipped), anything else an
 *  attribute. Children: nodes, strings (text), arrays, or nothing. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the contents of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const main = () => document.getElementById('main');

let toastTimer = 0;
/** A short message at the bottom of the screen (also read out). */
export function toast(message, bad = false) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.className = bad ? 'toast bad' : 'toast';
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 4000);
}

// ---------------------------------------------------------------- formats

const local = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A `<time>`: local time as text, UTC in the tooltip. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', {}, iso);
  const utc = date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return h('time', { datetime: iso, title: utc }, local.format(date));
}

/** An order status as text (colour only adds to it). */
export function statusBadge(status) {
  return h('span', { class: `status status-${String(status).toLowerCase()}` }, status);
}

export function money(amount, currency) {
  return `${amount} ${currency || ''}`.trim();
}

/** The statuses an order may move to next (DESIGN §4). */
export const NEXT = {
  PENDING: ['PAID', 'CANCELLED'],
  PAID: ['FULFILLED', 'CANCELLED'],
  FULFILLED: [],
  CANCELLED: [],
};
export const ACTION = { PAID: 'Mark paid', FULFILLED: 'Fulfil', CANCELLED: 'Cancel' };

// ---------------------------------------------------------------- API

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Calls the JSON API with the session cookie. Answers the parsed body
 *  (null for 204); throws ApiError with the server's problem otherwise.
 *  A 401 outside the login form means the session ended: back to login. */
export async function api(method, path, { body, headers = {}, quiet401 = false } = {}) {
  const init = { method, headers: { accept: 'application/json', ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, { detail: 'The server cannot be reached. Check the connection and retry.' });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (!res.ok) {
    if (res.status === 401 && !quiet401) sessionEnded();
    throw new ApiError(res.status, data);
  }
  return data;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** An error box with a retry button. */
export function errorBox(err, retry) {
  return h('div', { class: 'error', role: 'alert' },
    h('p', {}, err instanceof ApiError ? err.message : `Something went wrong: ${err}`),
    retry ? h('button', { type: 'button', class: 'secondary', onclick: retry }, 'Retry') : null);
}

// ---------------------------------------------------------------- routing

let currentView = null;
export let session = null;

/** Goes to a URL of the dashboard without reloading. */
export function go(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

/** A link that navigates inside the dashboard. */
export function link(href, ...children) {
  return h('a', {
    href,
    onclick: (e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      go(href);
    },
  }, ...children);
}

export function setNav(items) {
  const nav = document.getElementById('nav');
  const here = new URLSearchParams(location.search).get('view') || '';
  fill(nav, items.map(([label, view]) => {
    const a = link(view ? `/?view=${view}` : '/', label);
    if (view === here || (!view && !here)) a.setAttribute('aria-current', 'page');
    return a;
  }));
}

async function render() {
  if (currentView && currentView.stop) currentView.stop();
  currentView = null;
  const path = location.pathname;
  if (path.startsWith('/track/')) {
    live.stop();
    fill(document.getElementById('who'));
    setNav([]);
    currentView = trackView(decodeURIComponent(path.slice('/track/'.length)));
    return;
  }
  if (!session) {
    try {
      const who = await api('GET', '/auth/session', { quiet401: true });
      session = who.authenticated ? who : null;
    } catch (err) {
      fill(main(), errorBox(err, render));
      return;
    }
  }
  if (!session) {
    live.stop();
    setNav([]);
    fill(document.getElementById('who'));
    const view = new URLSearchParams(location.search).get('view');
    currentView = view === 'register' ? registerView() : loginView();
    return;
  }
  fill(document.getElementById('who'),
    h('span', {}, session.role === 'admin' ? 'Admin' : 'Customer'),
    h('button', { type: 'button', class: 'secondary', onclick: logout }, 'Log out'));
  live.start();
  const module = session.role === 'admin' ? await import('./admin.js') : await import('./customer.js');
  currentView = module.view(session);
  main().focus({ preventScroll: true });
}

function sessionEnded() {
  if (!session) return;
  session = null;
  live.stop();
  toast('Your session has ended. Please log in again.', true);
  render();
}

async function logout() {
  try { await api('DELETE', '/auth/session'); } catch { /* the cookie is gone or was never there */ }
  session = null;
  live.stop();
  go('/');
}

// ---------------------------------------------------------------- live updates

/** The change stream (Server-Sent Events). The browser's EventSource
 *  reconnects by itself with `Last-Event-ID`, so nothing is missed across
 *  a daemon restart; when it gives up (an error answer), a new one is
 *  opened from the last seq seen. Views subscribe with `on(fn)`; `fn`
 *  gets each change, and `{type: 'reconnected'}` after a reconnection so
 *  the view can also reload what it shows. */
class Live {
  constructor() {
    this.listeners = new Set();
    this.source = null;
    this.lastSeq = null;
    this.retry = 1000;
    this.timer = 0;
    this.opened = false;
  }

  start() {
    if (this.source) return;
    const url = this.lastSeq === null ? '/api/changes/stream' : `/api/changes/stream?after=${this.lastSeq}`;
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      this.retry = 1000;
      this.show(true);
      if (this.opened) this.emit({ type: 'reconnected' });
      this.opened = true;
    };
    source.onmessage = (e) => {
      this.lastSeq = e.lastEventId;
      let change;
      try { change = JSON.parse(e.data); } catch { return; }
      this.emit(change);
    };
    source.onerror = () => {
      this.show(false);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (e.g. 401, 503): check the session, then try again.
        this.source = null;
        clearTimeout(this.timer);
        this.timer = setTimeout(async () => {
          try {
            const who = await api('GET', '/auth/session');
            if (who.authenticated) this.start();
            else sessionEnded();
          } catch { /* the server is away: try again */
            if (session) this.start();
          }
        }, this.retry);
        this.retry = Math.min(this.retry * 2, 15000);
      }
    };
  }

  stop() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.source = null;
    this.opened = false;
    this.lastSeq = null;
    const el = document.getElementById('live');
    el.textContent = '';
    el.className = 'live';
    el.hidden = true;
  }

  show(on) {
    const el = document.getElementById('live');
    el.hidden = false;
    el.className = on ? 'live on' : 'live off';
    el.textContent = on ? 'Live' : 'Reconnecting…';
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of this.listeners) {
      try { fn(change); } catch (err) { console.warn('live update failed', err); }
    }
  }
}
export const live = new Live();

/** Calls `fn` at most once per `ms`, after the last call (coalesces a
 *  burst of changes into one reload). */
export function debounce(fn, ms) {
  let timer = 0;
  const call = () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
  call.cancel = () => clearTimeout(timer);
  return call;
}

// ---------------------------------------------------------------- login, register

function loginView() {
  const error = h('div', { role: 'alert' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', {
    class: 'form card',
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      fill(error);
      try {
        session = await api('POST', '/auth/session', {
          body: { email: email.value, password: password.value },
          quiet401: true,
        });
        go(location.pathname + location.search, { replace: true });
      } catch (err) {
        fill(error, errorBox(err));
        submit.disabled = false;
      }
    },
  },
  h('label', {}, 'E-mail', email),
  h('label', {}, 'Password', password),
  error,
  h('div', { class: 'row' }, submit, link('/?view=register', 'New customer? Create an account')));
  fill(main(), h('h1', {}, 'Log in'), form);
  email.focus();
  return {};
}

function registerView() {
  const error = h('div', { role: 'alert' });
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'name', required: true });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'email', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const submit = h('button', { type: 'submit' }, 'Create account');
  const form = h('form', {
    class: 'form card',
    onsubmit: async (e) => {
      e.preventDefault();
      submit.disabled = true;
      fill(error);
      try {
        await api('POST', '/auth/register', {
          body: { name: name.value, email: email.value, password: password.value },
        });
        session = await api('POST', '/auth/session', {
          body: { email: email.value, password: password.value },
          quiet401: true,
        });
        go('/', { replace: true });
      } catch (err) {
        fill(error, errorBox(err));
        submit.disabled = false;
      }
    },
  },
  h('label', {}, 'Name', name),
  h('label', {}, 'E-mail', email),
  h('label', {}, 'Password (at least 8 characters)', password),
  error,
  h('div', { class: 'row' }, submit, link('/', 'Have an account? Log in')));
  fill(main(), h('h1', {}, 'Create an account'), form);
  name.focus();
  return {};
}

// ---------------------------------------------------------------- tracking

function trackView(code) {
  const box = h('div', {}, h('p', { class: 'state' }, 'Loading…'));
  fill(main(), h('h1', {}, 'Order tracking'), box);
  const load = async () => {
    try {
      const t = await api('GET', `/api/track/${encodeURIComponent(code)}`, { quiet401: true });
      fill(box, h('div', { class: 'card' },
        h('p', {}, 'Tracking code ', h('strong', {}, t.tracking_code)),
        h('p', { class: 'big' }, statusBadge(t.status)),
        h('dl', { class: 'grid kv' },
          h('div', {}, h('dt', {}, 'Placed'), h('dd', {}, time(t.created_at))),
          h('div', {}, h('dt', {}, 'Last updated'), h('dd', {}, time(t.updated_at))))),
      h('button', { type: 'button', class: 'secondary', onclick: load }, 'Refresh'));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        fill(box, h('p', { class: 'notice' }, 'No order has the tracking code ', h('strong', {}, code), '.'));
      } else {
        fill(box, errorBox(err, load));
      }
    }
  };
  load();
  return {};
}

// ---------------------------------------------------------------- start

window.addEventListener('popstate', render);
render();
