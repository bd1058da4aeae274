"""Where a training step's time goes, and what a validation costs beside it. Prints JSON.

Builds the preset's session on the bench corpus as ``trainer train`` builds it (model, loss,
optimiser, scaler; batches as training draws them) and times the trainer's own
``train_step``: it runs ``--warmup`` steps, then times ``--steps`` steps phase by phase (forward,
loss, backward, clip + optimiser) and runs the same batches again under ``torch.profiler`` for the
operators that take the time (self CPU time per step; where the profiler counts floating-point
operations, the rate they ran at, which tells arithmetic from overhead). Then one validation as
training runs it (teacher-forced batches plus ``fr_utterances`` free-running sentences), timed whole, and
its share of a trial's wall time at a validation interval (``--val-interval``, the demo's 25).
On CUDA the step runs as training runs it: under autocast, with TF32 and, for float16, a
GradScaler.

With ``--ab cells`` (CPU) it also times ``--steps`` batches twice each,
the decoder loop as it ran before a change and as it runs now, alternated in this one process
so that both see the same batches and machine state, and reports both medians and their
ratio: ``cells``, the ``nn.LSTMCell`` modules against the per-pass-gradient cells
(trainer/model/recurrent.py). Appends to bench/results.jsonl.

    python bench/profile_step.py [--preset tiny] [--steps 5] [--warmup 2] [--utterances 300]
                                 [--val-interval 25] [--threads N] [--device cpu|cuda]
                                 [--batch-size N] [--at-step N] [--ab cells]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from harness.common import ensure_corpus, output_arguments
from harness.runner import Bench
from sections.profile_step import ProfileRecord

from trainer.presets import PRESETS

TOP_OPS = 15


def ab_variants(decoder: Any) -> dict[str, Callable[[], None]]:
    """Return {variant: install it} for ``--ab cells``: the way the code ran before, then as it runs now."""
    from trainer.model.recurrent import LSTMCellWeights

    def install(cells: Callable[[Any], tuple[Any, Any]]) -> Callable[[], None]:
        def apply() -> None:
            decoder.__dict__["_cells"] = cells  # an instance attribute over the method: this object only
        return apply

    return {"modules": install(lambda device: (decoder.attention_rnn, decoder.decoder_rnn)),
            "per_pass": install(lambda device: (LSTMCellWeights(decoder.attention_rnn),
                                                LSTMCellWeights(decoder.decoder_rnn)))}


def time_ab(decoder: Any, name: str, one_step: Callable[..., int], draw: Callable[[], list[int]], first_step: int,
            steps: int) -> dict[str, Any]:
    """Return the median step of each ``--ab`` variant; both run every drawn batch, in alternating order."""
    variants = ab_variants(decoder)
    seconds: dict[str, list[float]] = {variant: [] for variant in variants}
    for k in range(steps):
        ids = draw()
        for variant in (list(variants) if k % 2 == 0 else list(variants)[::-1]):
            variants[variant]()
            phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
            one_step(first_step + k, phases, ids)
            seconds[variant].append(sum(values[0] for values in phases.values()))
    decoder.__dict__.pop("_cells", None)  # the class's method again: the model as it runs now
    medians = {variant: statistics.median(values) for variant, values in seconds.items()}
    before, after = medians
    paired = statistics.median(b / a for b, a in zip(seconds[before], seconds[after], strict=True))
    return {"compared": name, "steps_each": steps, **{f"{v}_step_s": round(m, 4) for v, m in medians.items()},
            "speedup": round(medians[before] / medians[after], 3),
            "paired_speedup": round(paired, 3)}  # the median of each batch's own ratio: robust to slow batches


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="tiny", choices=PRESETS)
    parser.add_argument("--steps", type=int, default=5, help="steps timed, and again profiled (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="steps not counted (default 2)")
    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--val-interval", type=int, default=25, help="steps between validations (default 25)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the preset's torch_threads, 0 there meaning torch's default)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--at-step", type=int, default=1,
                        help="run the schedules (teacher forcing, loss weights) as from this training step (default 1)")
    parser.add_argument("--ab", choices=["cells"], default=None,
                        help="(CPU) also time two ways of the decoder loop against each other (see above)")
    output_arguments(parser)


PHASES = ("forward", "loss", "backward", "optimiser")
_PHASE_OF_MARK = {"forward": "forward", "loss": "loss", "backward": "backward", "update": "optimiser"}


@dataclass
class StepUnderTest:
    """The training step the bench times: the trainer's own session and ``train_step``, and the batches it draws."""

    session: Any
    batches: Iterator[list[int]]
    one_step: Callable[..., int]  # (step, phases or None, batch ids or None) -> mel frames trained
    sync: Callable[[], None]

    @property
    def model(self) -> Any:
        return self.session.model


