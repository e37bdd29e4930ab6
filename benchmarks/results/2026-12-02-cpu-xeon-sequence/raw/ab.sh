# Alternating processes, old tree first in each pair: paired ratios new / old.
# usage: ab.sh OLD NEW PAIRS BATCH fp32|bf16 [torchvision-model [RES]]
d=$(dirname $0)
for i in $(seq $3); do
  a=$(python $d/ab_model.py $1 $4 $5 $6 $7); b=$(python $d/ab_model.py $2 $4 $5 $6 $7)
  echo "old $a new $b ratio $(python -c "print(round($b/$a,3))")"
done
