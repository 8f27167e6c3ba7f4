"""Fuzzing the loader: damaged files raise only load_weights' documented errors and never half-load a model.

Each example builds a small model (a linear layer and a batch norm, so that it
has float parameters, float buffers and an integer buffer), writes a damaged or
odd checkpoint and loads it. The law: either ``load_weights`` succeeds and every
tensor of the model now holds the checkpoint's value, or it raises one of its
documented exceptions for a file (``CheckpointError`` and its subclass
``UnsafeCheckpointError``) and every tensor of
the model is exactly what it was.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save, save_file
from torch import nn

from blockzoo import CheckpointError, load_weights

#: What load_weights documents for a file (its ValueError is for a URL without a sha256, never for a file).
DOCUMENTED = (CheckpointError,)

# Every file is written to the same place in a test's tmp_path, so the fixture may be shared by examples.
FUZZ = settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: safetensors' dtype names, and a few that it does not know.
DTYPE_NAMES = [
    "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "C64", "U64", "U32", "U16",
    "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "F4", "f32", "", "F128", "PICKLE",
]  # fmt: skip

#: Torch dtypes that safetensors writes, for well-formed files whose dtypes differ from the model's.
TORCH_DTYPES = [
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
    torch.int8, torch.uint8, torch.bool, torch.complex64, torch.float8_e4m3fn, torch.float8_e5m2,
]  # fmt: skip


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def other_state() -> dict[str, torch.Tensor]:
    """A state for ``make_model`` whose every value differs from the model's, so a load shows everywhere."""
    return {
        k: (torch.full_like(v, 7) if v.dtype == torch.int64 else v + 1.5) for k, v in make_model().state_dict().items()
    }


VALID = save(other_state())
HEADER_LENGTH = struct.unpack("<Q", VALID[:8])[0]
HEADER = json.loads(VALID[8 : 8 + HEADER_LENGTH])
DATA = VALID[8 + HEADER_LENGTH :]


def with_header(header: bytes, data: bytes = DATA) -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def check_law(path: Path, source_state: Callable[[], dict[str, torch.Tensor]] | None = None) -> None:
    """Load ``path`` into a fresh model and check all-or-nothing, with documented errors only."""
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        load_weights(model, path)
    except DOCUMENTED:
        after = model.state_dict()
        assert after.keys() == before.keys()
        for key, value in after.items():
            assert value.dtype == before[key].dtype, key
            assert torch.equal(value, before[key]), f"{key} changed by a failed load"
        return
    # It loaded: then every tensor holds the checkpoint's value, cast to the model's dtype.
    if source_state is not None:
        loaded = source_state()
    elif path.suffix == ".safetensors":
        loaded = load_file(str(path))
    else:
        loaded = torch.load(path, weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded[key].to(value.dtype)), f"{key} was not loaded"


def test_the_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(VALID)
    model = load_weights(make_model(), path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in other_state().items())


