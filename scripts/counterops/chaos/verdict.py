"""The chaos runner's judge: from the load's results and the counts before and
after, computes lost increments and prints the one-line verdict.

Every acknowledged increment returned the value the counter reached with it,
and values are handed out once each. So, with I the count before the load and
F the count after recovery, every acknowledged value must be distinct and lie
in (I, F]. An increment lost in a failover shows up either as a value above F
or as a value handed out twice (the counter went back and counted up again):
  lost = acknowledged - |distinct acknowledged values in (I, F]|
"""


def verdict(scenario, load, initial, final, fault_step_s, probes=0):
    """(the one-line verdict, the broken invariants). The line leads with what
    users saw: the longest time without a successful write and without a
    successful read (measured by the load itself), the requests that failed,
    and the increments lost; then the details, and fault_step_s, the fault's
    own step as the runner timed it (the fault, then its probe increments
    until one was acknowledged). probes: increments the runner sent itself."""
    acked = load["acked"]
    kept = {v for v in acked if initial < v <= final}
    lost = len(acked) - len(kept)
    attempted = load["attempted_inc"] + probes
    problems = []
    if lost:
        problems.append(f"{lost} acknowledged increment(s) lost")
    if final - initial > attempted:
        problems.append(f"final count grew by {final - initial}, more than the {attempted} attempted")
    line = (f"chaos {scenario}: write_gap_s={load['write_gap_s']:.1f} read_gap_s={load['read_gap_s']:.1f} "
            f"failed={load['get_errors'] + load['inc_errors']} lost={lost} | acked={len(acked)} attempted={attempted} "
            f"final={final} get_errors={load['get_errors']} inc_errors={load['inc_errors']} "
            f"get_retried={load.get('get_retried', 0)} fault_step_s={fault_step_s:.1f}")
    return line, problems
