// Opens a session, then waits for the close that mtgate's graceful shutdown sends.
// Usage: node shutdown.js URL READY_FILE   (touches READY_FILE once connected)
const WebSocket = require('ws');
const fs = require('fs');
const ws = new WebSocket(process.argv[2]);
const t = setTimeout(() => { console.error('FAIL shutdown: no close within 20 s'); process.exit(1); }, 20000);
ws.once('open', () => fs.writeFileSync(process.argv[3], 'ready'));
ws.once('close', (code, reason) => {
  clearTimeout(t);
  if (code !== 1001) { console.error(`FAIL shutdown: close ${code} ${reason}`); process.exit(1); }
  console.log(`ok  graceful shutdown: 1001 "${reason}"`);
  process.exit(0);
});
ws.once('error', (e) => { console.error('FAIL shutdown:', e.message); process.exit(1); });
