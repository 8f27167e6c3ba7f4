"""The course path (examples/, a sphinx-gallery): its scripts run and show what their pages say, and the
Spanish catalogs keep up with them. The docs build runs every script too (python docs/build.py)."""

import ast
import importlib.util
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CATALOGS = ROOT / "docs" / "locale" / "es" / "LC_MESSAGES"
SCRIPTS = sorted(EXAMPLES.glob("[0-9][0-9]_*.py"))


def run(name: str) -> dict[str, Any]:
    """Run ``examples/<name>*.py`` as the docs build does, and return its global variables."""
    pytest.importorskip("sklearn")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (path,) = EXAMPLES.glob(f"{name}_*.py")
    try:
        return runpy.run_path(str(path))
    finally:
        plt.close("all")


def prose(path: Path) -> list[str]:
    """The paragraphs and titles of a gallery script's text (docstring and ``# %%`` blocks), one line each."""
    source = path.read_text()
    docstring = source.split('"""')[1]
    blocks = [docstring]
    for block in re.findall(r"^# %%\n((?:#.*\n)+)", source, flags=re.MULTILINE):
        blocks.append("\n".join(line[2:] for line in block.splitlines()))
    paragraphs = []
    for block in blocks:
        for paragraph in re.split(r"\n\s*\n", block.strip()):
            lines = [line.strip() for line in paragraph.splitlines()]
            if lines and lines[-1] and set(lines[-1]) <= set("=-"):  # a title and its underline
                lines = lines[:-1]
            if not lines or lines[0].startswith(("- ", ".. ", "**")) or paragraph.startswith("    "):
                continue  # lists, directives and code: checked by the build, not here
            paragraphs.append(" ".join(lines))
    return paragraphs


def test_the_course_pages_are_numbered_gallery_scripts_with_a_title() -> None:
    assert [p.name[:2] for p in SCRIPTS] == [f"{i:02d}" for i in range(1, 12)]
    assert (EXAMPLES / "README.rst").exists()  # the gallery's index page
    for path in SCRIPTS:
        title, underline = path.read_text().split('"""')[1].strip().splitlines()[:2]
        assert underline == "=" * len(title), path.name
        assert "\n# %%\n" in path.read_text(), path.name


def read_po(path: Path) -> dict[str, tuple[str, bool]]:
    """A gettext catalog as {msgid: (msgstr, fuzzy)}, without the header (the test extra has no babel)."""
    messages: dict[str, tuple[str, bool]] = {}
    for entry in path.read_text(encoding="utf-8").split("\n\n"):
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in entry.splitlines())
        fields: dict[str, str] = {}
        key = ""
        for line in entry.splitlines():
            if line.startswith(("msgid ", "msgstr ")):
                key, _, line = line.partition(" ")
            if line.startswith('"'):
                fields[key] = fields.get(key, "") + ast.literal_eval(line)
        if fields.get("msgid"):
            messages[fields["msgid"]] = (fields.get("msgstr", ""), fuzzy)
    return messages


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_every_course_page_has_a_complete_spanish_catalog(path: Path) -> None:
    messages = read_po(CATALOGS / "course" / f"{path.stem}.po")
    # Every paragraph of the script is in the catalog: a changed one needs `python docs/build.py --update-po`
    missing = [p for p in prose(path) if p not in messages]
    assert not missing, f"not in the Spanish catalog (run python docs/build.py --update-po): {missing}"
    untranslated = [m for m, (translation, fuzzy) in messages.items() if fuzzy or not translation]
    assert not untranslated, untranslated
    assert len(prose(path)) >= 5  # the prose extraction found the page's text


