"""Figure 3: cold start — importing each function's handler module in a fresh interpreter
against ``import boto3`` alone in a fresh interpreter.

Each sample is a new process of the runtime's Python (3.13) with the environment the template
gives the function plus what the Lambda runtime sets (``LAMBDA_TASK_ROOT`` and the X-Ray
variables active tracing sets among them), and ``PYTHONPATH=layers/shared:functions/<f>``;
the packages are the project venv's: the layer's pins, and the runtime's boto3/botocore pair
(requirements-dev.txt), which the layer no longer carries. The time is taken inside the process around the
``import`` statement (interpreter start-up, the same for every sample, is left out), made a
number of Python calls down that changes every round (``DEPTHS``; the same for every kind in a
round). Samples are interleaved, median of N each. One more run per handler with ``python -X importtime``
lists the heaviest imports.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import REGION, ROOT, Figure, Row, bench_stack, command, median, ms, ratio, run_process

KEY = "coldstart"
# No target (issue 20 item 8): the goal of 1.3x `import boto3` is retired; what a handler
# imports beyond boto3 is the design's own packages (Powertools, requests), each needed by the
# first invocation. The figure keeps showing what they cost.
FUNCTIONS = {
    "RetryFunction": "retry",
    "PollFunction": "poll",
    "SweeperFunction": "sweeper",
    "BreakerFunction": "breaker",
}
BASELINE = "boto3"

# How many Python calls down a round's imports run (round i: DEPTHS[i % 11], every kind alike).
# CPython 3.13 keeps frames in 16 KB chunks and frees a chunk as soon as the stack drops back
# below it, so an import whose calls keep crossing a chunk's edge maps and unmaps one hundreds
# of times: a handler's import costs tens of ms more CPU at some starting depths than at others
# (a few to 3,000 mmap/munmap pairs for the same modules, by depth).
# Lambda's runtime imports the handler at a depth of its own; rounds over 11 depths measure the
# imports rather than where that edge happens to fall for one depth.
DEPTHS = tuple(range(0, 33, 3))

# Runs in the fresh interpreter: a loopback-only guard first (untimed), then the timed import,
# {depth} calls down.
SNIPPET = """
import json, socket, time
_real = socket.socket.connect
def _guard(sock, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise ConnectionRefusedError("bench guard: %r is not loopback" % (address,))
    return _real(sock, address)
socket.socket.connect = _guard
def _timed(depth):
    if depth:
        return _timed(depth - 1)
    started, cpu = time.perf_counter(), time.process_time()
    import {module}
    return time.perf_counter() - started, time.process_time() - cpu
wall, cpu = _timed({depth})
print(json.dumps({{"import_s": wall, "cpu_s": cpu}}))
"""
_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def runtime_python() -> str:
    """The Python to run samples with: this one if it is 3.13 (the template's runtime)."""
    if sys.version_info[:2] == (3, 13):
        return sys.executable
    found = sorted(glob.glob("/root/.pyenv/versions/3.13.*/bin/python3.13"))
    return found[-1] if found else sys.executable


def lambda_environments() -> dict[str, dict[str, str]]:
    """Each function's environment as the template resolves it, plus the Lambda runtime's."""
    environments = {}
    with bench_stack(overrides={"SweeperEnabled": "true", "LogLevel": "INFO"}) as (_, stack):
        for logical_id, folder in FUNCTIONS.items():
            function = stack.functions[logical_id]
            code_dir = ROOT / "functions" / folder
            environments[logical_id] = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "en_US.UTF-8",
                "TZ": ":UTC",
                "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only a fallback for HOME
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",  # loopback; nothing is sent at import
                "LAMBDA_TASK_ROOT": str(code_dir),
                "LAMBDA_RUNTIME_DIR": "/var/runtime",
                "_HANDLER": "app.lambda_handler",
                **stack.template.function_environment(logical_id, stack.ids),
                "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(code_dir)]),
            }
    return environments


def _sample(python: str, module: str, env: dict[str, str], depth: int = 0) -> dict[str, float]:
    done = run_process(
        [python, "-c", SNIPPET.format(module=module, depth=depth)],
        env,
        failure=f"import {module} failed in a fresh interpreter",
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall": float(measured["import_s"]), "cpu": float(measured["cpu_s"])}


def importtime(python: str, module: str, env: dict[str, str]) -> list[tuple[str, float, float, int]]:
    """``python -X importtime -c 'import module'``: (module, self s, cumulative s, depth) rows."""
    done = run_process([python, "-X", "importtime", "-c", f"import {module}"], env)
    rows = []
    for line in done.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            rows.append((name, int(self_us) / 1e6, int(cumulative_us) / 1e6, (len(indent) - 1) // 2))
    return rows


def self_times(runs: list[list[tuple[str, float, float, int]]]) -> dict[str, float]:
    """Median self time per module over several ``-X importtime`` runs (0 where a run lacks it),
    so one run's scheduling hiccup does not make an offender."""
    per_module: dict[str, list[float]] = defaultdict(list)
    for rows in runs:
        for name, self_s, _, _ in rows:
            per_module[name].append(self_s)
    return {name: median(values + [0.0] * (len(runs) - len(values))) for name, values in per_module.items()}


def entry_points(
    rows: list[tuple[str, float, float, int]], self_time: dict[str, float], baseline: dict[str, float]
) -> list[tuple[str, str, float]]:
    """The project's imports that cost the most beyond boto3: each module first imported
    straight from the handler or the layer package, with the self time of everything it
    pulled in that ``import boto3`` does not load. (importer, module, seconds), largest first."""
    found = []
    for i, (name, _, _, depth) in enumerate(rows):
        parent = next((row[0] for row in rows[i + 1 :] if row[3] < depth), None)
        ours = ("app", "videodb_retry")
        if parent is None or name.split(".")[0] in ours or parent.split(".")[0] not in ours:
            continue
        subtree, j = [name], i - 1  # importtime prints a module's imports just before it
        while j >= 0 and rows[j][3] > depth:
            subtree.append(rows[j][0])
            j -= 1
        extra = sum(self_time.get(module, 0.0) for module in subtree if module not in baseline)
        found.append((parent, name, extra))
    return sorted(found, key=lambda item: -item[2])


def offenders(self_time: dict[str, float], baseline: dict[str, float], top: int = 8) -> dict[str, Any]:
    """The heaviest imports a handler adds to ``import boto3`` (modules boto3 does not import):
    summed by top-level package, the single heaviest modules, and the handler module's own body
    (what runs at import: settings, clients, Logger/Metrics/Tracer set-up)."""
    extra = {name: seconds for name, seconds in self_time.items() if name not in baseline}
    by_package: dict[str, float] = defaultdict(float)
    for name, seconds in extra.items():
        by_package[name.split(".")[0]] += seconds
    heaviest = sorted(((n, t) for n, t in extra.items() if n != "app"), key=lambda item: -item[1])
    return {
        "total_s": sum(self_time.values()),
        "boto3_part_s": sum(t for n, t in self_time.items() if n in baseline),
        "extra_s": sum(extra.values()),
        "extra_modules": len(extra),
        "app_body_s": self_time.get("app", 0.0),
        "packages": sorted(by_package.items(), key=lambda item: -item[1])[:top],
        "modules": heaviest[:top],
    }


def _samples(
    python: str, env_of: dict[str, dict[str, str]], module_of: dict[str, str], runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each kind's import, ``runs`` interleaved rounds (after one warm-up)."""
    kinds = list(module_of)
    for kind in kinds:  # warm the page cache and bytecode caches; not counted
        _sample(python, module_of[kind], env_of[kind])
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    for i in range(runs):
        order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]  # rotate: no kind always first
        depth = DEPTHS[i % len(DEPTHS)]
        for kind in order:
            sample = _sample(python, module_of[kind], env_of[kind], depth)
            wall[kind].append(sample["wall"])
            cpu[kind].append(sample["cpu"])
    return wall, cpu


def _profiles(python: str, environments: dict[str, dict[str, str]], runs: int) -> dict[str, Any]:
    """Each handler's ``-X importtime`` offenders beyond what ``import boto3`` loads."""
    boto3_self = self_times([importtime(python, "boto3", environments["RetryFunction"]) for _ in range(runs)])
    profiles = {}
    for name in FUNCTIONS:
        handler_runs = [importtime(python, "app", environments[name]) for _ in range(runs)]
        handler_self = self_times(handler_runs)
        profiles[name] = offenders(handler_self, boto3_self)
        profiles[name]["entry_points"] = entry_points(handler_runs[0], handler_self, boto3_self)[:6]
    return profiles


def measure(runs: int = 11, importtime_runs: int = 3) -> Figure:
    """Median import time of each handler vs ``import boto3``, in fresh interpreters."""
    figure = Figure(KEY, "Cold start (imports)")
    python = runtime_python()
    environments = lambda_environments()
    env_of = {BASELINE: environments["RetryFunction"], **environments}
    module_of = {BASELINE: "boto3", **dict.fromkeys(FUNCTIONS, "app")}
    samples, cpu = _samples(python, env_of, module_of, runs)
    baseline = median(samples[BASELINE])
    profiles = _profiles(python, environments, importtime_runs)
    figure.data = {
        "python": python,
        "runs": runs,
        "depths": [DEPTHS[i % len(DEPTHS)] for i in range(runs)],
        "medians_s": {kind: median(values) for kind, values in samples.items()},
        "cpu_medians_s": {kind: median(values) for kind, values in cpu.items()},
        "importtime": profiles,
    }
    for name in FUNCTIONS:
        value = median(samples[name])
        figure.rows.append(
            Row(
                figure=f"3. Cold start: import functions/{FUNCTIONS[name]}/app.py",
                measured=ms(value),
                baseline=f"{ms(baseline)} (`import boto3`)",
                ratio=ratio(value / baseline),
                target="— (goal retired: the design's own packages)",
                met=None,
                command=command(KEY),
            )
        )
    figure.notes += _notes(python, runs, cpu, profiles, importtime_runs)
    return figure


def _notes(
    python: str, runs: int, cpu: dict[str, list[float]], profiles: dict[str, Any], importtime_runs: int
) -> list[str]:
    """How the figure was taken, the CPU ratios, and each handler's heaviest imports."""
    cpu_baseline = median(cpu[BASELINE])
    notes = [
        f"Median of {runs} fresh interpreters each ({Path(python).name}, "
        f"Python {'.'.join(map(str, sys.version_info[:3])) if python == sys.executable else '3.13'}), "
        f"interleaved; time around the import statement only, made 0 to {DEPTHS[-1]} calls down (one "
        "depth per round, every kind alike: see DEPTHS). Environment: the template's variables "
        "for the function plus the Lambda runtime's (LAMBDA_TASK_ROOT, the X-Ray variables etc.); packages "
        "from the project venv (the versions the layer pins, and boto3/botocore at the runtime's pins).",
        "CPU time of the same imports (process time, less sensitive to other load on the machine): "
        + ", ".join(
            f"{FUNCTIONS[name]} {median(cpu[name]) * 1000:.0f} ms ({median(cpu[name]) / cpu_baseline:.2f}x)"
            for name in FUNCTIONS
        )
        + f" vs boto3 {cpu_baseline * 1000:.0f} ms.",
    ]
    for name, profile in profiles.items():
        packages = ", ".join(f"{pkg} {t * 1000:.0f} ms" for pkg, t in profile["packages"])
        modules = ", ".join(f"{mod} {t * 1000:.1f} ms" for mod, t in profile["modules"][:6])
        notes.append(
            f"`-X importtime` functions/{FUNCTIONS[name]}/app.py, median of {importtime_runs} runs: "
            f"{profile['total_s'] * 1000:.0f} ms of self time, of which "
            f"{profile['boto3_part_s'] * 1000:.0f} ms in modules `import boto3` loads too and "
            f"{profile['extra_s'] * 1000:.0f} ms in {profile['extra_modules']} modules it adds. "
            f"Top offenders beyond boto3, by package: {packages}. "
            f"Heaviest single modules: {modules}. The handler module's own body: "
            f"{profile['app_body_s'] * 1000:.1f} ms. Imports in the project code that pull that in "
            "(beyond boto3): "
            + ", ".join(
                f"{module} ({importer}) {t * 1000:.0f} ms" for importer, module, t in profile["entry_points"]
            )
            + "."
        )
    return notes
