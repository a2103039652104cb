#!/usr/bin/env python3
"""Interop: MTProto proxy clients nobody here wrote, through mtgate, to a fake DC (direct
mode) or to a fake Telegram middle proxy (--middle: middle-proxy mode with an ad tag).

Telethon's ConnectionTcpMTProxyAbridged, ConnectionTcpMTProxyIntermediate and
ConnectionTcpMTProxyRandomizedIntermediate (plain and dd secrets), and TelethonFakeTLS's
ConnectionTcpMTProxyFakeTLS (ee secret; it sends no ChangeCipherSpec before its first data),
over IPv4 and IPv6. Each connection sends frames of several sizes and checks that the fake DC's
echo comes back byte for byte.

In middle mode the fake middle proxy checks the RPC protocol (keys, handshake, CRC, CBC) and
echoes each RPC_PROXY_REQ; it prints the ad tags it received, which must be exactly ours. The
listener then also serves MTProto over HTTP (http_transport), which Telethon's ConnectionHttp
speaks when pointed at mtgate as if it were a DC.

Usage: telethon_echo.py MTGATE_BINARY MTGATE_BENCH_BINARY [--middle]
"""

import asyncio
import collections
import logging
import os
import secrets
import subprocess
import sys
import tempfile

from telethon.network.connection import (
    ConnectionHttp,
    ConnectionTcpMTProxyAbridged,
    ConnectionTcpMTProxyIntermediate,
    ConnectionTcpMTProxyRandomizedIntermediate,
)
from telethon.network.connection.http import HttpPacketCodec
from TelethonFakeTLS import ConnectionTcpMTProxyFakeTLS


class HttpCodecFixed(HttpPacketCodec):
    """Telethon's HttpPacketCodec (1.45.0) as it is, but for one bug: read_packet compares
    `line[-1]` (an int) with b'\\n' (bytes), which never matches, so it fails on every answer
    ("17 bytes read": the status line). The request it sends is unchanged."""

    async def read_packet(self, reader):
        while True:
            line = await reader.readline()
            if not line or line[-1:] != b"\n":
                raise asyncio.IncompleteReadError(line, None)
            if line.lower().startswith(b"content-length: "):
                await reader.readexactly(2)
                return await reader.readexactly(int(line[16:-2]))


class ConnectionHttpFixed(ConnectionHttp):
    packet_codec = HttpCodecFixed

