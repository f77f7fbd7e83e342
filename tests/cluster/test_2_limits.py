"""A runaway task cannot starve the others: Nomad puts each raw_exec task in
cgroups of its own on these machines, so a task that takes more memory than
its `resources.memory` is killed by the kernel (and restarted by Nomad) while
web and web-inc on the same machine keep answering."""

import time

from cluster import eventually

# Grows by 16 MiB every 20 ms up to 1 GiB, touching every page, then idles:
# far past its 64 MB limit within a second, and slow enough that the kernel
# kills it rather than the machine swapping.
RUNAWAY = ("import time\\n"
           "chunks = []\\n"
           "for _ in range(64):\\n"
           "    chunks.append(bytearray(16 << 20))\\n"
           "    time.sleep(0.02)\\n"
           "print('still alive at 1 GiB', flush=True)\\n"
           "time.sleep(600)\\n")


def job_on(host):
    return f'''job "runaway" {{
  type = "service"
  constraint {{
    attribute = "${{node.unique.name}}"
    value     = "{host}"
  }}
  group "g" {{
    restart {{
      attempts = 3
      interval = "10m"
      delay    = "1s"
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "grow" {{
      driver = "raw_exec"
      user   = "nobody" # any unprivileged user: not one of the jobs'
      config {{
        command = "/usr/bin/python3"
        args    = ["-c", "{RUNAWAY}"]
      }}
      resources {{
        cpu    = 50
        memory = 64
      }}
    }}
  }}
}}
'''


def address(cluster, alloc):
    port = cluster.nomad_api(f"/v1/allocation/{alloc['ID']}")["AllocatedResources"]["Shared"]["Ports"][0]
    return f"{port['HostIP']}:{port['Value']}"


def restarts(cluster, alloc_id, task):
    return cluster.nomad_api(f"/v1/allocation/{alloc_id}")["TaskStates"][task]["Restarts"]


def test_a_task_over_its_memory_limit_is_killed_and_the_services_beside_it_keep_answering(cluster, tmp_path):
    webs = {a["NodeName"]: a for a in cluster.running_allocs("web")}
    incs = {a["NodeName"]: a for a in cluster.running_allocs("web-inc")}
    host = next(h for h in cluster.hosts if h in webs and h in incs)
    web, inc = webs[host], incs[host]
    web_addr, inc_addr = address(cluster, web), address(cluster, inc)
    before = restarts(cluster, web["ID"], "web"), restarts(cluster, inc["ID"], "web-inc")
    job = tmp_path / "runaway.nomad.hcl"
    job.write_text(job_on(host))

    # Each round: a GET and an increment to the instances on the runaway's
    # machine, from that machine (no gateway, no other machine in the path),
    # over the mutual TLS their ports speak, with the host's gateway client
    # certificate (read as root) and the service's name.
    def curl(job, addr, extra):
        ip, port = addr.rsplit(":", 1)
        tls = "--cacert /etc/counter/tls/services-ca.pem --cert /etc/counter/tls/gateway-client.pem " \
              "--key /etc/counter/tls/gateway-client-key.pem"
        return (f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 {tls} "
                f"--resolve {job}.counter:{port}:{ip} {extra} https://{job}.counter:{port}")
    probe = f"{curl('web', web_addr, '')}/ ; echo -n ' '; {curl('web-inc', inc_addr, '-X POST')}/inc"
    answers = []
    try:
        cluster.nomad("job", "run", "-detach", str(job))

        def killed_and_restarted():
            answers.append(cluster.ssh(host, probe, check=False).stdout.strip())
            allocs = cluster.nomad_api("/v1/job/runaway/allocations")
            events = [e for a in allocs if a.get("TaskStates") for e in a["TaskStates"]["grow"]["Events"]]
            oom = [e for e in events if e["Type"] == "Terminated"
                   and (e.get("Details", {}).get("oom_killed") == "true" or e.get("ExitCode") == 137
                        or e.get("Signal") == 9)]
            return len(oom) >= 2 and any(e["Type"] == "Restarting" for e in events)
        eventually(killed_and_restarted, 120, "the runaway task killed at its memory limit, twice, and restarted")

        allocs = cluster.nomad_api("/v1/job/runaway/allocations")
        # The kernel's memory cgroup killed it (cgroup v1 on these machines,
        # v2 on a systemd host): not Nomad, not the machine's own OOM killer.
        cgroup = (f"cat /sys/fs/cgroup/memory/nomad/{allocs[0]['ID']}.grow/memory.oom_control 2>/dev/null"
                  f" || cat /sys/fs/cgroup/nomad.slice/share.slice/{allocs[0]['ID']}.grow.scope/memory.events")
        kills = [line.split()[1] for line in cluster.ssh(host, cgroup, check=False).stdout.splitlines()
                 if line.startswith("oom_kill ")]
        assert kills and int(kills[0]) >= 1, f"no OOM kill in the task's memory cgroup: {kills}"
        for a in allocs:
            logs = cluster.nomad("alloc", "logs", a["ID"], "grow", check=False).stdout
            assert "still alive at 1 GiB" not in logs, "the task grew past its limit without being killed"
        for _ in range(5):
            answers.append(cluster.ssh(host, probe, check=False).stdout.strip())
            time.sleep(0.2)
    finally:
        cluster.nomad("job", "stop", "-purge", "runaway", check=False)

    assert answers and all(a == "200 200" for a in answers), f"web, web-inc on {host} answered: {answers}"
    after = restarts(cluster, web["ID"], "web"), restarts(cluster, inc["ID"], "web-inc")
    assert after == before, f"web/web-inc on {host} restarted beside the runaway: {before} -> {after}"
