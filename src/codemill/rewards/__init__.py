"""Layer 3: honest rewards. Grading from a diff alone, in a fresh sandbox over the pristine
task state; pristine tests restored; only the harness's own result file read; infrastructure
errors masked (``value=None``), never zero; hacks flagged.

Modules: ``diffs`` (reading a diff), ``paths`` (tests, config, hooks), ``flags`` (hack
signals), ``verdict`` (report -> verdict), ``grader`` (``grade``, ``TestGrader``),
``config`` (``GraderConfig``, ``HARNESS_VERSION``). GRPO advantages belong to the trainer
(``codemill.train.grpo.advantages``).
"""
