"""Applies acl.toml, Counter's one definition of its access rules, to a
deployment (the local stack or a cluster): Consul policies, roles, tokens,
the auth method of Nomad's workload identities and its binding rules; Nomad's
ACL bootstrap, policies and the jobs' Variables.

Every object is read first: what is missing is created, what differs is
updated (a changed policy's rules, a role's or token's policy set, a
variable's items), what matches is left alone, so a second run changes
nothing. Tokens are read from files and sent in headers; only names are
printed.

    python -m counterops.acl [--local | --inventory FILE]
"""

import argparse
import tomllib
from pathlib import Path

from . import client, common, target

DATA = Path(__file__).with_name("acl.toml")


def expand(table, jobs, hosts):
    """{name: value} with every {job} / {host} name copied per job / host,
    the placeholder filled in the strings inside it too."""
    out = {}
    for name, value in table.items():
        for key, items in (("{job}", jobs), ("{host}", hosts)):
            if key in name:
                for item in items:
                    out[name.replace(key, item)] = fill(value, key, item)
                break
        else:
            out[name] = value
    return out


def fill(value, key, item):
    if isinstance(value, str):
        return value.replace(key, item)
    if isinstance(value, dict):
        return {k: fill(v, key, item) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, key, item) for v in value]
    return value


def load(t, path=DATA):
    """acl.toml for this deployment's hosts, with its secrets resolved."""
    data = tomllib.loads(Path(path).read_text())
    jobs, hosts = data["jobs"], list(t.hosts)
    consul, nomad = data["consul"], data["nomad"]
    for section in (consul, nomad):
        for kind in ("policies", "roles", "tokens"):
            if kind in section:
                section[kind] = expand(section[kind], jobs, hosts)
    for items in nomad["variables"].values():
        for k, v in items.items():
            if isinstance(v, dict):
                items[k] = t.secret(v["secret"])
    return data


def log(msg):
    common.log(f"acl: {msg}")


def wait(what, predicate):
    common.until(what, predicate, 90, errors=(client.ApiError,))


def matches(cur, want):
    """Whether every field of WANT has its value in CUR (dicts: recursively;
    CUR may hold more, as the APIs add defaults)."""
    if isinstance(want, dict):
        return isinstance(cur, dict) and all(matches(cur.get(k), v) for k, v in want.items())
    return cur == want


def names(items):
    return sorted(i["Name"] for i in items or [])


def save(api, what, cur, create, update, body):
    """Creates one Consul ACL object at CREATE (CUR None: there is none yet)
    or updates it at UPDATE."""
    api.put(update if cur else create, body)
    log(f"Consul {what} {'updated' if cur else 'created'}")


def apply_consul(t, data, jwks_url, jwks_ca):
    api = t.consul()
    # initial_management works once the servers elected a leader. A
    # consistent read also waits until that leader has applied its log: a
    # server that has just restarted may answer a default read from the
    # state it is still replaying, where a policy made before is missing
    # (seen: "A policy with name ... already exists" on creating it again).
    wait("Consul to accept the management token and read its log back",
         lambda: api.get("/v1/acl/token/self", params={"consistent": ""}))
    changed = False

    for name, p in data["policies"].items():
        cur = api.get(f"/v1/acl/policy/name/{name}", missing_ok=True)
        if cur is None or (cur["Rules"], cur.get("Description")) != (p["rules"], p["description"]):
            save(api, f"policy {name}", cur, "/v1/acl/policy", cur and f"/v1/acl/policy/{cur['ID']}",
                 {"Name": name, "Description": p["description"], "Rules": p["rules"]})

    for name, r in data["roles"].items():
        cur = api.get(f"/v1/acl/role/name/{name}", missing_ok=True) or None
        if cur is None or names(cur.get("Policies")) != sorted(r["policies"]):
            save(api, f"role {name}", cur, "/v1/acl/role", cur and f"/v1/acl/role/{cur['ID']}",
                 {"Name": name, "Policies": [{"Name": p} for p in r["policies"]]})

    for file, tok in data["tokens"].items():
        secret = t.secret(file)
        status, cur = api.call("GET", "/v1/acl/token/self", token=secret, ok=(200, 403))
        body = {"SecretID": secret, "Description": tok["description"],
                "Policies": [{"Name": p} for p in tok["policies"]]}
        if "node_identity" in tok:
            body["NodeIdentities"] = [{"NodeName": tok["node_identity"], "Datacenter": "dc1"}]
        cur = cur if status == 200 else None
        if cur is None or names(cur.get("Policies")) != sorted(tok["policies"]):
            save(api, f"token {file}", cur, "/v1/acl/token", cur and f"/v1/acl/token/{cur['AccessorID']}",
                 dict(body, AccessorID=cur["AccessorID"]) if cur else body)
            changed = changed or cur is None

    for name, method in data["auth_methods"].items():
        body = dict(method, Name=name, Config=dict(method["Config"], JWKSURL=jwks_url))
        if jwks_ca:
            body["Config"]["JWKSCACert"] = jwks_ca
        cur = api.get(f"/v1/acl/auth-method/{name}", missing_ok=True)
        if not matches(cur, body):
            save(api, f"auth method {name}", cur, "/v1/acl/auth-method", f"/v1/acl/auth-method/{name}", body)

    have = {}
    for method in data["auth_methods"]:
        for rule in api.get("/v1/acl/binding-rules", params={"authmethod": method}) or []:
            have[(method, rule["Description"])] = rule
    for rule in data["binding_rules"]:
        cur = have.get((rule["AuthMethod"], rule["Description"]))
        if not matches(cur, rule):
            save(api, f"binding rule '{rule['Description']}'", cur, "/v1/acl/binding-rule",
                 cur and f"/v1/acl/binding-rule/{cur['ID']}", dict(rule, ID=cur["ID"]) if cur else rule)
    return changed


