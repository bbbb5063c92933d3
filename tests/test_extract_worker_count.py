"""The default number of decoder workers: a pure function of usable CPUs, ranks on the machine and device."""
import pytest

from avepipe.extract.workers import CPU_CORES_PER_DECODER, decoder_workers


@pytest.mark.parametrize("cpus, ranks, expected", [
    (64, 1, 63),    # one GPU on a big box: every core but the main process's decodes
    (64, 4, 15),    # four ranks share the cores: 16 each, one of them for the rank's main process
    (8, 1, 7),
    (2, 1, 1),
    (1, 1, 1),      # never zero: --workers 0 is the user's explicit choice
    (4, 8, 1),      # more ranks than CPUs
])
def test_on_a_gpu_decoders_take_all_cores_but_the_main_process(cpus, ranks, expected):
    assert decoder_workers(cpus, ranks, "cuda") == expected
    assert decoder_workers(cpus, ranks, "mps") == expected


@pytest.mark.parametrize("cpus, ranks, expected", [
    (2, 1, 1),
    (CPU_CORES_PER_DECODER - 1, 1, 1),
    (2 * CPU_CORES_PER_DECODER, 1, 2),
    (128, 1, 128 // CPU_CORES_PER_DECODER),
    (128, 4, 128 // 4 // CPU_CORES_PER_DECODER),
    (1, 1, 1),
])
def test_on_cpu_the_cnn_keeps_most_cores(cpus, ranks, expected):
    assert decoder_workers(cpus, ranks, "cpu") == expected


def test_cpu_gets_fewer_decoders_than_a_gpu_on_the_same_machine():
    assert decoder_workers(32, 1, "cpu") < decoder_workers(32, 1, "cuda")
