"""A static scan of src/blockzoo: safe deserialisation, verified downloads, no private torch attributes.

Each scanner reads Python source with :mod:`ast` (nothing is imported or run)
and returns findings; the tests run them on ``src/`` and, to show that each
check can fail, on small synthetic snippets.

Names are resolved through each module's imports, so ``from torch import nn``
followed by ``nn.modules.conv._ConvNd`` is ``torch.nn.modules.conv._ConvNd``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch import nn

SRC = Path(__file__).resolve().parents[1] / "src" / "blockzoo"


class Finding(NamedTuple):
    path: str
    line: int
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.name} ({self.why})"


def src_sources() -> dict[str, str]:
    """Every module of src/blockzoo, keyed by its path relative to the package."""
    return {str(p.relative_to(SRC)): p.read_text() for p in sorted(SRC.rglob("*.py"))}


def is_private(name: str) -> bool:
    """A leading underscore, not a dunder."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class Module:
    """A parsed module with its import aliases and each node's parent."""

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.tree = ast.parse(source, filename=path)
        self.aliases: dict[str, str] = {}
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:  # ``import torch.nn`` binds ``torch``
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def qualified(self, node: ast.AST) -> str | None:
        """The dotted name an expression refers to (``torch.load``), or ``None`` when it is not a plain name."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def references(self) -> Iterator[tuple[ast.expr, str]]:
        """Every outermost name or attribute chain with its qualified name (``torch.load`` once, not ``torch`` too)."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name | ast.Attribute) and not isinstance(self.parents.get(node), ast.Attribute):
                name = self.qualified(node)
                if name is not None:
                    yield node, name

    def call_of(self, node: ast.AST) -> ast.Call | None:
        """The call whose function ``node`` is, if any."""
        parent = self.parents.get(node)
        return parent if isinstance(parent, ast.Call) and parent.func is node else None

    def enclosing_function(self, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return node
        return None


def parse(sources: Mapping[str, str]) -> list[Module]:
    return [Module(path, source) for path, source in sources.items()]


def literal_true(call: ast.Call, keyword: str) -> bool:
    """``keyword=True`` written literally in the call (not through ``**kwargs`` or a variable)."""
    return any(k.arg == keyword and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


# 1. Deserialisation: torch.load only with weights_only=True; no pickle, eval, exec or marshal.

TORCH_LOADS = {"torch.load", "torch.serialization.load"}
#: Calls that download a file and then torch.load it; they must check its hash and load with weights_only=True.
HUB_LOADS = {"torch.hub.load_state_dict_from_url", "torch.utils.model_zoo.load_url"}
HUB_LOAD_METHODS = {"get_state_dict"}  # torchvision's ``Weights.get_state_dict`` calls load_state_dict_from_url
FORBIDDEN = {
    "pickle.load": "unpickling runs arbitrary code",
    "pickle.loads": "unpickling runs arbitrary code",
    "pickle.Unpickler": "unpickling runs arbitrary code",
    "_pickle.load": "unpickling runs arbitrary code",
    "_pickle.loads": "unpickling runs arbitrary code",
    "_pickle.Unpickler": "unpickling runs arbitrary code",
    "dill.load": "unpickling runs arbitrary code",
    "dill.loads": "unpickling runs arbitrary code",
    "cloudpickle.load": "unpickling runs arbitrary code",
    "cloudpickle.loads": "unpickling runs arbitrary code",
    "joblib.load": "unpickling runs arbitrary code",
    "shelve.open": "shelve unpickles",
    "torch.hub.load": "runs a repository's hubconf.py",
    "eval": "runs arbitrary code",
    "exec": "runs arbitrary code",
    "builtins.eval": "runs arbitrary code",
    "builtins.exec": "runs arbitrary code",
}


#: (path, name) -> why a finding of ``unsafe_deserialisation`` is safe there.
DESERIALISE_ALLOWED = {
    ("testing/_check.py", "pickle.loads"): "check_block's pickle law unpickles the bytes it pickled from the "
    "block under test on the line before; nothing read from outside the process is ever unpickled",
}


def unsafe_deserialisation(
    sources: Mapping[str, str], allowed: Mapping[tuple[str, str], str] = DESERIALISE_ALLOWED
) -> list[Finding]:
    """torch.load without a literal ``weights_only=True``, and any use of pickle loads, eval, exec or marshal."""
    findings = []
    for module in parse(sources):
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module]
            else:
                continue
            findings += [
                Finding(module.path, node.lineno, name, "marshal loads code objects")
                for name in imported
                if name.split(".")[0] == "marshal"
            ]
        for node, name in module.references():
            call = module.call_of(node)
            hub = name in HUB_LOADS or (isinstance(node, ast.Attribute) and node.attr in HUB_LOAD_METHODS)
            if name in TORCH_LOADS and not (call and literal_true(call, "weights_only")):
                findings.append(Finding(module.path, node.lineno, name, "needs weights_only=True, written literally"))
            elif hub and not (call and literal_true(call, "weights_only") and literal_true(call, "check_hash")):
                findings.append(Finding(module.path, node.lineno, name, "needs weights_only=True and check_hash=True"))
            elif name in FORBIDDEN:
                findings.append(Finding(module.path, node.lineno, name, FORBIDDEN[name]))
            elif name.split(".")[0] == "marshal":
                findings.append(Finding(module.path, node.lineno, name, "marshal loads code objects"))
    return [f for f in findings if (f.path, f.name) not in allowed]


# 2. Downloads: only registered helpers touch the network, and each checks a sha256 before it returns.

NETWORK = {
    "urllib.request.urlopen",
    "urllib.request.urlretrieve",
    "urllib.request.build_opener",
    "torch.hub.download_url_to_file",
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
    "socket.socket",
    "socket.create_connection",
}
NETWORK_MODULES = {"requests", "httpx", "urllib3", "aiohttp", "ftplib"}
DESERIALISERS = TORCH_LOADS | {
    "safetensors.torch.load_file",
    "safetensors.torch.load",
    "safetensors.safe_open",
    "safetensors.torch.safe_open",
}
#: The functions allowed to download, with why each is safe; each is also checked by ``download_problems``.
DOWNLOADERS = {
    ("models/_weights.py", "_fetch"): "downloads to a temporary file and returns a path only after its sha256 matched",
}


def is_network(name: str) -> bool:
    return name in NETWORK or name.split(".")[0] in NETWORK_MODULES


def sha256_helpers(module: Module) -> set[str]:
    """Functions of the module that compute a sha256 (they reference ``hashlib.sha256``)."""
    return {
        node.name
        for node in ast.walk(module.tree)
        if isinstance(node, ast.FunctionDef)
        and any(name == "hashlib.sha256" for sub in ast.walk(node) if (name := module.qualified(sub)) is not None)
    }


def hash_values(module: Module, function: ast.AST) -> set[str]:
    """Names assigned from a sha256 computation inside ``function``."""
    helpers = sha256_helpers(module)
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and any(
            isinstance(sub, ast.Call) and (module.qualified(sub.func) or "").split(".")[-1] in helpers | {"sha256"}
            for sub in ast.walk(node.value)
        ):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def is_hash_check(statement: ast.stmt, hashes: set[str]) -> bool:
    """``if <computed sha256> != <expected>: ...; raise``."""
    return (
        isinstance(statement, ast.If)
        and isinstance(statement.test, ast.Compare)
        and [type(op) for op in statement.test.ops] == [ast.NotEq]
        and any(isinstance(n, ast.Name) and n.id in hashes for n in ast.walk(statement.test))
        and isinstance(statement.body[-1], ast.Raise)
    )


def unverified_returns(statements: list[ast.stmt], hashes: set[str], verified: bool) -> Iterator[ast.Return]:
    """Returns that no earlier hash check in the same or an enclosing block guards."""
    for statement in statements:
        if isinstance(statement, ast.Return) and not verified:
            yield statement
        for field in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(statement, field, None)
            if isinstance(block, list) and not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [s for h in block for s in h.body] if field == "handlers" else block
                yield from unverified_returns(inner, hashes, verified)
        verified = verified or is_hash_check(statement, hashes)


def download_problems(sources: Mapping[str, str], downloaders: Mapping[tuple[str, str], str]) -> list[Finding]:
    """Network use outside the registered downloaders; downloaders that deserialise or return unverified."""
    findings = []
    for module in parse(sources):
        for node, name in module.references():
            if not is_network(name):
                continue
            function = module.enclosing_function(node)
            if function is None or (module.path, function.name) not in downloaders:
                where = function.name if function else "module level"
                findings.append(Finding(module.path, node.lineno, name, f"network use in {where}, not a downloader"))
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.FunctionDef) or (module.path, node.name) not in downloaders:
                continue
            findings += [
                Finding(module.path, sub.lineno, name, f"{node.name} deserialises what it downloads")
                for sub in ast.walk(node)
                if isinstance(sub, ast.expr) and (name := module.qualified(sub) or "") in DESERIALISERS
            ]
            findings += [
                Finding(module.path, r.lineno, "return", f"{node.name} returns before checking a sha256")
                for r in unverified_returns(node.body, hash_values(module, node), verified=False)
            ]
    return findings


