"""Use cases for the supporting resources: flows, deployments, flow runs and logs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun_server.database.engine import autocommit_view
from taskrun_server.domain.errors import NotFound
from taskrun_server.domain.identifiers import new_id
from taskrun_server.domain.names import generate_name
from taskrun_server.domain.resources import Deployment, Flow, FlowRun, Log, LogCreate
from taskrun_server.domain.states import StateType
from taskrun_server.repository import flow_runs as flow_runs_repo
from taskrun_server.repository import flows as flows_repo
from taskrun_server.repository import logs as logs_repo
from taskrun_server.service.clock import utcnow
from taskrun_server.service.database_errors import translate_integrity_error


class ResourceService:
    """Flows, deployments, flow runs and logs, over one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._autocommit = autocommit_view(engine)

    async def create_flow(self, name: str, tags: list[str]) -> tuple[Flow, bool]:
        now = utcnow()
        new = Flow(id=new_id(), created=now, updated=now, name=name, tags=tags)
        async with self._engine.begin() as conn:
            return await flows_repo.insert_flow(conn, new)

    async def read_flow(self, flow_id: uuid.UUID) -> Flow:
        async with self._autocommit.connect() as conn:
            found = await flows_repo.read_flow(conn, flow_id)
        if found is None:
            raise NotFound(f"flow {flow_id} does not exist", "flow_id")
        return found

    async def create_deployment(
        self, name: str, flow_id: uuid.UUID, tags: list[str]
    ) -> tuple[Deployment, bool]:
        now = utcnow()
        new = Deployment(
            id=new_id(), created=now, updated=now, name=name, flow_id=flow_id, tags=tags
        )
        async with self._engine.begin() as conn:
            try:
                return await flows_repo.insert_deployment(conn, new)
            except IntegrityError as error:
                known = {
                    "deployment_flow_id_fkey": NotFound(f"flow {flow_id} does not exist", "flow_id")
                }
                raise translate_integrity_error(error, known) or error from None

    async def read_deployment(self, deployment_id: uuid.UUID) -> Deployment:
        async with self._autocommit.connect() as conn:
            found = await flows_repo.read_deployment(conn, deployment_id)
        if found is None:
            raise NotFound(f"deployment {deployment_id} does not exist", "deployment_id")
        return found

    async def create_flow_run(
        self,
        *,
        flow_id: uuid.UUID,
        name: str | None,
        deployment_id: uuid.UUID | None,
        parent_task_run_id: uuid.UUID | None,
        tags: list[str],
        state_type: StateType,
        state_name: str | None,
    ) -> FlowRun:
        now = utcnow()
        new = FlowRun(
            id=new_id(),
            created=now,
            updated=now,
            name=name or generate_name(),
            flow_id=flow_id,
            deployment_id=deployment_id,
            parent_task_run_id=parent_task_run_id,
            tags=tags,
            state_type=state_type,
            state_name=state_name or state_type.default_name,
            state_timestamp=now,
            run_count=1 if state_type is StateType.RUNNING else 0,
        )
        async with self._engine.begin() as conn:
            try:
                await flow_runs_repo.insert_flow_run(conn, new)
            except IntegrityError as error:
                known = {
                    "flow_run_flow_id_fkey": NotFound(f"flow {flow_id} does not exist", "flow_id"),
                    "flow_run_deployment_id_fkey": NotFound(
                        f"deployment {deployment_id} does not exist", "deployment_id"
                    ),
                }
                raise translate_integrity_error(error, known) or error from None
        return new

    async def read_flow_run(self, flow_run_id: uuid.UUID) -> FlowRun:
        async with self._autocommit.connect() as conn:
            found = await flow_runs_repo.read_flow_run(conn, flow_run_id)
        if found is None:
            raise NotFound(f"flow run {flow_run_id} does not exist", "flow_run_id")
        return found

    async def set_flow_run_state(
        self, flow_run_id: uuid.UUID, state_type: StateType, state_name: str | None
    ) -> FlowRun:
        async with self._engine.begin() as conn:
            found = await flow_runs_repo.set_flow_run_state(
                conn, flow_run_id, state_type, state_name or state_type.default_name, utcnow()
            )
        if found is None:
            raise NotFound(f"flow run {flow_run_id} does not exist", "flow_run_id")
        return found

    async def create_logs(self, logs: Sequence[LogCreate]) -> int:
        async with self._engine.begin() as conn:
            return await logs_repo.insert_logs(conn, logs, utcnow())

    async def read_logs(
        self,
        *,
        task_run_id: uuid.UUID | None,
        flow_run_id: uuid.UUID | None,
        limit: int,
        offset: int,
    ) -> list[Log]:
        async with self._autocommit.connect() as conn:
            return await logs_repo.read_logs(
                conn, task_run_id=task_run_id, flow_run_id=flow_run_id, limit=limit, offset=offset
            )
