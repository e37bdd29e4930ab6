// SE excite MLP on the CPU: gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2), fp32 [N, C].
// A direct loop per sample (the work is N x C x S multiply-adds, S <= 80 in B0-B7): at batch 1 two ATen
// addmm (MKL gemv) + two activation passes + their allocations cost more than the arithmetic.
#include <torch/library.h>

#include <vector>

#include "../se_excite.h"
#include "vec.h"

namespace effkernels::cpu {
namespace {

// sum_i w[i] * x[i] over n fp32 elements.
float dot(const float* w, const float* x, int64_t n) {
  Vec acc(0.f);
  int64_t i = 0;
  for (; i + kVec <= n; i += kVec) acc = at::vec::fmadd(Vec::loadu(w + i), Vec::loadu(x + i), acc);
  if (i < n) {
    const int m = static_cast<int>(n - i);
    acc = at::vec::fmadd(Vec::loadu(w + i, m), Vec::loadu(x + i, m), acc);
  }
  return at::vec::vec_reduce_all<float>([](Vec a, Vec b) { return a + b; }, acc);
}

// out[r] = act(scale * dot(w[r, :], x) + b[r]) for r < rows, w [rows, n] fp32 row-major: kVec rows at a time,
// the activation on a vector of them.
void rows_dot_act(const float* w, const float* x, int64_t n, const float* b, float scale, int64_t rows, int act,
                  float* out) {
  for (int64_t r0 = 0; r0 < rows; r0 += kVec) {
    const int m = static_cast<int>(std::min<int64_t>(kVec, rows - r0));
    float d[kVec] = {};
    for (int j = 0; j < m; ++j) d[j] = dot(w + (r0 + j) * n, x, n);
    act_vec(at::vec::fmadd(Vec::loadu(d), Vec(scale), Vec::loadu(b + r0, m)), act).store(out + r0, m);
  }
}

}  // namespace

at::Tensor se_excite_unchecked(const at::Tensor& sums_in, double inv_hw, const at::Tensor& w1_in,
                               const at::Tensor& b1_in, const at::Tensor& w2_in, const at::Tensor& b2_in,
                               int64_t activation, int64_t gate) {
  // f32 is free for contiguous fp32 weights (the folded model's); other dtypes are converted once per call.
  const at::Tensor sums = sums_in.contiguous(), w1 = f32(w1_in), b1 = f32(b1_in), w2 = f32(w2_in), b2 = f32(b2_in);
  const int64_t N = sums.size(0), C = sums.size(1), S = w1.size(0);
  at::Tensor out = at::empty({N, C}, sums.options());
  const float *ps = sums.const_data_ptr<float>(), *pw1 = w1.const_data_ptr<float>(), *pb1 = b1.const_data_ptr<float>(),
              *pw2 = w2.const_data_ptr<float>(), *pb2 = b2.const_data_ptr<float>();
  float* po = out.mutable_data_ptr<float>();
  // Samples in parallel, each ~2 C S flops: below ~64k flops per task the threads cost more than they save.
  at::parallel_for(0, N, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, 2 * C * S)), [&](int64_t n0, int64_t n1) {
    std::vector<float> hidden(S);
    for (int64_t n = n0; n < n1; ++n) {
      rows_dot_act(pw1, ps + n * C, C, pb1, static_cast<float>(inv_hw), S, static_cast<int>(activation), hidden.data());
      rows_dot_act(pw2, hidden.data(), S, pb2, 1.f, C, static_cast<int>(gate), po + n * C);
    }
  });
  return out;
}

namespace {

at::Tensor se_excite_cpu(const at::Tensor& sums, double inv_hw, const at::Tensor& w1, const at::Tensor& b1,
                         const at::Tensor& w2, const at::Tensor& b2, int64_t activation, int64_t gate) {
  check_se_excite_args(sums, w1, b1, w2, b2, activation, gate);
  EFFK_NO_AUTOCAST;
  check_cpu_capability();
  return se_excite_unchecked(sums, inv_hw, w1, b1, w2, b2, activation, gate);
}

}  // namespace

TORCH_LIBRARY_IMPL(effkernels, CPU, m) { m.impl("se_excite", &se_excite_cpu); }

}  // namespace effkernels::cpu
