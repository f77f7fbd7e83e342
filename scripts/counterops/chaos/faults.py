"""The faults of scripts/chaos, each a scenario: which host it hits, whose
gateways the load avoids, the fault, and the heal that undoes it (or waits
for the cluster to recover). Faults reach hosts over SSH, as on real hosts,
except the partition and the loss of a test machine's link, which act on
this host's end of the machine's veth."""

import os
import random
import shutil
import subprocess
import tempfile
import time
import types
from pathlib import Path

from .. import jobs, machines, reboot, rotate
from .runner import Scenario, log, primary_addr, until

AGENT_DOWN_S = 15  # how long a killed agent stays down
ROOT = Path(__file__).resolve().parents[3]


def link(host):
    """A test machine's veth on this host (scripts/cluster), or None on real hosts."""
    name = f"ctr-{host}"
    return name if subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0 else None


def set_link(name, state):
    subprocess.run(["ip", "link", "set", name, state], check=True)


def web_allocs(t):
    return [a for a in t.nomad().get("/v1/job/web/allocations")
            if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]


def leader_host(t, agent):
    api = t.consul() if agent == "consul" else t.nomad()
    addr = str(api.get("/v1/status/leader")).rsplit(":", 1)[0]
    return t.host_of(addr)


def redis_unit(t, host):
    """The counter-redis@ unit running there (the role it was installed with;
    Sentinel may have changed the role since)."""
    out = t.ssh(host, "systemctl list-units --plain --no-legend --state=active 'counter-redis@*'").stdout.split()
    if not out:
        raise SystemExit(f"error: no active counter-redis@ unit on {host}")
    return out[0]


class PrimaryKill(Scenario):
    """kill -9 the Redis primary, held down until Sentinel fails over."""

    def fault(self):
        self.victim = self.t.host_of(primary_addr(self.t))
        self.unit = redis_unit(self.t, self.victim)
        log(f"primary-kill: kill -9 {self.unit} on {self.victim}, held down until Sentinel promotes a replica")
        # Stopped right after the kill: systemd would restart it before Sentinel notices.
        self.t.ssh(self.victim, f"systemctl kill -s KILL {self.unit}; systemctl stop {self.unit}")

    def heal(self):
        until("a new primary elected by Sentinel", lambda: self.t.host_of(primary_addr(self.t)) != self.victim, 60)
        log(f"primary-kill: restarting the old primary on {self.victim} (it rejoins as a replica)")
        self.t.ssh(self.victim, f"systemctl start {self.unit}")


class MachineLoss(Scenario):
    """Power off a host running a replica, abruptly (poweroff -ff)."""

    def prepare(self):
        # Neither a server (the control plane keeps its quorum) nor the primary's.
        p = self.t.host_of(primary_addr(self.t))
        hosts = sorted(self.t.hosts, reverse=True)
        choice = [h for h in hosts if h != p and h not in self.t.servers] or [h for h in hosts if h != p]
        self.victim = choice[0]
        self.avoid = [self.victim]

    def fault(self):
        allocs = web_allocs(self.t)
        self.lost = next((a["ID"] for a in allocs if a["NodeName"] == self.victim), None)
        self.before = len(allocs)
        log(f"machine-loss: powering off {self.victim} abruptly (web runs {self.before} instances)")
        if veth := link(self.victim):
            # A test machine's network namespace outlives it, with its
            # addresses (the floating gateway's too): its kernel would go on
            # answering with resets, which a host without power does not. So
            # its link goes dark first, as a dead host's NIC does, and it
            # powers off a second later (a timer: SSH cannot reach it once the
            # link is down). scripts/cluster up brings the link back.
            self.t.ssh(self.victim, "systemd-run --quiet --on-active=1 systemctl poweroff -ff", check=False)
            set_link(veth, "down")
        else:
            self.t.ssh(self.victim, "systemctl poweroff -ff", check=False, timeout=10)
        self.lost_at = time.monotonic()

    def heal(self):
        """Capacity: web back to as many running instances as before, on the
        hosts left; possible only with a host that runs no web instance
        (distinct_hosts): without one, it says so instead of failing."""
        left = len(self.t.hosts) - 1
        if left < self.before:
            print(f"chaos machine-loss: capacity cannot come back: web ran {self.before} instances, one a host, "
                  f"and {left} hosts are left", flush=True)
            return
        capacity = replaced = None if self.lost else "none"
        n = 0
        while time.monotonic() - self.lost_at < 90 and (capacity is None or replaced is None):
            allocs = [a for a in self.t.nomad(avoid=[self.victim]).get("/v1/job/web/allocations")]
            running = [a for a in allocs if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"
                       and a["NodeName"] != self.victim]
            n = len(running)
            if n >= self.before and capacity is None:
                capacity = round(time.monotonic() - self.lost_at)
            if replaced is None and any(a.get("PreviousAllocation") == self.lost for a in running):
                replaced = round(time.monotonic() - self.lost_at)
            time.sleep(1)
        # capacity_s: web back to its count on the hosts left (the autoscaler
        # may have got there first); replaced_s: the lost allocation's own
        # replacement running (Nomad marks the node down, then reschedules).
        print(f"chaos machine-loss: capacity_s={capacity or 'none'} replaced_s={replaced or 'none'} "
              f"web={n}/{self.before} (within 90s)", flush=True)


