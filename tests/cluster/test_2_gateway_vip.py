"""One gateway address: keepalived holds the inventory's counter_gateway_vip
on exactly one machine whose Traefik answers; when that machine gives it up,
another takes it within seconds, clients of that one address are served
again, and the machine that comes back does not take it back."""

import time

from cluster import Cluster, eventually, http, tls_context


def gateway_vip():
    vip = Cluster().gateway_vip
    assert vip, "the test machines' inventory sets counter_gateway_vip"
    return vip


def holders(cluster, vip):
    return [h for h in cluster.hosts
            if f" {vip}/" in cluster.ssh(h, "ip -4 -o addr show", check=False).stdout]


def test_exactly_one_machine_holds_the_gateway_address_and_serves_on_it(cluster):
    vip = gateway_vip()
    eventually(lambda: len(holders(cluster, vip)) == 1, 30, f"exactly one machine holding {vip}")
    status, body = http(f"http://{vip}:8080/")
    assert status == 200 and body.strip().isdigit(), (status, body)
    # HTTPS on it verifies: every gateway certificate names the address.
    status, body = http(f"https://{vip}:8443/", context=tls_context())
    assert status == 200 and body.strip().isdigit(), (status, body)


def test_the_address_moves_when_its_holder_gives_it_up_and_is_not_taken_back(cluster):
    vip = gateway_vip()
    eventually(lambda: len(holders(cluster, vip)) == 1, 30, f"exactly one machine holding {vip}")
    old = holders(cluster, vip)[0]
    try:
        cluster.ssh(old, "systemctl stop keepalived")
        stopped = time.monotonic()
        eventually(lambda: len(holders(cluster, vip)) == 1 and holders(cluster, vip)[0] != old, 15,
                   f"another machine taking {vip} from {old}")
        new = holders(cluster, vip)[0]

        def serves():
            status, body = http(f"http://{vip}:8080/", timeout=2)
            return status == 200 and body.strip().isdigit()
        eventually(serves, 15, f"{vip} answering from {new}")
        moved_s = time.monotonic() - stopped
        print(f"gateway address moved {old} -> {new}, answering after {moved_s:.1f}s")
        assert moved_s < 10, f"{vip} answered again only after {moved_s:.1f}s"
    finally:
        cluster.ssh(old, "systemctl start keepalived")
    # nopreempt: the first holder is back and healthy, and leaves it where it is.
    time.sleep(5)
    assert holders(cluster, vip) == [new]
