"""The whole pipeline from Python: a config built in code, run, figures read back, report written.

    python examples/pipeline_api.py [DATASET] [OUT]      # default: digits (seconds-sized budgets), ./pipeline-example

Rerunning skips every finished stage; change a setting and pass force=True to recompute only
the stages it touches. Open OUT/report.html in a browser.
"""

import sys

import simplebits as sb

dataset = sys.argv[1] if len(sys.argv) > 1 else "digits"
out = sys.argv[2] if len(sys.argv) > 2 else "pipeline-example"
config = {
    "seed": 0,
    "data": {"dataset": dataset, "bpd_images": 200},
    "evaluate": {"protocol": "quick", "seeds": 2, "max_steps": 100},
    "condense": {"method": "dc", "ipc": [1], "lambda_sim": [0.0, 100.0], "iterations": 5},
    "prune": {"source": "random-real", "from_ipc": 5, "targets": [1, 2], "rules": ["yoco", "random"], "runs": 1},
    "simplify": {"lambdas": [1.0, 4.0], "epochs": 1, "train_size": 500},
    "explain": {"select": "misclassified", "n": 4, "steps": 50},
}
result = sb.run(config, out=out, force=True)

for s in result.figures["condense"]["sets"]:
    acc, base = s["accuracy"], s["baseline"]
    print(f"{s['label']:22s} {100 * acc['mean']:5.1f} ± {100 * acc['std']:.1f}%  "
          f"(random real {100 * base['mean']:.1f}%)  bpd {s['bpd']:.3f}")
for r in result.figures["prune"]["rows"]:
    print(f"prune IPC {r['ipc_from']} -> {r['ipc_to']} by {r['rule']:6s} {100 * r['accuracy']['mean']:5.1f}%")
for r in result.figures["simplify"]["rows"]:
    print(f"SimpleBits λ {r['lambda_sim']:g}: bpd {r['bpd']['mean']:.3f}, retrained {100 * r['retrain']['mean']:.1f}%")
print("report:", result.report, f"({sum(result.seconds.values()):.0f}s)")