class MachineReturn(MachineLoss):
    """A test machine powered off abruptly and booted again OFF_S later, as
    after a power cut: a replica's (replica-return), the primary's
    (primary-return: it must come back as a replica, never taking a write of
    its own) or a server's that is not the primary's (server-return: Raft
    and Serf membership whole again). Judged by the verdict plus the machine
    back: every unit active, its allocations running, its Redis a replica
    with its link up, Consul and Nomad members alive, scripts/status exit 0."""
    OFF_S = 20

    def prepare(self):
        if self.name == "replica-return":
            MachineLoss.prepare(self)
        else:
            p = self.t.host_of(primary_addr(self.t))
            self.victim = p if self.name == "primary-return" else next(s for s in self.t.servers if s != p)
            self.avoid = [self.victim]
        self.api_avoid = [self.victim]
        if not link(self.victim):
            raise SystemExit(f"error: {self.name} boots a test machine again: scripts/cluster machines only")

    def heal(self):
        time.sleep(max(0.0, self.OFF_S - (time.monotonic() - self.lost_at)))
        machines.wait_off(self.victim)
        log(f"{self.name}: starting {self.victim} again after {time.monotonic() - self.lost_at:.0f}s off")
        machines.start(self.victim)
        booted = time.monotonic()
        until(f"{self.victim} back in service", self.back, 180)
        print(f"chaos {self.name}: back_s={time.monotonic() - booted:.1f} (from its boot to every check below "
              "passing) role=replica", flush=True)

    def back(self):
        t, v = self.t, self.victim
        if not reboot.units_active(t, v, timeout=120) or not reboot.replica_in_sync(t, v):
            return False
        consul, nomad = t.consul(avoid=[v]), t.nomad(avoid=[v])
        if not any(m["Name"] == v and m["Status"] == 1 for m in consul.get("/v1/agent/members")):
            return False
        if v in t.servers and len(consul.get("/v1/status/peers")) != len(t.servers):
            return False
        if v in t.servers and sum(m["Status"] == "alive" for m in nomad.get("/v1/agent/members")["Members"]) != \
                len(t.servers):
            return False
        jobs_there = {a["JobID"] for a in nomad.get("/v1/allocations")
                      if a["NodeName"] == v and a["ClientStatus"] == "running"}
        if not {"traefik", "web"} <= jobs_there:
            return False
        return subprocess.run([str(ROOT / "scripts/status"), "--inventory", str(t.inventory), "--interval", "0.5"],
                              capture_output=True).returncode == 0


class RollingReboot(Scenario):
    """Every host rebooted, one at a time, as an operator does for a kernel
    update (counterops/reboot.py: each out of rotation, drained, rebooted,
    back), under load through the hosts in rotation: no failed request."""

    def prepare(self):
        self.rotation = os.path.join(tempfile.mkdtemp(prefix="counter-rotation-"), "out")

    def fault(self):
        for host in reboot.order(self.t, list(self.t.hosts)):
            reboot.reboot(self.t, host, self.rotation)

    def cleanup(self):
        shutil.rmtree(os.path.dirname(self.rotation), ignore_errors=True)


class RotateCerts(RollingReboot):
    """Every certificate made anew (rotate-certs), or every CA too
    (rotate-ca: three rolls, the old and new CAs trusted meanwhile), as
    `scripts/deploy rotate-certs` does it (counterops/rotate.py: each host out
    of rotation, its new files installed and its units restarted, back),
    under load through the hosts in rotation: no failed request."""

    def fault(self):
        rotate.rotate(self.t, ca=self.name == "rotate-ca", rotation=self.rotation)


class Partition(Scenario):
    """Cut the primary's test machine off the bridge, then heal it."""
    role = "the primary's machine"

    def prepare(self):
        self.victim = self.t.host_of(primary_addr(self.t))
        self.avoid = [self.victim]

    def fault(self):
        self.veth = link(self.victim)
        if not self.veth:
            raise SystemExit(f"error: partition cuts a test machine's link (ctr-{self.victim}) on this host: "
                             "scripts/cluster machines only")
        log(f"partition: cutting {self.victim} ({self.role}) off the network")
        set_link(self.veth, "down")

    def heal(self):
        time.sleep(5)
        log(f"partition: healing {self.victim}")
        set_link(self.veth, "up")

    def cleanup(self):
        if getattr(self, "veth", None):
            set_link(self.veth, "up")  # whatever happened, the link comes back


