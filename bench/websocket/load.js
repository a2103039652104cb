// WebSocket echo load: CONNS connections, each keeps WINDOW SIZE-byte binary messages in
// flight (sends one more for every echo it gets), for SECONDS. Prints one JSON line:
// messages/s and MB/s (echoed payload, one way).
// Usage: node load.js URL CONNS SIZE SECONDS [WINDOW]    (WINDOW defaults to 1: lockstep)
const WebSocket = require('ws');
const [url, conns, size, seconds] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const window = +(process.argv[6] || 1);
const payload = Buffer.alloc(size, 0x61);
let messages = 0, errors = 0, open = 0, running = true, started = 0;
const sockets = [];
function finish() {
  running = false;
  const elapsed = (Date.now() - started) / 1000;
  console.log(JSON.stringify({ conns, size, window, seconds: elapsed, messages, errors,
    msgs_per_s: Math.round(messages / elapsed), mb_per_s: +(messages * size / elapsed / 1e6).toFixed(1) }));
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}
for (let i = 0; i < conns; i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  sockets.push(ws);
  ws.on('open', () => {
    if (++open === conns) {
      started = Date.now();
      setTimeout(finish, seconds * 1000);
      for (const s of sockets) for (let k = 0; k < window; k++) s.send(payload);
    }
  });
  ws.on('message', () => { if (!running) return; messages++; ws.send(payload); });
  ws.on('error', () => { errors++; });
}
setTimeout(() => { console.error(`only ${open}/${conns} connections opened`); process.exit(1); }, 30000 + seconds * 1000);
