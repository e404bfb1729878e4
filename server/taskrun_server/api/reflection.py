"""Server reflection under both names clients ask for: grpc.reflection.v1 and v1alpha.

grpcio-reflection only ships v1alpha. Newer tools (grpcurl, buf curl, Postman, grpc-java's
client) ask for v1 first, and some never fall back. The two protocols are the same messages
with the same field numbers under another package, so the v1alpha servicer answers both: v1
requests decode as v1alpha messages and v1alpha responses encode as v1 ones, byte for byte.

The v1 file is also put in the descriptor pool, so that `describe grpc.reflection.v1...` is
answered like any other listed service.

The contract's files are answered with their comments: grpcio-reflection copies descriptors
without their source info, so its answers for taskrun's own files are swapped for those in
`taskrun/v1/descriptors.binpb` (made by `make protos` with --include_source_info), and
`grpcurl describe` shows what each service, method and field is for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from functools import cache
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The v1alpha file renamed into the v1 package, references included."""
    old_prefix = f".{reflection_pb2.DESCRIPTOR.package}."
    new_prefix = f".{V1_PACKAGE}."
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    file.name = _V1_FILE
    file.package = V1_PACKAGE
    for message in file.message_type:
        for field in message.field:
            if field.type_name.startswith(old_prefix):
                field.type_name = new_prefix + field.type_name[len(old_prefix) :]
    for service in file.service:
        for method in service.method:
            method.input_type = new_prefix + method.input_type[len(old_prefix) :]
            method.output_type = new_prefix + method.output_type[len(old_prefix) :]
    return file


def _register_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(_V1_FILE)
    except KeyError:
        pool.Add(_v1_file_descriptor())


@cache
def documented_files() -> dict[str, bytes]:
    """The contract's files with their source info (comments), serialized, by file name."""
    data = resources.files("taskrun.v1").joinpath("descriptors.binpb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data).file
    return {file.name: file.SerializeToString() for file in files}


def _with_comments(response: reflection_pb2.ServerReflectionResponse) -> None:
    """Swap the contract's files in a file-descriptor answer for their documented versions."""
    if not response.HasField("file_descriptor_response"):
        return
    documented = documented_files()
    protos = response.file_descriptor_response.file_descriptor_proto
    for i, serialized in enumerate(protos):
        name = descriptor_pb2.FileDescriptorProto.FromString(serialized).name
        if name in documented:
            protos[i] = documented[name]


def _documented(servicer: reflection.aio.ReflectionServicer) -> Any:
    """The servicer's stream, its answers for the contract's files documented."""

    async def info(
        requests: AsyncIterator[reflection_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        answers: Any = servicer.ServerReflectionInfo(requests, context)  # an async generator
        async for response in answers:
            _with_comments(response)
            yield response

    return info


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection for these services (and for reflection itself) under v1 and v1alpha."""
    pool = descriptor_pool.Default()
    _register_v1_descriptor(pool)
    names = (*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    info = _documented(reflection.aio.ReflectionServicer(names, pool=pool))
    handler = grpc.stream_stream_rpc_method_handler(
        info,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": handler})
            for name in (V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME)
        )
    )
