"""The chaos runner's judge: from the load's results and the counts before and
after, computes lost increments and prints the one-line verdict.

Every acknowledged increment returned the value the counter reached with it,
and values are handed out once each. So, with I the count before the load and
F the count after recovery, every acknowledged value must be distinct and lie
in (I, F]. An increment lost in a failover shows up either as a value above F
or as a value handed out twice (the counter went back and counted up again):
  lost = acknowledged - |distinct acknowledged values in (I, F]|
"""


def verdict(scenario, load, initial, final, recovery_s, probes=0):
    """probes: increments the runner sent itself (its recovery checks)."""
    acked = load["acked"]
    kept = {v for v in acked if initial < v <= final}
    lost = len(acked) - len(kept)
    attempted = load["attempted_inc"] + probes
    problems = []
    if lost:
        problems.append(f"{lost} acknowledged increment(s) lost")
    if final - initial > attempted:
        problems.append(f"final count grew by {final - initial}, more than the {attempted} attempted")
    line = (f"chaos {scenario}: acked={len(acked)} attempted={attempted} final={final} lost={lost} "
            f"get_errors={load['get_errors']} inc_errors={load['inc_errors']} recovery_s={recovery_s:.1f}")
    # The load's own measure of the outages (absent from older results).
    if "write_gap_s" in load:
        line += f" write_gap_s={load['write_gap_s']:.1f} read_gap_s={load['read_gap_s']:.1f}"
    if "get_retried" in load:
        line += f" get_retried={load['get_retried']}"
    return line, problems
