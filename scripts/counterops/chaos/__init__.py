"""scripts/chaos: failure injection against a running cluster, judged by
what clients saw.

- load       the bounded mixed load (GET / and POST /inc) and what it saw
- verdict    lost increments and the one-line verdict, from the load and the counts
- faults     each scenario's fault and heal
- __main__   the runner: a scenario, all of them, or a soak
"""
