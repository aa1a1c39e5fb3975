"""``model.compile``: torch.compile of both networks keeps training, resume and DDP exact.

Graphs are captured with the ``aot_eager`` backend (dynamo + AOTAutograd, the whole capture
and autograd path, without generating code): inductor's C++ compile of even the tiny model
took minutes on the 2-core test machine. ``true`` (inductor) is checked to be wired.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_modules.pretrain.dwc import DistillationWithContrast
from tests.helpers import fit_seeded, tiny_data, tiny_module

TINY = str(Path(__file__).parent / "tiny.yaml")


def compiled_tiny_module() -> DistillationWithContrast:
    model = tiny_module()
    model.student.compile_forward("aot_eager")
    model.teacher.compile_forward("aot_eager")
    return model


def test_compiled_fit_follows_the_weights_and_resumes_from_the_middle_of_an_epoch_exactly(tiny_modelnet, tmp_path) -> None:
    """A compiled run, and the same run resumed from its step-4 checkpoint (compiled afresh): bit-identical.

    The teacher's graph is captured at the first step and its weights then change in place
    (EMA) every step: a graph that had frozen them would make the resumed run differ.
    """
    import pytorch_lightning as pl
    from torch._dynamo.utils import counters

    class SaveAt(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if trainer.global_step == 4:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")

    graphs = counters["stats"]["unique_graphs"]
    straight, t_straight = fit_seeded(tmp_path / "a", tiny_data(tiny_modelnet), [SaveAt()],
                                      make_model=compiled_tiny_module, max_epochs=2)
    assert counters["stats"]["unique_graphs"] - graphs == 3  # student global + local crops, teacher global crops
    resumed, t_resumed = fit_seeded(tmp_path / "b", tiny_data(tiny_modelnet), ckpt_path=str(tmp_path / "mid.ckpt"),
                                    make_model=compiled_tiny_module, max_epochs=2)
    assert t_straight.global_step == t_resumed.global_step == 12
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    # the compiled networks compute what the eager ones do, with the trained weights
    views = torch.rand(2, 4, 128, 3)
    for net in (straight.student, straight.teacher):
        with torch.no_grad():
            compiled, eager = net(views), net._embed(views.flatten(0, 1), None)
        torch.testing.assert_close(compiled.logits.flatten(0, 1), eager.logits)
        torch.testing.assert_close(compiled.embedding.flatten(0, 1), eager.embedding)
    assert list(straight.state_dict()) == list(tiny_module().state_dict())  # nothing renamed by compiling


def test_compile_option_from_the_cli(tmp_path, monkeypatch) -> None:
    from lightning_modules.commands.cli import run_cli

    monkeypatch.chdir(tmp_path)
    model = run_cli(["--config", TINY, "--model.compile", "true", "--trainer.logger", "false"], run=False).model
    assert model.student._compile_backend == model.teacher._compile_backend == "inductor"
    assert model.hparams["compile"] is True
    model = run_cli(["--config", TINY, "--trainer.logger", "false"], run=False).model
    assert model.student._compile_backend is None  # off by default


def test_an_unknown_backend_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="model.compile: 'fastest' is not a torch.compile backend"):
        DistillationWithContrast(compile="fastest")


def test_compile_mode_reaches_both_networks_and_needs_inductor(tmp_path, monkeypatch) -> None:
    """``reduce-overhead`` (CUDA graphs on CUDA) is inductor's: refused with another backend or none."""
    from lightning_modules.commands.cli import run_cli

    monkeypatch.chdir(tmp_path)
    model = run_cli(["--config", TINY, "--model.compile", "true", "--model.compile_mode", "reduce-overhead",
                     "--trainer.logger", "false"], run=False).model
    assert model.student._compile_mode == model.teacher._compile_mode == "reduce-overhead"
    assert model._cuda_graphs and model.hparams["compile_mode"] == "reduce-overhead"
    with pytest.raises(ValueError, match="model.compile_mode: 'reduce-overhead' needs model.compile: true"):
        DistillationWithContrast(compile="aot_eager", compile_mode="reduce-overhead")
    with pytest.raises(ValueError, match="model.compile_mode: 'reduce-overhead' needs model.compile: true"):
        DistillationWithContrast(compile_mode="reduce-overhead")
    with pytest.raises(ValueError, match="model.compile_mode: 'turbo' is not a torch.compile mode"):
        DistillationWithContrast(compile=True, compile_mode="turbo")
    assert not DistillationWithContrast(compile=True, compile_mode="max-autotune-no-cudagraphs")._cuda_graphs


def test_ddp_fit_with_compiled_networks(tiny_modelnet, tmp_path) -> None:
    """2 gloo processes, each compiling its networks inside Lightning's DDP wrapper, train and probe."""
    from tests.test_cli import run_console

    args = ["fit", "--config", TINY, "--model.compile", "aot_eager", "--data.root", str(tiny_modelnet),
            "--probe.root", str(tiny_modelnet), "--trainer.logger", "false", "--trainer.max_epochs", "1",
            "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    proc = run_console(args, tmp_path)
    assert proc.stdout.count("probe/svm_acc") == 1, proc.stdout[-2000:]
    assert "recompile" not in proc.stderr.lower(), proc.stderr[-2000:]  # no graph fell back to eager
    (run,) = (tmp_path / "runs").iterdir()
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    # 24 clouds, batch 4 per rank on 2 ranks: 3 steps in the epoch
    assert checkpoint["global_step"] == 3 and checkpoint["hyper_parameters"]["compile"] == "aot_eager"


@pytest.mark.parametrize(("backbone", "autocast"), [("vit", False), ("vit", True), ("pointnet", False), ("dgcnn", False)])
def test_each_network_forward_is_one_graph_without_breaks(backbone, autocast) -> None:
    """What ``compile_forward`` compiles (backbone + head of one crop resolution) is one dynamo graph.

    The student at both crop resolutions and the teacher at the global one, in fp32 and (ViT) under
    bf16 autocast, where the head's last layer leaves autocast: a break would split the graph and
    run the rest eagerly.
    """
    from tests.helpers import tiny_dgcnn, tiny_pointnet

    make = {"vit": lambda: None, "pointnet": tiny_pointnet, "dgcnn": tiny_dgcnn}[backbone]
    model = tiny_module(make())
    for net, points in ((model.student, 128), (model.student, 32), (model.teacher, 128)):
        views = torch.rand(2, 4, points, 3)
        torch._dynamo.reset()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            explained = torch._dynamo.explain(net._embed)(views.flatten(0, 1), net.group(views))
        assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
        assert explained.graph_count == 1
