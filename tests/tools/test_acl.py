"""acl.toml, Counter's one definition of its access rules, as counterops.acl
reads it for a deployment; and the secrets it and the Redis users call for.
Applying it to real Consul and Nomad agents is tested by the e2e and
cluster suites (a changed policy reaches a running deployment)."""

import types

from counterops import acl, secrets


class FakeTarget:
    hosts = {"m1": None, "m2": None}

    def secret(self, name):
        return f"<{name}>"


def test_job_and_host_names_expand_into_one_entry_each():
    data = acl.load(FakeTarget())
    assert {"counter-config-traefik", "counter-config-web", "counter-config-web-inc"} <= set(data["consul"]["policies"])
    rules = data["consul"]["policies"]["counter-config-web"]["rules"]
    assert 'key_prefix "counter/config/web/"' in rules and "{job}" not in rules
    tokens = data["consul"]["tokens"]
    assert tokens["consul-agent-m2.token"]["node_identity"] == "m2"
    assert "consul-agent-{host}.token" not in tokens


def test_every_role_names_policies_that_exist():
    data = acl.load(FakeTarget())
    policies = set(data["consul"]["policies"])
    for name, role in data["consul"]["roles"].items():
        assert set(role["policies"]) <= policies, name
    for name, token in data["consul"]["tokens"].items():
        assert set(token["policies"]) <= policies, name


def test_variables_take_their_secrets_from_the_deployments_files():
    items = acl.load(FakeTarget())["nomad"]["variables"]["nomad/jobs/web-inc"]
    assert items == {"redis_username": "web-inc", "redis_password": "<redis-web-inc.password>"}


def test_an_object_matches_when_every_field_it_names_has_that_value():
    assert acl.matches({"Rules": "x", "ID": "1", "JobACL": {"JobID": "a", "Group": ""}},
                       {"Rules": "x", "JobACL": {"JobID": "a"}})
    assert not acl.matches({"Rules": "x"}, {"Rules": "y"})


def test_the_secrets_cover_every_token_file_and_redis_user():
    names = secrets.names(["m1", "m2"])
    assert {"consul-agent-m1.token", "consul-agent-m2.token", "consul-nomad.token"} <= set(names)
    assert {f"redis-{u}.password" for u in ("web", "web-inc", "replication", "sentinel", "check")} <= set(names)
    for name in acl.load(types.SimpleNamespace(hosts={"m1": 0, "m2": 0}, secret=str))["consul"]["tokens"]:
        assert name in names


def test_secrets_are_made_once(tmp_path):
    first = secrets.ensure(tmp_path / "s", ["local"])
    assert first and secrets.ensure(tmp_path / "s", ["local"]) == []
    assert oct((tmp_path / "s").stat().st_mode & 0o777) == "0o700"
    assert all(oct((tmp_path / "s" / n).stat().st_mode & 0o777) == "0o600" for n in first)