# 3. Private torch attributes: names torch's objects and modules keep to themselves.


def _torch_examples() -> list[object]:
    """Instances of the torch objects blockzoo handles, for their instance attributes (``module._parameters``)."""
    linear = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(linear.parameters(), lr=0.1)
    parametrized = nn.utils.parametrizations.weight_norm(nn.Linear(2, 2))
    return [
        nn.Module(),
        linear,
        nn.Conv2d(1, 1, 1),
        nn.BatchNorm2d(1),
        nn.LayerNorm(2),
        nn.GroupNorm(1, 1),
        nn.Sequential(),
        nn.ModuleList(),
        nn.ModuleDict(),
        nn.ParameterList(),
        nn.Embedding(2, 2),
        nn.MultiheadAttention(2, 1),
        nn.Dropout(),
        parametrized,
        linear.register_forward_hook(lambda *_: None),
        optimizer,
        torch.optim.lr_scheduler.StepLR(optimizer, 1),
        torch.zeros(1),
        nn.Parameter(torch.zeros(1)),
        torch.Generator(),
        torch.device("cpu"),
        torch.float32,
        torch.Size([1]),
    ]


def torch_private_attributes() -> set[str]:
    """Underscore attribute names of torch's objects: instances above and every class in torch.nn and torch.optim."""
    classes = [
        value
        for namespace in (
            nn,
            nn.modules,
            nn.utils.parametrize,
            torch.optim,
            torch.optim.lr_scheduler,
            torch.utils.hooks,
        )
        for value in vars(namespace).values()
        if isinstance(value, type)
    ]
    for module_name in nn.modules.__all__:
        if isinstance(value := getattr(nn.modules, module_name), type):
            classes += [c for c in value.__mro__ if c.__module__.startswith("torch")]
    for submodule in ("conv", "batchnorm", "module", "normalization", "linear", "activation", "pooling"):
        classes += [v for v in vars(getattr(nn.modules, submodule)).values() if isinstance(v, type)]
    names = {n for thing in [*_torch_examples(), *classes] for n in dir(thing)}
    return {n for n in names if is_private(n)}


