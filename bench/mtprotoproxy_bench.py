"""Run mtprotoproxy (the PyPI package) against a local fake DC, for bench/mtproto.sh.

mtprotoproxy hard-codes Telegram's DC addresses and, at start, asks public web services for
this machine's IP and probes its mask host. None of that may leave the machine here, so this
wrapper loads the proxy's script as a module (its __main__ block does not run), points its DC
tables at the fake DC, switches masking and middle proxies off, and starts only its listener.
Its own main() predates Python 3.10 (start_server(loop=...)), so the listener is started here,
with uvloop when installed, as mtprotoproxy's README recommends. Everything on the relay path
(handshakes, crypto, buffers, fast mode) is mtprotoproxy's own code and defaults.

Usage: mtprotoproxy_bench.py SCRIPT PORT KEY_HEX DC_HOST DC_PORT TLS_DOMAIN
Prints "listening 127.0.0.1:PORT" once the listener is up.
"""

import asyncio
import importlib.util
import os
import sys
import tempfile


def load_proxy(script, config_path):
    # 1.0.6 (2019) names asyncio.streams.IncompleteReadError, which Python 3.8 moved; without
    # this alias every relay that ends raises AttributeError in a task nobody awaits.
    if not hasattr(asyncio.streams, "IncompleteReadError"):
        asyncio.streams.IncompleteReadError = asyncio.IncompleteReadError
    # The script reads sys.argv at import time: with two entries it neither prints its usage
    # nor exits, and init_config() later reads the config file named in argv[1].
    sys.argv = [script, config_path]
    spec = importlib.util.spec_from_file_location("mtprotoproxy_under_bench", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(port, key_hex, tls_domain):
    fd, path = tempfile.mkstemp(prefix="mtprotoproxy-bench-", suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(
            "PORT = %d\n"
            "USERS = {'bench': '%s'}\n"
            "TLS_DOMAIN = '%s'\n"
            "MASK = False\n"
            "AD_TAG = ''\n"
            "USE_MIDDLE_PROXY = False\n"
            "LISTEN_ADDR_IPV4 = '127.0.0.1'\n"
            "LISTEN_ADDR_IPV6 = ''\n"
            "STATS_PRINT_PERIOD = 86400\n"
            "GET_TIME_PERIOD = 0\n" % (port, key_hex, tls_domain)
        )
    return path


def main():
    script, port, key_hex, dc_host, dc_port, tls_domain = sys.argv[1:7]
    port, dc_port = int(port), int(dc_port)
    config_path = write_config(port, key_hex, tls_domain)
    proxy = load_proxy(script, config_path)

    proxy.init_config()
    os.unlink(config_path)
    # Every DC (v4 and v6 tables) is the fake DC; no external IP lookup, so v4 is used.
    proxy.TG_DATACENTERS_V4 = [dc_host] * len(proxy.TG_DATACENTERS_V4)
    proxy.TG_DATACENTERS_V6 = [dc_host] * len(proxy.TG_DATACENTERS_V6)
    proxy.TG_DATACENTER_PORT = dc_port
    proxy.my_ip_info = {"ipv4": None, "ipv6": None}
    proxy.init_stats()
    proxy.setup_files_limit()

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        flavour = "uvloop"
    except ImportError:
        flavour = "asyncio"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(proxy.loop_exception_handler)
    server = loop.run_until_complete(
        asyncio.start_server(
            proxy.handle_client_wrapper,
            "127.0.0.1",
            port,
            limit=proxy.get_to_tg_bufsize(),
        )
    )
    print("listening 127.0.0.1:%d (%s)" % (port, flavour), flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
