"""Synthesis, selection, validation and packaging on a real environment in real sandboxes."""

from codemill.core.records import TaskKind
from codemill.sandbox.api import open_sandbox
from codemill.tasks.feature_tasks import FeatureConfig, feature_tasks
from codemill.tasks.mutate import enumerate_mutations
from codemill.tasks.package import git_env, package_task
from codemill.tasks.patches import code_lines
from codemill.tasks.records import FunnelCounter
from codemill.tasks.selection import check_selection
from codemill.tasks.synth import SynthConfig, _decide, order_candidates
from codemill.tasks.validate import ValidationConfig

QUICK = ValidationConfig(runs=2, max_mutants=2)


def _mutation(bed, path, function, kind, description):
    source = bed.source_files()[path]
    for m in enumerate_mutations(path, source, [kind]):
        if m.function == function and m.description == description:
            return m, source
    raise AssertionError(f"no {kind} {description} in {function}")


def _decide_one(bed, m_src, funnel):
    cfg = SynthConfig(validation=QUICK)
    decision, _ = _decide(bed, bed.coverage_map(), bed.baseline(2), [m_src], cfg, funnel,
                          set())
    return decision


def test_odd_files_are_skipped_and_coverage_maps_tests(bed):
    sources = bed.source_files()
    assert "calc/__init__.py" in sources and "calc/config.py" in sources
    assert "calc/legacy.py" not in sources  # Latin-1: left alone, not rewritten wrongly
    cmap = bed.coverage_map()
    assert cmap.tests_for("calc/__init__.py", [19]) == {"tests/test_calc.py::test_mean"}
    ordered = order_candidates(sources, cmap, None, seed=0)
    assert {m.path for m, _ in ordered} <= set(sources)
    assert len({m.kind for m, _ in ordered}) >= 8


def test_selective_verdict_equals_full_suite_verdict(bed):
    cmap = bed.coverage_map()
    pool = [x for x in order_candidates(bed.source_files(), cmap, None, seed=1)
            if x[0].function != "spin"]  # keep the sample quick: no hangs here
    check = check_selection(bed, cmap, pool, sample=3, seed=2)
    assert check.sampled == 3
    assert check.ok, check.disagreements


def test_validation_accepts_a_real_bug_and_rejects_the_rest(bed):
    funnel = FunnelCounter(bed.env_id, "synth")
    task, row = _decide_one(bed, _mutation(bed, "calc/__init__.py", "mean", "arith_swap",
                                           "`/` -> `*`"), funnel)
    assert row.valid and task is not None and task.kind == TaskKind.SYNTH
    assert task.fail_to_pass == ("tests/test_calc.py::test_mean",)
    assert "tests/test_calc.py::test_add" in task.pass_to_pass
    assert task.metadata["kill_rate"] is not None and "weak" in task.metadata
    assert task.hidden_paths == ("tests/test_calc.py",)
    assert "return sum(xs) / len(xs)" not in task.problem_statement
    assert "test_mean" in task.problem_statement

    survivor = _mutation(bed, "calc/__init__.py", "noisy", "arith_swap", "`*` -> `/`")
    assert _decide_one(bed, survivor, funnel)[1].reason == "no test broke"
    hang = _mutation(bed, "calc/__init__.py", "spin", "arith_swap", "`+=` -> `-=`")
    assert _decide_one(bed, hang, funnel)[1].reason == "timeout"
    imports = _mutation(bed, "calc/config.py", "load_defaults", "remove_return",
                        '`return {"scale": 2}` -> `return None`')
    assert _decide_one(bed, imports, funnel)[1].reason == "breaks imports"
    f = funnel.freeze()
    assert f.candidates == 4 and f.broke_a_test == 1 and f.passed_validation == 1
    assert f.rejected == {"breaks imports": 1, "no test broke": 1, "timeout": 1}


def test_a_test_that_reaches_the_bug_only_at_import_is_labelled_too(bed):
    """Screening selects by per-test coverage, which misses ``tests/test_scale.py`` (it
    runs ``load_defaults`` only when its module is imported); the full runs of validation
    see it fail, and it joins FAIL_TO_PASS instead of costing the bug."""
    source = bed.source_files()["calc/config.py"]
    m = next(m for m in enumerate_mutations("calc/config.py", source, ["const_off_by_one"])
             if m.function == "load_defaults")
    assert bed.coverage_map().tests_for("calc/config.py", list(range(*m.lines))
                                        + [m.lines[1]]) == {"tests/test_config.py::test_defaults"}
    task, row = _decide_one(bed, (m, source), FunnelCounter(bed.env_id, "synth"))
    assert row.valid, row.reason
    assert task.fail_to_pass == ("tests/test_config.py::test_defaults",
                                 "tests/test_scale.py::test_scale_constant")
    assert task.metadata["n_beyond_screen"] == 1
    assert set(task.hidden_paths) == {"tests/test_config.py", "tests/test_scale.py"}
    assert "SCALE * 10" not in task.problem_statement  # a hidden test's line never leaks
    assert "test_scale_constant" in task.problem_statement


def test_packaged_workspace_hides_gold_and_hidden_tests(bed, calc_env):
    settings, _, _ = calc_env
    task, _ = _decide_one(bed, _mutation(bed, "calc/__init__.py", "add", "arith_swap",
                                         "`+` -> `-`"), FunnelCounter(bed.env_id, "synth"))
    assert task is not None
    layer = package_task(bed, task)
    with open_sandbox(bed.spec.with_top(layer), settings.home) as sb:
        log = sb.run(["git", "log", "--all", "--format=%H %s"], env=git_env())
        reflog = sb.run(["git", "reflog"], env=git_env())
        objects = sb.run(["sh", "-c", "git cat-file --batch-all-objects --batch"],
                         env=git_env())
        listing = sb.run(["sh", "-c", "ls tests; git remote; git tag; ls .git"],
                         env=git_env())
        assert sb.read_file("calc/__init__.py").decode().count("return a - b") == 1
    assert log.exit_code == 0 and len(log.stdout.strip().splitlines()) == 1
    assert reflog.stdout.strip() == ""
    assert objects.exit_code == 0 and "return a - b" in objects.stdout
    assert "return a + b" not in objects.stdout  # the gold line exists in no object
    hidden = bed.read_base("tests/test_calc.py").decode()
    assert "def test_mean" in hidden and "def test_mean" not in objects.stdout
    assert "test_calc.py" not in listing.stdout.split("\n")[0:3]
    assert "logs" not in listing.stdout.split() and "packed-refs" not in listing.stdout
    assert not [x for x in code_lines(task.gold_patch, "+") if x in objects.stdout]


def test_feature_task_from_a_tested_function(bed):
    cfg = FeatureConfig(max_tasks=1, kinds=("stub_body",), validation=QUICK, seed=3)
    decisions = list(feature_tasks(bed, cfg))
    tasks = [t for t, _ in decisions if t is not None]
    assert len(tasks) == 1, [r.reason for _, r in decisions]
    task = tasks[0]
    assert task.kind == TaskKind.FEATURE and task.fail_to_pass
    assert "NotImplementedError" in task.broken_patch
    assert "is not implemented" in task.problem_statement
    fn = task.metadata["function"].split("::")[1]
    assert f"def {fn}(" in task.problem_statement
