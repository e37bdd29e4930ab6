"""Median per block shape (repeated shapes pooled) of the base_*.txt / new_*.txt files ab.sh wrote."""
import sys, glob, re, statistics, collections
O = sys.argv[1]
res = collections.defaultdict(lambda: collections.defaultdict(list))
for t in ("base", "new"):
    for f in sorted(glob.glob(f"{O}/{t}_*.txt")):
        for line in open(f):
            m = re.match(r"(.*px)\s+([\d.]+) ms.*?([\d.]+) GFLOP/s", line)
            if m: res[m.group(1)][t].append(float(m.group(2)))
            m = re.match(r"sum ([\d.]+) ms", line)
            if m: res["sum"][t].append(float(m.group(1)))
print(f"{'block':34s} {'base ms':>8s} {'new ms':>8s} {'new/base':>8s}  (medians of {len(res['sum']['base'])}/{len(res['sum']['new'])} runs)")
for k, v in res.items():
    b, n = statistics.median(v["base"]), statistics.median(v["new"])
    print(f"{k:34s} {b:8.3f} {n:8.3f} {n/b:8.2f}")
