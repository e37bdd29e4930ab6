#!/bin/bash
# Which C++ exceptions crash on this GPU machine? On the H200 (2026-11-27) the first TORCH_CHECK error
# raised in the process (test_error_messages[cuda]) died with SIGSEGV; the CPU case had not run in that
# process, so it is not known whether every C++ throw crashes there (an unwinder / libgcc mismatch, cf.
# pytorch#117645) or only ours from CUDA host code. Each case below runs in its own process and prints
# its exit code (139 = SIGSEGV). Run from the repo root after the editable install (gpu_check.sh does).
so=$(python -c "import effkernels._C as m; print(m.__file__)")
echo "so=$so"; readelf -lW "$so" | grep -E "GNU_EH_FRAME"; ldd "$so" | grep -E "gcc_s|stdc\+\+|libc\.so"
for c in gcc g++; do /opt/gcc/bin/$c --version 2>/dev/null | head -1; done; ld --version | head -1
# a wrapper script around the compiler: what it adds (on the H200 machine, 2026-11-28: -static-libstdc++?)
for c in /opt/gcc/bin/g++ "$(command -v g++)"; do [ -f "$c" ] && grep -Iq . "$c" && { echo "--- $c"; head -c 1500 "$c"; echo; }; done
echo "private C++ runtime in _C.so (defined __cxa_throw): $(readelf -sW "$so" | awk '$8 == "__cxa_throw" && $7 != "UND"' | wc -l)"
python - <<'P'
import torch, re
print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())
import ctypes; ctypes.CDLL("libgcc_s.so.1")
print(sorted({l.split()[-1] for l in open("/proc/self/maps") if re.search(r"libgcc_s|libstdc\+\+", l)}))
P
run() { echo "== $1"; timeout 120 python -X faulthandler -c "
import torch, effkernels
from effkernels import _ext
ops = torch.ops.effkernels
def ek(dev):
    x = torch.randn(8, 9, 9, device=dev); w = torch.randn(8, 1, 3, 3, device=dev); b = torch.randn(8, device=dev)
    ops.dwconv_bn_act(x, w, b, 1, 1, 1, 9, 9, 3, False)
def warm():  # what the earlier -k cuda tests did: our kernels + cuBLAS
    a = torch.randn(64, 64, device='cuda'); (a @ a).sum().item()
    x = torch.randn(2, 8, 9, 9, device='cuda'); ops.dwconv_bn_act(x, torch.randn(8,1,3,3,device='cuda'), torch.randn(8,device='cuda'), 1,1,1,9,9,3,False)
    torch.cuda.synchronize()
try:
    $2
except RuntimeError as e:
    print('raised OK:', str(e).splitlines()[0][:70])
" 2>&1 | tail -15; echo "rc=${PIPESTATUS[0]}"; }
run "A torch CPU error"               "torch.zeros(2).view(3)"
run "B torch CUDA error"              "torch.cuda.init(); torch.zeros(2, device='cuda').view(3)"
run "C effkernels CPU error"          "ek('cpu')"
run "D effkernels CUDA error (fresh)" "torch.cuda.init(); ek('cuda')"
run "E CUDA error after kernels+mm"   "warm(); ek('cuda')"
run "F CPU error after kernels+mm"    "warm(); ek('cpu')"
