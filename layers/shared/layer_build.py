"""Prunes the shared layer after pip has installed its requirements (``make build-SharedLayer``).

Powertools' wheel carries every utility it has; the functions use a few. The lists below are
what the handlers import, traced with ``sys.modules`` at the end of a pytest session of
tests/integration/test_pipeline.py, test_sweeper.py and test_faults.py (every handler through
its paths: retry, poll, sweep, dead-letter, redelivery, duplicates) and compared with a bare
import of the three handlers (the same set): everything else in those packages is removed.
``tests/build/test_sam_build.py`` imports every handler and every module in ``LAZY_MODULES``
from the pruned layer, so a trace that missed a module fails the build test, not a deployed
function.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# aws_lambda_powertools/<entry>: what `import aws_lambda_powertools` and the handlers load.
POWERTOOLS_KEEP = {
    "__init__.py", "exceptions", "logging", "metrics", "middleware_factory", "package_logger.py",
    "py.typed", "shared", "tracing", "utilities", "warnings",
}  # fmt: skip
# aws_lambda_powertools/utilities/<entry>.
UTILITIES_KEEP = {
    "__init__.py", "batch", "data_classes", "idempotency", "jmespath_utils", "parameters", "typing",
}  # fmt: skip
# Modules the functions import on first use rather than at module load: a bare `import app`
# does not prove them, so the build test imports each of these from the built layer.
# `requests`: the breaker builds its VideoDB client on its first probe (videodb_on_first_use.py),
# importing videodb_retry.adapters.videodb_client and .api_key then; those two are loaded at
# import by the poll, sweeper and retry handlers from the same layer, so only the third-party
# part is listed.
# Tracing every handler through the integration tests loads nothing else that `import app` had
# not (Powertools' own lazy imports are of boto3, from the runtime).
LAZY_MODULES: tuple[str, ...] = ("requests",)
# Never imported at run time: console scripts and pip's bookkeeping of a --target install.
DROP_EVERYWHERE = ("bin",)


def prune(site: Path) -> list[str]:
    """Remove what no handler imports from the layer's ``python/`` directory; return it."""
    removed = []
    for base, keep in (
        (site / "aws_lambda_powertools", POWERTOOLS_KEEP),
        (site / "aws_lambda_powertools" / "utilities", UTILITIES_KEEP),
    ):
        for entry in sorted(base.iterdir()):
            if entry.name not in keep and entry.name != "__pycache__":
                _remove(entry)
                removed.append(str(entry.relative_to(site)))
    for name in DROP_EVERYWHERE:
        if (site / name).exists():
            _remove(site / name)
            removed.append(name)
    for cache in list(site.rglob("__pycache__")):
        _remove(cache)  # stale bytecode of removed modules; compiled again after pruning
    return removed


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


if __name__ == "__main__":
    for line in prune(Path(sys.argv[1])):
        print(f"pruned {line}")
