"""counterops.jobs: the variables each kind of deployment submits, and what
counts as a change in a plan. The submission itself runs against real Nomad
in the e2e and cluster suites."""

import types
from pathlib import Path

from counterops import jobs, render, target


def args(**kw):
    base = dict(artifact=["web=abc:111", "web-inc=def:222"], artifact_url="http://192.0.2.1:8090", set=[],
                keep_artifacts=False, vars_dir="/nonexistent")
    base.update(kw)
    return types.SimpleNamespace(**base)


def test_the_local_stack_submits_the_job_files_defaults_and_the_artifact():
    v = jobs.job_vars("local", "web", 1, args())
    assert v == {"task_user": "counter-web", "task_uid": "64102", "version": "abc", "checksum": "111",
                 "artifact_url": "http://192.0.2.1:8090"}


def test_a_cluster_gets_one_web_per_host_with_tls_and_no_canary():
    v = jobs.job_vars("cluster", "web", 4, args())
    assert v["distinct_hosts"] == "true" and v["canary"] == "0"
    assert v["consul_http_addr"] == "https://127.0.0.1:8501"
    # Each client trusts the CA of the role it talks to, never one for all.
    assert (v["consul_cacert"], v["redis_tls_ca"]) == (jobs.CONSUL_CA, jobs.REDIS_CA) and jobs.CONSUL_CA != jobs.REDIS_CA
    assert v["services_tls"] == "true"
    assert (v["count"], v["scaling_min"], v["scaling_max"]) == ("4", "3", "4")


def test_a_cluster_caps_web_at_six_and_keeps_two_web_inc():
    assert jobs.job_vars("cluster", "web", 9, args())["count"] == "6"
    assert jobs.job_vars("cluster", "web-inc", 9, args())["count"] == "2"


def test_set_overrides_one_job_or_every_job():
    a = args(set=["web:release=r1", "canary=2"])
    assert jobs.job_vars("cluster", "web", 3, a)["release"] == "r1"
    assert "release" not in jobs.job_vars("cluster", "web-inc", 3, a)
    assert jobs.job_vars("cluster", "web-inc", 3, a)["canary"] == "2"


def test_the_gateway_serves_https_on_every_address_and_reaches_the_services_over_tls_in_a_cluster_only():
    assert jobs.job_vars("cluster", "traefik", 3, args()) == {"task_user": "counter-traefik", "task_uid": "64101",
                                                              "gateway_bind": "", "https": "true", "services_tls": "true"}
    assert jobs.job_vars("local", "traefik", 1, args()) == {"task_user": "counter-traefik", "task_uid": "64101"}


def test_the_exporters_report_the_floating_gateway_address_only_on_a_cluster_that_has_one():
    assert jobs.job_vars("cluster", "exporters", 3, args(), gateway_vip="198.18.0.100")["gateway_address"] == \
        "198.18.0.100"
    assert "gateway_address" not in jobs.job_vars("cluster", "exporters", 3, args())
    assert "gateway_address" not in jobs.job_vars("local", "exporters", 1, args(), gateway_vip="198.18.0.100")


def test_kept_artifacts_come_from_the_var_file(tmp_path):
    jobs.write_var_file(str(tmp_path / "web.vars.hcl"), {"version": "v9", "checksum": "c9", "artifact_url": "http://x"})
    v = jobs.job_vars("cluster", "web", 3, args(artifact=[], keep_artifacts=True, vars_dir=str(tmp_path)))
    assert (v["version"], v["checksum"], v["artifact_url"]) == ("v9", "c9", "http://x")


def test_an_empty_scaling_diff_is_no_change():
    scaling = {"Type": "Edited", "Name": "Scaling", "Fields": [], "Objects": None}
    diff = {"Type": "Edited", "Fields": None, "Objects": None, "TaskGroups": [
        {"Type": "Edited", "Fields": None, "Objects": [scaling]}]}
    assert not jobs.meaningful(diff)


def test_a_changed_field_or_an_added_group_is_a_change():
    field = {"Type": "Edited", "TaskGroups": [{"Type": "Edited", "Tasks": [
        {"Type": "Edited", "Fields": [{"Type": "Edited", "Name": "Meta[release]", "Old": "a", "New": "b"}]}]}]}
    assert jobs.meaningful(field)
    assert jobs.meaningful({"Type": "Edited", "TaskGroups": [{"Type": "Added", "Name": "x"}]})
    assert not jobs.meaningful({"Type": "None", "Fields": [{"Type": "None", "Old": "1", "New": "1"}]})


def test_every_job_runs_as_its_own_user_in_both_modes_unless_told_none():
    users = {job: jobs.job_vars(profile, job, 3, args())["task_user"]
             for profile in ("local", "cluster") for job in jobs.JOBS}
    assert users == {"traefik": "counter-traefik", "web": "counter-web", "web-inc": "counter-web-inc",
                     "autoscaler": "counter-autoscaler", "prometheus": "counter-prometheus",
                     "exporters": "counter-exporters"}
    assert jobs.job_vars("local", "web", 1, args(set=["task_user="]))["task_user"] == ""
    # Each with its fixed uid, which names its secret files' owner; all distinct.
    uids = {job: jobs.job_vars("cluster", job, 3, args())["task_uid"] for job in jobs.JOBS}
    assert len(set(uids.values())) == len(jobs.JOBS) and all(int(u) > 1000 for u in uids.values()), uids
    assert jobs.job_vars("local", "web", 1, args(set=["task_uid=-1"]))["task_uid"] == "-1"


def test_web_inc_gets_the_per_client_limit_and_a_cluster_inventory_may_set_its_own():
    shared = render.settings()["counter_inc_limit_per_client"]
    assert jobs.job_vars("local", "web-inc", 1, args())["inc_limit_per_client"] == str(shared)
    inventory = target.Target("cluster", {}, [], Path("/nonexistent"), Path("/nonexistent"),
                              inventory_vars={"counter_inc_limit_per_client": 20000, "ansible_user": "root"})
    settings = inventory.settings()
    assert settings["counter_inc_limit_per_client"] == 20000 and "ansible_user" not in settings
    assert jobs.job_vars("cluster", "web-inc", 3, args(), settings)["inc_limit_per_client"] == "20000"
    assert "inc_limit_per_client" not in jobs.job_vars("cluster", "web", 3, args(), settings)
