"""The scenario language spoken to a real Prefect server over its REST API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance import observation
from conformance.observation import Observation
from conformance.scenario import Query, RunSpec, StateSpec


class PrefectError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class PrefectDriver:
    """One scenario's view of a Prefect server at `base_url` (ending in /api)."""

    def __init__(self, base_url: str, prefix: str) -> None:
        self._base = base_url.rstrip("/")
        self.prefix = prefix
        self._runs: dict[str, str] = {}
        self._flow_run_id: str | None = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._base + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise PrefectError(error.code, error.read().decode()) from None
        return json.loads(text) if text else None

    def error_code(self, error: Exception) -> str:
        if isinstance(error, PrefectError):
            return {404: "NOT_FOUND", 409: "ALREADY_EXISTS", 422: "INVALID_ARGUMENT"}.get(
                error.status, f"HTTP_{error.status}"
            )
        raise error

    def start_flow_run(self, state_type: str) -> None:
        flow = self._call("POST", "/flows/", {"name": f"{self.prefix}flow"})
        flow_run = self._call(
            "POST", "/flow_runs/", {"flow_id": flow["id"], "state": {"type": state_type}}
        )
        self._flow_run_id = flow_run["id"]

    def set_flow_run(self, state_type: str) -> None:
        self._call(
            "POST",
            f"/flow_runs/{self._flow_run_id}/set_state",
            {"state": {"type": state_type}, "force": True},
        )

    def create_limit(self, tag: str, limit: int) -> None:
        self._call(
            "POST", "/concurrency_limits/", {"tag": self.prefix + tag, "concurrency_limit": limit}
        )

    def slots(self, tag: str) -> int:
        limit = self._call("GET", f"/concurrency_limits/tag/{self.prefix}{tag}")
        return len(limit["active_slots"])

    def _state(self, spec: StateSpec) -> dict[str, Any]:
        details = dict(spec.details)
        if "cache_key" in details:
            details["cache_key"] = self.prefix + details["cache_key"]
        for name in ("cache_expiration",):
            if isinstance(details.get(name), (int, float)):
                details[name] = _in(details[name])
        if spec.scheduled_in is not None:
            details["scheduled_time"] = _in(spec.scheduled_in)
        body: dict[str, Any] = {"type": spec.type, "state_details": details}
        if spec.name is not None:
            body["name"] = spec.name
        if spec.data is not None:
            body["data"] = spec.data
        return body

    def create(self, spec: RunSpec) -> Observation:
        body: dict[str, Any] = {
            "name": f"{self.prefix}{spec.alias}",
            "task_key": f"{self.prefix}{spec.alias}",
            "dynamic_key": "0",
            "tags": [self.prefix + tag for tag in spec.tags],
            "empirical_policy": {
                "retries": spec.retries or 0,
                "retry_delay": list(spec.retry_delay) or 0,
            },
        }
        if spec.in_flow_run and self._flow_run_id:
            body["flow_run_id"] = self._flow_run_id
        if spec.state is not None:
            body["state"] = self._state(spec.state)
        run = self._call("POST", "/task_runs/", body)
        self._runs[spec.alias] = run["id"]
        return {"run": self.read(spec.alias)}

    def propose(self, alias: str, spec: StateSpec, force: bool) -> Observation:
        answer = self._call(
            "POST",
            f"/task_runs/{self._runs[alias]}/set_state",
            {"state": self._state(spec), "force": force},
        )
        returned = answer.get("state")
        delay = answer["details"].get("delay_seconds")
        return {
            "status": answer["status"],
            "state": None
            if returned is None
            else observation.state(
                returned["type"], returned["name"], returned["state_details"], self.prefix
            ),
            "delay": None if delay is None else round(float(delay)),
            "run": self.read(alias),
        }

    def query(self, query: Query) -> Observation:
        runs: dict[str, Any] = {"tags": {"all_": [f"{self.prefix}all"]}}
        if query.states:
            runs["state"] = {"type": {"any_": list(query.states)}}
        if query.start_time_null is not None:
            runs["start_time"] = {"is_null_": query.start_time_null}
        if query.name_like is not None:
            runs["name"] = {"like_": query.name_like}
        body: dict[str, Any] = {"task_runs": runs, "sort": query.sort, "offset": query.offset}
        if query.limit is not None:
            body["limit"] = query.limit
        found = self._call("POST", "/task_runs/filter", body)
        count = self._call("POST", "/task_runs/count", {"task_runs": runs})
        aliases = {run_id: alias for alias, run_id in self._runs.items()}
        return {"runs": [aliases.get(run["id"], "?") for run in found], "count": count}

    def delete(self, alias: str) -> Observation:
        self._call("DELETE", f"/task_runs/{self._runs[alias]}")
        return {}

    def read(self, alias: str) -> Observation:
        run = self._call("GET", f"/task_runs/{self._runs[alias]}")
        states = self._call("GET", f"/task_run_states/?task_run_id={self._runs[alias]}")
        current = run.get("state") or {}
        return {
            "state_type": run["state_type"],
            "state_name": run["state_name"],
            "run_count": run["run_count"],
            "flow_run_run_count": run["flow_run_run_count"],
            "start_time": run["start_time"] is not None,
            "end_time": run["end_time"] is not None,
            "expected_start_time": run["expected_start_time"] is not None,
            "next_scheduled_start_time": run["next_scheduled_start_time"] is not None,
            "total_run_time_positive": float(run["total_run_time"]) > 0,
            "details": observation.details(current.get("state_details") or {}, self.prefix),
            "history": [s["name"] for s in sorted(states, key=lambda s: s["timestamp"])],
        }


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
