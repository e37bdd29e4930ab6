// Tasks over the intra-op threads with work stealing. at::parallel_for hands each thread one fixed,
// contiguous share of the range, so a region lasts as long as its slowest share: on a shared machine one
// core can run 30-40% slower than the other over a tenth of a second (20 calls of a 512x512 sgemm pinned to
// each core of the 2-core development VM in turn: per-pair ratios 0.6-1.4, equal medians).
// parallel_tasks starts each thread on the share at::parallel_for would give it (its tasks in order, so
// tasks that share data stay on one thread), and a thread that runs out takes the last task not yet
// started from another thread's share, one at a time, until none is left.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace effkernels::cpu {

// body(next) runs once per thread that takes part; next() returns a task index not handed out before, or
// -1 when every task has been handed out. Per-thread scratch lives in body, before its loop over next().
template <typename Body>
void parallel_tasks(int64_t tasks, const Body& body) {
  const int64_t T = std::min<int64_t>(at::get_num_threads(), tasks);
  if (T <= 1 || at::in_parallel_region()) {
    int64_t u = 0;
    body([&]() -> int64_t { return u < tasks ? u++ : -1; });
    return;
  }
  // Callers' tasks are rows or pixel blocks of one tensor, far fewer than a packed share's 32-bit bounds hold.
  TORCH_CHECK(tasks < (int64_t{1} << 32), "parallel_tasks: ", tasks, " tasks, more than 2^32 - 1");
  // Share s is [lo, hi), packed lo << 32 | hi in one word: its owner takes lo, others take hi - 1.
  struct alignas(64) Share {
    std::atomic<uint64_t> range;
  };
  const int64_t per = (tasks + T - 1) / T;
  std::unique_ptr<Share[]> shares(new Share[T]);
  for (int64_t s = 0; s < T; ++s) {
    const uint64_t lo = std::min(tasks, s * per), hi = std::min(tasks, (s + 1) * per);
    shares[s].range.store(lo << 32 | hi, std::memory_order_relaxed);
  }
  at::parallel_for(0, T, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      body([&]() -> int64_t {
        for (int64_t i = 0; i < T; ++i) {
          std::atomic<uint64_t>& r = shares[(s + i) % T].range;
          uint64_t v = r.load(std::memory_order_relaxed);
          for (;;) {
            const uint64_t lo = v >> 32, hi = v & 0xffffffffu;
            if (lo >= hi) break;
            const uint64_t taken = i == 0 ? (lo + 1) << 32 | hi : lo << 32 | (hi - 1);
            if (r.compare_exchange_weak(v, taken, std::memory_order_relaxed)) return static_cast<int64_t>(i == 0 ? lo : hi - 1);
          }
        }
        return -1;
      });
    }
  });
}

}  // namespace effkernels::cpu
