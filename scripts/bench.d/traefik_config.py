"""Traefik configuration for scripts/bench, derived from the project's own.

Static: traefik/traefik.yml as it is (logs, access log, metrics, API, ping,
serversTransport, entrypoint settings), except that the Consul Catalog provider
becomes a file provider and the addresses become the bench's ports. Dynamic:
the routers, priorities, middlewares and load-balancer settings of the Traefik
tags in nomad/web.nomad.hcl and nomad/web-inc.nomad.hcl, and the fallback routers of
traefik/fallback.yml, cloned onto every bench entrypoint with its own backends.
So a request through the bench's Traefik does what one through the gateway
does, minus Consul.

usage: traefik_config.py REPO OUT_DIR --admin PORT [--knob K=V]...
                         --entrypoint NAME=PORT --backend NAME/SERVICE=PORT[,PORT]...
Knobs (tuning, applied to the static configuration; each sets one thing,
whatever the project's file says, so a knob can undo a setting or add one):
  fastproxy=on | fastproxy=off         experimental.fastProxy (the fasthttp proxy engine) or not
  accesslog=off | accesslog=errors     no access log | only 4xx/5xx, retried, or over 100 ms
  accesslog=all                        a line for every request (no filters)
  accesslog=common | accesslog=buffer:N  Common Log Format | buffer N lines before writing
  metrics=off | metrics=nolabels       no Prometheus metrics | without router/service labels
  metrics=labels                       with router and service labels
  idle=N                               serversTransport.maxIdleConnsPerHost
  retry=off                            routers without the web job's retry middleware (to
                                       measure its cost; GET retries are a feature, not a knob)
  bare                                 not the project's configuration at all: Traefik's
                                       defaults, fast proxy, no access log, no metrics, no
                                       API, one router PathPrefix(`/`) per entrypoint to its
                                       `web` backend: what a Traefik hop costs at the least
Writes OUT_DIR/traefik.yml (static) and OUT_DIR/dynamic/routes.yml.
"""

import argparse
import copy
import pathlib
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


def bench_dynamic(repo, entrypoints, backends, knobs):
    project = tags_to_dynamic(sorted((repo / "nomad").glob("web*.nomad.hcl")))
    fallback = yaml.safe_load((repo / "traefik" / "fallback.yml").read_text())
    routers = {**project["http"]["routers"], **fallback["http"]["routers"]}
    retries = {name for name, m in project["http"].get("middlewares", {}).items() if "retry" in m}
    out = {
        "routers": {},
        "middlewares": {**project["http"].get("middlewares", {}), **fallback["http"]["middlewares"]},
        "services": {},
    }
    for ep in entrypoints:
        for name, router in routers.items():
            # No entryPoints: the default ones (asDefault), which is the gateway's.
            assert router.get("entryPoints", [GATEWAY]) == [GATEWAY], f"router {name}: not on the gateway entrypoint"
            clone = copy.deepcopy(router)
            clone["entryPoints"] = [ep]
            if ("retry", "off") in knobs:
                clone["middlewares"] = [m for m in clone.get("middlewares", []) if m not in retries]
                if not clone["middlewares"]:
                    del clone["middlewares"]
            if router["service"] in fallback["http"]["services"]:
                clone["service"] = f"{ep}-{router['service']}"
                out["services"][clone["service"]] = copy.deepcopy(fallback["http"]["services"][router["service"]])
            else:
                ports = backends[(ep, router["service"])]
                clone["service"] = f"{ep}-{router['service']}"
                # The job's load-balancer settings (health check...), with the bench's servers.
                job_service = project["http"].get("services", {}).get(router["service"], {})
                lb = copy.deepcopy(job_service.get("loadbalancer", {}))
                if "healthcheck" in lb:
                    lb["healthCheck"] = lb.pop("healthcheck")
                lb["servers"] = [{"url": f"http://127.0.0.1:{p}"} for p in ports]
                out["services"][clone["service"]] = {"loadBalancer": lb}
            out["routers"][f"{ep}-{name}"] = clone
    return {"http": out}