def course_figures() -> Any:
    """docs/_ext/course_figures.py, the gallery's scraper."""
    spec = importlib.util.spec_from_file_location("course_figures", ROOT / "docs" / "_ext" / "course_figures.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["course_figures"] = module
    spec.loader.exec_module(module)
    return module


def test_figure_labels_are_translated_as_whole_words() -> None:
    pytest.importorskip("babel")
    figures = course_figures()
    assert figures.translate("adam (val acc 97.8%)", "es") == "adam (exact. val. 97.8%)"
    assert figures.translate("training loss (NLL)", "es") == "pérdida de entrenamiento (NLL)"
    assert figures.translate("train", "es") == "entrenamiento"
    assert figures.translate("trained", "es") == "trained"  # whole words only
    assert figures.translate("lr=0.1", "es") == "lr=0.1"
    assert figures.translate("training loss", "en") == "training loss"  # no catalog: unchanged


def test_the_scraper_shows_each_figure_once_in_the_language_of_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("babel")
    pytest.importorskip("sphinx_gallery")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    scraper = course_figures().translating_scraper
    monkeypatch.setenv("BLOCKZOO_DOCS_LANGUAGE", "es")
    conf = {"image_srcset": [], "matplotlib_animations": (False, None), "compress_images": (), "src_dir": str(tmp_path)}
    paths = iter(tmp_path / f"image_{i}.png" for i in range(10))
    fig, ax = plt.subplots()
    ax.set_xlabel("epoch")
    bare = Figure()  # as History.plot() returns: no pyplot
    bare.subplots().set_ylabel("training loss")
    block_vars = {"image_path_iterator": paths, "example_globals": {"fig": fig, "bare": bare}}
    first = scraper(None, block_vars, conf)
    assert first.count(".. image-sg::") == 2
    assert (tmp_path / "image_0.png").exists()
    assert (tmp_path / "image_1.png").exists()
    assert ax.get_xlabel() == "época"
    assert bare.axes[0].get_ylabel() == "pérdida de entrenamiento"
    assert scraper(None, block_vars, conf) == ""  # the next block: nothing new to show
    plt.close("all")


@pytest.mark.slow
def test_exam_cnn_and_its_block_twin_compute_the_same_shapes() -> None:
    g = run("01")
    assert g["logits"].shape == (8, 10)
    assert g["blocks"](g["x"]).shape == g["logits"].shape
    # the hand-written convolutions have a bias (16 + 32) that the blocks leave to batch norm
    assert g["blockzoo"].count_params(g["model"]) - g["blockzoo"].count_params(g["blocks"]) == 16 + 32


@pytest.mark.slow
def test_shapes_page_fixes_each_error_it_shows() -> None:
    g = run("02")
    assert g["flat"].shape == (32, 64)
    assert str(g["features"].float().dtype) == "torch.float32"
    assert g["blockzoo"].infer_shape(g["model"], (32, 1, 8, 8)) == (32, 10)


@pytest.mark.slow
def test_gpu_page_trains_on_the_chosen_device() -> None:
    g = run("03")
    assert next(g["model"].parameters()).device.type == g["device"].type
    assert len(g["history"]) == 2
    assert g["history"]["val_accuracy"][-1] > 0.5  # 10 classes: chance is 10%


@pytest.mark.slow
def test_custom_init_default_stays_at_chance_where_kaiming_and_lsuv_train() -> None:
    g = run("04")
    stds, results = g["stds"], g["results"]
    # PyTorch's default init shrinks the signal through the ReLU layers; the other two keep it
    assert stds["default"][-2] < 0.3 * stds["kaiming"][-2]
    assert all(abs(s - 1) < 0.1 for s in stds["lsuv"][:-1])
    assert results["default"][0][-1] > 2.2  # ln(10) = 2.30: chance
    assert results["kaiming"][0][-1] < results["default"][0][-1] - 1
    assert results["lsuv"][1] > 0.8
    assert g["regularization_loss"](g["regularized"]).item() > 0


@pytest.mark.slow
def test_compare_optimizers_trains_each_and_plots() -> None:
    g = run("05")
    results = g["results"]
    assert set(results) == {"sgd", "adam", "rmsprop", "adagrad"}
    for name, (curve, accuracy) in results.items():
        assert curve[-1] < curve[0], name
        assert accuracy > 0.8, name  # 10 classes: chance is 10%
    assert len(g["ax"].get_lines()) == 4


@pytest.mark.slow
def test_regularization_narrows_the_generalization_gap() -> None:
    results = run("06")["results"]

    def gap(variant: str) -> float:
        return results[variant]["val_loss"][-1] - results[variant]["train_loss"][-1]

    # the plain MLP memorises the noisy labels; the penalty and dropout hold it back
    assert results["none"]["train_loss"][-1] < results["L2"]["train_loss"][-1]
    assert results["none"]["train_loss"][-1] < results["dropout"]["train_loss"][-1]
    assert gap("none") > gap("L2 + dropout")
    assert min(results["none"]["val_loss"]) < results["none"]["val_loss"][-1]  # it turned and climbed


@pytest.mark.slow
def test_log_softmax_stays_finite_where_log_of_softmax_does_not() -> None:
    import torch

    g = run("07")
    confident = g["confident"]
    assert torch.isinf(torch.log(torch.softmax(confident, dim=1))).any()
    assert torch.isfinite(torch.log_softmax(confident, dim=1)).all()
    assert torch.allclose(g["probabilities"].sum(dim=1), torch.ones(3))
    assert g["losses"][-1] < g["losses"][0]


@pytest.mark.slow
def test_the_large_learning_rate_makes_the_loss_rise_first() -> None:
    runs = run("08")["runs"]
    rising, steady = runs[0.1]["loss"], runs[1e-3]["loss"]
    assert max(rising[1:10]) > 1.5 * rising[0]
    assert max(steady[1:10]) < 1.2 * steady[0]
    assert rising[-1] < rising[0]
    assert steady[-1] < steady[0]
    assert min(runs[0.1]["val_accuracy"][-1], runs[1e-3]["val_accuracy"][-1]) > 0.9


@pytest.mark.slow
def test_multiclass_inference_agrees_with_evaluate() -> None:
    g = run("09")
    accuracy = (g["predicted"] == g["data"].y_val).float().mean().item()
    assert accuracy == pytest.approx(g["result"].accuracy)
    assert accuracy > 0.9
    assert int(g["result"].confusion_matrix.sum()) == len(g["data"].y_val)


@pytest.mark.slow
def test_transfer_learning_trains_only_the_head() -> None:
    g = run("10")
    trainable = [name for name, p in g["model"].named_parameters() if p.requires_grad]
    assert trainable == ["head.fc.weight", "head.fc.bias"]
    assert g["history"]["val_accuracy"][-1] > 0.8
    assert [name for name, p in g["resnet"].named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]


@pytest.mark.slow
def test_cifar10_page_trains_the_course_cnn_with_fit_and_plots() -> None:
    g = run("11")
    cpu = g["histories"]["cpu"]
    assert len(cpu) == 5
    assert cpu["train_loss"][-1] < cpu["train_loss"][0]
    assert cpu.best()["val_accuracy"] > 0.5  # 10 classes: chance is 10%
    assert [axes.get_ylabel() for axes in g["figure"].axes] == ["loss", "accuracy"]