DOMAIN = "cover.example"
SECRET = secrets.token_hex(16)
AD_TAG = secrets.token_hex(16)
TIMEOUT = 20


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake_dc(binary):
    proc = subprocess.Popen(
        [binary, "fake-dc", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening "), line
    return proc, line.split()[1]


def start_fake_middle(binary, workdir):
    secret_file = os.path.join(workdir, "proxy-secret")
    with open(secret_file, "wb") as f:
        f.write(os.urandom(128))
    proc = subprocess.Popen(
        [binary, "fake-middle", "--listen", "127.0.0.1:0", "--secret-file", secret_file,
         "--print-ad-tags"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening "), line
    addr = line.split()[1]
    conf_file = os.path.join(workdir, "proxy-multi.conf")
    with open(conf_file, "w") as f:
        f.write(f"default 2;\nproxy_for 2 {addr};\nproxy_for 4 {addr};\n")
    telegram = f"""
[telegram]
mode = "middle"
ad_tag = "{AD_TAG}"
[telegram.middle]
proxy_secret_file = "{secret_file}"
proxy_config_file = "{conf_file}"
min_connections = 1
max_connections = 2
"""
    return proc, telegram


def start_mtgate(binary, telegram, workdir, http):
    port = free_port()
    config = os.path.join(workdir, "mtgate.toml")
    with open(config, "w") as f:
        f.write(
            f"""
[server]
state_dir = "{workdir}"
shutdown_grace = "1s"
[metrics]
enabled = false
{telegram}
[[mtproto]]
name = "interop"
listen = ["127.0.0.1:{port}", "[::1]:{port}"]
modes = ["classic", "padded", "fake-tls"]
http_transport = {"true" if http else "false"}
[mtproto.fake_tls]
domains = ["{DOMAIN}"]
[mtproto.masking]
enabled = false
[mtproto.users]
interop = "{SECRET}"
"""
        )
    log = open(os.path.join(workdir, "mtgate.log"), "w")
    proc = subprocess.Popen([binary, "run", "--config", config], stdout=log, stderr=log)
    return proc, port


async def wait_for_port(host, port):
    for _ in range(100):
        try:
            _, w = await asyncio.open_connection(host, port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"mtgate is not listening on {host}:{port}")


# Middle mode forwards only what looks like MTProto: 56 bytes or more with a non-zero
# auth_key_id (random bytes are), as the official proxy does.
SIZES = (64, 1024, 4000, 100_000)


async def echo_through(name, cls, host, port, secret, dc):
    loggers = collections.defaultdict(lambda: logging.getLogger("telethon"))
    if secret is None:
        # No proxy at all: the client takes mtgate for a DC speaking HTTP.
        conn = cls(host, port, dc, loggers=loggers)
    else:
        conn = cls("149.154.167.51", 443, dc, loggers=loggers, proxy=(host, port, secret))
    await asyncio.wait_for(conn.connect(timeout=TIMEOUT), TIMEOUT)
    try:
        for size in SIZES:
            payload = os.urandom(size)
            await conn.send(payload)
            echoed = await asyncio.wait_for(conn.recv(), TIMEOUT)
            if echoed != payload:
                raise AssertionError(f"echo of {size} bytes differs ({len(echoed)} bytes back)")
    finally:
        await conn.disconnect()
    return name


async def main(mtgate, bench, middle):
    workdir = tempfile.mkdtemp(prefix="mtgate-interop-")
    if middle:
        dc_proc, telegram = start_fake_middle(bench, workdir)
    else:
        dc_proc, dc_addr = start_fake_dc(bench)
        telegram = f"""
[telegram]
dc_overrides = {{ "2" = ["{dc_addr}"], "4" = ["{dc_addr}"] }}
"""
    proxy, port = start_mtgate(mtgate, telegram, workdir, middle)
    cases = []
    try:
        await wait_for_port("127.0.0.1", port)
        kinds = [
            ("Abridged plain", ConnectionTcpMTProxyAbridged, SECRET),
            ("Intermediate plain", ConnectionTcpMTProxyIntermediate, SECRET),
            ("RandomizedIntermediate plain", ConnectionTcpMTProxyRandomizedIntermediate, SECRET),
            ("RandomizedIntermediate dd", ConnectionTcpMTProxyRandomizedIntermediate, "dd" + SECRET),
            # TelethonFakeTLS takes the ee secret without its leading "ee".
            ("TelethonFakeTLS ee", ConnectionTcpMTProxyFakeTLS, SECRET + DOMAIN.encode().hex()),
        ]
        if middle:
            kinds.append(("ConnectionHttp (MTProto over HTTP)", ConnectionHttpFixed, None))
        cases = [
            (f"{kind} via {host} to dc{dc}", cls, host, secret, dc)
            for host in ("127.0.0.1", "::1")
            for dc in (2, 4)
            for kind, cls, secret in kinds
        ]
        # TelethonFakeTLS keeps its hello in a class-level dict shared by every instance, so two
        # of its connections at once corrupt each other's handshake: run those one at a time.
        concurrent = [c for c in cases if c[1] is not ConnectionTcpMTProxyFakeTLS]
        sequential = [c for c in cases if c[1] is ConnectionTcpMTProxyFakeTLS]
        cases = concurrent + sequential
        results = list(await asyncio.gather(
            *(echo_through(name, cls, host, port, secret, dc) for name, cls, host, secret, dc in concurrent),
            return_exceptions=True,
        ))
        for name, cls, host, secret, dc in sequential:
            try:
                results.append(await echo_through(name, cls, host, port, secret, dc))
            except Exception as e:  # reported below with the others
                results.append(e)
    finally:
        proxy.terminate()
        dc_proc.terminate()
        proxy.wait(10)
        dc_proc.wait(10)
    if middle:
        tags = [l.split()[1] for l in dc_proc.stdout.read().split("\n") if l.startswith("ad_tag ")]
        cases.append(("the middle proxy saw our ad tag and no other", None, None, None, None))
        results.append("ok" if tags == [AD_TAG] else AssertionError(f"ad tags seen: {tags}"))
    failed = 0
    for (name, *_), result in zip(cases, results):
        if isinstance(result, BaseException):
            failed += 1
            print(f"FAIL {name}: {type(result).__name__}: {result}")
        else:
            print(f"ok   {name}")
    mode = "middle" if middle else "direct"
    print(f"telethon interop ({mode} mode): {len(cases) - failed} passed, {failed} failed")
    if failed:
        print(open(os.path.join(workdir, "mtgate.log")).read()[-4000:])
    return 1 if failed else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], "--middle" in sys.argv[3:])))
