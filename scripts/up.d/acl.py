#!/usr/bin/env python3
"""Consul and Nomad ACLs of the local stack, set up by scripts/up.

  acl.py consul SECRETS_DIR   after Consul is up, before Nomad starts
  acl.py nomad SECRETS_DIR    after Nomad is up (also Consul's auth method,
                              whose creation fetches Nomad's signing keys)

The same objects as the cluster's deploy (deploy/roles/cluster_acl), through
the same HTTP APIs on loopback, narrowed to one machine:

  Consul  policies redis-services, nomad-agent, catalog-read, redis-discovery
          and counter-config-<job>; the agent token (node identity `local`
          + redis-services; it also registers the Redis instances) and
          Nomad's token, both with secrets scripts/up pre-generated into
          SECRETS_DIR; the JWT auth method nomad-workloads with its binding
          rules, and the roles nomad-tasks-<job> the tasks' workload
          identities get: their KV settings, and locally also what the
          services need of the catalog (the cluster gives them tokens
          through Nomad Variables instead).
  Nomad   the ACL bootstrap with the pre-generated management token, and a
          token for the local autoscaler agent (policy autoscaler; Nomad
          makes the secret, written to SECRETS_DIR/nomad-autoscaler.token).

Every step first reads what is there: a second run changes nothing. Tokens
are read from files and sent in headers; nothing is printed but names.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

# scripts/local.sh exports both.
CONSUL = os.environ.get("CONSUL_HTTP_ADDR", "http://127.0.0.1:8500").rstrip("/")
NOMAD = os.environ.get("NOMAD_ADDR", "http://127.0.0.1:4646").rstrip("/")

JOB_RULES = '''key_prefix "counter/config/all/" { policy = "read" }
key_prefix "counter/config/@JOB@/" { policy = "read" }
'''
CONSUL_POLICIES = {
    "redis-services": ("the agent registers the Redis instances under both names", '''\
service "redis-primary" { policy = "write" }
service "redis-replica" { policy = "write" }
'''),
    "nomad-agent": ("the Nomad agent registers itself and deregisters the jobs' services", '''\
agent_prefix "" { policy = "read" }
node_prefix "" { policy = "write" }
service_prefix "" { policy = "write" }
'''),
    "catalog-read": ("Traefik reads the catalog to route", '''\
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
'''),
    "redis-discovery": ("web and web-inc follow redis-primary and redis-replica", '''\
service "redis-primary" { policy = "read" }
service "redis-replica" { policy = "read" }
node_prefix "" { policy = "read" }
'''),
}
# The roles of the tasks' workload identities: their KV settings, and what
# each needs of the catalog.
JOB_ROLES = {"traefik": ["catalog-read"], "web": ["redis-discovery"], "web-inc": ["redis-discovery"]}
for _job in JOB_ROLES:
    CONSUL_POLICIES[f"counter-config-{_job}"] = (f"{_job} tasks read their runtime settings",
                                                 JOB_RULES.replace("@JOB@", _job))
# token file -> (description, policies, node identity)
CONSUL_TOKENS = {
    "consul-agent.token": ("agent local (node identity, Redis registrations)", ["redis-services"], "local"),
    "consul-nomad.token": ("nomad agent", ["nomad-agent"], None),
}
AUTOSCALER_RULES = '''namespace "default" {
  policy       = "scale"
  capabilities = ["read-job", "list-jobs"]
}
node {
  policy = "read"
}
'''


def log(msg):
    print(f"==> acl: {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"error: acl: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Api:
    def __init__(self, base, header, token):
        self.base, self.header, self.token = base, header, token

    def call(self, method, path, body=None, token=None, ok=(200,)):
        """(status, decoded body) of one request; statuses outside ok die."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header(self.header, token if token is not None else self.token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        except OSError as e:
            die(f"{method} {self.base}{path}: {e}")
        if status not in ok:
            die(f"{method} {self.base}{path}: HTTP {status} {text.decode(errors='replace').strip()[:200]}")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text.decode(errors="replace")


def read_secret(secrets, name):
    with open(os.path.join(secrets, name)) as f:
        return f.read().strip()


def write_secret(secrets, name, value):
    path = os.path.join(secrets, name)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(path + ".tmp", path)


