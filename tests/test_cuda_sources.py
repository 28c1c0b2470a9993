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
@pytest.mark.parametrize(
    "arch, optimised", [(75, False), (80, False), (90, True)], ids=["sm75", "sm80", "sm90"]
)
def test_every_cuda_source_compiles_for_turing_ampere_and_hopper(tmp_path, arch, optimised):
    """The one translation unit (the headers, then every .cu) that NVRTC compiles at run time.
    Hopper's is built as NVRTC builds it there, optimised (the optimiser's warnings, a loop
    that will not unroll, fail too); the older GPUs' unoptimised, which checks the same source
    for what each supports in a tenth of the time (the optimiser takes half a minute each)."""
    unit = tmp_path / "gpucnn_kernels.cu"
    unit.write_text(gpu.source())
    quick = [] if optimised else ["-Xcicc", "-O0", "-Xptxas", "-O0"]
    proc = subprocess.run(
        [
            NVCC,
            f"-gencode=arch=compute_{arch},code=sm_{arch}",
            *quick,
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
