// A WebSocket echo backend on Node's `ws`: echoes every message with its type, answers
// "whoami" with its name, and picks the first subprotocol offered (ws's default).
// Usage: node backend.js PORT NAME
const { WebSocketServer } = require('ws');
const [port, name] = [Number(process.argv[2]), process.argv[3]];
const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 64 * 1024 * 1024 });
wss.on('connection', (ws, req) => {
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString() === 'whoami') return ws.send(name);
    if (!isBinary && data.toString() === 'protocol') return ws.send(ws.protocol || '');
    if (!isBinary && data.toString() === 'extensions') return ws.send(req.headers['sec-websocket-extensions'] || 'none');
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`backend ${name} on ${port}`));
