"""acl.toml is the one definition of the ACLs, and applying it updates what
differs on a running deployment: a policy's rules, a role's policies."""

import subprocess
import sys

from conftest import CONSUL, REPO, get_json

ACL = REPO / "scripts/counterops/acl.toml"
PROBE_RULE = 'key_prefix "counter/e2e-probe/" { policy = "read" }'


def apply(path):
    p = subprocess.run([sys.executable, "-m", "counterops.acl", "--local", "--acl", str(path)],
                       capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO / "scripts"),
                                                                        "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    return p.stderr


def live():
    policy = get_json(CONSUL + "/v1/acl/policy/name/counter-config-web")
    role = get_json(CONSUL + "/v1/acl/role/name/nomad-tasks-web-inc")
    return policy["Rules"], sorted(p["Name"] for p in role["Policies"])


def test_a_changed_policy_and_role_reach_the_running_stack_at_the_next_apply(tmp_path):
    original = ACL.read_text()
    changed = tmp_path / "acl.toml"
    changed.write_text(original
                       .replace('key_prefix "counter/config/{job}/" { policy = "read" }\n',
                                'key_prefix "counter/config/{job}/" { policy = "read" }\n' + PROBE_RULE + "\n")
                       .replace('policies = ["counter-config-web-inc", "redis-discovery"]',
                                'policies = ["counter-config-web-inc", "redis-discovery", "gateway-catalog"]'))
    assert changed.read_text() != original
    try:
        said = apply(changed)
        rules, role = live()
        assert PROBE_RULE in rules and "gateway-catalog" in role, (rules, role)
        assert "Consul policy counter-config-web updated" in said and "Consul role nomad-tasks-web-inc updated" in said
    finally:
        apply(ACL)
    rules, role = live()
    assert PROBE_RULE not in rules and role == ["counter-config-web-inc", "redis-discovery"]
    # Applied again, the definition changes nothing.
    assert "updated" not in apply(ACL) and "created" not in apply(ACL)
