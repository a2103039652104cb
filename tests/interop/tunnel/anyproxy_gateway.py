"""An AnyProxy-style gateway, written only from the JSON messages of AnyProxy's API document.

It accepts agents' WebSockets on ws://127.0.0.1:PORT/ws, expects `auth` as the first message
and answers `auth_response` (or `error` AUTH_FAILED and a close), answers every `ping` with a
`pong` echoing its timestamp, and offers a tiny TCP port forward: each client accepted on a
local port becomes a `connect` to that port's target through the newest logged-in agent; the
bytes travel as base64 `data` messages and the end as `close`. A UDP forward does the same
for datagrams: each client address becomes a `connect` with `protocol: "udp"`, and each
datagram one `data` message either way.

Every message is an envelope {"type": ..., "data": {...}} in one WebSocket text message. The
document names no WebSocket subprotocol, so by default none is selected; with
--select-subprotocol the gateway selects `anyproxy-json` when the agent offers it.

Usage: anyproxy_gateway.py --port PORT --username G --password P
           --forward LOCAL_PORT=HOST:PORT [--forward ...] [--udp-forward LOCAL_PORT=HOST:PORT]
           [--ready FILE] [--select-subprotocol]
Prints one JSON line per notable event on stdout (auth, pong, connect_response, error, ...).
Runs until killed.
"""

import argparse
import asyncio
import base64
import itertools
import json
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

STEP = 10  # seconds: every wait on an agent or a client is bounded by this
CHUNK = 32 * 1024
MAX_CONNECTIONS = 2000


def event(name, **fields):
    print(json.dumps({"event": name, **fields}), flush=True)


def message(kind, **data):
    return json.dumps({"type": kind, "data": data})


class Session:
    """One logged-in agent connection."""

    def __init__(self, ws):
        self.ws = ws
        self.send_lock = asyncio.Lock()
        self.pending = {}  # connection_id -> Future[(ok, detail)]
        self.clients = {}  # connection_id -> asyncio.StreamWriter
        self.udp_clients = {}  # connection_id -> (asyncio.DatagramTransport, client address)

    async def send(self, kind, **data):
        async with self.send_lock:
            await asyncio.wait_for(self.ws.send(message(kind, **data)), STEP)

    async def run(self):
        async for raw in self.ws:
            if not isinstance(raw, str):
                await self.send("error", code="INVALID_MESSAGE", message="text messages only")
                continue
            try:
                msg = json.loads(raw)
                kind, data = msg["type"], msg["data"]
            except (ValueError, KeyError, TypeError):
                await self.send("error", code="INVALID_MESSAGE", message="not an envelope")
                continue
            if kind == "ping":
                event("ping", timestamp=data["timestamp"])
                await self.send("pong", timestamp=data["timestamp"])
            elif kind == "connect_response":
                event("connect_response", connection_id=data["connection_id"],
                      success=data["success"], message=data.get("message", ""))
                self.answer(data["connection_id"], bool(data["success"]), data.get("message", ""))
            elif kind == "data" and data["connection_id"] in self.udp_clients:
                transport, client = self.udp_clients[data["connection_id"]]
                transport.sendto(base64.b64decode(data["payload"], validate=True), client)
            elif kind == "data":
                writer = self.clients.get(data["connection_id"])
                if writer is not None:
                    writer.write(base64.b64decode(data["payload"], validate=True))
                    # No windows in this protocol: a slow client pauses the whole WebSocket.
                    await asyncio.wait_for(writer.drain(), STEP)
            elif kind == "close":
                event("close", connection_id=data["connection_id"], reason=data.get("reason", ""))
                self.answer(data["connection_id"], False, "closed")
                self.udp_clients.pop(data["connection_id"], None)
                writer = self.clients.pop(data["connection_id"], None)
                if writer is not None:
                    writer.close()
            elif kind == "error":
                event("error", code=data["code"], message=data.get("message", ""),
                      connection_id=data.get("connection_id"))
                if data.get("connection_id"):
                    self.answer(data["connection_id"], False, data["code"])
            else:
                event("unexpected", type=kind)
        for writer in self.clients.values():
            writer.close()
        self.clients.clear()
        for future in self.pending.values():
            if not future.done():
                future.set_result((False, "agent gone"))

    def answer(self, cid, ok, detail):
        future = self.pending.pop(cid, None)
        if future is not None and not future.done():
            future.set_result((ok, detail))


