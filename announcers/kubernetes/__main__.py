"""``python -m announcers.kubernetes controller [--kubeconfig PATH] [--namespace NS]
[--lb-class NAME] [--metrics-port PORT]``

``controller`` allocates addresses to LoadBalancer Services (see ``docs/kubernetes.md``):
it runs in the foreground, logs JSON lines on stderr, serves Prometheus metrics on
``--metrics-port`` (default 7472, MetalLB's; 0 turns them off), and on SIGTERM or SIGINT
finishes the write in progress, releases its Lease and exits 0. A missing or unusable
kubeconfig, or a metrics port it cannot listen on, is one line on stderr and exit status 2.
(``speaker`` comes with the next issue; every subcommand shares ``--kubeconfig``,
``--namespace`` and ``--metrics-port``.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Sequence

from announcers.kubernetes import client, controller, logs
from announcers.kubernetes.logs import log_event
from announcers.kubernetes.metrics import Metrics

PROG = "python -m announcers.kubernetes"
EXIT_USAGE = 2
#: MetalLB's controller serves its metrics on 7472.
DEFAULT_METRICS_PORT = 7472

_log = logging.getLogger("announcers.kubernetes")


class _UsageError(Exception):
    """A problem with the command line or the environment: one line, exit status 2."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return port


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (default: in-cluster service account, else $KUBECONFIG, "
        "else ~/.kube/config)",
    )
    parser.add_argument(
        "--namespace",
        metavar="NS",
        default="metallb-system",
        help="namespace of the configuration and the Lease (default: metallb-system)",
    )
    parser.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=_port,
        default=DEFAULT_METRICS_PORT,
        help=f"serve Prometheus metrics on this port (default {DEFAULT_METRICS_PORT}; 0: off)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="MetalLB-compatible Layer-2 load balancing for Kubernetes."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ctl = commands.add_parser(
        "controller",
        help="allocate addresses to LoadBalancer Services",
        description="Allocate addresses to LoadBalancer Services and write their status, "
        "the metallb.io/ip-allocated-from-pool annotation and Events. One replica writes "
        "at a time (Lease metallb-core-controller in NS).",
    )
    _common(ctl)
    ctl.add_argument(
        "--lb-class",
        metavar="NAME",
        help="handle only Services of this spec.loadBalancerClass "
        "(default: only Services without one)",
    )
    return parser


def identity() -> str:
    """This replica's name in the Lease and in Events: the Pod's name, plus a random part."""
    base = os.environ.get("POD_NAME") or socket.gethostname() or "controller"
    return f"{base}_{uuid.uuid4().hex[:8]}"


def _serve_metrics(metrics: Metrics, port: int) -> Callable[[], None]:
    if port == 0:
        return lambda: None
    try:
        _, stop = metrics.serve(port)
    except OSError as error:
        raise _UsageError(f"cannot serve metrics on port {port}: {error.strerror}") from error
    return stop


async def _run_controller(
    api: client.KubeApi, settings: controller.Settings, metrics: Metrics
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await controller.run(api, settings, stop, metrics=metrics)
    finally:
        await api.close()
    log_event(_log, logging.INFO, "stopped")
    return 0


def _controller(args: argparse.Namespace) -> int:
    api = client.connect(args.kubeconfig)
    settings = controller.Settings(
        namespace=args.namespace, lb_class=args.lb_class or None, identity=identity()
    )
    metrics = Metrics()
    stop_metrics = _serve_metrics(metrics, args.metrics_port)
    log_event(
        _log,
        logging.INFO,
        "starting controller",
        namespace=settings.namespace,
        lb_class=settings.lb_class,
        identity=settings.identity,
        metrics_port=args.metrics_port or None,
        lightkube=client.LIGHTKUBE_VERSION,
    )
    try:
        return asyncio.run(_run_controller(api, settings, metrics))
    except Exception:
        _log.exception("controller crashed")  # a bug: JSON line with the traceback, exit 1
        return 1
    finally:
        stop_metrics()


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"controller": _controller}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; the exit status."""
    args = _parser().parse_args(argv)
    logs.configure()
    try:
        return COMMANDS[args.command](args)
    except (client.UnusableKubeconfig, _UsageError) as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
