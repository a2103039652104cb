// A WebSocket echo backend on Node's `ws`: echoes every message with its type, answers
// "whoami" with its name, and picks the first subprotocol offered (ws's default). With a
// certificate and key it serves wss, on Node's https server.
// Usage: node backend.js PORT NAME [CERT.pem KEY.pem]
const { WebSocketServer } = require('ws');
const fs = require('fs');
const https = require('https');
const [port, name, certFile, keyFile] = [Number(process.argv[2]), process.argv[3], process.argv[4], process.argv[5]];
const maxPayload = 64 * 1024 * 1024;
let wss;
if (certFile) {
  const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) });
  wss = new WebSocketServer({ server, maxPayload });
  server.listen(port, '127.0.0.1', () => console.log(`backend ${name} on ${port} (wss)`));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload });
}
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
