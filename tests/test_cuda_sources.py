"""Every CUDA source of the GPU kernel set compiles with nvcc, for Turing (the oldest GPUs CUDA 13
supports: T4, RTX 20xx), Ampere and Hopper, so a syntax error in a kernel, or a feature an older
GPU lacks, fails the tests on a machine without a GPU (skips where nvcc is absent).
"""

import shutil
import subprocess

import pytest

from gpucnn.kernels import gpu

NVCC = shutil.which("nvcc")


def test_the_module_compiles_every_source_file():
    on_disk = sorted(p.name for p in gpu.SOURCES.glob("*.cu"))
    assert sorted(gpu.FILES) == on_disk
    assert sorted(gpu.HEADERS) == sorted(p.name for p in gpu.SOURCES.glob("*.cuh"))
    unit = gpu.source()
    assert 'extern "C" __global__ void im2col' in unit
    assert "#include" not in unit and unit.count("#define GEMM_BK") == 1  # each header once


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on this machine's PATH")
def test_every_cuda_source_compiles_for_sm75_sm80_and_sm90(tmp_path):
    # The one translation unit (the headers, then every .cu) that NVRTC compiles at run time.
    unit = tmp_path / "gpucnn_kernels.cu"
    unit.write_text(gpu.source())
    archs = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in (75, 80, 90)]
    proc = subprocess.run(
        # --threads 0: the architectures compile at once, on every core.
        [
            NVCC,
            *archs,
            "--threads",
            "0",
            "-Werror",
            "all-warnings",
            "-c",
            str(unit),
            "-o",
            str(tmp_path / "k.o"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