TORCH_PRIVATE = torch_private_attributes()

#: (path, name) -> why a private torch name is unavoidable there.
PRIVATE_ALLOWED: dict[tuple[str, str], str] = {
    ("inspect/_fuse.py", "_conv_forward"): (
        "a conv subclass may change its computation there (weight standardisation) rather than in forward; "
        "folding a BN into it would be wrong, and torch offers no public way to tell"
    ),
}


def own_names(modules: list[Module]) -> dict[str, list[tuple[str, int]]]:
    """Underscore attribute names that blockzoo defines, with where: members of its classes (methods and
    class attributes) and attributes it assigns on ``self`` or ``cls``.

    Assignments to any other object (``module._parameters = ...``) write into that object, so they define
    nothing; module-level functions and variables are not attributes of anything blockzoo passes around.
    """
    defined: dict[str, list[tuple[str, int]]] = {}
    for module in modules:
        for node in ast.walk(module.tree):
            members: list[tuple[str, int]] = []
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        members.append((statement.name, statement.lineno))
                    targets = statement.targets if isinstance(statement, ast.Assign) else []
                    if isinstance(statement, ast.AnnAssign):
                        targets = [statement.target]
                    members += [(t.id, t.lineno) for t in targets if isinstance(t, ast.Name)]
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"self", "cls"}
            ):
                members.append((node.attr, node.lineno))
            for name, line in members:
                if is_private(name):
                    defined.setdefault(name, []).append((module.path, line))
    return defined


