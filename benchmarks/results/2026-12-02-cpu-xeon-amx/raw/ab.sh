# usage: ab.sh OLD NEW batch dtype pairs
for i in $(seq $5); do
  a=$(python $(dirname $0)/../../2026-12-02-cpu-xeon-bf16/raw/ab_one.py $1 $3 $4); b=$(python $(dirname $0)/../../2026-12-02-cpu-xeon-bf16/raw/ab_one.py $2 $3 $4)
  echo "old $a new $b ratio $(python -c "print(round($b/$a,3))")"
done
