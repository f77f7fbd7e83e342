"""counterops: the Python behind Counter's commands (scripts/*), one module a
concern, the way the Rust binaries share one library.

# Layout
- client     the one HTTP client of the Consul and Nomad APIs
- redis      a minimal Redis client (RESP over TCP or TLS)
- target     which deployment (the local stack or an inventory's cluster), and
             how to reach its APIs, Redis nodes, gateways and hosts
- status     scripts/status           - logs    scripts/logs
- jobs       the jobs and their variables (scripts/up, the deploy, chaos)

Run a module with the ops venv's python (scripts/lib.sh: ops_python):
    python -m counterops.status --local
The modules the hosts run (client, redis) need only the standard library.
"""