class PartitionServer(Partition):
    """The same for a server machine that is not the primary's (the Consul leader's when it can)."""
    role = "a Consul and Nomad server, not the primary's machine"

    def prepare(self):
        p = self.t.host_of(primary_addr(self.t))
        leader = leader_host(self.t, "consul")
        self.victim = leader if leader != p else next(s for s in self.t.servers if s != p)
        self.avoid = [self.victim]


class RollingDeploy(Scenario):
    """Submit web and web-inc again with a new release: every allocation is
    replaced, one at a time, with the variables the jobs run with now."""

    def fault(self):
        release = f"chaos-{int(time.time())}"
        log(f"rolling-deploy: web and web-inc again with release={release}")
        jobs.redeploy(self.t, _args(set=[f"release={release}"], jobs=["web", "web-inc"], detach=True, timeout=240))

    def heal(self):
        for job in ("web", "web-inc"):
            until(f"the {job} deployment to finish", lambda job=job: (self.t.nomad(avoid=self.api_avoid).get(
                f"/v1/job/{job}/deployment") or {}).get("Status") == "successful", 180)


class AllocKill(Scenario):
    """kill -9 one web and one web-inc process."""

    def fault(self):
        for svc in ("web", "web-inc"):
            host = next(a["NodeName"] for a in self.t.nomad().get(f"/v1/job/{svc}/allocations")
                        if a["ClientStatus"] == "running")
            log(f"alloc-kill: kill -9 {svc} on {host}")
            self.t.ssh(host, f"pkill -KILL -x {svc}")


class AgentRestart(Scenario):
    """Restart the Consul and Nomad agents of one host."""

    def fault(self):
        self.victim = list(self.t.hosts)[1]
        log(f"agent-restart: restarting consul and nomad on {self.victim}")
        self.t.ssh(self.victim, "systemctl restart consul nomad")


class AgentKill(Scenario):
    """kill -9 an agent (consul or nomad) of the Raft leader's host, or the
    Consul agent on the Redis primary's host, held down AGENT_DOWN_S, then
    started again; -mid-deploy: right after a rolling deploy starts, which
    must finish by itself."""

    def __init__(self, t, name):
        super().__init__(t, name)
        self.agent = name.split("-")[0]
        self.mid_deploy = name.endswith("-mid-deploy")

    def prepare(self):
        self.victim = (leader_host(self.t, self.agent) if "-leader-" in self.name
                       else self.t.host_of(primary_addr(self.t)))
        # The runner's own API calls go to another server than the victim's.
        self.api_avoid = [self.victim]

    def fault(self):
        if self.mid_deploy:
            RollingDeploy.fault(self)
        log(f"{self.agent} kill: kill -9 {self.agent} on {self.victim}, held down {AGENT_DOWN_S}s")
        self.t.ssh(self.victim, f"systemctl kill -s KILL {self.agent}; systemctl stop {self.agent}")
        self.killed_at = time.monotonic()

    def heal(self):
        time.sleep(max(0.0, AGENT_DOWN_S - (time.monotonic() - self.killed_at)))
        log(f"{self.agent} kill: starting {self.agent} on {self.victim} again")
        self.t.ssh(self.victim, f"systemctl start {self.agent}")
        if self.mid_deploy:
            RollingDeploy.heal(self)


def _args(**kw):
    return types.SimpleNamespace(**kw)


SCENARIOS = {"primary-kill": PrimaryKill, "machine-loss": MachineLoss, "replica-return": MachineReturn,
             "primary-return": MachineReturn, "server-return": MachineReturn, "rolling-reboot": RollingReboot,
             "rotate-certs": RotateCerts, "rotate-ca": RotateCerts, "partition": Partition,
             "partition-server": PartitionServer, "rolling-deploy": RollingDeploy, "alloc-kill": AllocKill,
             "agent-restart": AgentRestart}
for _agent in ("consul-leader-kill", "nomad-leader-kill", "consul-agent-primary"):
    SCENARIOS[_agent] = AgentKill
    SCENARIOS[_agent + "-mid-deploy"] = AgentKill
# `all`, in this order: machine-loss and partition leave the cluster changed.
ALL = ["primary-kill", "rolling-deploy", "alloc-kill", "agent-restart", "partition", "machine-loss"]
# soak draws from the faults that heal themselves.
SOAK = ["primary-kill", "rolling-deploy", "alloc-kill", "agent-restart"]


def make(t, name):
    cls = SCENARIOS.get(name)
    if cls is None:
        raise SystemExit(f"error: unknown scenario '{name}' (expected one of {', '.join(SCENARIOS)})")
    return cls(t, name)


def draw(t):
    return random.choice(SOAK + (["partition"] if link(list(t.hosts)[0]) else []))

