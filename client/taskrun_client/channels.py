"""Channels to the server, plaintext or TLS, for the async and the sync client."""

from __future__ import annotations

from typing import Any

import grpc

from taskrun_client.config import ClientConfig
from taskrun_client.retries import service_config


def _options(config: ClientConfig) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config(config)),
    ]


def _credentials(config: ClientConfig) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=config.root_certificates,
        private_key=config.private_key,
        certificate_chain=config.certificate_chain,
    )


def aio_channel(config: ClientConfig) -> grpc.aio.Channel:
    options = _options(config)
    if config.tls:
        return grpc.aio.secure_channel(config.target, _credentials(config), options=options)
    return grpc.aio.insecure_channel(config.target, options=options)


def sync_channel(config: ClientConfig) -> grpc.Channel:
    options = _options(config)
    if config.tls:
        return grpc.secure_channel(config.target, _credentials(config), options=options)
    return grpc.insecure_channel(config.target, options=options)
