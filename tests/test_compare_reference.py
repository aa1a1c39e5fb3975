"""benchmarks/compare_reference.py and its step timer: sizes, summary, the split, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import compare_reference as cr
from benchmarks.step_timer import StepTimer
from lightning_modules.commands.cli import run_cli

TINY = str(Path(__file__).parent / "tiny.yaml")
CONFIGS = Path(__file__).parents[1] / "configs"


def test_summary_is_the_ratio_of_the_medians_with_the_per_pair_ratios() -> None:
    summary = cr.Summary.of([30.0, 10.0, 20.0], [10.0, 10.0, 20.0])
    assert (summary.pointdwc, summary.reference, summary.ratio) == (20.0, 10.0, 2.0)
    assert summary.pair_ratios == [3.0, 1.0, 1.0]


def test_the_result_is_the_last_samples_per_second_line() -> None:
    assert cr.parse_result("samples/s 3.5\nsomething\nsamples/s 12.25\n") == 12.25
    with pytest.raises(RuntimeError, match="no 'samples/s' line"):
        cr.parse_result("Traceback ...")


def test_reference_sizes_are_the_default_configs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_cli(cr.config_overrides([], "cpu"), run=False)
    sizes = cr.reference_sizes(cli.model, cli.datamodule)
    assert sizes["backbone"] == {"trans_dim": 128, "depth": 4, "num_heads": 4, "group_size": 16, "points_per_group": 16,
                                 "encoder_hidden": [64, 128], "qkv_bias": True}
    assert sizes["head"] == {"in_dim": 256, "out_dim": 512, "hidden_dim": 1024, "bottleneck_dim": 256,
                             "contrast_dim": 128, "nlayers": 3}
    assert sizes["data"] == {"batch_size": 32, "num_points": 1024, "global_points": 512, "global_scale": [0.5, 1.0],
                             "local_crops": 6, "local_points": 128, "local_scale": [0.1, 0.4]}
    args = cr.reference_arguments(sizes, steps=7, warmup=2, workers=2, device="cpu", raw_points=2048)
    assert " ".join(args) == (
        "--steps 7 --warmup 2 --batch-size 32 --num-workers 2 --device cpu --raw-points 2048 --num-points 1024 "
        "--global-points 512 --global-scale 0.5 1.0 --local-crops 6 --local-points 128 --local-scale 0.1 0.4"
    )


def test_a_backbone_other_than_the_vit_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cli = run_cli(cr.config_overrides([str(CONFIGS / "pointnet.yaml")], "cpu"), run=False)
    with pytest.raises(ValueError, match="reference is a Point-MAE transformer.*backbones.pointnet.PointNet"):
        cr.reference_sizes(cli.model, cli.datamodule)


def test_step_timer_splits_each_step_into_loader_wait_crops_and_compute(monkeypatch) -> None:
    """Three steps after one warm-up step, with hand-set clocks: each step 10 s = 2 wait + 1 crops + 7 compute."""
    class Data:
        def on_after_batch_transfer(self, batch, idx):
            clock.append(clock[-1] + 1.0)  # the crops take 1 s
            return batch

    clock = [0.0]
    monkeypatch.setattr("benchmarks.step_timer.time.perf_counter", lambda: clock[-1])
    data = Data()
    timer = StepTimer(warmup=1, datamodule=data)
    for _ in range(4):
        clock.append(clock[-1] + 2.0)  # waiting for the loader
        data.on_after_batch_transfer(None, 0)
        timer.on_train_batch_start(None, None, None, 0)
        clock.append(clock[-1] + 7.0)
        timer.on_train_batch_end(None, None, None, None, 0)
    assert timer.timed_steps() == 3 and timer.seconds() == 30.0
    assert timer.samples_per_second(batch_size=6) == pytest.approx(0.6)
    assert timer.split() == pytest.approx({"loader wait": 0.2, "crops": 0.1, "compute": 0.7})


@pytest.mark.skipif(not cr.REFERENCE.is_file(), reason=f"the reference step {cr.REFERENCE} is not beside this checkout")
def test_comparison_end_to_end_on_the_tiny_config(capsys) -> None:
    cr.main(["--config", TINY, "--runs", "1", "--steps", "1", "--warmup", "1", "--ref-workers", "0"])
    out = capsys.readouterr().out
    assert "[pointdwc] pointdwc: device cpu" in out and "loader workers 0" in out
    assert "pointdwc step: loader wait" in out
    # the reference ran with its network sized to the config
    assert "[reference] reference network: PointTransformer {'trans_dim': 32, 'depth': 1" in out
    assert "'out_dim': 64" in out and "data: loader (num_workers 0)" in out
    assert "note: 1 run(s) of each side" in out
    summary = [line for line in out.splitlines() if line.startswith(("run 1", "ratio"))]
    assert len(summary) == 3, out  # run 1 pointdwc, run 1 reference, ratio
    ours, theirs = (float(line.split()[3]) for line in summary[:2])
    assert float(summary[2].split()[1]) == pytest.approx(ours / theirs, abs=0.01)
