# usage: ab_processes.sh A_TREE B_TREE THREADS REPS SECONDS [BATCH]: B0 forwards in alternating processes, one tree each (its own _C.so)
A=$1; B=$2; T=$3; N=$4; S=$5; NB=${6:-1}
ra=""; rb=""
for i in $(seq $N); do
  if [ $((i % 2)) = 1 ]; then a=$(python "$(dirname "$0")"/ab_whole.py $A $T $S $NB 2>/dev/null); b=$(python "$(dirname "$0")"/ab_whole.py $B $T $S $NB 2>/dev/null)
  else b=$(python "$(dirname "$0")"/ab_whole.py $B $T $S $NB 2>/dev/null); a=$(python "$(dirname "$0")"/ab_whole.py $A $T $S $NB 2>/dev/null); fi
  ra="$ra $a"; rb="$rb $b"; echo "rep $i: A $a B $b"
done
python -c "
import statistics as st; a=[float(v) for v in '$ra'.split()]; b=[float(v) for v in '$rb'.split()]
print('A median %.2f  B median %.2f  B/A %.3f  per-rep B/A' % (st.median(a), st.median(b), st.median(b)/st.median(a)), [round(y/x,3) for x,y in zip(a,b)])"
