"""Every test that uses CUDA carries the ``cuda`` marker, and a ``cuda`` test skips cleanly without a GPU.

A GPU machine runs ``pytest -m cuda`` and must find them all; a CPU run must skip them, never error. The
detectors live in ``cuda_marker.py``: one reads each test module's source, one (run by ``conftest.py`` on
every collection) reads the collected tests' parameters. Both are shown to fail on unmarked examples.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cuda_marker import is_cuda_value, skip_cuda_items_without_gpu, unmarked_cuda_items, unmarked_cuda_tests

TESTS = Path(__file__).resolve().parent


#: (file, test) -> why a test that names CUDA does not use it.
NOT_CUDA = {
    ("test_markers.py", "test_collected_tests_with_a_cuda_parameter_need_the_marker"): "CUDA devices as data",
    ("test_markers.py", "test_what_counts_as_a_cuda_device"): "CUDA devices as data",
    ("train/test_distributed.py", "test_a_gpu_index_other_than_the_local_rank_is_refused"): (
        "CUDA devices as data: which GPU a process would take, checked without touching one"
    ),
    ("train/test_distributed.py", "test_nccl_is_joined_bound_to_the_process_gpu"): (
        "CUDA devices as data: torch.cuda.set_device and init_process_group are replaced by recorders"
    ),
}


def unmarked_in_tests() -> list[str]:
    return [
        str(finding)
        for path in sorted(TESTS.rglob("*.py"))
        for finding in unmarked_cuda_tests(path.read_text(), str(path.relative_to(TESTS)))
        if (finding.path, finding.test) not in NOT_CUDA
    ]


def test_every_test_that_uses_cuda_is_marked() -> None:
    found = unmarked_in_tests()
    assert not found, "\n".join(found)


def test_the_exemptions_are_still_needed() -> None:
    findings = {
        (finding.path, finding.test)
        for path in sorted(TESTS.rglob("*.py"))
        for finding in unmarked_cuda_tests(path.read_text(), str(path.relative_to(TESTS)))
    }
    assert set(NOT_CUDA) <= findings


# The source detector on synthetic modules.

HEADER = "import pytest\nimport torch\nfrom blockzoo.testing import check_block\n"


@pytest.mark.parametrize(
    ("body", "use"),
    [
        ("def test_x():\n    torch.zeros(1, device='cuda')\n", "'cuda'"),
        ("def test_x():\n    torch.zeros(1).to('cuda:1')\n", "'cuda:1'"),
        ("def test_x():\n    torch.zeros(1).cuda()\n", ".cuda()"),
        ("def test_x():\n    torch.cuda.synchronize()\n", "torch.cuda.synchronize"),
        ("def test_x():\n    check_block(f, (1, 3, 8, 8), devices=['cuda'])\n", "'cuda'"),
        ("@pytest.mark.parametrize('device', ['cpu', 'cuda'])\ndef test_x(device):\n    pass\n", "'cuda'"),
        (
            "@pytest.mark.parametrize('device', [pytest.param('cuda', marks=pytest.mark.slow)])\n"
            "def test_x(device):\n    pass\n",
            "'cuda'",
        ),
        ("def on_gpu(x):\n    return x.cuda()\n\ndef test_x():\n    on_gpu(torch.zeros(1))\n", "through on_gpu()"),
        (
            "@pytest.fixture\ndef gpu():\n    return torch.device('cuda')\n\ndef test_x(gpu):\n    pass\n",
            "through gpu()",
        ),
        (
            "from blockzoo.testing import devices\nfrom hypothesis import given\n"
            "@given(devices())\ndef test_x(device):\n    pass\n",
            "blockzoo.testing.devices",
        ),
        ("class TestX:\n    def test_x(self):\n        torch.ones(1, device='cuda')\n", "'cuda'"),
        ("GPU = torch.device('cuda')\n\ndef test_x():\n    torch.ones(1, device=GPU)\n", "GPU"),
        (
            "@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')\n"
            "def test_x():\n    torch.ones(1, device='cuda')\n",
            "'cuda'",
        ),
    ],
)
def test_an_unmarked_cuda_test_is_found(body: str, use: str) -> None:
    found = unmarked_cuda_tests(HEADER + body, "test_synthetic.py")
    assert [(f.test, f.use) for f in found] == [("test_x", use)]


@pytest.mark.parametrize(
    "body",
    [
        "@pytest.mark.cuda\ndef test_x():\n    torch.zeros(1, device='cuda')\n",
        "@pytest.mark.cuda\n@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU')\n"
        "def test_x():\n    torch.zeros(1).cuda()\n",
        "pytestmark = [pytest.mark.cuda]\n\ndef test_x():\n    torch.cuda.synchronize()\n",
        "needs_cuda = pytest.mark.cuda\n\n@needs_cuda\ndef test_x():\n    torch.zeros(1).cuda()\n",
        "@pytest.mark.cuda\nclass TestX:\n    def test_x(self):\n        torch.ones(1, device='cuda')\n",
        "@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=[pytest.mark.cuda])])\n"
        "def test_x(device):\n    torch.zeros(1, device=device)\n",
        "CUDA = torch.cuda.is_available()\n\ndef test_x():\n    assert torch.cuda.device_count() >= 0\n",
        "def test_x():\n    torch.zeros(1, device='cpu')\n    assert 'cudagraph' != 'cuda graphs'\n",
        "def test_x(request):\n    assert request.node.get_closest_marker('cuda') is None\n",
    ],
)
def test_a_marked_or_cpu_test_passes(body: str) -> None:
    assert unmarked_cuda_tests(HEADER + body, "test_synthetic.py") == []


# The collection detector on stand-ins for pytest items.


def fake_item(nodeid: str, params: dict[str, object] | None, marked: bool) -> SimpleNamespace:
    markers: list[pytest.MarkDecorator] = []
    cuda = pytest.mark.cuda
    return SimpleNamespace(
        nodeid=nodeid,
        callspec=SimpleNamespace(params=params) if params is not None else None,
        get_closest_marker=lambda name: cuda.mark if marked and name == cuda.name else None,
        add_marker=markers.append,
        added=markers,
    )


def test_collected_tests_with_a_cuda_parameter_need_the_marker() -> None:
    items = [
        fake_item("t::a[cuda]", {"device": "cuda"}, marked=False),
        fake_item("t::b[cuda:0]", {"device": torch.device("cuda", 0)}, marked=False),
        fake_item("t::c[cuda]", {"device": "cuda"}, marked=True),
        fake_item("t::d[cpu]", {"device": "cpu", "name": "cudagraphs"}, marked=False),
        fake_item("t::e", None, marked=False),
    ]
    assert unmarked_cuda_items(items) == ["t::a[cuda]", "t::b[cuda:0]"]


def test_cuda_tests_are_skipped_without_a_gpu_and_run_with_one() -> None:
    marked, plain = fake_item("t::a", None, marked=True), fake_item("t::b", None, marked=False)
    skip_cuda_items_without_gpu([marked, plain], available=True)
    assert marked.added == []
    assert plain.added == []
    skip_cuda_items_without_gpu([marked, plain], available=False)
    assert [m.name for m in marked.added] == ["skip"]
    assert plain.added == []


def test_what_counts_as_a_cuda_device() -> None:
    # not parametrised: the collection detector would rightly refuse unmarked "cuda" parameters
    assert is_cuda_value("cuda")
    assert is_cuda_value("cuda:3")
    assert is_cuda_value(torch.device("cuda", 1))
    for value in ("cpu", "meta", torch.device("cpu"), "cudagraphs", None):
        assert not is_cuda_value(value), value


@pytest.mark.cuda
def test_the_marker_alone_is_enough_to_skip_without_a_gpu() -> None:
    """No skipif here: on a CPU machine only the conftest hook keeps this from failing."""
    assert torch.ones(2, device="cuda").sum().item() == 2


def test_this_session_skips_marked_tests_on_cpu(request: pytest.FixtureRequest) -> None:
    """The conftest hook ran on this very session: every collected cuda test is skipped without a GPU."""
    marked = [item for item in request.session.items if item.get_closest_marker("cuda") is not None]
    assert any(item.name == "test_the_marker_alone_is_enough_to_skip_without_a_gpu" for item in marked)
    for item in marked:
        skipped = any(True for _ in item.iter_markers("skip"))
        assert skipped is not torch.cuda.is_available(), item.nodeid
