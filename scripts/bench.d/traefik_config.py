"""Traefik configuration for scripts/bench, derived from the project's own, so
a request through the bench's Traefik does what one through the gateway does,
minus Consul. Static: traefik/traefik.yml as it is, with a file provider in
place of Consul Catalog and the bench's ports. Dynamic: the routers,
middlewares and load-balancer settings of the Traefik tags of
nomad/web*.nomad.hcl, and the fallback routers of traefik/fallback.yml,
cloned onto every bench entrypoint with its own backends.

Knobs (bench_static) tune it, each setting one thing whatever the project's
file says, so a knob can undo a setting or add one: fastproxy=on|off,
accesslog=off|errors|all, metrics=off|nolabels|labels, idle=N, retry=off,
ratelimit=N. The bench is one client: the per-client limit on /inc
(web-inc's rateLimit middleware) is left out unless ratelimit=N sets it to
N a second (with TRAEFIK_PATH=/inc and a high N, what the limiter costs).
`bare` is not the project's configuration at all: Traefik's defaults, fast
proxy, no access log, no metrics, no API, one router PathPrefix(`/`) per
entrypoint to its `web` backend: what a Traefik hop costs at the least.
`bare fastproxy=off` is the same with Traefik's standard engine, the one the
gateway runs (the fast proxy is unsafe for /inc, traefik/traefik.yml): what
the gateway could reach at best.
"""

import copy
import re

import yaml

# The gateway's entrypoint in traefik/traefik.yml, and the admin one.
GATEWAY, ADMIN = "web", "traefik"


def tags_to_dynamic(hcl_files):
    """Traefik's label syntax (traefik.http.routers.web.rule=...) as a dict."""
    dynamic = {}
    for path in hcl_files:
        for tag in re.findall(r'"(traefik\.http\.[^"=]+=[^"]*)"', path.read_text()):
            key, value = tag.split("=", 1)
            *parents, leaf = key.split(".")[1:]
            node = dynamic
            for part in parents:
                node = node.setdefault(part, {})
            if leaf in ("entrypoints", "middlewares"):
                node["entryPoints" if leaf == "entrypoints" else leaf] = value.split(",")
            else:
                node[leaf] = int(value) if value.isdigit() else value
    # Consul Catalog names a router's service after the Consul service (= the job).
    for name, router in dynamic["http"]["routers"].items():
        router.setdefault("service", name)
    return dynamic


def services_transports(repo, pki):
    """traefik/services-tls.yml's transports (a cluster's mutual TLS to the
    services) with the bench's certificates (servers.make_pki) for the host's."""
    text = (repo / "traefik" / "services-tls.yml").read_text()
    for host_file, bench_file in (("services-ca.pem", "ca.pem"), ("gateway-client.pem", "client.pem"),
                                  ("gateway-client-key.pem", "client.key")):
        text = text.replace(f"/etc/counter/tls/{host_file}", str(pki / bench_file))
    transports = yaml.safe_load(text)["http"]["serversTransports"]
    assert "/etc/counter" not in yaml.safe_dump(transports), "services-tls.yml names a file the bench has no copy of"
    return transports


def bench_dynamic(repo, entrypoints, knobs):
    project = tags_to_dynamic(sorted((repo / "nomad").glob("web*.nomad.hcl")))
    fallback = yaml.safe_load((repo / "traefik" / "fallback.yml").read_text())
    routers = {**project["http"]["routers"], **fallback["http"]["routers"]}
    retries = {name for name, m in project["http"].get("middlewares", {}).items() if "retry" in m}
    limits = {name for name, m in project["http"].get("middlewares", {}).items() if "ratelimit" in m}
    limit = next((int(k.split("=", 1)[1]) for k in knobs if k.startswith("ratelimit=")), None)
    middlewares = {**project["http"].get("middlewares", {}), **fallback["http"]["middlewares"]}
    for name in limits:  # the job's values are Nomad variables: the knob's, or none
        middlewares[name] = {"rateLimit": {"average": limit, "burst": limit, "period": "1s"}}
        if limit is None:
            del middlewares[name]
    out = {"routers": {}, "middlewares": middlewares, "services": {}}
    for ep, (_, backends, *pki) in entrypoints.items():
        if pki:
            out["serversTransports"] = services_transports(repo, pki[0])
        for name, router in routers.items():
            # No entryPoints: the default ones (asDefault), which is the gateway's.
            assert router.get("entryPoints", [GATEWAY]) == [GATEWAY], f"router {name}: not on the gateway entrypoint"
            clone = copy.deepcopy(router)
            clone["entryPoints"] = [ep]
            dropped = (retries if "retry=off" in knobs else set()) | (limits if limit is None else set())
            if dropped and "middlewares" in clone:
                clone["middlewares"] = [m for m in clone["middlewares"] if m not in dropped]
                if not clone["middlewares"]:
                    del clone["middlewares"]
            clone["service"] = f"{ep}-{router['service']}"
            if router["service"] in fallback["http"]["services"]:
                out["services"][clone["service"]] = copy.deepcopy(fallback["http"]["services"][router["service"]])
            else:
                # The job's load-balancer settings (health check...), with the bench's servers.
                job_service = project["http"].get("services", {}).get(router["service"], {})
                lb = copy.deepcopy(job_service.get("loadbalancer", {}))
                if "healthcheck" in lb:
                    lb["healthCheck"] = lb.pop("healthcheck")
                # A cluster's mutual TLS to the services (the jobs' services_tls
                # tags): on the entrypoints given a PKI, with the bench's files.
                lb.pop("server", None)
                lb.pop("serversTransport", None)
                scheme = "https" if pki else "http"
                lb["servers"] = [{"url": f"{scheme}://127.0.0.1:{p}"} for p in backends[router["service"]]]
                if pki:
                    lb["serversTransport"] = router["service"]
                out["services"][clone["service"]] = {"loadBalancer": lb}
            out["routers"][f"{ep}-{name}"] = clone
    return {"http": out}


