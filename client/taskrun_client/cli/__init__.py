"""`taskrun`: the operator's command line. Tables in a terminal, JSON for scripts.

  taskrun list --state failed --since 24h          taskrun get 0193a1f2-7c   (an id prefix)
  taskrun watch <id> --until-done                  taskrun logs <id>
  taskrun history --since 6h --interval 600        taskrun count --tag nightly
  taskrun cancel --state running --tag etl         (shows, asks, then acts; --dry-run)
  taskrun set-state <id> COMPLETED --force         taskrun limits set db 5

Options go before or after the command. The server is $TASKRUN_TARGET (or --target), the
token $TASKRUN_TOKEN (or --token).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console

from taskrun_client.cli.commands import COMMANDS, UsageError, moment
from taskrun_client.config import ClientConfig
from taskrun_client.errors import TaskRunError
from taskrun_client.naming import SORTS, STATE_TYPES
from taskrun_client.sync_client import TaskRunClient

DEFAULT_TARGET = "127.0.0.1:50051"


def _globals(*, top: bool) -> argparse.ArgumentParser:
    """The connection and output options, accepted before the command and after it. Below the
    command their default is "not given", so that one given before it is not overwritten."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    target = os.environ.get("TASKRUN_TARGET") or DEFAULT_TARGET
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection and output")
    group.add_argument(
        "--target",
        default=default(target),
        help=f"server address (default: $TASKRUN_TARGET, else {DEFAULT_TARGET}; now {target})",
    )
    group.add_argument(
        "--token",
        default=default(os.environ.get("TASKRUN_TOKEN")),
        help="bearer token (default: $TASKRUN_TOKEN, which keeps it out of the process list)",
    )
    group.add_argument(
        "--tls", action="store_true", default=default(False), help="connect with TLS"
    )
    group.add_argument(
        "--ca-file", type=Path, default=default(None), help="PEM CA bundle (implies --tls)"
    )
    group.add_argument(
        "--cert-file", type=Path, default=default(None), help="client certificate, mTLS"
    )
    group.add_argument("--key-file", type=Path, default=default(None), help="client key, mTLS")
    group.add_argument(
        "--output",
        "-o",
        choices=["table", "json"],
        default=default("table"),
        help="table (default) or json",
    )
    group.add_argument(
        "--timeout", type=float, default=default(10.0), help="seconds per call (default: 10)"
    )
    return options


def _with_filters(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    group = p.add_argument_group("which runs (combined with AND)")
    group.add_argument(
        "--state",
        action="append",
        choices=STATE_TYPES,
        type=str.upper,
        metavar="TYPE",
        help=f"state type, repeatable: {', '.join(STATE_TYPES)}",
    )
    group.add_argument("--tag", action="append", help="a tag the runs carry (repeatable)")
    group.add_argument("--name", help="name contains (any case)")
    group.add_argument("--task-key", action="append", help="task key (repeatable: any of)")
    group.add_argument("--flow-run", action="append", help="flow run id (repeatable: any of)")
    group.add_argument(
        "--since", type=moment, help="expected to start at or after: 30m, 2h, 7d ago, or ISO time"
    )
    group.add_argument("--until", type=moment, help="expected to start at or before (same forms)")
    return p


def _acting(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    return _with_filters(p)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="taskrun",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_globals(top=True)],
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="command")
    below = _globals(top=False)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary, parents=[below])

    listing = _with_filters(command("list", "list task runs, newest first"))
    listing.add_argument("--limit", type=int, default=50, help="how many (default: 50)")
    listing.add_argument("--all", action="store_true", help="every matching run, page by page")
    listing.add_argument(
        "--sort", choices=SORTS, type=str.upper, default="ID_DESC", help="(default: ID_DESC)"
    )
    command("get", "one task run: its fields and its state history").add_argument(
        "id", help="id, or the first digits of it"
    )
    _with_filters(command("count", "count task runs"))
    history = _with_filters(command("history", "runs per state over time (default: 24 h)"))
    history.add_argument(
        "--interval", type=float, default=3600, help="bucket width in seconds (default: 3600)"
    )
    command("logs", "a task run's logs").add_argument("id", help="id, or the first digits of it")
    watching = _with_filters(
        command("watch", "state changes as they happen (of runs named, or matching filters)")
    )
    watching.add_argument("ids", nargs="*", help="ids or id prefixes (else: the filters)")
    watching.add_argument(
        "--until-done", action="store_true", help="end once every run named has finished"
    )
    setting = _acting(command("set-state", "propose a state (orchestrated unless --force)"))
    setting.add_argument("type", choices=STATE_TYPES, type=str.upper, metavar="TYPE")
    setting.add_argument("ids", nargs="*", help="ids or id prefixes (else: the filters)")
    setting.add_argument("--state-name", help="the state's name (default: the type's)")
    setting.add_argument("--message", help="the state's message")
    setting.add_argument("--force", action="store_true", help="skip the orchestration rules")
    cancelling = _acting(command("cancel", "cancel runs: RUNNING ones via CANCELLING"))
    cancelling.add_argument("ids", nargs="*", help="ids or id prefixes (else: the filters)")
    cancelling.add_argument("--message", help="why (stored on the state)")
    cancelling.set_defaults(force=False)
    command("delete", "delete a task run and its states and logs").add_argument(
        "id", help="id, or the first digits of it"
    )
    limits = command("limits", "tag concurrency limits")
    actions = limits.add_subparsers(dest="limits_action", required=True, metavar="action")
    actions.add_parser("list", help="every limit", parents=[below])
    setting_limit = actions.add_parser("set", help="create or change a limit", parents=[below])
    setting_limit.add_argument("tag")
    setting_limit.add_argument("limit", type=int)
    for action, summary in (
        ("get", "one limit and the runs holding its slots"),
        ("reset", "free every slot"),
        ("delete", "remove the limit"),
    ):
        actions.add_parser(action, help=summary, parents=[below]).add_argument("tag")
    return top


def client_config(args: argparse.Namespace) -> ClientConfig:
    """The connection the options describe; an operator wants "cannot reach" at once, not
    after a deadline, so calls do not wait for a connection."""

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path is not None else None

    return ClientConfig(
        target=args.target,
        token=args.token,
        tls=bool(args.tls or args.ca_file or args.cert_file),
        root_certificates=read(args.ca_file),
        certificate_chain=read(args.cert_file),
        private_key=read(args.key_file),
        timeout=args.timeout,
        wait_for_ready=False,
    )


UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        config = client_config(args)
    except OSError as error:
        _fail(2, f"cannot read {error.filename}: {error.strerror}")
    try:
        with TaskRunClient(config) as client:
            sys.exit(COMMANDS[args.command](args, client, Console()))
    except UsageError as error:
        _fail(2, str(error))
    except TaskRunError as error:
        if error.code in UNREACHABLE and error.reason is None:
            _fail(
                1,
                f"cannot reach a taskrun server at {config.target} ({error.details}). Is it "
                "running there? Point --target or TASKRUN_TARGET at it.",
            )
        where = f" ({error.field})" if error.field else ""
        _fail(1, f"{error.code.name}{where}: {error.details}")
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `taskrun list | head`
        sys.exit(0)


def _fail(code: int, message: str) -> None:
    print(f"taskrun: {message}", file=sys.stderr)
    sys.exit(code)