def test_the_law_catches_a_half_loaded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: a loader that copies one tensor and then fails is reported."""
    path = tmp_path / "w.safetensors"
    path.write_bytes(VALID)

    def half_load(model: nn.Module, source: object, **_: object) -> nn.Module:
        with torch.no_grad():
            model.state_dict()["0.bias"].add_(1)
        raise CheckpointError("failed after copying 0.bias")

    monkeypatch.setitem(globals(), "load_weights", half_load)
    with pytest.raises(AssertionError, match=r"0\.bias changed by a failed load"):
        check_law(path)


@FUZZ
@given(content=st.binary(max_size=2048))
def test_arbitrary_bytes(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    check_law(path)


@FUZZ
@given(length=st.integers(0, len(VALID) - 1))
def test_truncated_files(tmp_path: Path, length: int) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(VALID[:length])
    check_law(path)


@FUZZ
@given(
    length=st.one_of(
        st.integers(0, 2 * HEADER_LENGTH),
        st.integers(2**32, 2**64 - 1),  # oversized, and "negative" when read as signed
        st.sampled_from([2**63, 2**63 - 1, 2**64 - 1, 2**64 - 8, 100_000_001]),
    )
)
def test_header_lengths(tmp_path: Path, length: int) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", length) + VALID[8:])
    check_law(path)


@FUZZ
@given(header=st.binary(max_size=512), data=st.sampled_from([DATA, b"", DATA[:10]]))
def test_non_json_headers(tmp_path: Path, header: bytes, data: bytes) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(with_header(header, data))
    check_law(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
sizes = st.integers(-3, 2**64 + 3) | st.integers(-2, 16)


@st.composite
def damaged_headers(draw: st.DrawFn) -> dict[str, object]:
    header: dict[str, object] = json.loads(json.dumps(HEADER))
    names = sorted(k for k in header if k != "__metadata__")
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        entry = dict(header[name])  # type: ignore[call-overload]
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "drop", "any"]))
        if field == "dtype":
            entry["dtype"] = draw(st.sampled_from(DTYPE_NAMES))
        elif field == "shape":
            entry["shape"] = draw(st.lists(sizes, max_size=4))
        elif field == "data_offsets":
            entry["data_offsets"] = draw(st.lists(sizes, min_size=0, max_size=3))
        elif field == "drop":
            del entry[draw(st.sampled_from(sorted(entry)))]
        else:
            entry[draw(st.sampled_from(sorted(entry)))] = draw(json_values)
        header[name] = entry
    if draw(st.booleans()):
        header["__metadata__"] = draw(json_values)
    return header


@FUZZ
@given(header=damaged_headers())
def test_headers_with_wrong_dtypes_shapes_and_offsets(tmp_path: Path, header: dict[str, object]) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(with_header(json.dumps(header).encode()))
    check_law(path)


@st.composite
def odd_states(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    """Well-formed checkpoints whose tensors have any safetensors dtype, right or wrong shapes, extra or missing keys."""
    state: dict[str, torch.Tensor] = {}
    for key, value in other_state().items():
        if draw(st.integers(0, 19)) == 0:
            continue  # a missing key
        shape = value.shape if draw(st.integers(0, 9)) else torch.Size(draw(st.lists(st.integers(0, 4), max_size=3)))
        dtype = draw(st.sampled_from([value.dtype, *TORCH_DTYPES]))
        state[key] = (torch.arange(shape.numel(), dtype=torch.float64).reshape(shape) % 3 + 1).to(dtype)
    if draw(st.integers(0, 19)) == 0:
        state["extra"] = torch.zeros(2)
    return state


@FUZZ
@given(state=odd_states())
def test_well_formed_files_of_any_dtype(tmp_path: Path, state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    check_law(path)


# torch warns that it validates a sparse tensor; let it, so that the load goes as far as copying.
@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants:UserWarning")
@pytest.mark.parametrize(
    "odd",
    [
        pytest.param(lambda t: t.to_sparse(), id="sparse"),
        pytest.param(lambda t: t.to(torch.complex64), id="complex"),
    ],
)
def test_pt_files_with_tensors_that_cannot_be_copied(
    tmp_path: Path, odd: Callable[[torch.Tensor], torch.Tensor]
) -> None:
    """A .pt file may hold layouts and dtypes that safetensors cannot; one of them, last, must not half-load."""
    state = other_state()
    state["1.running_var"] = odd(state["1.running_var"])  # after the linear layer's tensors
    path = tmp_path / "w.pt"
    torch.save(state, path)
    check_law(path, lambda: state)


def _pt_bytes(legacy: bool) -> bytes:
    buffer = io.BytesIO()
    torch.save(other_state(), buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


PT_FILES = {"zip": _pt_bytes(legacy=False), "legacy": _pt_bytes(legacy=True)}


@FUZZ
@given(
    kind=st.sampled_from(sorted(PT_FILES)),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=3),
)
def test_damaged_pt_files(tmp_path: Path, kind: str, cut: float, flips: list[tuple[float, int]]) -> None:
    """Truncated and bit-flipped torch.save files, in the zip and the old pickle format."""
    content = bytearray(PT_FILES[kind])
    for where, byte in flips:
        content[int(where * len(content))] = byte
    path = tmp_path / "w.pt"
    path.write_bytes(bytes(content[: int(cut * len(content))]))
    check_law(path)


@FUZZ
@given(content=st.binary(max_size=1024))
def test_arbitrary_bytes_as_pt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(content)
    check_law(path)


# The messages of the errors the fuzzing led to.


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants:UserWarning")
def test_a_sparse_tensor_is_refused_before_anything_is_copied(tmp_path: Path) -> None:
    state = other_state()
    state["1.running_var"] = state["1.running_var"].to_sparse()
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(
        CheckpointError,
        match=r"the model is unchanged\.\n1 tensor\(s\) that cannot be loaded: 1\.running_var: a sparse tensor; "
        r"only dense tensors with data load",
    ):
        load_weights(make_model(), tmp_path / "w.pt")


def test_a_complex_tensor_into_a_real_one_is_refused(tmp_path: Path) -> None:
    state = other_state()
    state["1.weight"] = state["1.weight"].to(torch.complex64)
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"1\.weight: torch\.complex64 into torch\.float32 would drop the imaginary part"
    ):
        load_weights(make_model(), tmp_path / "w.safetensors")


def test_a_non_tensor_in_a_state_dict_is_named() -> None:
    state: dict[str, object] = dict(other_state())
    state["1.bias"] = [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(CheckpointError, match=r"1\.bias: a list, not a tensor"):
        load_weights(make_model(), state)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(PT_FILES))
def test_a_damaged_pt_file_is_a_checkpoint_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(PT_FILES[kind][: len(PT_FILES[kind]) // 2])
    with pytest.raises(CheckpointError, match=r"w\.pt could not be read"):
        load_weights(make_model(), path)


def test_an_old_format_pickle_with_unsafe_globals_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"weight": Payload()}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(
        CheckpointError,
        match=r"evil\.pt could not be read with weights_only=True \(a damaged file, or an old-format pickle whose "
        r"globals cannot be listed\)",
    ):
        load_weights(make_model(), path)
    assert not marker.exists()
