// parallel_tasks_trace: which intra-op thread ran each task of parallel_tasks (parallel.h), how often and in
// which order, the tasks taking a set time and one of them longer. A diagnostic for the scheduler's tests, not a
// kernel: the kernels' results cannot show whether a steal happened, only that no task was lost or run twice.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "../common.h"
#include "parallel.h"

namespace effkernels::cpu {
namespace {

// int64 [tasks, 3]: per task (thread number, times run, start order 0..tasks-1). Each task sleeps task_us
// microseconds, task slow_task (none when outside [0, tasks)) slow_us instead.
at::Tensor parallel_tasks_trace(int64_t tasks, int64_t task_us, int64_t slow_task, int64_t slow_us) {
  EFFK_CHECK_ARG(tasks >= 1 && tasks <= (int64_t{1} << 20), "tasks", "expected 1..2^20 tasks, got ", tasks);
  EFFK_CHECK_ARG(task_us >= 0 && task_us <= 10'000'000, "task_us", "expected 0..10^7 microseconds, got ", task_us);
  EFFK_CHECK_ARG(slow_us >= 0 && slow_us <= 10'000'000, "slow_us", "expected 0..10^7 microseconds, got ", slow_us);
  at::Tensor trace = at::zeros({tasks, 3}, at::kLong);
  int64_t* t = trace.data_ptr<int64_t>();
  std::atomic<int64_t> started{0};
  parallel_tasks(tasks, [&](auto&& next) {
    for (int64_t u; (u = next()) >= 0;) {
      t[3 * u] = at::get_thread_num();
      t[3 * u + 2] = started.fetch_add(1);
      __atomic_fetch_add(&t[3 * u + 1], 1, __ATOMIC_RELAXED);
      std::this_thread::sleep_for(std::chrono::microseconds(u == slow_task ? slow_us : task_us));
    }
  });
  return trace;
}

}  // namespace

// No tensor argument, so no dispatch key: the one kernel for every key.
TORCH_LIBRARY_IMPL(effkernels, CompositeExplicitAutograd, m) { m.impl("parallel_tasks_trace", &parallel_tasks_trace); }

}  // namespace effkernels::cpu
