#!/bin/bash
# usage: ab.sh BASE_TREE NEW_TREE ROUNDS OUTDIR: block_rates.py (../2026-11-30-cpu-batch1/) from each tree's
# build in alternating processes, ROUNDS times; summarize with `python summ.py OUTDIR`.
B=$1; N=$2; R=$3; O=$4; mkdir -p $O
S=$(cd "$(dirname "$0")" && pwd)/../2026-11-30-cpu-batch1/block_rates.py
for r in $(seq 1 $R); do
  for t in base new; do
    d=$B; [ $t = new ] && d=$N
    (cd $d && echo "# $t round $r $(date -u +%T) $(uptime)"; PYTHONPATH=$d python $S) > $O/${t}_$r.txt 2>&1
  done
done