def private_torch_uses(
    sources: Mapping[str, str], allowed: Mapping[tuple[str, str], str] = PRIVATE_ALLOWED
) -> list[Finding]:
    """Reads and writes of private torch attributes, imports from private torch modules, and blockzoo
    members that shadow a private torch attribute.

    An attribute ``x._name`` (read, written or deleted) is torch's when torch's objects have ``_name`` and
    blockzoo does not define it (see :func:`own_names`), so ``self._stages`` passes and
    ``module._parameters`` does not; a dotted name that resolves into ``torch`` (``torch._C``,
    ``nn.modules.conv._ConvNd``) is torch's whatever it is called; ``getattr(x, "_name")`` and friends count
    as ``x._name``. A member that blockzoo defines under one of torch's private names (a method
    ``_apply``, ``self._modules = ...``) is flagged where it is defined, since on a module it would
    replace torch's own.
    """
    modules = parse(sources)
    own = own_names(modules)
    findings: list[Finding] = []
    for name in sorted(own.keys() & TORCH_PRIVATE):
        findings += [Finding(path, line, name, "a member named like a private torch one") for path, line in own[name]]
    for module in modules:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "torch":
                parts = node.module.split(".")
                bad = [f"{node.module}.{a.name}" for a in node.names if any(map(is_private, [*parts, a.name]))]
                findings += [Finding(module.path, node.lineno, b, "imports from private torch") for b in bad]
            elif isinstance(node, ast.Import):
                findings += [
                    Finding(module.path, node.lineno, a.name, "imports a private torch module")
                    for a in node.names
                    if a.name.split(".")[0] == "torch" and any(map(is_private, a.name.split(".")))
                ]
            elif isinstance(node, ast.Attribute) and is_private(node.attr):
                qualified = module.qualified(node) or ""
                in_torch = qualified.split(".")[0] == "torch"
                if in_torch or (node.attr in TORCH_PRIVATE and node.attr not in own):
                    findings.append(
                        Finding(module.path, node.lineno, qualified or node.attr, "private torch attribute")
                    )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(attr := node.args[1].value, str)
                and attr in TORCH_PRIVATE
                and attr not in own
            ):
                findings.append(Finding(module.path, node.lineno, attr, f"private torch attribute via {node.func.id}"))
    return [f for f in findings if (f.path, f.name.split(".")[-1]) not in allowed]


# The scans of src/.


def test_src_deserialises_safely() -> None:
    findings = unsafe_deserialisation(src_sources())
    assert not findings, "\n".join(map(str, findings))


def test_src_downloads_only_through_verifying_helpers() -> None:
    findings = download_problems(src_sources(), DOWNLOADERS)
    assert not findings, "\n".join(map(str, findings))


def test_every_registered_downloader_exists_and_downloads() -> None:
    """A renamed helper must not leave a stale entry behind."""
    found = {
        (module.path, function.name)
        for module in parse(src_sources())
        for node, name in module.references()
        if is_network(name) and (function := module.enclosing_function(node)) is not None
    }
    assert found == set(DOWNLOADERS)


def test_the_real_fetch_fails_the_check_when_its_hash_checks_go() -> None:
    source = src_sources()["models/_weights.py"]
    weakened = source.replace("if actual != sha256:", "if False:")
    assert weakened.count("if False:") == 2
    findings = download_problems({"models/_weights.py": weakened}, DOWNLOADERS)
    assert [f.why for f in findings] == ["_fetch returns before checking a sha256"] * 2


def test_src_uses_no_private_torch_attributes() -> None:
    findings = private_torch_uses(src_sources())
    assert not findings, f"{len(findings)} use(s) of private torch names:\n" + "\n".join(map(str, findings))


