"""Which kernels a call runs: the leaf aten ops of one profiled call, to tell whether two modules do the same work.

At the realistic block shapes a call takes tens to hundreds of milliseconds,
almost all of it in kernels, and two implementations that run the same
kernels on the same shapes take the same time up to the machine's noise
(several percent on two shared cores, more than the targets' margins). What
wall time cannot decide there, the list of kernels can: if blockzoo runs no
kernel that the reference does not, the only difference left is the Python
around them, which the instruction counts measure at the small shape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile

Kernel = tuple[str, str]  # (aten op, its input shapes as the profiler records them)


def kernels(fn: Callable[[], object]) -> Counter[Kernel]:
    """The leaf aten ops of one call of ``fn`` with their input shapes: the ops that do the work.

    An op that dispatches to other aten ops (``conv2d`` -> ``convolution`` ->
    ... -> ``mkldnn_convolution``; ``relu`` -> ``clamp_min``) does none of its
    own, so only the innermost ones count; forward and backward alike.
    """
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    leaves: Counter[Kernel] = Counter()
    for event in prof.events():
        if event.name.startswith("aten::") and not any(c.name.startswith("aten::") for c in event.cpu_children):
            leaves[(event.name, str(event.input_shapes))] += 1
    return leaves


def runs_no_more(ours: Counter[Kernel], reference: Counter[Kernel]) -> bool:
    """Whether each of ``ours`` is a kernel the reference also runs, on the same shapes, as often or less.

    An in-place op of ours stands for the reference's out-of-place one
    (``clamp_min_`` for ``clamp_min``, ``add_`` for ``add``): the same
    arithmetic with one output fewer to allocate. The converse is not
    allowed: an out-of-place op where the reference works in place allocates
    more.
    """
    left = Counter(reference)
    for (name, shapes), count in ours.items():
        for _ in range(count):
            candidates = [(name, shapes)]
            if name.endswith("_") and not name.endswith("__"):
                candidates.append((name[:-1], shapes))
            match = next((k for k in candidates if left[k] > 0), None)
            if match is None:
                return False
            left[match] -= 1
    return True