def bench_static(repo, out_dir, entrypoints, admin_port, knobs):
    static = yaml.safe_load((repo / "traefik" / "traefik.yml").read_text())
    gateway = static["entryPoints"][GATEWAY]
    static["entryPoints"] = {ADMIN: {**static["entryPoints"][ADMIN], "address": f"127.0.0.1:{admin_port}"}}
    for ep, (port, *_) in entrypoints.items():
        static["entryPoints"][ep] = {**copy.deepcopy(gateway), "address": f"127.0.0.1:{port}"}
    throttle = static["providers"].get("providersThrottleDuration")
    static["providers"] = {"file": {"directory": str(out_dir / "dynamic"), "watch": False}}
    if throttle:
        static["providers"]["providersThrottleDuration"] = throttle
    for knob in knobs:
        match knob.split("=", 1):
            case ["fastproxy", "on"]:  # the fasthttp proxy engine
                static.setdefault("experimental", {})["fastProxy"] = {}
            case ["fastproxy", "off"]:
                static.get("experimental", {}).pop("fastProxy", None)
                if not static.get("experimental", True):
                    del static["experimental"]  # Traefik refuses an empty one
            case ["accesslog", "off"]:
                static.pop("accessLog", None)
            case ["accesslog", "errors"]:  # only the lines that matter: errors, retries, slow requests
                static["accessLog"]["filters"] = {"statusCodes": ["400-599"], "retryAttempts": True, "minDuration": "100ms"}
            case ["accesslog", "all"]:  # a line for every request
                static["accessLog"].pop("filters", None)
            case ["metrics", "off"]:
                static.pop("metrics", None)
            case ["metrics", "nolabels" | "labels" as labels]:  # Prometheus, with router and service labels or not
                static.setdefault("metrics", {"prometheus": {"entryPoint": ADMIN}})
                static["metrics"]["prometheus"].update(addRoutersLabels=labels == "labels", addServicesLabels=labels == "labels")
            case ["idle", n]:
                static["serversTransport"]["maxIdleConnsPerHost"] = int(n)
            case ["retry", "off"] | ["ratelimit", _]:
                pass  # the routers' middlewares: bench_dynamic
            case _:
                raise SystemExit(f"traefik_config.py: unknown knob {knob}")
    return static


def bare(out_dir, entrypoints, admin_port, fast_proxy):
    """Traefik's defaults: entrypoints, a file provider, /ping for the bench to
    wait on; one router per entrypoint, PathPrefix(`/`) to its `web` backend(s);
    the fast proxy engine or not."""
    static = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "ERROR"},
        "entryPoints": {ADMIN: {"address": f"127.0.0.1:{admin_port}"}}
        | {ep: {"address": f"127.0.0.1:{port}"} for ep, (port, _) in entrypoints.items()},
        "ping": {"entryPoint": ADMIN},
        **({"experimental": {"fastProxy": {}}} if fast_proxy else {}),
        "providers": {"file": {"directory": str(out_dir / "dynamic"), "watch": False}},
    }
    routers = {ep: {"rule": "PathPrefix(`/`)", "entryPoints": [ep], "service": ep} for ep in entrypoints}
    services = {ep: {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{p}"} for p in backends["web"]]}}
                for ep, (_, backends) in entrypoints.items()}
    return static, {"http": {"routers": routers, "services": services}}


def write(repo, out_dir, admin_port, entrypoints, knobs):
    """OUT_DIR/traefik.yml (static) and OUT_DIR/dynamic/routes.yml for a Traefik
    with an admin entrypoint (ping) on ADMIN_PORT and ENTRYPOINTS (name: (port,
    {service: backend ports}[, pki])), tuned by KNOBS. An entrypoint with a PKI
    (servers.make_pki) reaches its backends as a cluster's gateway does: over
    mutual TLS (traefik/services-tls.yml)."""
    if "bare" in knobs:
        if set(knobs) - {"bare", "fastproxy=off"}:
            raise SystemExit("traefik_config.py: bare takes no other knob than fastproxy=off")
        static, dynamic = bare(out_dir, entrypoints, admin_port, "fastproxy=off" not in knobs)
    else:
        static = bench_static(repo, out_dir, entrypoints, admin_port, knobs)
        dynamic = bench_dynamic(repo, entrypoints, knobs)
    (out_dir / "dynamic").mkdir(parents=True, exist_ok=True)
    (out_dir / "traefik.yml").write_text(yaml.safe_dump(static, sort_keys=False))
    (out_dir / "dynamic" / "routes.yml").write_text(yaml.safe_dump(dynamic, sort_keys=False))
