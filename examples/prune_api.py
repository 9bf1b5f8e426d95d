"""Prune a condensed set to smaller sizes with YOCO and compare with random selection.

    python examples/prune_api.py SET.safetensors [TEST_SPEC]

The training dynamics are recorded once (3 runs, 100 epochs each) and reused for every size.
"""

import sys

import simplebits as sb
from simplebits.prune import DynamicsConfig

path = sys.argv[1]
test = sb.load_dataset(sys.argv[2] if len(sys.argv) > 2 else "fashion-mnist:test")
parent = sb.load_condensed(path)
dyn_file = path + ".dynamics.safetensors"
for ipc in (1, 2, 5):
    for rule in ("yoco", "random"):
        res = sb.prune(parent, ipc=ipc, rule=rule, config=DynamicsConfig(runs=3), dynamics=dyn_file)
        rep = sb.evaluate(res.images, test, protocol="quick", seeds=3)
        print(f"IPC {parent.ipc()} -> {ipc} by {rule:6s}: {rep.summary()}")
