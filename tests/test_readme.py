"""The README's Python examples run as written (all but the one that needs a GPU)."""

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(words):
    """The README's Python block that holds ``words``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [b for b in blocks if words in b]
    assert len(found) == 1, f"{len(found)} README examples hold {words!r}"
    return found[0]


@pytest.mark.parametrize(
    "examples",
    [
        # The lab's model, trained step by step, then with make_step: one after another.
        ["model = Model()", "train_step(model", "with make_step(model"],
        ["class Scale(Layer)"],
        ["print(data.describe(splits))"],
    ],
)
def test_the_readmes_examples_run(examples, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # model.save("model.npz") writes here
    namespace = {}
    for words in examples:
        exec(compile(_example(words), f"README: {words}", "exec"), namespace)
    out = capsys.readouterr().out
    if "class Scale(Layer)" in examples:
        errors = ast.literal_eval(out.strip().splitlines()[-1])  # {"x": ..., "s": ...}
        assert errors.keys() == {"x", "s"} and max(errors.values()) < 1e-6
    if "model = Model()" in examples:
        assert "526,024" in out and (tmp_path / "model.npz").is_file()


def test_the_contents_link_to_every_section_by_its_anchor():
    """The list under the introduction names each ## section, in order, by the anchor GitHub
    gives its heading (lower case, punctuation dropped, spaces as hyphens)."""
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    contents = re.search(r"^Contents: (.*?)\n\n", text, re.M | re.S)[1]
    links = re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", " ".join(contents.split()))
    assert [title for title, _ in links] == headings
    for title, anchor in links:
        assert anchor == re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"), title
