"""Assets for the factory's end-to-end tests, loaded the way a user loads theirs:
``codemill factory plan --no-pipeline --module tests/factory/sample_assets.py``.

``snapshots`` makes ``config["n"]`` rows with content ids, skipping ids already in the
table (so a rerun after a crash neither redoes nor duplicates work); ``environments``
makes one row per snapshot. Each call appends ``<asset> <rows made>`` to the file named
by ``$SAMPLE_CALLS`` so tests can count real calls. With ``$SAMPLE_HANG_AT=k`` and
``$SAMPLE_MARKER=path``, ``snapshots`` writes the marker before making its k-th new row
and then hangs, for a test to kill it there.
"""

import os
import time
from pathlib import Path

from codemill.core.ids import content_id
from codemill.factory import AssetContext, asset


def _called(name: str, rows: int) -> None:
    calls = os.environ.get("SAMPLE_CALLS")
    if calls:
        with open(calls, "a") as fh:
            fh.write(f"{name} {rows}\n")


def _no_duplicate_ids(rows):
    ids = [r["snapshot_id"] for r in rows]
    return None if len(ids) == len(set(ids)) else "duplicate snapshot ids"


@asset("snapshots", code_version="1", checks=(_no_duplicate_ids,))
def snapshots(ctx: AssetContext):
    """Numbered fake source trees, resumable by id."""
    done = ctx.existing_ids("snapshots", "snapshot_id")
    hang_at = int(os.environ.get("SAMPLE_HANG_AT", "0"))
    made = 0
    for i in range(int(ctx.config.get("n", 10))):
        sid = content_id("sample-snapshot", i)
        if sid in done:
            continue
        if hang_at and made + 1 == hang_at:
            Path(os.environ["SAMPLE_MARKER"]).write_text(str(made))
            time.sleep(120)
        made += 1
        yield {"snapshot_id": sid, "source": f"sample://{i}", "source_kind": "local",
               "n_files": i}
    _called("snapshots", made)


@asset("environments", code_version="1", deps=("snapshots",))
def environments(ctx: AssetContext):
    """One environment per snapshot not yet built."""
    done = ctx.existing_ids("environments", "env_id")
    made = 0
    for snap in ctx.upstream("snapshots", columns=["snapshot_id"]).to_pylist():
        env_id = content_id("sample-env", snap["snapshot_id"], ctx.config.get("python"))
        if env_id not in done:
            done.add(env_id)
            made += 1
            yield {"env_id": env_id, "snapshot_id": snap["snapshot_id"], "status": "usable"}
    _called("environments", made)
