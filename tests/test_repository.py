"""The repository keeps its promises: one pinned set everywhere, clean notebooks, all in the book."""

from __future__ import annotations

import json
import pathlib
import re
import tomllib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _requirement_name(req: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0]).lower()


def test_every_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _constraints()
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    missing = sorted({_requirement_name(r) for r in wanted} - set(pins))
    assert not missing, f"constraints.txt lacks pins for {missing}"


def test_torch_is_a_range_for_colab_but_pinned_for_us():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(d for d in deps if _requirement_name(d) == "torch")
    assert "==" not in torch_req and ">=" in torch_req
    assert _constraints()["torch"].startswith("2.")


def test_jupyter_book_is_1x():
    assert _constraints()["jupyter-book"].startswith("1.")


def test_environment_yml_installs_the_same_set_as_the_makefile():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-c constraints.txt" in pip_section
    makefile = (ROOT / "Makefile").read_text()
    install = re.search(r"pip install .*-c constraints\.txt -e \"?'?(\.\[[a-z,]+\])", makefile)
    assert install, "the Makefile no longer installs with constraints.txt"
    assert f"-e {install.group(1)}" in pip_section, (pip_section, install.group(1))
    # The Python version conda gets is one the package accepts and the pins were made for.
    version = python.split("=", 1)[1]
    assert "Python " + version in (ROOT / "constraints.txt").read_text()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert tuple(map(int, version.split("."))) >= tuple(map(int, requires.lstrip(">=").split(".")))


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make book" in readme
    assert re.search(r"^make test$", ci, re.M)


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        if "root" in node:
            out.append(node["root"])
        for value in node.values():
            out += _toc_files(value)
    elif isinstance(node, list):
        for value in node:
            out += _toc_files(value)
    return out


def test_every_notebook_and_page_is_in_the_toc():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = set(_toc_files(toc))
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in listed, f"{nb.name} is missing from _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), f"_toc.yml lists missing {entry}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_is_committed_clean(nb):
    doc = json.loads(nb.read_text())
    assert "widgets" not in doc.get("metadata", {}), "strip metadata.widgets"
    for cell in doc["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{nb.name}: a code cell carries outputs"
            assert cell.get("execution_count") is None, f"{nb.name}: a code cell carries an execution count"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_has_the_chapter_shape(nb):
    doc = json.loads(nb.read_text())
    code = [("".join(c["source"])) for c in doc["cells"] if c["cell_type"] == "code"]
    text = "\n".join("".join(c["source"]) for c in doc["cells"] if c["cell_type"] == "markdown")
    # The first code cell sets the notebook up wherever it runs (checkout, installed, Colab).
    assert "import lessons" in code[0] and "pip" in code[0] and "sys.path" in code[0]
    # One config cell resolved from the profile; the key step checked against the library.
    assert any("config.resolve" in c for c in code), "no profile-resolved config cell"
    assert any("assert_close" in c for c in code), "the key step is never checked against lessons"
    assert text.count("```{exercise}") + text.count(":::{exercise}") >= 3, "fewer than three exercises"
    solutions = text.count("{solution}") + text.count("{solution-start}")
    assert solutions >= 3, "exercises without solutions"
    assert "{cite" in text, "no references"
