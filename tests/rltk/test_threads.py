"""Work on several threads of one process (rltk.policy.parallel): the same completions as one thread, in evals and
in GRPO rollouts, the same gradients in the learner; each thread with its own intra-op threads; errors and modes
carried to the caller."""

import threading

import pytest
import torch

import rltk.policy.memory as memory
from evals.generation import GenerationSettings, GenerationStats, generate
from rltk.core.errors import UserError
from rltk.learner import Learner, LossConfig, TrainBatch
from test_learner import _policy as _learner_policy  # tests/rltk: the tiny policy with a nonzero adapter
from rltk.loss import BatchTotals
from rltk.optim import OptimFields
from rltk.policy.base import LoraSettings
from rltk.policy.parallel import run_threads, thread_count
from rltk.policy.tiny import tiny_policy
from rltk.rollouts.worker import PromptRequest, RolloutWorker, SamplingConfig

PROMPTS = ["<|im_start|>user\nhi<|im_end|>\n", "<|im_start|>user\nwhat is 2 + 2?<|im_end|>\n",
           "<|im_start|>user\nname three colours<|im_end|>\n", "<|im_start|>user\n7 x 6 =<|im_end|>\n",
           "<|im_start|>user\nsay nothing at all, please<|im_end|>\n"]


def test_run_threads_returns_in_job_order_with_one_intra_op_thread_each_and_leaves_the_caller_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def job(k: int):
            def run():
                seen.append((threading.get_ident(), torch.get_num_threads(), torch.is_inference_mode_enabled()))
                return k * k
            return run

        with torch.inference_mode():
            assert run_threads([job(k) for k in range(7)], 2) == [k * k for k in range(7)]
        assert {n for _, n, _ in seen} == {1} and all(inf for *_, inf in seen)  # the caller's mode is carried over
        assert threading.get_ident() not in {t for t, _, _ in seen} and len({t for t, _, _ in seen}) <= 2
        assert torch.get_num_threads() == 2
        assert run_threads([job(3)], 2) == [9] and seen[-1][0] == threading.get_ident()  # one job: the caller runs it
    finally:
        torch.set_num_threads(before)


def test_run_threads_raises_the_first_error_and_starts_no_new_job():
    started = []

    def job(k: int):
        def run():
            started.append(k)
            if k == 1:
                raise ValueError("job 1 failed")
            return k
        return run

    with pytest.raises(ValueError, match="job 1 failed"):
        run_threads([job(k) for k in range(40)], 2)
    assert len(started) < 40


def test_thread_count_auto_is_at_most_two_on_a_cpu_and_one_on_a_gpu():
    assert thread_count(torch.device("cpu"), 3) == 3
    assert 1 <= thread_count(torch.device("cpu")) <= 2
    assert thread_count(torch.device("cuda")) == 1
    with pytest.raises(UserError, match="decode threads"):
        GenerationSettings(threads=-1)
    with pytest.raises(ValueError, match="threads"):
        SamplingConfig(threads=-1)


@pytest.mark.parametrize("samples,temperature", [(1, 0.0), (3, 1.0)])
def test_eval_generation_on_two_threads_gives_the_completions_of_one(samples, temperature):
    pol = tiny_policy()
    out, stats = {}, {}
    for threads in (1, 2):
        stats[threads] = GenerationStats()
        settings = GenerationSettings(max_new_tokens=6, n_samples=samples, temperature=temperature, batch_size=4 * samples,
                                      threads=threads)
        out[threads] = generate(pol, PROMPTS, settings, stats=stats[threads])
    assert [[c.text for c in o] for o in out[2]] == [[c.text for c in o] for o in out[1]]
    assert stats[2].tokens == stats[1].tokens and stats[2].sequences == stats[1].sequences == len(PROMPTS) * samples
    assert stats[2].prompt_tokens == stats[1].prompt_tokens


def test_rollouts_on_two_threads_give_the_groups_of_one():
    pol = tiny_policy(lora=LoraSettings(r=4))
    requests = [PromptRequest(i, {}, [{"role": "user", "content": p}]) for i, p in
                enumerate(["hi", "what is 2 + 2?", "name three colours", "7 x 6 =", "say nothing"])]
    groups = {}
    for threads in (1, 2):
        worker = RolloutWorker(None, SamplingConfig(group_size=3, max_new_tokens=6, threads=threads, batch_sequences=6),
                               policy=pol)
        groups[threads] = worker.generate(requests, seed=4)
    for a, b in zip(groups[1], groups[2]):
        assert a.index == b.index and a.completion_ids == b.completion_ids
        torch.testing.assert_close(torch.tensor(sum(a.logprobs, [])), torch.tensor(sum(b.logprobs, [])), rtol=0, atol=1e-6)
    assert len({tuple(c) for g in groups[1] for c in g.completion_ids}) > 1  # sampled, not one repeated answer


def test_the_decode_heap_threshold_goes_back_when_the_last_of_overlapping_decodes_ends(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append(value)

        def malloc_trim(self, pad):
            calls.append("trim")

    monkeypatch.setattr(memory, "_glibc", lambda: FakeLibc())
    monkeypatch.setattr(memory, "_tuned", True)
    first, second = memory.decode_heap(), memory.decode_heap()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert calls == [memory.DECODE_MMAP_THRESHOLD]  # the other decode still runs
    second.__exit__(None, None, None)
    assert calls == [memory.DECODE_MMAP_THRESHOLD, memory.TRAIN_MMAP_THRESHOLD, "trim"]


def _grpo_batch() -> TrainBatch:
    prompts, comps = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [5, 9], [7, 7]], [[20, 21, 22], [23], [24, 25], [26, 27], [30]]
    mask = torch.zeros(len(comps), 3)
    for i, c in enumerate(comps):
        mask[i, :len(c)] = 1
    return TrainBatch(prompts, comps, [1.0, -1.0, 0.5, -0.5, 0.25], [None] * 5, BatchTotals.of(mask, max_tokens=6))


def test_the_learner_on_two_threads_steps_with_the_gradients_of_one():
    learners = {t: Learner(_learner_policy(), OptimFields(lr=1e-2, micro_batch_size=1, threads=t), 10, dense_base=False)
                for t in (1, 2)}
    stats = {t: learners[t].grpo_update(_grpo_batch(), LossConfig(), 0) for t in (1, 2)}
    assert stats[1].applied == stats[2].applied == 1 and stats[1].loss == stats[2].loss
    # the micro-batches' gradients are summed in the same order; a GEMM on one intra-op thread rounds its own way
    assert stats[1].grad_norm == pytest.approx(stats[2].grad_norm, rel=1e-6) and stats[1].grad_norm > 0
    moved = 0
    for a, b, start in zip(learners[1].params, learners[2].params, _learner_policy().model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        moved += int(not torch.equal(a, start.detach())) if a.shape == start.shape else 0
    assert moved > 0


def test_a_non_finite_loss_on_a_thread_skips_the_step_and_leaves_the_parameters():
    learner = Learner(_learner_policy(), OptimFields(micro_batch_size=1, threads=2), 10, dense_base=False)
    before = [p.detach().clone() for p in learner.params]

    def loss_of(k: int) -> torch.Tensor:
        loss = sum(p.sum() for p in learner.params) * 0.0
        return loss + (float("nan") if k == 3 else 1.0)

    stats = learner.apply(range(4), loss_of, 0)
    assert stats.skipped == "non-finite loss" and stats.applied == 0
    assert all(torch.equal(a, b) for a, b in zip(before, learner.params))
    assert all(p.grad is None for p in learner.params)