def wait(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            die(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def consul(secrets):
    api = Api(CONSUL, "X-Consul-Token", read_secret(secrets, "consul-management.token"))
    # initial_management exists once the server has become leader.
    wait("Consul to accept the management token",
         lambda: api.call("GET", "/v1/acl/token/self", ok=(200, 403, 500))[0] == 200)

    for name, (description, rules) in CONSUL_POLICIES.items():
        status, cur = api.call("GET", f"/v1/acl/policy/name/{name}", ok=(200, 403, 404))
        body = {"Name": name, "Description": description, "Rules": rules}
        if status != 200:
            api.call("PUT", "/v1/acl/policy", body)
            log(f"Consul policy {name} created")
        elif cur["Rules"] != rules:
            api.call("PUT", f"/v1/acl/policy/{cur['ID']}", body)
            log(f"Consul policy {name} updated")

    created = False
    for file, (description, policies, node) in CONSUL_TOKENS.items():
        secret = read_secret(secrets, file)
        if api.call("GET", "/v1/acl/token/self", token=secret, ok=(200, 403))[0] == 200:
            continue
        body = {"SecretID": secret, "Description": description, "Policies": [{"Name": p} for p in policies]}
        if node:
            body["NodeIdentities"] = [{"NodeName": node, "Datacenter": "dc1"}]
        api.call("PUT", "/v1/acl/token", body)
        log(f"Consul token {file[:-6]} created")
        created = True

    for job, extra in JOB_ROLES.items():
        name = f"nomad-tasks-{job}"
        want = sorted([f"counter-config-{job}"] + extra)
        status, cur = api.call("GET", f"/v1/acl/role/name/{name}", ok=(200, 403, 404))
        body = {"Name": name, "Policies": [{"Name": p} for p in want]}
        if status != 200 or not cur:
            api.call("PUT", "/v1/acl/role", body)
            log(f"Consul role {name} created")
        elif sorted(p["Name"] for p in cur.get("Policies") or []) != want:
            api.call("PUT", f"/v1/acl/role/{cur['ID']}", body)
            log(f"Consul role {name} updated")

    _, registered = api.call("GET", "/v1/catalog/service/redis-primary")
    if created or not registered:
        # The agent registered its node and the Redis services before their
        # token existed; a reload re-adds them and syncs them now rather
        # than at the next anti-entropy run (up to a minute away).
        api.call("PUT", "/v1/agent/reload")
        wait("the Redis services in Consul's catalog",
             lambda: api.call("GET", "/v1/catalog/service/redis-primary")[1], timeout=30)


def consul_auth_method(secrets):
    """The JWT auth method of Nomad's workload identities and its binding
    rules. Consul fetches Nomad's signing keys when the method is created,
    so this runs once Nomad is up."""
    api = Api(CONSUL, "X-Consul-Token", read_secret(secrets, "consul-management.token"))
    status, _ = api.call("GET", "/v1/acl/auth-method/nomad-workloads", ok=(200, 403, 404))
    if status != 200:
        api.call("PUT", "/v1/acl/auth-method", {
            "Name": "nomad-workloads",
            "Type": "jwt",
            "Description": "Nomad workload identities (scripts/up.d/acl.py)",
            "TokenLocality": "local",
            "Config": {
                "JWKSURL": f"{NOMAD}/.well-known/jwks.json",
                "JWTSupportedAlgs": ["RS256", "ES256"],
                "BoundAudiences": ["consul.io"],
                "ClaimMappings": {k: k for k in ("nomad_namespace", "nomad_job_id", "nomad_task", "nomad_service")},
            },
        })
        log("Consul auth method nomad-workloads created")
    _, rules = api.call("GET", "/v1/acl/binding-rules?authmethod=nomad-workloads")
    have = {r["Description"] for r in rules or []}
    for rule in ({"Description": "Nomad services: a service identity of their name",
                  "Selector": '"nomad_service" in value', "BindType": "service",
                  "BindName": "${value.nomad_service}"},
                 {"Description": "Nomad tasks: the role of their job",
                  "Selector": '"nomad_service" not in value', "BindType": "role",
                  "BindName": "nomad-tasks-${value.nomad_job_id}"}):
        if rule["Description"] not in have:
            api.call("PUT", "/v1/acl/binding-rule", dict(rule, AuthMethod="nomad-workloads"))
            log(f"Consul binding rule created: {rule['Description']}")


def nomad(secrets):
    management = read_secret(secrets, "nomad-management.token")
    api = Api(NOMAD, "X-Nomad-Token", management)
    wait("a Nomad leader", lambda: ":" in str(api.call("GET", "/v1/status/leader", ok=(200, 500))[1]))
    status, _ = api.call("GET", "/v1/acl/token/self", ok=(200, 400, 403, 404))
    if status != 200:
        status, body = api.call("POST", "/v1/acl/bootstrap", {"BootstrapSecret": management}, token="",
                                ok=(200, 400))
        if status == 400:
            # Bootstrapped before with another token (its file was lost):
            # Nomad's reset file lets this bootstrap once more.
            die(f"Nomad's ACLs were bootstrapped with a token not in {secrets} ({body}); "
                "scripts/down --purge starts over")
        log("Nomad ACLs bootstrapped with the management token")

    status, cur = api.call("GET", "/v1/acl/policy/autoscaler", ok=(200, 404))
    if status != 200 or cur["Rules"] != AUTOSCALER_RULES:
        api.call("POST", "/v1/acl/policy/autoscaler", {
            "Name": "autoscaler",
            "Description": "the local autoscaler agent reads jobs, scaling policies and allocation metrics, and scales",
            "Rules": AUTOSCALER_RULES})
        log("Nomad policy autoscaler written")
    file = "nomad-autoscaler.token"
    try:
        secret = read_secret(secrets, file)
    except FileNotFoundError:
        secret = ""
    if not secret or api.call("GET", "/v1/acl/token/self", token=secret, ok=(200, 403, 404))[0] != 200:
        _, token = api.call("POST", "/v1/acl/token",
                            {"Name": "autoscaler (local)", "Type": "client", "Policies": ["autoscaler"]})
        write_secret(secrets, file, token["SecretID"])
        log("Nomad token autoscaler created")
    consul_auth_method(secrets)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("consul", "nomad"):
        die("usage: acl.py consul|nomad SECRETS_DIR")
    {"consul": consul, "nomad": nomad}[sys.argv[1]](sys.argv[2])


if __name__ == "__main__":
    main()
