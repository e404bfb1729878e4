"""The contract's language options: every file of taskrun.v1 generates into the same package
in every language. buf's FILE rules for them are off (they were set from unset once; see
protos/buf.yaml), so this pins their values: changing one moves everyone's generated code."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FileDescriptor

from taskrun.v1 import (
    concurrency_limits_pb2,
    filters_pb2,
    resources_pb2,
    state_pb2,
    task_run_pb2,
    task_run_service_pb2,
)

FILES = [
    concurrency_limits_pb2,
    filters_pb2,
    resources_pb2,
    state_pb2,
    task_run_pb2,
    task_run_service_pb2,
]


@pytest.mark.parametrize("module", FILES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_file_names_the_same_package_in_every_language(module: object) -> None:
    descriptor: FileDescriptor = module.DESCRIPTOR  # type: ignore[attr-defined]
    options = descriptor.GetOptions()
    assert options.go_package == "github.com/taskrun/taskrun/gen/go/taskrun/v1;taskrunv1"
    assert options.java_package == "dev.taskrun.v1"
    assert options.java_multiple_files
    assert options.csharp_namespace == "Taskrun.V1"
    stem = descriptor.name.rsplit("/", 1)[-1].removesuffix(".proto")
    assert options.java_outer_classname == "".join(p.title() for p in stem.split("_")) + "Proto"
