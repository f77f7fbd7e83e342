"""Only Counter's own services can publish gateway routes: a service
registered by anyone else, with Traefik tags that would take `/inc` at a
higher priority, never reaches Traefik (its Consul token reads the catalog
entries of web and web-inc only: the `gateway-catalog` policy of acl.toml).
"""

import json
import time

from conftest import CONSUL, GATEWAY, TRAEFIK_API, get_json, http

ROGUE = "e2e-rogue-route"
ROGUE_TAGS = ["traefik.enable=true",
              f"traefik.http.routers.{ROGUE}.rule=PathPrefix(`/inc`) || PathPrefix(`/`)",
              f"traefik.http.routers.{ROGUE}.priority=100000",
              f"traefik.http.routers.{ROGUE}.entrypoints=web"]


def as_traefik_sees_it():
    """The catalog's service names as a token of Traefik's role reads them."""
    created = http(CONSUL + "/v1/acl/token", "PUT", data=json.dumps(
        {"Description": "e2e: the gateway's view", "Roles": [{"Name": "nomad-tasks-traefik"}],
         "ExpirationTTL": "10m"}).encode())
    assert created.status == 200, created.text
    token = created.json()
    try:
        seen = http(CONSUL + "/v1/catalog/services", headers={"X-Consul-Token": token["SecretID"]}, anonymous=True)
        assert seen.status == 200, seen.text
        return set(seen.json())
    finally:
        http(f"{CONSUL}/v1/acl/token/{token['AccessorID']}", "DELETE")


def test_a_service_registered_by_another_token_cannot_take_a_route():
    # A token that may register this one service, as a compromised host
    # service or a leaked token might have (a run cut short left its policy).
    left = http(f"{CONSUL}/v1/acl/policy/name/{ROGUE}")
    if left.status == 200:
        http(f"{CONSUL}/v1/acl/policy/{left.json()['ID']}", "DELETE")
    policy = http(CONSUL + "/v1/acl/policy", "PUT", data=json.dumps(
        {"Name": ROGUE, "Rules": f'service "{ROGUE}" {{ policy = "write" }}'}).encode())
    assert policy.status == 200, policy.text
    token = http(CONSUL + "/v1/acl/token", "PUT", data=json.dumps(
        {"Description": ROGUE, "Policies": [{"Name": ROGUE}]}).encode()).json()
    rogue = {"X-Consul-Token": token["SecretID"]}
    try:
        registered = http(CONSUL + "/v1/agent/service/register", "PUT", headers=rogue, anonymous=True,
                          data=json.dumps({"Name": ROGUE, "Port": 9, "Address": "127.0.0.1",
                                           "Tags": ROGUE_TAGS}).encode())
        assert registered.status == 200, registered.text
        assert ROGUE in get_json(CONSUL + "/v1/catalog/services"), "the rogue service was not registered"
        # Traefik's token does not see it, but sees what it routes...
        seen = as_traefik_sees_it()
        assert ROGUE not in seen and {"web", "web-inc"} <= seen, seen
        # ...and after two of its backstop polls (5 s) Traefik has no router
        # of it, and /inc still reaches web-inc.
        time.sleep(11)
        routers = {r["name"] for r in get_json(TRAEFIK_API + "/http/routers")}
        assert not any(ROGUE in name for name in routers), routers
        answer = http(GATEWAY + "/inc")
        assert answer.status == 200 and answer.headers["X-Served-By"].startswith("web-inc@"), answer.headers
    finally:
        http(f"{CONSUL}/v1/agent/service/deregister/{ROGUE}", "PUT")
        http(f"{CONSUL}/v1/acl/token/{token['AccessorID']}", "DELETE")
        http(f"{CONSUL}/v1/acl/policy/{policy.json()['ID']}", "DELETE")
