#!/usr/bin/env python3
"""An agent written straight from AnyProxy's API document (docs/API.md@2ad9c8f), with the
Python standard library only, to check that mtgate's gateway speaks those JSON messages.

Every message is a WebSocket text message holding {"type": ..., "data": {...}}:
  agent -> gateway: auth {username, password, client_id}; ping {timestamp};
                    connect_response {connection_id, success, message};
                    data {connection_id, payload (base64)}; close {connection_id, reason};
                    error {code, message, connection_id}
  gateway -> agent: auth_response {success, message}; pong {timestamp};
                    connect {connection_id, target_host, target_port, protocol};
                    data; close

Usage: json_agent.py HOST:PORT USERNAME PASSWORD CLIENT_ID
Prints "READY" once authenticated and the ping was answered, then serves connects: the host
"forbidden.test" is refused with an error message of code FORBIDDEN_HOST (the document's
code for it); other targets are dialled. A connect with protocol "udp" gets a UDP socket
connected to the target: each data message is one datagram to it, each datagram from it one
data message back. Exits when the gateway closes, or after 60 s.
"""

import base64
import json
import os
import socket
import struct
import sys
import threading
import time

FORBIDDEN = "forbidden.test"


class WebSocket:
    """A minimal RFC 6455 client: masked text frames out, unfragmented frames in."""

    def __init__(self, host, port, path):
        self.sock = socket.create_connection((host, port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise SystemExit("closed during the upgrade")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0]
        if b" 101 " not in status + b" ":
            raise SystemExit(f"upgrade refused: {status!r}")
        self.lock = threading.Lock()

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(header + mask + masked)

    def send(self, kind, **data):
        self._send_frame(0x1, json.dumps({"type": kind, "data": data}).encode())

    def recv(self):
        """The next message as (type, data); None once the gateway closed."""
        while True:
            try:
                b0, b1 = self._read(2)
            except EOFError:
                return None
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            if opcode == 0x8:
                return None
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x2):
                message = json.loads(payload)
                return message["type"], message["data"]


def pump(ws, conn_id, target, conns):
    """Target -> gateway: data messages, then close."""
    try:
        while True:
            chunk = target.recv(32 * 1024)
            if not chunk:
                break
            ws.send("data", connection_id=conn_id,
                    payload=base64.b64encode(chunk).decode())
    except OSError:
        pass
    ws.send("close", connection_id=conn_id, reason="target closed")
    conns.pop(conn_id, None)


def pump_udp(ws, conn_id, target, udp_conns):
    """Target -> gateway for a UDP connection: one data message per datagram."""
    while True:
        try:
            datagram = target.recv(65536)
        except ConnectionRefusedError:
            continue  # ICMP port unreachable for an earlier datagram
        except OSError:
            return  # closed by the gateway's close
        if conn_id not in udp_conns:
            return
        ws.send("data", connection_id=conn_id,
                payload=base64.b64encode(datagram).decode())


def open_udp(host, port):
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    target = socket.socket(family, kind, proto)
    target.connect(addr)
    return target


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    username, password, client_id = sys.argv[2:5]
    ws = WebSocket(host, int(port), "/ws")
    ws.send("auth", username=username, password=password, client_id=client_id)
    kind, data = ws.recv()
    if kind != "auth_response" or data.get("success") is not True:
        raise SystemExit(f"not authenticated: {kind} {data}")
    stamp = int(time.time())
    ws.send("ping", timestamp=stamp)
    conns = {}
    udp_conns = {}
    ready = False
    deadline = time.time() + 60
    while time.time() < deadline:
        message = ws.recv()
        if message is None:
            break
        kind, data = message
        if kind == "pong":
            if data.get("timestamp") != stamp:
                raise SystemExit(f"pong does not echo the timestamp: {data}")
            if not ready:
                print("READY", flush=True)
                ready = True
        elif kind == "connect":
            conn_id = data["connection_id"]
            protocol = data.get("protocol") or "tcp"
            if protocol not in ("tcp", "udp"):
                ws.send("connect_response", connection_id=conn_id, success=False,
                        message="unknown protocol")
            elif data["target_host"] == FORBIDDEN:
                ws.send("error", code="FORBIDDEN_HOST", message="Host is forbidden",
                        connection_id=conn_id)
            elif protocol == "udp":
                try:
                    target = open_udp(data["target_host"], data["target_port"])
                except OSError as e:
                    ws.send("connect_response", connection_id=conn_id, success=False,
                            message=str(e))
                    continue
                udp_conns[conn_id] = target
                ws.send("connect_response", connection_id=conn_id, success=True,
                        message="connected")
                threading.Thread(target=pump_udp, args=(ws, conn_id, target, udp_conns),
                                 daemon=True).start()
            else:
                try:
                    target = socket.create_connection(
                        (data["target_host"], data["target_port"]), timeout=5)
                    target.settimeout(None)
                except OSError as e:
                    ws.send("connect_response", connection_id=conn_id, success=False,
                            message=str(e))
                    continue
                conns[conn_id] = target
                ws.send("connect_response", connection_id=conn_id, success=True,
                        message="connected")
                threading.Thread(target=pump, args=(ws, conn_id, target, conns),
                                 daemon=True).start()
        elif kind == "data" and data["connection_id"] in udp_conns:
            try:
                udp_conns[data["connection_id"]].send(base64.b64decode(data["payload"]))
            except OSError:
                pass  # UDP: a datagram the target refuses is lost
        elif kind == "data":
            target = conns.get(data["connection_id"])
            if target is not None:
                target.sendall(base64.b64decode(data["payload"]))
        elif kind == "close" and data["connection_id"] in udp_conns:
            target = udp_conns.pop(data["connection_id"])
            try:
                target.shutdown(socket.SHUT_RDWR)  # wakes its pump
            except OSError:
                pass
            target.close()
        elif kind == "close":
            target = conns.pop(data["connection_id"], None)
            if target is not None:
                try:
                    target.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        elif kind == "ping":
            ws.send("pong", timestamp=data.get("timestamp"))


if __name__ == "__main__":
    main()