def build_step(args: argparse.Namespace) -> StepUnderTest:
    """Return the preset's session on the bench corpus (as ``trainer train`` builds it: model, loss, optimiser,
    scaler, schedules' state) and the step that times the phases of ``trainer.training.loop.train_step``.

    One batch per step (``grad_accum_steps`` 1), so that each phase is timed once per batch.
    """
    import torch

    from trainer.config import preset
    from trainer.data.batches import bucketed_batches, collate
    from trainer.training.loop import train_step
    from trainer.training.session import build_session
    from trainer.training.state import step_hparams

    corpus = ensure_corpus(args.workdir, args.utterances)
    config = preset(args.preset).replace(device=args.device, fr_asr="off", grad_accum_steps=1)
    if args.threads is not None:
        config = config.replace(torch_threads=args.threads)
    if args.batch_size is not None:
        config = config.replace(batch_size=args.batch_size)
    session = build_session(config, corpus, os.path.join(args.workdir, "profile_run"))
    train_set, device = session.train_set, session.device
    lengths = train_set.frame_lengths()
    batches = iter([batch for epoch in range(100)
                    for batch in bucketed_batches(lengths, config.batch_size, config.seed, epoch)])

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def one_step(step: int, phases: dict[str, list[float]] | None, ids: list[int] | None = None) -> int:
        chosen = next(batches) if ids is None else ids
        batch = collate([train_set[i] for i in chosen], config.model.reduction_factor).to(device)
        hp = step_hparams(config, args.at_step - 1 + step, session.state)  # schedules as at training step at_step + ...
        marks = [time.perf_counter()]

        def mark(phase: str) -> None:
            sync()
            marks.append(time.perf_counter())
            if phases is not None:
                phases[_PHASE_OF_MARK[phase]].append(marks[-1] - marks[-2])

        return train_step(session, lambda: batch, hp, mark).frames

    return StepUnderTest(session, batches, one_step, sync)


def time_and_profile(args: argparse.Namespace, step: StepUnderTest) -> dict[str, Any]:
    """Warm up, time ``--steps`` steps phase by phase, then profile the same batches; return the phases, the frames,
    the top operators, the counted arithmetic and the profiler's total self time (µs)."""
    from torch.profiler import ProfilerActivity, profile

    one_step, device = step.one_step, step.session.device
    step.model.train()
    for number in range(1, args.warmup + 1):
        one_step(number, None)
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    # The profiler sees the batches just timed: the operator table then adds up to the phases
    # (other batches differ in length, and one longer than any before also pays for new memory).
    drawn = [next(step.batches) for _ in range(args.steps)]
    frames = [one_step(args.warmup + k, phases, ids) for k, ids in enumerate(drawn, start=1)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, with_flops=True) as prof:
        for k, ids in enumerate(drawn, start=1):
            one_step(args.warmup + args.steps + k, None, ids)
    averages = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_self = sum(e.self_cpu_time_total for e in averages) or 1.0
    # Floating-point operations the profiler counts (matrix products and convolutions) over their
    # own time: near the core's peak an operator is doing arithmetic, far below it, paying overhead.
    ops = [{"op": e.key, "self_cpu_ms_per_step": round(e.self_cpu_time_total / 1000 / args.steps, 2),
            "share": round(e.self_cpu_time_total / total_self, 4), "calls_per_step": round(e.count / args.steps, 1),
            **({"gflop_per_s": round(e.flops / e.self_cpu_time_total / 1e3, 1)} if e.flops and device.type == "cpu"
               else {})}
           for e in averages[:TOP_OPS]]
    counted = [e for e in averages if e.flops]
    arithmetic = {"gflop_per_step": round(sum(e.flops for e in counted) / 1e9 / args.steps, 2),
                  "share_of_self_time": round(sum(e.self_cpu_time_total for e in counted) / total_self, 4)}
    return {"phases": phases, "frames": frames, "ops": ops, "arithmetic": arithmetic, "total_self": total_self}


