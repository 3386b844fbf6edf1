"""databricks.yml, checked as far as can be without a workspace: the bundle's structure (the keys the
Databricks Asset Bundle schema requires for what it uses), the schedule's Quartz expression, the files
it references, the wheel its artifact builds (entry point, no PySpark pin), and the job's parameters as
the command line parses them."""

import re
import zipfile
from pathlib import Path

import pytest
import yaml
from test_installed_package import build_wheel

from pipelines.tools.cli import main
from pipelines.config import load_config

ROOT = Path(__file__).resolve().parents[2]
TASK_TYPES = {"python_wheel_task", "notebook_task", "spark_python_task", "spark_jar_task", "spark_submit_task",
              "sql_task", "pipeline_task", "run_job_task", "condition_task", "for_each_task", "dbt_task"}
MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
DAYS = "SUN MON TUE WED THU FRI SAT".split()


def load_bundle() -> dict:
    """databricks.yml with its `include`d files merged in, as the CLI loads it."""
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text())
    for pattern in bundle.get("include", []):
        files = sorted(ROOT.glob(pattern))
        assert files, f"include {pattern} matches no file"
        for f in files:
            for key, value in yaml.safe_load(f.read_text()).items():
                if isinstance(value, dict):
                    _merge(bundle.setdefault(key, {}), value)
                else:
                    bundle[key] = value
    return bundle


def _merge(into: dict, more: dict) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            assert key not in into, f"{key} defined twice"
            into[key] = value


def quartz_problems(expression: str) -> list[str]:
    """Quartz cron (what Databricks schedules take): seconds minutes hours day-of-month month day-of-week
    [year], with exactly one of the two day fields '?'."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        return [f"{len(fields)} fields, not 6 or 7"]
    ranges = [(0, 59, []), (0, 59, []), (0, 23, []), (1, 31, []), (1, 12, MONTHS), (1, 7, DAYS), (1970, 2099, [])]
    problems = []
    for position, (text, (low, high, names)) in enumerate(zip(fields, ranges)):
        day_field = position in (3, 5)
        for item in text.split(","):
            if day_field and item == "?":
                continue
            base, _, step = item.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                problems.append(f"field {position + 1}: bad step in {item!r}")
            if base == "*" or (day_field and re.fullmatch(r"L|LW|\d{1,2}W|\d?L|\d#[1-5]", base)):
                continue
            for value in base.split("-"):
                number = names.index(value.upper()) + 1 if value.upper() in names else \
                    int(value) if value.isdigit() else None
                if number is None or not low <= number <= high:
                    problems.append(f"field {position + 1}: {value!r} not in {low}-{high}")
    if (fields[3] == "?") == (fields[5] == "?"):
        problems.append("exactly one of day-of-month and day-of-week must be '?'")
    return problems


def test_quartz_checker_knows_good_from_bad():
    assert quartz_problems("0 30 2 * * ? *") == [] and quartz_problems("0 0/15 8-18 ? * MON-FRI") == []
    assert quartz_problems("30 2 * * *")  # a Unix cron line: five fields
    assert quartz_problems("0 30 25 * * ?")  # hour 25
    assert quartz_problems("0 30 2 * * *")  # both day fields set


@pytest.fixture(scope="module")
def bundle():
    return load_bundle()


@pytest.fixture(scope="module")
def job(bundle):
    jobs = bundle["resources"]["jobs"]
    assert list(jobs) == ["nightly_annotate"]
    return jobs["nightly_annotate"]


def test_bundle_structure_schedule_and_cluster(bundle, job):
    assert isinstance(bundle["bundle"]["name"], str) and bundle["bundle"]["name"]
    assert any(t.get("default") for t in bundle["targets"].values())
    for name, value in bundle.get("variables", {}).items():
        assert "default" in value and value.get("description"), name
    used = set(re.findall(r"\$\{var\.(\w+)\}", yaml.safe_dump(bundle)))
    assert used <= set(bundle["variables"]), used - set(bundle["variables"])

    schedule = job["schedule"]
    assert quartz_problems(schedule["quartz_cron_expression"]) == []
    assert schedule["timezone_id"] and schedule.get("pause_status", "UNPAUSED") in ("PAUSED", "UNPAUSED")
    assert job["max_concurrent_runs"] == 1  # the lake's lease admits one writer

    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    for task in job["tasks"]:
        assert task["task_key"] and len(TASK_TYPES & set(task)) == 1, task
        cluster = clusters[task["job_cluster_key"]]
        assert {"spark_version", "node_type_id"} <= set(cluster) and ("num_workers" in cluster or "autoscale" in cluster)
        assert all(isinstance(v, str) for v in cluster["spark_conf"].values())  # the Jobs API takes strings
        assert int(cluster["spark_conf"]["spark.task.cpus"]) >= 1


def test_wheel_task_runs_the_built_wheels_entry_point_with_parameters_the_cli_accepts(bundle, job, tmp_path):
    artifact = bundle["artifacts"]["corpus_nlp_wheel"]
    assert artifact["type"] == "whl" and "--no-deps" in artifact["build"] and "dist" in artifact["build"]
    task = job["tasks"][0]
    wheel_task = task["python_wheel_task"]
    assert [lib["whl"] for lib in task["libraries"]] == ["./dist/*.whl"]  # where the artifact's build writes

    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        info = next(n.split("/")[0] for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = z.read(f"{info}/METADATA").decode()
        entry_points = z.read(f"{info}/entry_points.txt").decode()
    name = re.search(r"^Name: (.+)$", metadata, re.M).group(1)
    assert re.sub(r"[-_.]+", "_", name).lower() == wheel_task["package_name"]
    scripts = re.search(r"\[console_scripts\]\n((?:.+\n?)*)", entry_points).group(1)
    assert f"{wheel_task['entry_point']} = pipelines.tools.cli:main" in scripts
    # a runtime's own PySpark and Delta are kept: the wheel asks for PySpark only under the local and
    # connect extras, and for no Delta package at all
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.M)
    spark_requirements = [r for r in requires if re.match(r"(pyspark|delta-spark)\b", r)]
    assert spark_requirements and all(re.search(r'extra == "(local|connect)"', r) for r in spark_requirements), \
        spark_requirements
    assert not [r for r in requires if r.startswith("delta-spark")]

    parameters = wheel_task["parameters"]
    config_file = parameters[parameters.index("--config") + 1]
    assert config_file.startswith("${workspace.file_path}/")  # the bundle's synced files
    local = ROOT / config_file.removeprefix("${workspace.file_path}/")
    assert local.is_file() and not local.is_symlink()  # bundle sync skips symlinks
    assert (ROOT / "conf" / "databricks.yaml").resolve() == local.resolve()
    config = load_config(local)
    threads = config.stages.embeddings.intra_op_threads
    assert threads in (0, int(task_cluster(job, task)["spark_conf"]["spark.task.cpus"]))
    command = main.get_command(None, parameters[0])
    context = command.make_context(parameters[0], list(parameters[1:]))
    assert context.params["incremental"] is True and context.params["config_path"] == config_file


def task_cluster(job, task) -> dict:
    return next(c["new_cluster"] for c in job["job_clusters"] if c["job_cluster_key"] == task["job_cluster_key"])
