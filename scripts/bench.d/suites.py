"""The suites of scripts/bench: every subject runs next to its baseline, round
after round, on 127.0.0.1, with ports from BENCH_BASE_PORT. B is the run
(load.Bench)."""

import os
import signal
import time

import servers
from load import half
from servers import acknowledged, claim_ports, cpu_s, get, peak_rss_mb, url

from counterops.common import log


def redis_flags(primary, replica):
    return ["--redis-primary", f"127.0.0.1:{primary}", "--redis-replicas", f"127.0.0.1:{replica}"]


def measure_scraped(b, scraper, address, scraping):
    """web_get_scraped: ADDRESS loaded while SCRAPER runs (it is stopped
    otherwise, from its start on), adding its CPU and wall time to SCRAPING."""
    os.kill(scraper.pid, signal.SIGCONT)
    cpu, since = cpu_s(scraper.pid), time.monotonic()
    try:
        b.wrk("web_get_scraped", address)
    finally:
        scraping["cpu_s"] += cpu_s(scraper.pid) - cpu
        scraping["wall_s"] += time.monotonic() - since
        os.kill(scraper.pid, signal.SIGSTOP)


def services(b):
    """web GET / vs the constant server (the services' own hyper server
    answering 42); web-inc /inc vs redis-benchmark INCR, no pipelining; both
    again with Redis over TLS (a TLS-only primary + replica) vs plain TCP;
    a second web while a Prometheus scrapes it at the stack's interval vs
    the same web while that Prometheus is stopped (SIGSTOP: no scrape), in
    turn, and that Prometheus' CPU while it scrapes.
    Ports BASE..BASE+4, BASE+21..BASE+24 and BASE+35..BASE+36."""
    base = b.base
    claim_ports(base, 5)
    claim_ports(base + 21, 4)
    claim_ports(base + 35, 2)
    servers.constant(b, "constant", base + 2)
    pki = servers.make_pki(b.work / "pki")
    web, inc = {}, {}
    # Plain TCP, then TLS: Redis primary (replica next), web, web-inc, the suffix of the names.
    for primary, web_port, inc_port, tls in ((base, base + 3, base + 4, ""), (base + 21, base + 23, base + 24, "_tls")):
        servers.redis(b, primary, primary + 1, pki if tls else None)
        flags = redis_flags(primary, primary + 1) + (["--redis-tls-ca", pki / "ca.pem"] if tls else [])
        web[tls] = servers.service(b, f"web{tls}", web_port, "web", *flags)
        inc[tls] = servers.service(b, f"web-inc{tls}", inc_port, "web-inc", *flags, ready=True)
    servers.service(b, "web_scraped", base + 35, "web", *redis_flags(base, base + 1))
    scraper = servers.prometheus(b, "prometheus", base + 36, [base + 35])
    os.kill(scraper.pid, signal.SIGSTOP)
    scraping = {"cpu_s": 0.0, "wall_s": 0.0}
    for _ in b.each_round("services", "constant GET /, web GET / (plain, Redis TLS, scraped and not), "
                          "redis INCR, web-inc /inc (plain, Redis TLS)"):
        b.wrk("constant_get", url(base + 2))
        b.wrk("web_get", url(base + 3))
        # One instance, scraped and not, the order turned every round: what
        # differs is the scrape alone (two instances differ by more).
        for scraped in (False, True) if b.round % 2 else (True, False):
            measure_scraped(b, scraper, url(base + 35), scraping) if scraped else b.wrk(
                "web_get_unscraped", url(base + 35))
        b.wrk("web_get_tls", url(base + 23))
        b.redis_incr("redis_incr", base)
        b.wrk("web_inc", url(base + 4, "/inc"))
        b.wrk("web_inc_tls", url(base + 24, "/inc"))
    # What collecting costs: the scraper's CPU while it scrapes, as a share
    # of the host's cores.
    share = scraping["cpu_s"] / scraping["wall_s"] / os.cpu_count()
    b.value("scrape.prometheus_cpu_pct_of_host", f"{share * 100:.3f}")
    for tls, inc_port in (("", base + 4), ("_tls", base + 24)):
        b.value(f"rss_mb.web{tls}", peak_rss_mb(web[tls].pid))
        b.value(f"rss_mb.web_inc{tls}", peak_rss_mb(inc[tls].pid))
        b.value(f"increments{tls}.acknowledged", acknowledged(inc_port))
        b.value(f"increments{tls}.final_count", get(url(inc_port, "/inc")).strip())


