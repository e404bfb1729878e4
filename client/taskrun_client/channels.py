"""Channels to the server, plaintext or TLS, for the async and the sync client."""

from __future__ import annotations

import grpc

from taskrun_client.config import ClientConfig

_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
]


def _credentials(config: ClientConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=config.root_certificates,
        private_key=config.private_key,
        certificate_chain=config.certificate_chain,
    )


def aio_channel(config: ClientConfig) -> grpc.aio.Channel:
    if config.tls:
        return grpc.aio.secure_channel(config.target, _credentials(config), options=_OPTIONS)
    return grpc.aio.insecure_channel(config.target, options=_OPTIONS)


def sync_channel(config: ClientConfig) -> grpc.Channel:
    if config.tls:
        return grpc.secure_channel(config.target, _credentials(config), options=_OPTIONS)
    return grpc.insecure_channel(config.target, options=_OPTIONS)
