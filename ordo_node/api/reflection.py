"""Server reflection under both names clients ask for: ``grpc.reflection.v1`` and ``v1alpha``.

grpcio-reflection serves ``grpc.reflection.v1alpha.ServerReflection`` only;
newer clients (grpcurl 1.9 and later, Postman, grpcui) ask for
``grpc.reflection.v1.ServerReflection`` first. The two protocols have the same
messages, field for field, so the same bytes on the wire: the one servicer
answers both names.

Only the public services are listed: the peers' and workers' services
(``internal.proto``) are not for clients, and are not advertised to them.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = reflection.SERVICE_NAME
METHOD = "ServerReflectionInfo"


def enable_reflection(server: grpc.aio.Server, services: Sequence[str]) -> None:
    """Answer reflection on ``server`` under both names, listing ``services`` and itself."""
    servicer = reflection.aio.ReflectionServicer((*services, V1, V1ALPHA))
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(name, {METHOD: handler}) for name in (V1, V1ALPHA))
    )