# The headers Traefik adds to every request it forwards (Accept, Accept-Encoding
# only when the client sent none), to send them to web directly: what of web's
# cost behind Traefik is the bigger request.
TRAEFIK_HEADERS = ("Accept: */*", "Accept-Encoding: gzip", "X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http",
                   "X-Forwarded-Host: 127.0.0.1:8080", "X-Forwarded-Port: 8080", "X-Forwarded-Server: bench",
                   "X-Real-Ip: 127.0.0.1")


def stack(b):
    """The services behind the gateway (Traefik, the project's configuration),
    against the gateway's own ceiling (in front of the constant server) and
    the proxy-hop baselines there: bare Traefik with its standard engine (the
    one the gateway runs), bare Traefik with the fast proxy, nginx. Latency
    open loop at half this round's maximum, hop by hop: each proxy in front of
    the constant server, the gateway in front of web's routes over memory,
    then web over Redis; web direct with and without Traefik's headers. /inc
    under a GET flood, split vs one process. The gateway's hop to the services
    over mutual TLS (a cluster's) against plain HTTP (the local stack's).
    Ports BASE+5..BASE+20 and BASE+25..BASE+33."""
    base = b.base + 5
    claim_ports(base, 16)
    claim_ports(b.base + 25, 9)
    (primary, replica, constant, web1, web2, web3, inc, role_all,
     gw_admin, gw_web, gw_web2, gw_web3, gw_ceiling, bare_admin, bare_ceiling, nginx) = range(base, base + 16)
    memory, gw_memory, std_admin, std_ceiling, std_web, _, web_tls, inc_tls, gw_tls = range(b.base + 25, b.base + 34)
    pki = servers.make_pki(b.work / "pki-stack")
    redis = servers.redis(b, primary, replica).pid
    flags = redis_flags(primary, replica)
    backend = servers.constant(b, "constant-s", constant).pid
    memory_p = servers.constant(b, "memory-s", memory, "memory").pid
    webs = [servers.service(b, f"web-{p}", p, "web", *flags) for p in (web1, web2, web3)]
    inc_p = servers.service(b, "web-inc-s", inc, "web-inc", *flags, ready=True)
    web_tls_p = servers.service(b, "web-tls", web_tls, "web", *flags, pki=pki)
    servers.service(b, "web-inc-tls", inc_tls, "web-inc", *flags, ready=True, pki=pki)
    # The same code with both routes in one process (the hidden --role all).
    all_p = servers.service(b, "web-all", role_all, "web", "--role", "all", *flags, ready=True)
    log("starting Traefik with the project's configuration, bare Traefik (standard engine, fast proxy), nginx")
    gw = servers.traefik(b, "traefik-default", gw_admin, [], {
        "web": (gw_web, {"web": [web1], "web-inc": [inc]}),
        "web2": (gw_web2, {"web": [web1, web2], "web-inc": [inc]}),
        "web3": (gw_web3, {"web": [web1, web2, web3], "web-inc": [inc]}),
        "memory": (gw_memory, {"web": [memory], "web-inc": [memory]}),
        "mtls": (gw_tls, {"web": [web_tls], "web-inc": [inc_tls]}, pki),
        "ceiling": (gw_ceiling, {"web": [constant], "web-inc": [constant]})})
    std = servers.traefik(b, "traefik-bare-std", std_admin, ["bare", "fastproxy=off"], {
        "ceiling": (std_ceiling, {"web": [constant]}), "web": (std_web, {"web": [web1]})})
    bare = servers.traefik(b, "traefik-bare", bare_admin, ["bare"], {"ceiling": (bare_ceiling, {"web": [constant]})})
    nginx_worker = servers.nginx(b, "nginx", nginx, constant)
    b.value("settings.flood_inc_rate", b.flood_inc_rate)
    web = webs[0].pid
    for _ in b.each_round("stack", "ceilings, direct, through Traefik, scaling, latency hop by hop, flood"):
        # CPU per request of each process on the path, where the time goes.
        b.wrk("gw_ceiling_default", url(gw_ceiling), traefik=gw.pid, backend=backend)
        b.wrk("direct_constant", url(constant), backend=backend)
        b.wrk("gw_ceiling_bare_std", url(std_ceiling), traefik=std.pid, backend=backend)
        b.wrk("gw_ceiling_bare", url(bare_ceiling), traefik=bare.pid, backend=backend)
        b.wrk("gw_ceiling_nginx", url(nginx), nginx=nginx_worker, backend=backend)
        rate = half(b.wrk("gw_web_get", url(gw_web), gets_on=replica, traefik=gw.pid, backend=web, replica=redis))
        # The same through the gateway's mutual TLS to web (a cluster's hop).
        b.wrk("gw_web_get_mtls", url(gw_tls), gets_on=replica, traefik=gw.pid, backend=web_tls_p.pid, replica=redis)
        b.wrk("direct_web_get", url(web1), gets_on=replica, backend=web, replica=redis)
        # Latency at one rate, half of GET's maximum through the gateway: the
        # whole chain, then each hop alone, so the p99s show which adds the
        # most; and web's CPU per request at that same rate, direct and behind
        # Traefik (closed loop, direct runs 5x faster: bigger read batches).
        b.loadgen("lat_gw_web_get", url(gw_web), rate, gets_on=replica, traefik=gw.pid, backend=web, replica=redis)
        b.loadgen("lat_direct_web_get", url(web1), rate, gets_on=replica, backend=web, replica=redis)
        b.loadgen("lat_direct_web_get_headers", url(web1), rate, TRAEFIK_HEADERS, gets_on=replica, backend=web)
        b.loadgen("lat_bare_std_web", url(std_web), rate, gets_on=replica, traefik=std.pid, backend=web)
        b.loadgen("lat_gw_memory", url(gw_memory), rate, traefik=gw.pid, backend=memory_p)
        b.loadgen("lat_gw_constant", url(gw_ceiling), rate, traefik=gw.pid, backend=backend)
        b.loadgen("lat_bare_std_constant", url(std_ceiling), rate, traefik=std.pid, backend=backend)
        b.loadgen("lat_bare_constant", url(bare_ceiling), rate, traefik=bare.pid, backend=backend)
        b.loadgen("lat_nginx_constant", url(nginx), rate, nginx=nginx_worker, backend=backend)
        b.wrk("gw_web_get_x2", url(gw_web2))
        b.wrk("gw_web_get_x3", url(gw_web3))
        rate = half(b.wrk("gw_web_inc", url(gw_web, "/inc")))
        b.wrk("gw_web_inc_mtls", url(gw_tls, "/inc"))
        b.wrk("direct_web_inc", url(inc, "/inc"))
        b.loadgen("lat_gw_web_inc", url(gw_web, "/inc"), rate)
        b.wrk("gw_mix", url(gw_web), mix=10)
        b.flood("flood_split", url(web1), url(inc, "/inc"))
        b.flood("flood_all", url(role_all), url(role_all, "/inc"))
    b.value("rss_mb.stack_web_max", max((peak_rss_mb(p.pid) for p in webs), key=float))
    for key, pid in (("stack_web_inc", inc_p.pid), ("web_role_all", all_p.pid), ("traefik_default", gw.pid),
                     ("traefik_bare_std", std.pid), ("traefik_bare", bare.pid), ("nginx_worker", nginx_worker)):
        b.value(f"rss_mb.{key}", peak_rss_mb(pid))
    b.value("increments_stack.acknowledged", acknowledged(inc) + acknowledged(role_all))
    b.value("increments_stack.final_count", get(url(inc, "/inc")).strip())


