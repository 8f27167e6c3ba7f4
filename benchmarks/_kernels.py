"""Which aten ops a call runs, with their arguments: to tell whether two modules do the same work.

At the realistic block shapes a call takes tens to hundreds of milliseconds,
almost all of it in kernels, and two implementations that run the same ops
on the same shapes with the same arguments take the same time up to the
machine's noise (several percent on two shared cores, more than the targets'
margins). What wall time cannot decide there, the list of ops can: if
blockzoo runs no op that the reference does not, the only difference left is
the Python around them, which the instruction counts measure at the small
shape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile

Op = tuple[str, str, str]  # (aten op, its input shapes, its other arguments), as the profiler records them

#: The factories that allocate a tensor and write nothing into it: one allocation whichever of them makes it
#: (``Tensor.new_empty`` only calls ``empty`` with the tensor's dtype and device), keyed by the size allocated.
_ALLOCATORS = {"aten::empty": 0, "aten::new_empty": 1, "aten::empty_strided": 0, "aten::new_empty_strided": 1}


def _key(event: FunctionEvent) -> Op:
    args = list(event.concrete_inputs)
    if event.name in _ALLOCATORS:
        return ("allocate", "", str(args[_ALLOCATORS[event.name]]))
    return (event.name, str(event.input_shapes), str(args))


def ops(fn: Callable[[], object]) -> Counter[Op]:
    """Every aten op that one call of ``fn`` runs, forward and backward, with its input shapes and other arguments.

    Every op counts, not only the innermost ones: an op that computes (``mkldnn_convolution``,
    ``native_batch_norm``) calls ``empty`` for its output, and its arguments (a kernel size, a stride, an
    approximation) decide its cost. An allocation counts once, as its outermost factory. The profiler records
    numbers and lists of numbers among the arguments, not strings: ``gelu(approximate="tanh")`` and the exact
    ``gelu`` look alike here (the blocks compared in the benchmarks pass no string to an op).
    """
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    counted: Counter[Op] = Counter()
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        if event.name in _ALLOCATORS and parent is not None and parent.name in _ALLOCATORS:
            continue  # new_empty -> empty: one allocation
        counted[_key(event)] += 1
    return counted


def runs_no_more(ours: Counter[Op], reference: Counter[Op]) -> bool:
    """Whether each of ``ours`` is an op the reference also runs, with the same shapes and arguments, as often or less.

    An in-place op of ours stands for the reference's out-of-place one
    (``clamp_min_`` for ``clamp_min``, ``add_`` for ``add``): the same
    arithmetic with one output fewer to allocate. The converse is not
    allowed: an out-of-place op where the reference works in place allocates
    more.
    """
    left = Counter(reference)
    for (name, shapes, args), count in ours.items():
        for _ in range(count):
            candidates = [(name, shapes, args)]
            if name.endswith("_") and not name.endswith("__"):
                candidates.append((name[:-1], shapes, args))
            match = next((k for k in candidates if left[k] > 0), None)
            if match is None:
                return False
            left[match] -= 1
    return True
