"""Server reflection under both names clients ask for: grpc.reflection.v1 and v1alpha.

grpcio-reflection only ships v1alpha. Newer tools (grpcurl, buf curl, Postman, grpc-java's
client) ask for v1 first, and some never fall back. The two protocols are the same messages
with the same field numbers under another package, so the v1alpha servicer answers both: v1
requests decode as v1alpha messages and v1alpha responses encode as v1 ones, byte for byte.

The v1 file is also put in the descriptor pool, so that `describe grpc.reflection.v1...` is
answered like any other listed service.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

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


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection for these services (and for reflection itself) under v1 and v1alpha."""
    pool = descriptor_pool.Default()
    _register_v1_descriptor(pool)
    names = (*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    servicer = reflection.aio.ReflectionServicer(names, pool=pool)
    # grpcio-reflection ships no type hints.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    v1_handler = grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1_handler,))
