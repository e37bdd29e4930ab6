"""The CPU kernels' scheduler, parallel_tasks (csrc/cpu/parallel.h), through its diagnostic op
parallel_tasks_trace: every task runs exactly once, each thread starts on at::parallel_for's contiguous share in
order, and a thread that runs out takes the last unstarted task of another share (a steal). The kernels' own
tests (e.g. test_cpu_mbconv_fused.py: test_task_stealing_gives_the_same_result) can only show that results do
not depend on which thread ran a task; these show that stealing happens.

_check_schedule asserts what holds in any run whatever the OS does with the threads; the tests' own asserts
need only that a woken thread starts within TASK_US x (tasks it could otherwise lose), far less than SLOW_US."""
import pytest
import torch

from helpers import backend_unavailable

pytestmark = [pytest.mark.cpu, pytest.mark.skipif(backend_unavailable("cpu") is not None,
                                                  reason=str(backend_unavailable("cpu")))]
trace = torch.ops.effkernels.parallel_tasks_trace

# Every task sleeps TASK_US, the slow one SLOW_US: long enough that a thread woken late (a loaded CI machine)
# still starts on its own share before another takes it; SLOW_US far longer than the rest of the run.
TASK_US, SLOW_US = 20_000, 400_000


@pytest.fixture
def threads():
    before = torch.get_num_threads()

    def set_threads(n):
        torch.set_num_threads(n)
        if torch.get_num_threads() != n:
            pytest.fail(f"torch.set_num_threads({n}) left {torch.get_num_threads()} threads")

    yield set_threads
    torch.set_num_threads(before)


def _check_schedule(owner, order, n_threads):
    """Share s = [s*per, (s+1)*per) of thread s: the tasks its owner ran are a prefix of it, started in index
    order; the rest (stolen, each time the share's last unstarted task) were started in reverse index order."""
    tasks = len(owner)
    per = -(-tasks // min(n_threads, tasks))
    for lo in range(0, tasks, per):
        share = range(lo, min(tasks, lo + per))
        own = [u for u in share if owner[u] == lo // per]
        stolen = [u for u in share if owner[u] != lo // per]
        assert own == list(share[:len(own)]), f"share {share}: owner ran {own}, not a prefix ({owner})"
        assert [order[u] for u in own] == sorted(order[u] for u in own), (share, order)
        assert [order[u] for u in stolen] == sorted((order[u] for u in stolen), reverse=True), (share, order)


def _run(tasks, slow_task, n_threads):
    t = trace(tasks, TASK_US, slow_task, SLOW_US)
    assert t.dtype == torch.int64 and t.shape == (tasks, 3)
    assert t[:, 1].tolist() == [1] * tasks, "a task was left out or run twice"
    assert sorted(t[:, 2].tolist()) == list(range(tasks))
    owner, order = t[:, 0].tolist(), t[:, 2].tolist()
    assert set(owner) <= set(range(n_threads)), owner
    _check_schedule(owner, order, n_threads)
    return owner, order


def test_a_thread_that_runs_out_steals_from_the_end(threads):
    """Two threads, 8 tasks: shares [0, 4) and [4, 8). Thread 0 is stuck on task 0, so thread 1 runs its share
    and then takes 3, 2, 1 (the other share's last unstarted task each time, never the running one)."""
    threads(2)
    owner, order = _run(8, 0, 2)
    assert owner == [0, 1, 1, 1, 1, 1, 1, 1], owner


def test_the_owner_steals_back_from_a_slow_thread(threads):
    """Thread 1 stuck on the first task of its share: thread 0 runs its own share, then 7, 6, 5."""
    threads(2)
    owner, order = _run(8, 4, 2)
    assert owner == [0, 0, 0, 0, 1, 0, 0, 0], owner


def test_three_threads(threads):
    """Shares [0, 3), [3, 6), [6, 9); thread 0 stuck on task 0: the other two threads run everything else."""
    threads(3)
    owner, order = _run(9, 0, 3)
    assert owner[0] == 0 and 0 not in owner[1:], owner


def test_one_thread_and_more_threads_than_tasks(threads):
    threads(1)
    owner, order = _run(5, 2, 1)
    assert owner == [0] * 5 and order == list(range(5))
    threads(6)  # more threads than tasks (and than this machine's cores): a share of one task each
    _run(3, -1, 6)


@pytest.mark.parametrize("args,arg", [((0, 0, 0, 0), "tasks"), ((4, -1, 0, 0), "task_us"),
                                      ((4, 0, 0, -1), "slow_us")])
def test_bad_arguments_name_the_argument(args, arg):
    with pytest.raises(RuntimeError, match=f"^{arg}: "):
        trace(*args)
