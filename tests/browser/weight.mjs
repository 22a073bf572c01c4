// The dashboard's first-load weight, for scripts/bench: opens the admin's
// order table in Debian's chromium on a running daemon (the session cookie
// set from a token, as `POST /auth/session` would) and prints one line:
// `page-weight requests=N bytes=B` (every request the page made until the
// table showed and the live stream opened, and their body bytes).
//
//   node tests/browser/weight.mjs http://127.0.0.1:PORT TOKEN

import { browser, firstLoad } from './lib.mjs';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node weight.mjs URL TOKEN');
  process.exit(2);
}
const b = await browser();
try {
  const context = await b.newContext();
  await context.addCookies([{ name: 'oms_session', value: token, url, httpOnly: true, secure: true, sameSite: 'Strict' }]);
  const { requests, bytes } = await firstLoad(context, url);
  console.log(`page-weight requests=${requests.length} bytes=${bytes}`);
} finally {
  await b.close();
}
