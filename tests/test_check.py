"""python -m gpucnn.check: every layer's gradient checked, and a wrong one caught and placed."""

import inspect

import pytest

from gpucnn import layers
from gpucnn.app import check
from gpucnn.kernels import reference


def test_every_layer_of_the_library_is_checked_and_agrees(capsys):
    assert check.main([]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"all {len(list(check.checks(('fast', 'reference'))))} agree"
    public = [
        name
        for name, cls in inspect.getmembers(layers, inspect.isclass)
        if issubclass(cls, layers.Layer) and cls.__module__ == layers.__name__
        and not name.startswith("_") and name not in ("Layer", "ParamLayer")
    ]  # fmt: skip
    assert public and all(f"\n{name}(" in out for name in public), public
    for kernel_layer in ("Conv", "MaxPool", "AvgPool", "BatchNorm"):
        rows = [line for line in out.splitlines() if line.startswith(f"{kernel_layer}(")]
        assert {"fast", "reference"} <= {row.split()[-4] for row in rows}, kernel_layer


@pytest.mark.parametrize(
    "where, name, says",
    [
        (reference, "conv2d_backward", "gpucnn/kernels/reference.py"),
        (layers.Dense, "backward", "gpucnn/layers.py"),
    ],
)
def test_a_wrong_gradient_disagrees_and_its_code_is_named(monkeypatch, capsys, where, name, says):
    right = getattr(where, name)

    def wrong(*args, **kwargs):
        found = right(*args, **kwargs)
        first = found[0] if isinstance(found, tuple) else found
        first *= 1.01  # one percent off: the input gradient
        return found

    monkeypatch.setattr(where, name, wrong)
    assert check.main(["--kernels", "reference"]) == 1
    out, err = capsys.readouterr()
    wrong_rows = [line for line in out.splitlines() if line.endswith("DISAGREES")]
    assert wrong_rows and all(" x " in row for row in wrong_rows if "CNN" not in row)
    assert any("CNN" in row for row in wrong_rows)  # the model through its loss too
    assert says in err and "disagree: see" in err
