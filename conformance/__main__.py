"""`python -m conformance`: run every scenario through Prefect and taskrun and report.

Prints agree/disagree per family, then every disagreement with both sides' observations,
marking the deliberate ones (the README's table). Exits 1 when any difference is not
deliberate. `--only FAMILY` narrows the run; `--verbose` prints deliberate ones in full.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections import defaultdict

import grpc

from bench.server_process import bench_server
from conformance.compare import Difference, differences
from conformance.prefect_driver import PrefectDriver
from conformance.prefect_server import prefect_server
from conformance.runner import run_scenario
from conformance.scenarios import all_scenarios
from conformance.taskrun_driver import TaskrunDriver

ADMIN_URL = os.environ.get(
    "TASKRUN_CONFORMANCE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance")
    parser.add_argument("--only", help="run only scenarios whose key starts with this")
    parser.add_argument("--verbose", action="store_true", help="print deliberate ones too")
    parser.add_argument("--show", action="store_true", help="print both recordings in full")
    args = parser.parse_args()
    scenarios = [s for s in all_scenarios() if not args.only or s.key.startswith(args.only)]
    nonce = uuid.uuid4().hex[:6]
    results: dict[str, list[Difference]] = {}
    with prefect_server(ADMIN_URL) as prefect_url, bench_server() as server:
        channel = grpc.insecure_channel(server.target)
        for number, scenario in enumerate(scenarios):
            prefix = f"c{nonce}{number}-"
            prefect = run_scenario(scenario, PrefectDriver(prefect_url, prefix))
            taskrun = run_scenario(scenario, TaskrunDriver(channel, prefix))
            results[scenario.key] = differences(scenario.key, prefect, taskrun)
            if args.show:
                print(
                    json.dumps(
                        {"scenario": scenario.key, "prefect": prefect, "taskrun": taskrun},
                        indent=1,
                        default=str,
                    )
                )
        channel.close()
    return _report(scenarios_by_family(results), results, args.verbose)


def scenarios_by_family(results: dict[str, list[Difference]]) -> dict[str, list[str]]:
    families: dict[str, list[str]] = defaultdict(list)
    for key in results:
        families[key.split("/", 1)[0]].append(key)
    return families


def _report(
    families: dict[str, list[str]], results: dict[str, list[Difference]], verbose: bool
) -> int:
    bugs = 0
    print(f"{'family':<28} {'agree':>6} {'deliberate':>11} {'disagree':>9}")
    for family, keys in families.items():
        agree = sum(1 for k in keys if not results[k])
        bug = sum(1 for k in keys if any(d.deliberate is None for d in results[k]))
        print(f"{family:<28} {agree:>6} {len(keys) - agree - bug:>11} {bug:>9}")
        bugs += bug
    total = len(results)
    agreeing = sum(1 for diffs in results.values() if not diffs)
    print(f"{'total':<28} {agreeing:>6} {total - agreeing - bugs:>11} {bugs:>9}\n")
    for key, diffs in results.items():
        shown = [d for d in diffs if verbose or d.deliberate is None]
        if not shown:
            continue
        print(key)
        for diff in shown:
            mark = f"  (deliberate: {diff.deliberate.why})" if diff.deliberate else ""
            print(f"  {diff.field}: prefect={diff.prefect!r} taskrun={diff.taskrun!r}{mark}")
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
