"""Ray scenarios for tests/test_ray.py, run inside a loopback-only network namespace (the
test starts this script under `unshare -n`): Ray probes outside addresses and binds every
interface when it starts.

    python ray_harness.py SCENARIO WEIGHTS DATA WORK OUT.json
    python ray_harness.py head CPUS

SCENARIO: cluster (a head and a worker node on loopback, `ray.cluster_utils.Cluster`), or
cluster-remove-node (the same, the worker node removed once some outputs exist). Prints nothing;
writes {"summary": ..., "removed_after": n} to OUT.json.

head: a one-node cluster of CPUS CPUs that the tests' runs join with --ray-address (entering
this namespace with nsenter); prints "address HOST:PORT", then serves until its stdin closes.
"""
import json
import os
import sys
import threading
import time

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
# token authentication on, its token in the environment (Ray would otherwise save one in ~/.ray)
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", os.urandom(16).hex())


def main(scenario, weights, data, work, out):
    # the removed node is declared dead after three missed health checks 0.5 s apart (1 s to
    # answer each), not after Ray's production default of ~15 s (the run waits that long):
    # 53 -> 45 s for cluster-remove-node on one core
    for k, v in (("period_ms", "500"), ("timeout_ms", "1000"), ("failure_threshold", "3")):
        os.environ.setdefault(f"RAY_health_check_{k}", v)
    from ray.cluster_utils import Cluster

    from clsbench.flows.run import RunOptions, run

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    removed = {}
    if scenario == "cluster-remove-node":
        dump = os.path.join(work, "result", "dumpOutput_device0")

        def remove_when_started():
            while True:
                n = len(os.listdir(dump)) if os.path.isdir(dump) else 0
                if n >= 8:
                    cluster.remove_node(worker, allow_graceful=False)
                    removed["after"] = n
                    return
                time.sleep(0.02)

        threading.Thread(target=remove_when_started, daemon=True).start()
    try:
        s = run(weights, data, RunOptions(engine="ray", ray_address=cluster.address, work_dir=work,
                                          batch_size=4, workers=2, show_progress=False))
    finally:
        cluster.shutdown()
    s = {k: v for k, v in s.items() if not k.startswith("_")}  # the in-process objects (accuracy, spec, plan)
    with open(out, "w") as f:
        json.dump({"summary": s, "removed_after": removed.get("after")}, f)


def head(cpus):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": int(cpus), "include_dashboard": False})
    try:
        cluster.wait_for_nodes()
        print("address", cluster.address, flush=True)
        sys.stdin.read()  # the test session closes it when done
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    head(*sys.argv[2:]) if sys.argv[1] == "head" else main(*sys.argv[1:])
