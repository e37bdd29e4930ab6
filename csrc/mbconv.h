// mbconv_forward's own argument checks (each step's op checks the rest), shared by the generic block
// (mbconv.cpp, CUDA) and the CPU block kernels (cpu/mbconv_block.cpp).
#pragma once

#include <torch/types.h>

namespace effkernels {

// Both or neither expand tensors, all four or no SE tensors, and a residual only where the output has
// x's shape (c_out output channels of out_h x out_w).
void check_mbconv_args(const at::Tensor& x, const std::optional<at::Tensor>& expand_w,
                       const std::optional<at::Tensor>& expand_b, const std::optional<at::Tensor>& se_w1,
                       const std::optional<at::Tensor>& se_b1, const std::optional<at::Tensor>& se_w2,
                       const std::optional<at::Tensor>& se_b2, int64_t c_out, bool residual, int64_t out_h,
                       int64_t out_w);

}  // namespace effkernels
