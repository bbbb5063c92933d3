"""One device rule for every command, under a simulated torchrun job and 0, 1, 2 or 8 visible GPUs.

``torch.cuda.is_available`` / ``device_count`` are replaced, and the torchrun variables set,
so these run on CPU; nothing touches a real GPU (``set_device`` is recorded, not called).
"""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from avepipe import distributed
from avepipe.device import select_device
from avepipe.distributed import Ranks
from avepipe.errors import UserError
from avepipe.extraction import ExtractOptions, extract_folder


@pytest.fixture
def gpus(monkeypatch):
    """``gpus(n)`` makes this process see n GPUs; returns the list the ``set_device`` calls go to."""
    current: list[torch.device] = []

    def see(count: int) -> list[torch.device]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device)))
        return current

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return see


def torchrun_env(monkeypatch, local_rank: int, local_world: int, nodes: int = 1) -> None:
    world = local_world * nodes
    for name, value in {"RANK": local_rank, "WORLD_SIZE": world, "LOCAL_RANK": local_rank,
                        "LOCAL_WORLD_SIZE": local_world}.items():
        monkeypatch.setenv(name, str(value))


def cuda(index: int) -> torch.device:
    return torch.device("cuda", index)


def test_single_process(gpus):
    gpus(0)
    assert select_device() == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")
    gpus(1)
    assert select_device() == cuda(0)
    assert select_device("cuda") == cuda(0)
    gpus(8)
    assert select_device("cuda:5") == cuda(5)


def test_no_cuda_is_one_line(gpus, monkeypatch):
    gpus(0)
    with pytest.raises(UserError) as error:
        select_device("cuda")
    assert str(error.value) == (f"--device cuda: this process sees no CUDA GPU (torch {torch.__version__}, "
                                "CUDA_VISIBLE_DEVICES=unset); use --device cpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(UserError, match=r"CUDA_VISIBLE_DEVICES=\)"):
        select_device("cuda:0")


def test_unknown_names_and_missing_gpus(gpus, monkeypatch):
    gpus(1)
    with pytest.raises(UserError) as error:
        select_device("gpu")
    assert str(error.value) == "--device gpu: not a device name (cpu, cuda or cuda:N)"
    with pytest.raises(UserError) as error:
        select_device("cuda:1")
    assert str(error.value) == "--device cuda:1: 1 GPU(s) visible; use --device cpu or a GPU index below 1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(UserError, match=r"^--device cuda:1: 1 GPU\(s\) visible \(CUDA_VISIBLE_DEVICES=3\); "):
        select_device("cuda:1")


@pytest.mark.parametrize("exclusive", [False, True])
def test_eight_gpus_one_per_local_rank(gpus, exclusive):
    gpus(8)
    for rank in range(8):
        ranks = Ranks(rank=8 + rank, world_size=16, local_rank=rank, local_world_size=8)   # second node
        assert select_device(None, ranks, exclusive) == cuda(rank)
        assert select_device("cuda", ranks, exclusive) == cuda(rank)
        assert select_device(cuda(rank), ranks, exclusive) == cuda(rank)   # mapping twice: the same GPU
        assert select_device("cpu", ranks, exclusive) == torch.device("cpu")


def test_a_fixed_gpu_under_torchrun_is_refused(gpus):
    gpus(8)
    ranks = Ranks(rank=3, world_size=8, local_rank=3, local_world_size=8)
    with pytest.raises(UserError) as error:
        select_device("cuda:0", ranks)
    assert str(error.value) == ("--device cuda:0 under torchrun would put every rank of this machine on one "
                                "GPU: give --device cuda (local rank 3 takes cuda:3)")


