import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load_manifest_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("manifest_module", Path(__file__).with_name("manifest_module.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


manifest = _load_manifest_module()


def unreleased_changes() -> str:
    text = (ROOT / "CHANGELOG.md").read_text()
    unreleased = text.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    changed = re.search(r"### Changed\n(.*?)(\n### |\Z)", unreleased, re.S)
    return changed.group(1) if changed else ""


def test_state_dict_keys_match_the_manifest_or_the_changelog_says_why() -> None:
    committed = json.loads(manifest.PATH.read_text())
    now = manifest.current()
    changed = sorted(n for n in now if committed.get(n) != now[n])
    removed = sorted(set(committed) - set(now))
    notes = unreleased_changes()
    undocumented = [
        n for n in changed + removed if n not in committed or re.search(rf"\b{re.escape(n)}\b", notes) is None
    ]
    added = [n for n in undocumented if n not in committed]
    breaking = [n for n in undocumented if n in committed]
    assert not breaking, (
        f"the state_dict keys or shapes of {breaking} changed: a breaking change for saved checkpoints. Add a "
        "'### Changed' entry naming each model to CHANGELOG.md under [Unreleased] (with a deprecation path), "
        "then run python tests/models/manifest_module.py"
    )
    assert not added, f"new models {added} are not in the manifest: run python tests/models/manifest_module.py"


def test_a_renamed_key_without_a_changelog_entry_fails(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    committed = json.loads(manifest.PATH.read_text())
    committed["resnet20"] = {"features.old_name.weight": [16, 3, 3, 3], **committed["resnet20"]}
    fake = tmp_path / "manifest.json"
    fake.write_text(json.dumps(committed))
    monkeypatch.setattr(manifest, "PATH", fake)
    with pytest.raises(AssertionError, match=r"state_dict keys or shapes of \['resnet20'\] changed"):
        test_state_dict_keys_match_the_manifest_or_the_changelog_says_why()
    # with an entry naming the model under Changed, the same difference is accepted
    monkeypatch.setitem(globals(), "unreleased_changes", lambda: "- resnet20: stem renamed (old checkpoints: ...)")
    test_state_dict_keys_match_the_manifest_or_the_changelog_says_why()