def bench_static(repo, out_dir, entrypoints, admin_port, knobs):
    static = yaml.safe_load((repo / "traefik" / "traefik.yml").read_text())
    gateway = static["entryPoints"][GATEWAY]
    static["entryPoints"] = {ADMIN: {**static["entryPoints"][ADMIN], "address": f"127.0.0.1:{admin_port}"}}
    for ep, port in entrypoints.items():
        static["entryPoints"][ep] = {**copy.deepcopy(gateway), "address": f"127.0.0.1:{port}"}
    throttle = static["providers"].get("providersThrottleDuration")
    static["providers"] = {"file": {"directory": str(out_dir / "dynamic"), "watch": False}}
    if throttle:
        static["providers"]["providersThrottleDuration"] = throttle
    for key, value in knobs:
        if key == "fastproxy" and value == "on":
            static.setdefault("experimental", {})["fastProxy"] = {}
        elif key == "fastproxy" and value == "off":
            static.get("experimental", {}).pop("fastProxy", None)
            if not static.get("experimental", True):
                del static["experimental"]  # Traefik refuses an empty one
        elif key == "accesslog" and value == "off":
            static.pop("accessLog", None)
        elif key == "accesslog" and value == "errors":
            # Keep the lines that matter (errors, retries, slow requests), skip the rest.
            static["accessLog"]["filters"] = {"statusCodes": ["400-599"], "retryAttempts": True, "minDuration": "100ms"}
        elif key == "accesslog" and value == "all":
            static["accessLog"].pop("filters", None)
        elif key == "accesslog" and value == "common":
            static["accessLog"]["format"] = "common"
        elif key == "accesslog" and value.startswith("buffer:"):
            static["accessLog"]["bufferingSize"] = int(value.split(":", 1)[1])
        elif key == "metrics" and value == "off":
            static.pop("metrics", None)
        elif key == "metrics" and value in ("nolabels", "labels"):
            static.setdefault("metrics", {"prometheus": {"entryPoint": ADMIN}})
            labels = value == "labels"
            static["metrics"]["prometheus"].update(addRoutersLabels=labels, addServicesLabels=labels)
        elif key == "idle":
            static["serversTransport"]["maxIdleConnsPerHost"] = int(value)
        elif key == "retry" and value == "off":
            pass  # dynamic: bench_dynamic drops the retry middleware
        else:
            raise SystemExit(f"traefik_config.py: unknown knob {key}={value}")
    return static


def bare_static(out_dir, entrypoints, admin_port):
    """Traefik's defaults: entrypoints, a file provider, /ping for the bench to wait on."""
    eps = {ep: {"address": f"127.0.0.1:{port}"} for ep, port in entrypoints.items()}
    return {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "ERROR"},
        "entryPoints": {ADMIN: {"address": f"127.0.0.1:{admin_port}"}, **eps},
        "ping": {"entryPoint": ADMIN},
        "experimental": {"fastProxy": {}},
        "providers": {"file": {"directory": str(out_dir / "dynamic"), "watch": False}},
    }


def bare_dynamic(entrypoints, backends):
    """One router per entrypoint, PathPrefix(`/`) to its `web` backend(s)."""
    routers, services = {}, {}
    for ep in entrypoints:
        routers[ep] = {"rule": "PathPrefix(`/`)", "entryPoints": [ep], "service": ep}
        servers = [{"url": f"http://127.0.0.1:{p}"} for p in backends[(ep, "web")]]
        services[ep] = {"loadBalancer": {"servers": servers}}
    return {"http": {"routers": routers, "services": services}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=pathlib.Path)
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--admin", type=int, required=True)
    parser.add_argument("--entrypoint", action="append", default=[], metavar="NAME=PORT")
    parser.add_argument("--backend", action="append", default=[], metavar="NAME/SERVICE=PORT[,PORT]")
    parser.add_argument("--knob", action="append", default=[], metavar="K=V")
    args = parser.parse_args()

    entrypoints = {name: int(port) for name, port in (e.split("=", 1) for e in args.entrypoint)}
    backends = {}
    for spec in args.backend:
        target, ports = spec.split("=", 1)
        ep, service = target.split("/", 1)
        backends[(ep, service)] = [int(p) for p in ports.split(",")]

    knobs = [tuple(k.split("=", 1)) if "=" in k else (k, "") for k in args.knob]

    (args.out_dir / "dynamic").mkdir(parents=True, exist_ok=True)
    if ("bare", "") in knobs:
        if len(knobs) > 1:
            raise SystemExit("traefik_config.py: bare takes no other knob")
        static = bare_static(args.out_dir, entrypoints, args.admin)
        dynamic = bare_dynamic(entrypoints, backends)
    else:
        static = bench_static(args.repo, args.out_dir, entrypoints, args.admin, knobs)
        dynamic = bench_dynamic(args.repo, entrypoints, backends, knobs)
    (args.out_dir / "traefik.yml").write_text(yaml.safe_dump(static, sort_keys=False))
    (args.out_dir / "dynamic" / "routes.yml").write_text(yaml.safe_dump(dynamic, sort_keys=False))


if __name__ == "__main__":
    main()