def traefik(b):
    """Traefik in front of the constant server, the project's configuration vs
    each variant of TRAEFIK_VARIANTS: the median of per-round ratios to the
    project's configuration, on throughput and on Traefik's CPU time per
    request (steadier when the machine is shared: it does not depend on the
    CPU share Traefik gets); then each one's latency at half the project
    configuration's maximum; to TRAEFIK_PATH (/inc: web-inc's router). Ports
    BASE+40 on: the constant server, then 2 per variant."""
    base = b.base + 40
    variants = ["", *b.variants]
    ports = [base + 2 + 2 * i for i in range(len(variants))]  # each one's admin port is the one below
    claim_ports(base, 1 + 2 * len(variants))
    servers.constant(b, "constant-t", base)
    gws = []
    for i, spec in enumerate(variants):
        b.value(f"traefik_variant.{i}", spec or "project config")
        gws.append(servers.traefik(b, f"traefik-v{i}", ports[i] - 1, spec.split(),
                                   {"web": (ports[i], {"web": [base], "web-inc": [base]})}))
    for _ in b.each_round("traefik", f"{len(variants)} configurations in front of the constant server"):
        rate = half(b.wrk("traefik_v0", url(ports[0], b.traefik_path), traefik=gws[0].pid))
        for i in range(1, len(variants)):
            b.wrk(f"traefik_v{i}", url(ports[i], b.traefik_path), traefik=gws[i].pid)
        # Latency: every configuration at the same rate, half of the project
        # configuration's maximum in this round (open loop, bench/loadgen).
        for i, port in enumerate(ports):
            b.loadgen(f"traefik_lat_v{i}", url(port, b.traefik_path), rate)
    for i, gw in enumerate(gws):
        b.value(f"rss_mb.traefik_v{i}", peak_rss_mb(gw.pid))
