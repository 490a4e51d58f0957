"""Mutation reversals: patch-mode prompts whose answer is known by construction.

    examples = reversal_examples(sources, cmap, want=200, seed=0)   # [Reversal]

A released project's source is code its own tests accept. Mutate one line of a function
those tests run, with the operators synthesized tasks use (``codemill.tasks.mutate``), and
the fix is that line as released: a supervised example for patch mode that costs no test
run, so a training set can hold thousands where validated tasks number tens per project.
It is not a task and carries no reward: nothing is executed, the mutated module is only
parsed (``check_mutation``), and no test is claimed to fail.

Each example is laid out as ``codemill.tasks.patch_context`` lays out a real task:

- the statement names the tests that run the changed line (from the environment's coverage
  map) as tests that *may* fail, in the synthesized statements' wording otherwise;
- the listing shows the mutated function (a window around the changed line when it is too
  big for the budget) and up to ``max_functions - 1`` other functions of the same file that
  those tests also run, whole, within ``max_tokens``, in file order;
- the marked lines vary as localization's do: the changed line alone, the changed line
  among one or two other lines of its function (sorted: the model must tell which one is
  wrong), or none.

Only single-line mutations that keep the line count are used (the changed line is then the
same number before and after), at most ``per_function`` per function, interleaved by
operator in a seeded order. The gold patch goes from the mutated text back to the
released one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from codemill.core.diffs import file_diff
from codemill.core.ids import content_id
from codemill.tasks.coverage_map import CoverageMap
from codemill.tasks.mutate import Mutation, check_mutation
from codemill.tasks.patch_context import (
    CHARS_PER_TOKEN,
    PatchContext,
    PatchContextConfig,
    Snippet,
    function_spans,
    listing_size,
    window,
)
from codemill.tasks.synth import order_candidates

REVERSAL_VERSION = "1"
"""Bump when the same source would give other examples (part of their ids)."""
SHOWN_TESTS = 5
"""Tests the statement names at most."""


@dataclass(frozen=True)
class Reversal:
    """One example: the statement and context patch mode would show for the mutated
    source, and the gold patch back to the released text."""

    example_id: str
    kind: str
    statement: str
    context: PatchContext
    gold_patch: str


def reversal_examples(sources: Mapping[str, str], cmap: CoverageMap, *, want: int,
                      seed: int = 0, per_function: int = 2,
                      config: PatchContextConfig | None = None) -> list[Reversal]:
    """Up to ``want`` examples from the modules ``sources`` (path -> released text) whose
    changed line ``cmap`` says a test runs (module docstring)."""
    config = config or PatchContextConfig()
    rng = random.Random(content_id("reversal", REVERSAL_VERSION, seed))
    used: dict[tuple[str, str], int] = {}
    out: list[Reversal] = []
    for mutation, source in order_candidates(dict(sources), cmap, None, seed):
        if len(out) >= want:
            break
        key = (mutation.path, mutation.function)
        if mutation.lines[0] != mutation.lines[1] or used.get(key, 0) >= per_function:
            continue
        if check_mutation(source, mutation) is not None:
            continue
        example = _example(mutation, source, cmap, config, rng)
        if example is not None:
            used[key] = used.get(key, 0) + 1
            out.append(example)
    return out


def _example(m: Mutation, source: str, cmap: CoverageMap, config: PatchContextConfig,
             rng: random.Random) -> Reversal | None:
    broken = m.apply(source)
    if broken.count("\n") != source.count("\n"):
        return None
    line = m.lines[0]
    tests = sorted(cmap.tests_for(m.path, [line]))
    if not tests:
        return None
    lines = broken.splitlines()
    spans = function_spans(broken)
    around = [s for s in spans if s[0] <= line <= s[1]]
    if not around:
        return None
    start, end, _ = min(around, key=lambda s: s[1] - s[0])  # the innermost function
    budget = config.max_tokens * CHARS_PER_TOKEN
    first, last = window(lines, start, end, line, budget)
    if first is None:
        return None
    chosen = [(first, last)]
    budget -= listing_size(lines, first, last)
    others = [(a, b) for a, b, _ in spans
              if (b < first or a > last) and cmap.tests_for(m.path, range(a, b + 1)) & set(tests)]
    rng.shuffle(others)
    for a, b in others[: rng.randint(0, config.max_functions - 1)]:
        size = listing_size(lines, a, b)
        if size <= budget and not any(a <= y and x <= b for x, y in chosen):
            chosen.append((a, b))
            budget -= size
    chosen.sort()
    snippets = tuple(Snippet(m.path, a, tuple(lines[a - 1:b])) for a, b in chosen)
    marked = _marks(sorted(cmap.covered(m.path) & set(range(first + 1, last + 1)) - {line}),
                    line, config.max_marked, rng)
    return Reversal(
        example_id=content_id("reversal", REVERSAL_VERSION, m.path, m.mutation_id, chosen,
                              marked),
        kind=m.kind, statement=_statement(tests),
        context=PatchContext(task_id="", snippets=snippets, files={m.path: broken},
                             marked=tuple((m.path, n) for n in marked)),
        gold_patch=file_diff(m.path, broken.encode(), source.encode()))


def _marks(executed: list[int], line: int, most: int, rng: random.Random) -> list[int]:
    """The changed line alone (half the time), among up to two other lines of the shown
    function that tests execute (a third), or no mark (the rest), as localization's marks
    vary."""
    draw = rng.random()
    if draw < 1 / 6 or most == 0:
        return []
    if draw < 1 / 2 or most == 1 or not executed:
        return [line]
    extra = rng.sample(executed, min(len(executed), rng.randint(1, most - 1)))
    return sorted([line, *extra])


def _statement(tests: list[str]) -> str:
    parts = [f"Something is wrong: some of these {len(tests)} test(s) may fail.", ""]
    parts += [f"* `{t}`" for t in tests[:SHOWN_TESTS]]
    if len(tests) > SHOWN_TESTS:
        parts.append(f"* ... and {len(tests) - SHOWN_TESTS} more")
    parts += ["", "Expected: these tests pass, and the rest of the test suite keeps passing."]
    return "\n".join(parts) + "\n"