def test_the_allowlist_has_no_stale_entries() -> None:
    everything = private_torch_uses(src_sources(), allowed={})
    assert set(PRIVATE_ALLOWED) <= {(f.path, f.name.split(".")[-1]) for f in everything}


# The scanners on synthetic sources, so that each check is shown to fail.


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("import torch\ntorch.load(p)\n", "torch.load"),
        ("import torch\ntorch.load(p, weights_only=False)\n", "torch.load"),
        ("import torch\nopts = {'weights_only': True}\ntorch.load(p, **opts)\n", "torch.load"),
        ("import torch\nflag = True\ntorch.load(p, weights_only=flag)\n", "torch.load"),
        ("from torch import load as read\nread(p)\n", "torch.load"),
        ("import torch.serialization as s\ns.load(p)\n", "torch.serialization.load"),
        ("import torch\nloader = torch.load\n", "torch.load"),
        ("import pickle\npickle.loads(b)\n", "pickle.loads"),
        ("from pickle import load\nload(f)\n", "pickle.load"),
        ("import pickle as p\np.Unpickler(f).load()\n", "pickle.Unpickler"),
        ("eval('1 + 1')\n", "eval"),
        ("exec('x = 1')\n", "exec"),
        ("import marshal\n", "marshal"),
        ("from marshal import loads\n", "marshal"),
        ("import torch\ntorch.hub.load('a/b', 'm')\n", "torch.hub.load"),
        (
            "import torch\ntorch.hub.load_state_dict_from_url(u, check_hash=True)\n",
            "torch.hub.load_state_dict_from_url",
        ),
        ("w.get_state_dict(progress=False, weights_only=True)\n", "w.get_state_dict"),
    ],
)
def test_unsafe_deserialisation_is_found(source: str, name: str) -> None:
    assert [f.name for f in unsafe_deserialisation({"bad.py": source})] == [name]


def test_the_deserialisation_allowlist_is_exact() -> None:
    """Each entry silences one name in one file, and each still matches a finding."""
    source = "import pickle\npickle.loads(pickle.dumps(x))\n"
    assert unsafe_deserialisation({"testing/_check.py": source}) == []
    assert [f.name for f in unsafe_deserialisation({"other.py": source})] == ["pickle.loads"]
    everything = unsafe_deserialisation(src_sources(), allowed={})
    assert set(DESERIALISE_ALLOWED) <= {(f.path, f.name) for f in everything}


def test_safe_deserialisation_passes() -> None:
    source = (
        "import pickle\nimport torch\nfrom safetensors.torch import load_file\n"
        "torch.load(p, map_location='cpu', weights_only=True)\nload_file(p)\n"
        "try:\n    pass\nexcept pickle.UnpicklingError:\n    pass\n"
        "w.get_state_dict(progress=False, check_hash=True, weights_only=True)\n"
    )
    assert unsafe_deserialisation({"ok.py": source}) == []


GOOD_FETCH = """
import hashlib, os, urllib.request

def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()

def fetch(url, sha256, cached):
    if os.path.exists(cached):
        actual = _digest(cached)
        if actual != sha256:
            raise RuntimeError("tampered")
        return cached
    with urllib.request.urlopen(url) as response:
        data = response.read()
    open(cached + ".tmp", "wb").write(data)
    actual = _digest(cached + ".tmp")
    if actual != sha256:
        raise RuntimeError("bad download")
    os.replace(cached + ".tmp", cached)
    return cached
"""
FETCHER = {("net.py", "fetch"): "the helper under test"}


def test_a_verifying_download_helper_passes() -> None:
    assert download_problems({"net.py": GOOD_FETCH}, FETCHER) == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        # the cache hit returned before its hash is checked
        (("        actual = _digest(cached)\n        if actual != sha256:\n", "        if False:\n"), "returns before"),
        # the check of the download removed
        (('    if actual != sha256:\n        raise RuntimeError("bad download")\n', ""), "returns before"),
        # the comparison turned round
        (
            (
                '    if actual != sha256:\n        raise RuntimeError("bad download")',
                '    if actual == sha256:\n        raise RuntimeError("bad download")',
            ),
            "returns before",
        ),
        # the check no longer raises
        (('raise RuntimeError("bad download")', "print('bad download')"), "returns before"),
        # the helper deserialises what it downloaded before anything is checked
        (
            ("    open(cached", "    import torch\n    torch.load(response, weights_only=True)\n    open(cached"),
            "deserialises",
        ),
    ],
)
def test_a_download_helper_that_does_not_verify_is_found(change: tuple[str, str], why: str) -> None:
    old, new = change
    assert old in GOOD_FETCH
    findings = download_problems({"net.py": GOOD_FETCH.replace(old, new, 1)}, FETCHER)
    assert findings
    assert all(why in f.why for f in findings), findings


