// A session whose backend dies gets a close with a reason, and a reconnect reaches the other
// backend. Usage: node failover.js URL PIDFILE_DIR
// Asks "whoami", kills that backend (by its pid file), expects 1011, reconnects.
const WebSocket = require('ws');
const fs = require('fs');
const assert = require('assert');
const [url, dir] = [process.argv[2], process.argv[3]];
const open = () => new Promise((resolve, reject) => {
  const ws = new WebSocket(url); ws.once('open', () => resolve(ws)); ws.once('error', reject);
});
const next = (ws) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('timeout')), 10000);
  ws.once('message', (d) => { clearTimeout(t); resolve(d.toString()); });
});
(async () => {
  const ws = await open();
  ws.send('whoami');
  const name = await next(ws);
  const closing = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  process.kill(Number(fs.readFileSync(`${dir}/backend-${name}.pid`, 'utf8')), 'SIGKILL');
  const got = await closing;
  assert.strictEqual(got.code, 1011, JSON.stringify(got));
  assert.strictEqual(got.reason, 'backend connection lost');
  console.log(`ok  backend ${name} killed mid-session: client got 1011 "${got.reason}"`);
  for (let i = 0; i < 3; i++) {
    const again = await open();
    again.send('whoami');
    const other = await next(again);
    assert.notStrictEqual(other, name);
    again.close();
  }
  console.log(`ok  reconnects reach the other backend`);
  process.exit(0);
})().catch((e) => { console.error('FAIL failover:', e); process.exit(1); });
