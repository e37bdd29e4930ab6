// Calling an effkernels op through the dispatcher from C++ (so the kernel of the tensors' device runs).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

namespace effkernels {

// Look the op up once per call site: `static const auto f = op_handle<Sig>("effkernels::name");`.
template <typename Sig>
c10::TypedOperatorHandle<Sig> op_handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

}  // namespace effkernels