def test_one_gpu_visible_per_rank(gpus, monkeypatch):
    """CUDA_VISIBLE_DEVICES set per rank: each rank sees one GPU, its cuda:0, also for NCCL training."""
    gpus(1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6")
    for rank in range(4):
        ranks = Ranks(rank=rank, world_size=4, local_rank=rank, local_world_size=4)
        assert select_device("cuda", ranks, exclusive=True) == cuda(0)
        assert select_device("cuda:0", ranks, exclusive=True) == cuda(0)


def test_more_ranks_than_gpus(gpus):
    """Extraction ranks may share GPUs (round robin); NCCL training may not, and says what to do."""
    gpus(2)
    ranks = Ranks(rank=3, world_size=4, local_rank=3, local_world_size=4)
    assert select_device("cuda", ranks) == cuda(1)
    with pytest.raises(UserError) as error:
        select_device("cuda", ranks, exclusive=True)
    assert str(error.value) == ("--device cuda: 4 ranks on this machine but 2 GPU(s) visible: NCCL needs one "
                                "GPU per rank; run --nproc-per-node 2, give each rank its own GPU with "
                                "CUDA_VISIBLE_DEVICES, or use --device cpu")
    gpus(1)   # the machine's only GPU, seen by every rank
    assert select_device(None, ranks) == cuda(0)
    with pytest.raises(UserError, match=r"^--device cuda \(the default\): 4 ranks on this machine but 1 GPU"):
        select_device(None, ranks, exclusive=True)


def test_training_device_is_made_current(gpus, monkeypatch):
    current = gpus(8)
    torchrun_env(monkeypatch, local_rank=5, local_world=8)
    ranks = distributed.env_ranks()
    assert distributed.local_device(None, ranks) == cuda(5)
    assert current == [cuda(5)]


def test_train_command_reports_a_missing_gpu_in_one_line(gpus, monkeypatch, tmp_path):
    from avepipe.commands.train import train

    gpus(2)
    torchrun_env(monkeypatch, local_rank=0, local_world=4)
    result = CliRunner().invoke(train, [str(tmp_path / "feats.h5"), "--annotations", "ave",
                                        "-o", str(tmp_path / "run"), "--device", "cuda"])
    assert result.exit_code == 2
    assert result.output.splitlines() == ["error: --device cuda: 4 ranks on this machine but 2 GPU(s) visible: "
                                          "NCCL needs one GPU per rank; run --nproc-per-node 2, give each rank "
                                          "its own GPU with CUDA_VISIBLE_DEVICES, or use --device cpu"]


class _Stop(Exception):
    pass


def _extraction_device(monkeypatch, tmp_path, device):
    """The device ``extract_folder`` builds its encoders on (the build is stopped right there)."""
    seen = {}

    def build_encoders(**options):
        seen["device"] = options["device"]
        raise _Stop

    monkeypatch.setattr("avepipe.extraction.build_encoders", build_encoders)
    (tmp_path / "videos").mkdir(exist_ok=True)
    (tmp_path / "videos" / "a.mp4").write_bytes(b"")
    with pytest.raises(_Stop):
        extract_folder(tmp_path / "videos", tmp_path / "feats.h5", ExtractOptions(device=device))
    return seen["device"]


@pytest.mark.parametrize("given", [None, "cuda"])
def test_extraction_ranks_each_take_their_gpu(gpus, monkeypatch, tmp_path, given):
    current = gpus(8)
    torchrun_env(monkeypatch, local_rank=6, local_world=8)
    assert _extraction_device(monkeypatch, tmp_path, given) == cuda(6)
    assert current == [cuda(6)]


def test_extraction_without_gpus_runs_on_cpu(gpus, monkeypatch, tmp_path):
    current = gpus(0)
    torchrun_env(monkeypatch, local_rank=1, local_world=2)
    assert _extraction_device(monkeypatch, tmp_path, None) == torch.device("cpu")
    assert current == []


def test_extract_command_reports_a_missing_gpu_in_one_line(gpus, tmp_path):
    from avepipe.commands.extract import extract

    gpus(0)
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"")
    result = CliRunner().invoke(extract, [str(tmp_path / "videos"), "-o", str(tmp_path / "feats.h5"),
                                          "--device", "cuda:1"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: --device cuda:1: this process sees no CUDA GPU (torch "
                                          f"{torch.__version__}, CUDA_VISIBLE_DEVICES=unset); use --device cpu"]


def test_source_train_refuses_torchrun_and_a_missing_gpu_in_one_line(gpus, monkeypatch, tmp_path):
    from avepipe.commands.source import source

    gpus(0)
    args = ["train", str(tmp_path / "feats.h5"), "-o", str(tmp_path / "run")]
    result = CliRunner().invoke(source, [*args, "--device", "cuda"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"error: --device cuda: this process sees no CUDA GPU (torch "
                                          f"{torch.__version__}, CUDA_VISIBLE_DEVICES=unset); use --device cpu"]
    torchrun_env(monkeypatch, local_rank=1, local_world=2)
    result = CliRunner().invoke(source, args)
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: avepipe source train runs as one process, not under torchrun (every rank would train the same "
        "model and write the same checkpoint; its negatives are the other pairs of the whole batch, which "
        "splitting among ranks would change): start it without torchrun and choose the GPU with --device or "
        "CUDA_VISIBLE_DEVICES"]


def test_localize_reports_a_missing_gpu_in_one_line(gpus, tmp_path):
    from avepipe.localizer import Localizer

    gpus(0)
    with pytest.raises(UserError, match=r"^--device cuda:0: this process sees no CUDA GPU"):
        Localizer.from_checkpoint(tmp_path / "no-checkpoint", device="cuda:0")


def test_fp32_on_a_gpu_names_the_fast_setting_in_one_line(monkeypatch):
    from types import SimpleNamespace

    from avepipe.extract.gpu_advice import fast_batch_size, fast_setting_line

    assert [fast_batch_size(gib * 2 ** 30) for gib in (2, 4, 8, 16, 24, 80)] == [32, 32, 64, 128, 128, 256]
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(name="Stand-in GPU", total_memory=40 * 2 ** 30))
    assert fast_setting_line(cuda(2)) == (
        "note: cuda:2 (Stand-in GPU, 40 GiB) extracts in exact fp32; --precision bf16 --batch-size 256 is the "
        "fast setting (features drift cosine >= 0.99997, max relative error 0.012, measured on CPU; its "
        "speed-up here is unmeasured by the project: `avepipe doctor` measures it)")