def bootstrap_nomad(t):
    """Nomad's ACL bootstrap, once, with the pre-generated management token."""
    management = t.secret("nomad-management.token")
    api = t.nomad()
    wait("a Nomad leader", lambda: ":" in str(api.get("/v1/status/leader")))
    if api.call("GET", "/v1/acl/token/self", ok=(200, 400, 403, 404))[0] == 200:
        return
    status, body = api.call("POST", "/v1/acl/bootstrap", {"BootstrapSecret": management}, token="", ok=(200, 400))
    if status == 400:
        common.die(f"acl: Nomad's ACLs were bootstrapped with a token not in {t.secrets}; "
                   "locally, scripts/down --purge starts over")
    log("Nomad ACLs bootstrapped with the management token")


def apply_nomad(t, data):
    api = t.nomad()
    for name, p in data["policies"].items():
        cur = api.get(f"/v1/acl/policy/{name}", missing_ok=True)
        body = {"Name": name, "Description": p["description"], "Rules": p["rules"]}
        if "job" in p:
            body["JobACL"] = {"Namespace": "default", "JobID": p["job"]}
        if cur is None or not matches(cur, body):
            api.post(f"/v1/acl/policy/{name}", body)
            log(f"Nomad policy {name} {'created' if cur is None else 'updated'}")
    for path, items in data["variables"].items():
        cur = api.get(f"/v1/var/{path}", missing_ok=True)
        if cur is None or cur.get("Items") != items:
            body = {"Namespace": "default", "Path": path, "Items": items}
            # A new cluster's leader makes its keyring a moment after it is
            # elected; until then every write of a Variable answers 500.
            wait(f"Nomad's keyring to write {path}", lambda body=body: put_variable(api, body))
            log(f"Nomad variable {path} {'created' if cur is None else 'updated'}")


def put_variable(api, body):
    """True once written; False while the keyring is not ready; any other
    error ends the command."""
    try:
        api.put(f"/v1/var/{body['Path']}", body)
    except client.ApiError as err:
        if err.status == 500 and "keyring has not been initialized" in str(err):
            return False
        common.die(str(err))
    return True


def apply(t, phase="all", path=DATA):
    """phase consul: before Nomad starts (its agent token must exist);
    nomad: once Nomad is up (the auth method's creation fetches its keys);
    all: both, on a running deployment."""
    data = load(t, path)
    if phase in ("consul", "all"):
        changed = apply_consul(t, dict(data["consul"], auth_methods={}, binding_rules=[]), None, None)
        if changed and t.kind == "local":
            # The agent registered the Redis services before its token
            # existed; a reload syncs them now, not at the next anti-entropy run.
            t.consul().put("/v1/agent/reload")
    if phase in ("nomad", "all"):
        bootstrap_nomad(t)
        # The Nomad agent beside each Consul server serves its keys on loopback.
        # Over HTTPS it trusts Nomad's CA alone: no other role's key can serve
        # it keys that would let a forged identity in.
        nomad_ca = t.ca("nomad")
        jwks = ("https" if nomad_ca else "http") + "://127.0.0.1:4646/.well-known/jwks.json"
        ca = Path(nomad_ca).read_text() if nomad_ca else None
        apply_consul(t, data["consul"], jwks, ca)
        apply_nomad(t, data["nomad"])


def main():
    p = argparse.ArgumentParser(prog="python -m counterops.acl", description=__doc__.split("\n\n")[0])
    target.add_arguments(p)
    p.add_argument("--phase", choices=["consul", "nomad", "all"], default="all")
    p.add_argument("--acl", default=DATA, help="the definition to apply (default: %(default)s)")
    args = p.parse_args()
    apply(target.from_args(args), args.phase, args.acl)


if __name__ == "__main__":
    main()
