"""Evaluate a small reduced set with the Python API, next to its random-real baseline.

Runs in about a minute on a laptop CPU with the bundled mnist-5k digits:

    python examples/evaluate_api.py
"""

import tempfile
from pathlib import Path

import simplebits as sb

train = sb.load_dataset("mnist-5k:train")
test = sb.load_dataset("mnist-5k:test")

# A "condensed" set stand-in: the first 2 images of every class, written and read back in the
# condensed-set format (safetensors + JSON metadata).
first_two = train.class_ordered()
keep = [i for c in range(10) for i in (first_two.labels == c).nonzero().flatten()[:2].tolist()]
path = Path(tempfile.mkdtemp()) / "first_two.safetensors"
sb.save_condensed(path, first_two.subset(keep), method="first-k", source="mnist-5k:train")
cond = sb.load_condensed(path)

# A CPU-sized protocol: the quick protocol with 100 steps and a narrower ConvNet.
proto = sb.get_protocol("quick").with_overrides(max_steps=100, model_options={"width": 64})
report = sb.evaluate(cond, test, protocol=proto, seeds=2, baseline_from=train)
print(f"first-2-per-class: {report.summary()} %   random 2 per class: {report.baseline.summary()} %")