class Gateway:
    def __init__(self, args):
        self.args = args
        self.session = None
        self.ids = itertools.count(1)

    async def agent(self, ws):
        if ws.request.path != "/ws":
            event("bad_path", path=ws.request.path)
            await ws.close(1008, "wrong path")
            return
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), STEP))
            data = first["data"]
            ok = (first["type"] == "auth" and data["username"] == self.args.username
                  and data["password"] == self.args.password)
            client_id = data.get("client_id", "")
        except (ValueError, KeyError, TypeError, asyncio.TimeoutError, ConnectionClosed):
            ok, client_id = False, ""
        if not ok:
            event("auth_failed", client_id=client_id)
            try:
                await ws.send(message("auth_response", success=False,
                                      message="authentication failed"))
                await ws.send(message("error", code="AUTH_FAILED",
                                      message="authentication failed"))
                await ws.close(1008, "authentication failed")
            except ConnectionClosed:
                pass
            return
        await ws.send(message("auth_response", success=True, message="welcome"))
        event("auth", client_id=client_id, subprotocol=ws.subprotocol)
        session = Session(ws)
        self.session = session
        try:
            await session.run()
        except ConnectionClosed:
            pass
        finally:
            if self.session is session:
                self.session = None
            event("agent_gone", client_id=client_id)

    async def forward(self, target_host, target_port, reader, writer):
        session = self.session
        if session is None or len(session.clients) >= MAX_CONNECTIONS:
            event("no_agent")
            writer.close()
            return
        cid = f"c{next(self.ids)}"
        answer = asyncio.get_running_loop().create_future()
        session.pending[cid] = answer
        try:
            await session.send("connect", connection_id=cid, target_host=target_host,
                               target_port=target_port, protocol="tcp")
            ok, detail = await asyncio.wait_for(answer, STEP)
        except (asyncio.TimeoutError, ConnectionClosed):
            session.pending.pop(cid, None)
            ok, detail = False, "no answer"
        if not ok:
            event("refused", connection_id=cid, detail=detail)
            writer.close()
            return
        session.clients[cid] = writer
        reason = "eof"
        try:
            while cid in session.clients:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    break
                await session.send("data", connection_id=cid,
                                   payload=base64.b64encode(chunk).decode())
        except (OSError, asyncio.TimeoutError) as e:
            reason = str(e)
        except ConnectionClosed:
            return
        if session.clients.pop(cid, None) is not None:
            try:
                await session.send("close", connection_id=cid, reason=reason)
            except ConnectionClosed:
                pass
            writer.close()


class UdpForward(asyncio.DatagramProtocol):
    """A local UDP port whose client addresses each get a UDP connection through the agent."""

    def __init__(self, gateway, host, port):
        self.gateway, self.host, self.port = gateway, host, port
        self.flows = {}  # client address -> Future[connection_id or None]
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, datagram, client):
        asyncio.get_running_loop().create_task(self.relay(datagram, client))

    async def relay(self, datagram, client):
        session = self.gateway.session
        if session is None:
            event("no_agent")
            return
        flow = self.flows.get(client)
        if flow is None:
            flow = asyncio.get_running_loop().create_future()
            self.flows[client] = flow
            cid = f"u{next(self.gateway.ids)}"
            answer = asyncio.get_running_loop().create_future()
            session.pending[cid] = answer
            try:
                await session.send("connect", connection_id=cid, target_host=self.host,
                                   target_port=self.port, protocol="udp")
                ok, detail = await asyncio.wait_for(answer, STEP)
            except (asyncio.TimeoutError, ConnectionClosed):
                session.pending.pop(cid, None)
                ok, detail = False, "no answer"
            if ok:
                session.udp_clients[cid] = (self.transport, client)
            else:
                event("refused", connection_id=cid, detail=detail)
                del self.flows[client]
            flow.set_result(cid if ok else None)
        cid = await flow
        if cid is not None and cid in session.udp_clients:
            try:
                await session.send("data", connection_id=cid,
                                   payload=base64.b64encode(datagram).decode())
            except ConnectionClosed:
                pass


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--forward", action="append", default=[], metavar="LOCAL_PORT=HOST:PORT")
    p.add_argument("--udp-forward", action="append", default=[],
                   metavar="LOCAL_PORT=HOST:PORT")
    p.add_argument("--ready", help="file written once every port listens")
    p.add_argument("--select-subprotocol", action="store_true")
    args = p.parse_args()
    gateway = Gateway(args)
    servers = []
    for spec in args.forward:
        local, target = spec.split("=", 1)
        host, port = target.rsplit(":", 1)

        def handler(reader, writer, host=host, port=int(port)):
            return gateway.forward(host, port, reader, writer)

        servers.append(await asyncio.start_server(handler, "127.0.0.1", int(local)))
    for spec in args.udp_forward:
        local, target = spec.split("=", 1)
        host, port = target.rsplit(":", 1)
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda host=host, port=int(port): UdpForward(gateway, host, port),
            local_addr=("127.0.0.1", int(local)))
    subprotocols = ["anyproxy-json"] if args.select_subprotocol else None
    async with serve(gateway.agent, "127.0.0.1", args.port, max_size=1 << 20,
                     ping_interval=None, subprotocols=subprotocols):
        event("listening", port=args.port)
        if args.ready:
            with open(args.ready, "w") as f:
                f.write("ready\n")
        await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