def time_validation(step: StepUnderTest) -> float:
    """Return the seconds of one validation as training runs it (teacher-forced batches, free-running sentences)."""
    from trainer.evaluation.validate import validate
    from trainer.training.state import step_hparams

    session = step.session
    weights = step_hparams(session.config, 1, session.state).loss_weights
    started = time.perf_counter()
    validate(session.model, lambda out, batch: session.criterion(out, batch, weights), session.val_set,
             session.config, session.device, session.state.frames_per_char, 0.5, None, None)
    step.sync()
    return time.perf_counter() - started


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ProfileRecord:
    if args.steps < 1 or args.warmup < 0 or args.val_interval < 1 or (args.batch_size or 1) < 1 or args.at_step < 1:
        parser.error("--steps, --val-interval, --batch-size and --at-step must be >= 1, --warmup >= 0")
    if args.ab is not None and args.device != "cpu":
        parser.error("--ab compares the CPU's decoder loop variants; run it with --device cpu")

    # The trainer sets OMP_WAIT_POLICY when imported, before torch loads OpenMP, as in every
    # training run (the policy alone changes the tiny step's time by more than 1.5x on 2 cores).
    import trainer

    _ = trainer.__version__  # torch is imported after this line, never before it
    step = build_step(args)
    timed = time_and_profile(args, step)
    ab = None
    if args.ab is not None:
        ab = time_ab(step.model.decoder, args.ab, step.one_step, lambda: next(step.batches),
                     2 * args.warmup + args.steps, args.steps)
    return record(args, step, timed, ab, time_validation(step))


def record(args: argparse.Namespace, step: StepUnderTest, timed: dict[str, Any], ab: dict[str, Any] | None,
           validation_s: float) -> ProfileRecord:
    """Return the bench's record from the timed phases, the profile, the A/B and the validation."""
    import torch

    phases, config, val_size = timed["phases"], step.session.config, len(step.session.val_set)
    step_s = [sum(values) for values in zip(*phases.values(), strict=True)]
    median_step = statistics.median(step_s)
    return {
        "preset": args.preset, "device": args.device, "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "batch_size": config.batch_size, "reduction_factor": config.model.reduction_factor,
        "at_step": args.at_step, "steps_timed": args.steps, "median_step_s": round(median_step, 3),
        "mel_frames_per_s": round(sum(timed["frames"]) / sum(step_s), 1),
        "phases_s": {name: round(statistics.median(values), 3) for name, values in phases.items()},
        "phase_shares": {name: round(statistics.median(values) / median_step, 3) for name, values in phases.items()},
        "top_ops": timed["ops"], "counted_flops": timed["arithmetic"],
        # The profiler's own per-call bookkeeping (shapes recorded for the flop counts) lengthens
        # the many small operators more than the few large ones: compare with median_step_s.
        "profiled_self_s_per_step": round(timed["total_self"] / 1e6 / args.steps, 3),
        **({"ab": ab} if ab is not None else {}),
        "validation": {"seconds": round(validation_s, 2), "val_utterances": val_size,
                       "fr_utterances": min(config.fr_utterances, val_size), "interval": args.val_interval,
                       "share_of_trial": round(validation_s / (validation_s + args.val_interval * median_step), 3)},
    }


BENCH = Bench("profile_step", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
