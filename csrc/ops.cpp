// The effkernels op registry: every op's schema, in one place.
// Kernels register per device in csrc/cpu/<op>.cpp and csrc/cuda/<op>.cu
// (TORCH_LIBRARY_IMPL(effkernels, CPU|CUDA, m)); Python adds fake (meta) kernels in
// effkernels/ops/<op>.py so the ops trace under torch.compile.
#include <Python.h>
#include <torch/library.h>

#include "cpu/gemm.h"

TORCH_LIBRARY(effkernels, m) {
  // Depthwise k x k conv with BN folded into (weight [C,1,k,k], bias [C]) + activation.
  // Output is [N, C, out_h, out_w] in x's memory format; input rows/cols outside
  // [0, H) x [0, W) after shifting by (pad_top, pad_left) read as zero.
  // se_sums: also return fp32 [N, C] spatial sums of the activated output (else an empty tensor).
  m.def("dwconv_bn_act(Tensor x, Tensor weight, Tensor bias, int stride, int pad_top, int pad_left, "
        "int out_h, int out_w, int activation, bool se_sums) -> (Tensor, Tensor)");
  // fp32 [N, C] spatial sums of x (the SE squeeze, before dividing by H*W).
  m.def("channel_sums(Tensor x) -> Tensor");
  // SE excite MLP: gate(w2 @ act(w1 @ (sums * inv_hw) + b1) + b2) -> fp32 [N, C].
  m.def("se_excite(Tensor sums, float inv_hw, Tensor w1, Tensor b1, Tensor w2, Tensor b2, "
        "int activation, int gate) -> Tensor");
  // x * scale[n, c] (scale fp32 [N, C]); output in x's dtype and memory format.
  m.def("se_scale(Tensor x, Tensor scale) -> Tensor");
  // 1x1 conv: act(conv1x1(x * scale[n, c_in]) + bias) + residual; weight [C_out, C_in].
  m.def("pointwise_conv(Tensor x, Tensor weight, Tensor bias, int activation, Tensor? scale, "
        "Tensor? residual) -> Tensor");
  // A whole MBConv inference forward (BN folded), one call from Python.
  m.def("mbconv(Tensor x, Tensor? expand_w, Tensor? expand_b, Tensor dw_w, Tensor dw_b, "
        "int stride, int pad_top, int pad_left, int out_h, int out_w, Tensor? se_w1, Tensor? se_b1, "
        "Tensor? se_w2, Tensor? se_b2, Tensor proj_w, Tensor proj_b, bool residual, int activation, "
        "int se_activation, int se_gate) -> Tensor");
  // CPU: a 1x1-conv weight [C_out, C_in] packed for the CPU block kernels (fp32 panels, cpu/gemm.h; a bf16
  // weight on a CPU with AMX: bf16 AMX panels, cpu/amx.h), done once when the weights are folded instead of a
  // reorder per call.
  m.def("pack_pointwise_weight(Tensor weight) -> Tensor");
  // CPU: pointwise_conv with `weight` from pack_pointwise_weight (C_out = bias.shape[0]).
  m.def("pointwise_conv_packed(Tensor x, Tensor weight, Tensor bias, int activation, Tensor? scale, "
        "Tensor? residual) -> Tensor");
  // CPU: mbconv with expand_w and proj_w from pack_pointwise_weight. path: "auto" (what
  // mbconv_path says), "fused" (expand computed inside the depthwise row bands; needs expand_w) or "unfused".
  m.def("mbconv_packed(Tensor x, Tensor? expand_w, Tensor? expand_b, Tensor dw_w, Tensor dw_b, "
        "int stride, int pad_top, int pad_left, int out_h, int out_w, Tensor? se_w1, Tensor? se_b1, "
        "Tensor? se_w2, Tensor? se_b2, Tensor proj_w, Tensor proj_b, bool residual, int activation, "
        "int se_activation, int se_gate, str path=\"auto\") -> Tensor");
  // CPU: dense k x k conv (groups 1) with BN folded into (weight [C_out, C_in, kh, kw], bias [C_out]) + activation,
  // stride (height, width); padding and output size as dwconv_bn_act's. Output in x's memory format.
  m.def("conv_bn_act(Tensor x, Tensor weight, Tensor bias, int[2] stride, int pad_top, int pad_left, int out_h, "
        "int out_w, int activation) -> Tensor");
  // CPU: act(x) written over x (a dense tensor of any shape and memory format): the cpu layers' activation of
  // the dense convs they leave to ATen.
  m.def("activation_(Tensor(a!) x, int activation) -> ()");
  // CPU: the path ("fused" or "unfused") mbconv_packed's "auto" (and the CPU mbconv) takes for a block with input
  // [batch, c_in, height, width] at the current thread count. No tensor argument: it runs the same under
  // FakeTensorMode and torch.compile.
  m.def("mbconv_path(int batch, int c_in, int height, int width, int c_exp, int kernel, int stride, "
        "bool has_expand) -> str");
  // CPU diagnostic of the CPU kernels' scheduler (cpu/parallel.h: parallel_tasks): int64 [tasks, 3], per task
  // the intra-op thread that ran it, how many times, and its start order; each task sleeps task_us
  // microseconds, task slow_task slow_us. For tests.
  m.def("parallel_tasks_trace(int tasks, int task_us, int slow_task, int slow_us) -> Tensor");
}

static PyObject* built_with_cuda(PyObject*, PyObject*) {
#ifdef EFFK_WITH_CUDA
  Py_RETURN_TRUE;
#else
  Py_RETURN_FALSE;
#endif
}

// Python's fake of pack_pointwise_weight needs the panel width without running a kernel (at import, an
// AVX-512 build on an AVX2 CPU must not execute its code).
static PyObject* cpu_panel_width(PyObject*, PyObject*) { return PyLong_FromLong(effkernels::cpu::kNR); }

// ... and whether a bf16 weight gets AMX panels (cpu/amx.h: cpuid and the OS's permission, no AMX instruction).
static PyObject* cpu_amx_bf16(PyObject*, PyObject*) {
  if (effkernels::cpu::amx_bf16_usable()) Py_RETURN_TRUE;
  Py_RETURN_FALSE;
}

static PyMethodDef methods[] = {
    {"built_with_cuda", built_with_cuda, METH_NOARGS, "True when the CUDA kernels were compiled in."},
    {"cpu_panel_width", cpu_panel_width, METH_NOARGS, "Output channels per pack_pointwise_weight panel."},
    {"cpu_amx_bf16", cpu_amx_bf16, METH_NOARGS, "True when pack_pointwise_weight gives bf16 weights AMX panels."},
    {nullptr, nullptr, 0, nullptr}};

// A plain Python module so `import effkernels._C` loads the library (and runs the
// registrations above); no pybind11 needed for one flag.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module);
}
