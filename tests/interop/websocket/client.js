// Node `ws` client checks through mtgate. Usage: node client.js URL [BACKEND_NAME]
// Prints one line per check; exits non-zero on the first failure. With BACKEND_NAME, also
// checks that the session reached the backend of that name.
const WebSocket = require('ws');
const assert = require('assert');
const [url, backendName] = [process.argv[2], process.argv[3]];

function open(protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: true, maxPayload: 64 * 1024 * 1024 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function next(ws) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout waiting for a message')), 10000);
    ws.once('message', (data, isBinary) => { clearTimeout(t); resolve({ data, isBinary }); });
  });
}
function closed(ws) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout waiting for close')), 10000);
    ws.once('close', (code, reason) => { clearTimeout(t); resolve({ code, reason: reason.toString() }); });
  });
}
const ok = (what) => console.log(`ok  node ws: ${what}`);

(async () => {
  const ws = await open(['mb.v1', 'other']);
  assert.strictEqual(ws.protocol, 'mb.v1'); ok('subprotocol chosen by the backend comes back');
  assert.strictEqual(ws.extensions, ''); ok('permessage-deflate offered by the client is not negotiated');
  ws.send('extensions');
  assert.strictEqual((await next(ws)).data.toString(), 'none'); ok('the backend never sees the deflate offer');
  if (backendName) {
    ws.send('whoami');
    assert.strictEqual((await next(ws)).data.toString(), backendName); ok(`reached backend ${backendName}`);
  }

  ws.send('héllo wörld');
  let m = await next(ws);
  assert.strictEqual(m.isBinary, false); assert.strictEqual(m.data.toString(), 'héllo wörld'); ok('text');

  const bin = Buffer.alloc(100000); for (let i = 0; i < bin.length; i++) bin[i] = i % 251;
  ws.send(bin);
  m = await next(ws);
  assert.strictEqual(m.isBinary, true); assert.ok(Buffer.compare(m.data, bin) === 0); ok('binary 100000 bytes');

  const mb = 'publish:baggage.scanned:1.0.0:2f1b9c0e-8a8e-4c1e-9f57-3f6e9d2f8a10\n{"bag":"0123456789","flight":"XY123","ts":"2026-11-23T12:00:00Z"}';
  ws.send(mb);
  m = await next(ws);
  assert.ok(Buffer.compare(m.data, Buffer.from(mb)) === 0); ok('MB Server Node header line + newline + JSON, byte for byte');

  ws.send('frag-', { fin: false }); ws.send('ment-', { fin: false }); ws.send('ed', { fin: true });
  m = await next(ws);
  assert.strictEqual(m.data.toString(), 'frag-ment-ed'); ok('fragmented message (3 frames)');

  const pong = new Promise((resolve) => ws.once('pong', (d) => resolve(d.toString())));
  ws.ping('are-you-there');
  assert.strictEqual(await pong, 'are-you-there'); ok('ping answered with pong');

  const exact = Buffer.alloc(1024 * 1024, 7);
  ws.send(exact);
  m = await next(ws);
  assert.strictEqual(m.data.length, exact.length); ok('1 MiB message passes');

  const c = closed(ws);
  ws.close(4001, 'done here');
  const got = await c;
  assert.strictEqual(got.code, 4001); assert.strictEqual(got.reason, 'done here'); ok('close code 4001 and reason echoed end to end');

  const big = await open();
  const c2 = closed(big);
  big.send(Buffer.alloc(1024 * 1024 + 1, 1));
  const got2 = await c2;
  assert.strictEqual(got2.code, 1009, JSON.stringify(got2)); assert.strictEqual(got2.reason, 'message exceeds 1048576 bytes');
  ok('1 MiB + 1 byte closed with 1009 "message exceeds 1048576 bytes"');

  const normal = await open();
  const c3 = closed(normal);
  normal.close(1000);
  assert.strictEqual((await c3).code, 1000); ok('normal close 1000');
  process.exit(0);
})().catch((e) => { console.error('FAIL node ws:', e); process.exit(1); });
