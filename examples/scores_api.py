"""DD-Ranking's scores and the storage bits of a small reduced set, with the Python API.

A few minutes on a laptop CPU with the bundled mnist-5k digits (the whole-data networks are
trained once and cached in $SIMPLEBITS_CACHE, default ~/.cache/simplebits):

    python examples/scores_api.py
"""

import simplebits as sb
from simplebits.density import storage_bits
from simplebits.train import ranking_scores

train = sb.load_dataset("mnist-5k:train")
test = sb.load_dataset("mnist-5k:test")

# the reduced set to rate: the first 2 images of every class
ordered = train.class_ordered()
keep = [i for c in range(10) for i in (ordered.labels == c).nonzero().flatten()[:2].tolist()]
subset = ordered.subset(keep).with_meta(name="first two per class")

# a CPU-sized protocol: quick with 100 steps; soft labels from the cached whole-data network
proto = sb.get_protocol("quick").with_overrides(max_steps=100)
memo: dict = {}  # hard and soft scores share their hard-label and random-real evaluations
for labels in ("hard", "kl"):
    rep = ranking_scores(subset, train, test, protocol=proto, labels=labels, temperature=1.0, seeds=2, memo=memo)
    sc = rep.scores()
    print(f"{labels:>4} labels: " + ", ".join(f"{k.upper()} {v['mean']:.2f} ± {v['std']:.2f}" for k, v in sc.items()))

st = storage_bits(subset)
print(f"storage: {st['png_bits']:,.0f} bits of PNG + {st['labels']['bits']:.0f} bits of labels "
      f"= {st['total_bits']:,.0f} bits ({st['flow_bits']:,.0f} bits as flow code length)")
