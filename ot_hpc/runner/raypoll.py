"""The readiness poller: ``python -m ot_hpc.runner.raypoll <gcs host:port> [fast] [slow]``.

Runs on the batch node as a child of the runner (so Ray is imported in a separate
process, never into the runner). It asks the GCS for the node table every ``fast``
seconds (default 0.2) and prints one JSON line whenever the table changes::

    {"nodes": [{"ip": "10.0.0.1", "alive": true, "CPU": 48.0, "GPU": 4.0}, ...]}

After the first table with all nodes alive it keeps watching every ``slow`` seconds
(default 2) so the runner notices a node that dies during training. No srun per poll.
"""
from __future__ import annotations

import json
import socket
import sys
import time


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    address = argv[0]
    fast = float(argv[1]) if len(argv) > 1 else 0.2
    slow = float(argv[2]) if len(argv) > 2 else 2.0
    expected = int(argv[3]) if len(argv) > 3 else 0
    host, _, port = address.rpartition(":")
    while True:  # the GCS port first: GcsClient would otherwise retry for a long time
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    from ray._raylet import GcsClient

    client = GcsClient(address=address)
    last = None
    last_error = None
    while True:
        try:
            info = client.get_all_node_info(timeout=5)
        except Exception as exc:  # GCS restarting or gone: say so once, keep trying
            text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if text != last_error:
                print(json.dumps({"error": text}), flush=True)
                last_error = text
            time.sleep(fast)
            continue
        last_error = None
        nodes = []
        for node in info.values():
            resources = dict(node.resources_total)
            nodes.append({
                "ip": node.node_manager_address,
                "alive": node.state == 0,
                "CPU": resources.get("CPU", 0.0),
                "GPU": resources.get("GPU", 0.0),
                "head": bool(getattr(node, "is_head_node", False)),
            })
        nodes.sort(key=lambda n: (n["ip"], not n["alive"]))
        if nodes != last:
            print(json.dumps({"nodes": nodes}), flush=True)
            last = nodes
        alive = sum(1 for n in nodes if n["alive"])
        time.sleep(slow if expected and alive >= expected else fast)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