@pytest.mark.parametrize(
    "source",
    [
        "import urllib.request\ndef load(url):\n    return torch.load(urllib.request.urlopen(url), weights_only=True)\n",
        "from urllib.request import urlretrieve\nurlretrieve(u, p)\n",
        "import torch\ndef get(u, p):\n    torch.hub.download_url_to_file(u, p)\n",
        "import requests\ndef get(u):\n    return requests.get(u).content\n",
    ],
)
def test_network_use_outside_a_registered_downloader_is_found(source: str) -> None:
    findings = download_problems({"net.py": source}, FETCHER)
    assert findings
    assert "not a downloader" in findings[0].why


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("def f(module):\n    return module._parameters\n", "module._parameters"),
        ("def f(module, p):\n    module._parameters['w'] = p\n", "module._parameters"),
        ("def f(t):\n    return t._version\n", "t._version"),
        ("def f(m):\n    return getattr(m, '_forward_hooks')\n", "_forward_hooks"),
        (
            "import torch\nhooks = torch.nn.modules.module._global_forward_hooks\n",
            "torch.nn.modules.module._global_forward_hooks",
        ),
        ("from torch import nn\nbase = nn.modules.conv._ConvNd\n", "torch.nn.modules.conv._ConvNd"),
        (
            "import torch\nfan = torch.nn.init._calculate_fan_in_and_fan_out(w)\n",
            "torch.nn.init._calculate_fan_in_and_fan_out",
        ),
        ("from torch.utils._pytree import tree_map\n", "torch.utils._pytree.tree_map"),
        (
            "from torch.nn.modules.module import _global_forward_hooks\n",
            "torch.nn.modules.module._global_forward_hooks",
        ),
        ("import torch._dynamo\n", "torch._dynamo"),
        ("def f(m, p):\n    m._buffers = p\n", "m._buffers"),
        ("def f(m, order):\n    params = m._parameters\n    m._parameters = dict(params)\n", "m._parameters"),
        ("from torch import nn\nclass B(nn.Module):\n    def _apply(self, fn):\n        return self\n", "_apply"),
        ("class B:\n    def __init__(self):\n        self._modules = {}\n", "_modules"),
    ],
)
def test_private_torch_names_are_found(source: str, name: str) -> None:
    assert name in [f.name for f in private_torch_uses({"bad.py": source}, allowed={})]


def test_a_read_next_to_a_write_of_a_torch_name_is_found_too() -> None:
    source = "def f(m):\n    params = m._parameters\n    m._parameters = dict(params)\n"
    assert [f.line for f in private_torch_uses({"bad.py": source}, allowed={})] == [2, 3]


def test_blockzoos_own_private_names_pass() -> None:
    source = (
        "def _apply(rules):\n    return rules\n"  # a module-level helper named like Module._apply
        "def _add_grad(g):\n    return g\n"
        "from torch import nn\nfrom blockzoo._names import close_matches\n"
        "class Block(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self._stages = nn.Sequential()\n"
        "    def _check(self, x):\n        return x\n"
        "    def forward(self, x):\n        return self._stages(self._check(x))\n"
        "def g(block):\n    return block._stages, torch.nn.Module.__init__\n"
    )
    assert private_torch_uses({"ok.py": source}, allowed={}) == []


def test_the_allowlist_silences_only_its_own_entry() -> None:
    source = "def f(t):\n    return t._version\n\ndef g(m):\n    return m._modules\n"
    findings = private_torch_uses({"a.py": source}, allowed={("a.py", "_version"): "a reason"})
    assert [f.name for f in findings] == ["m._modules"]
