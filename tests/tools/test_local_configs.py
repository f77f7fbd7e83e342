"""counterops.render: the local stack's configs come from the templates a
cluster renders, with the settings both share; a file another layout left in
an agent's config directory goes (the agents read every file there)."""

import re

from counterops import render, secrets


def rendered(tmp_path):
    secrets.ensure(tmp_path / "secrets", ["local"])
    etc = tmp_path / "etc"
    return etc, render.write_local(etc, tmp_path / "secrets")


def test_every_config_renders_with_the_local_stacks_values_and_nothing_changes_twice(tmp_path):
    etc, changed = rendered(tmp_path)
    assert sorted(changed) == sorted(name for _, name, _ in render.FILES)
    assert render.write_local(etc, tmp_path / "secrets") == []
    primary = (etc / "redis/primary.conf").read_text()
    assert re.search(r"^port 6380$", primary, re.M) and "tls-port" not in primary
    assert re.search(r"^replicaof 127\.0\.0\.1 6380$", (etc / "redis/replica.conf").read_text(), re.M)
    assert re.search(r"^sentinel monitor counter 127\.0\.0\.1 6380 1$", (etc / "redis/sentinel.conf").read_text(),
                     re.M)
    assert 'bootstrap_expect = 1' in (etc / "consul.d/consul.hcl").read_text()


def test_the_redis_users_hold_hashes_only_and_no_default_user(tmp_path):
    etc, _ = rendered(tmp_path)
    users = (etc / "redis/users.acl").read_text()
    assert users.splitlines()[0] == "user default off"
    for name in secrets.redis_users():
        password = (tmp_path / "secrets" / f"redis-{name}.password").read_text().strip()
        assert password not in users
        assert re.search(rf"^user {name} on #[0-9a-f]{{64}} ", users, re.M), name


def test_the_settings_both_modes_share_reach_the_local_stack(tmp_path):
    etc, _ = rendered(tmp_path)
    settings = render.yaml.safe_load(render.SETTINGS.read_text())
    sentinel = (etc / "redis/sentinel.conf").read_text()
    assert f"down-after-milliseconds counter {settings['sentinel_down_after_ms']}" in sentinel
    assert f'ttl   = "{settings["consul_role_check_ttl"]}"' in (etc / "consul.d/redis.hcl").read_text()


def test_a_file_of_an_older_layout_leaves_the_agents_config_directories(tmp_path):
    etc, _ = rendered(tmp_path)
    (etc / "consul.d/local.hcl").symlink_to(tmp_path / "a-checkout-since-deleted/consul/local.hcl")
    (etc / "nomad.d/alloc.hcl").write_text("client {}\n")
    changed = render.write_local(etc, tmp_path / "secrets")
    assert sorted(changed) == ["consul.d/local.hcl", "nomad.d/alloc.hcl"]
    assert not (etc / "consul.d/local.hcl").is_symlink() and not (etc / "nomad.d/alloc.hcl").exists()
