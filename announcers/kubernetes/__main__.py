"""``python -m announcers.kubernetes controller [--kubeconfig PATH] [--namespace NS]
[--lb-class NAME] [--metrics-port PORT]``

``python -m announcers.kubernetes speaker --node NAME [--kubeconfig PATH] [--namespace NS]
[--interface IFACE ...] [--metrics-port PORT] [--liveness probe|lease]
[--probe-address HOST] [--probe-port PORT] [--probe-interval SECONDS]
[--probe-timeout SECONDS] [--indirect-timeout SECONDS] [--lease-duration SECONDS]
[--renew-period SECONDS]``

``controller`` allocates addresses to LoadBalancer Services (see ``docs/kubernetes.md``);
``speaker`` runs on every node and announces them from the node the election picks (see
``docs/speaker.md``). Both run in the foreground, log JSON lines on stderr, serve Prometheus
metrics on ``--metrics-port`` (default 7472, MetalLB's; 0 turns them off), and on SIGTERM or
SIGINT finish what they are writing, release their Lease (the speaker withdraws its
announcements first) and exit 0. A missing or unusable kubeconfig, a metrics port they
cannot listen on (and, for the speaker, a missing CAP_NET_RAW or an unknown ``--interface``)
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import logging
import math
import os
import signal
import socket
import sys
import urllib.parse
import uuid
from collections.abc import Callable, Sequence

from announcers.arp import sockets
from announcers.arp.announcer import L2Announcer
from announcers.arp.interfaces import SelectedInterface, discover_interfaces
from announcers.base import UnknownInterfaceError

try:
    from announcers.kubernetes import client, controller, logs, speaker
    from announcers.kubernetes.l2status import PodRef
    from announcers.kubernetes.liveness import DEFAULT_PROBE_PORT
    from announcers.kubernetes.logs import log_event
    from announcers.kubernetes.membership import ProbeTiming
    from announcers.kubernetes.metrics import Metrics
    from announcers.kubernetes.speaker_metrics import SpeakerMetrics
except ModuleNotFoundError as _missing:  # lightkube, httpx2, prometheus-client or PyYAML
    if __name__ != "__main__" or (_missing.name or "").startswith(("announcers", "metallb_core")):
        raise
    # One line and the usage status, as for any other unusable environment (docs/cli.md).
    print(
        f"python -m announcers.kubernetes: {_missing} (the 'kubernetes' extra is not"
        " installed): pip install 'metallb-core[kubernetes]'",
        file=sys.stderr,
    )
    sys.exit(2)

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


def _lease_duration(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds, at least 1: {text!r}")
    return seconds


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return seconds


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
    spk = commands.add_parser(
        "speaker",
        help="announce the addresses from this node (run on every node)",
        description="Keep this node's speaker Lease alive in NS, elect the node that "
        "announces each Service's addresses (metallb_core.elect) and answer ARP and NDP for "
        "those this node won. Needs CAP_NET_RAW and the host's network.",
    )
    _common(spk)
    spk.add_argument("--node", required=True, metavar="NAME", help="this node's name")
    spk.add_argument(
        "--interface",
        action="extend",
        nargs="+",
        metavar="IFACE",
        help="announce on these interfaces only (default: MetalLB's interface discovery)",
    )
    spk.add_argument(
        "--liveness",
        choices=("probe", "lease"),
        default="probe",
        help="probe: speakers probe each other over UDP and write deaths to the API (default); "
        "lease: each node renews its Lease every --renew-period (the previous design)",
    )
    spk.add_argument(
        "--probe-address",
        metavar="HOST",
        default="",
        help="address of the UDP probe socket, and the one the other speakers probe "
        "(default: every address; this node's address towards the API server is published)",
    )
    spk.add_argument(
        "--probe-port",
        metavar="PORT",
        type=_port,
        default=None,
        help=f"UDP port the speakers probe each other on (default {DEFAULT_PROBE_PORT}; when"
        " that port is taken on this host, as by another speaker in the same network"
        " namespace, an ephemeral port: the Lease publishes the port in use)",
    )
    timing = ProbeTiming()
    spk.add_argument(
        "--probe-interval",
        metavar="SECONDS",
        type=_seconds,
        default=timing.interval,
        help=f"ping each watched node this often (default {timing.interval:g})",
    )
    spk.add_argument(
        "--probe-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=timing.timeout,
        help=f"wait this long for a direct answer (default {timing.timeout:g})",
    )
    spk.add_argument(
        "--indirect-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=timing.indirect_timeout,
        help="then this long for an answer through other speakers before declaring the node "
        f"dead (default {timing.indirect_timeout:g})",
    )
    spk.add_argument(
        "--lease-duration",
        metavar="SECONDS",
        type=_lease_duration,
        default=speaker.DEFAULT_LEASE_DURATION,
        help="a node whose Lease was not renewed for this long is dead; whole seconds "
        f"(default {speaker.DEFAULT_LEASE_DURATION})",
    )
    spk.add_argument(
        "--renew-period",
        metavar="SECONDS",
        type=_seconds,
        default=speaker.DEFAULT_RENEW_PERIOD,
        help="renew this node's Lease this often; shorter than the lease duration "
        f"(default {speaker.DEFAULT_RENEW_PERIOD:g})",
    )
    return parser


def identity() -> str:
    """This replica's name in the Lease and in Events: the Pod's name, plus a random part."""
    base = os.environ.get("POD_NAME") or socket.gethostname() or "controller"
    return f"{base}_{uuid.uuid4().hex[:8]}"


def _serve_metrics(metrics: Metrics | SpeakerMetrics, port: int) -> Callable[[], None]:
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


async def _run_speaker(
    api: client.KubeApi,
    announcer: L2Announcer,
    settings: speaker.SpeakerSettings,
    metrics: SpeakerMetrics,
    interfaces: speaker.InterfaceSource,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await speaker.run(api, announcer, settings, stop, interfaces=interfaces, metrics=metrics)
    finally:
        await api.close()
    log_event(_log, logging.INFO, "stopped")
    return 0


def _api_host(path: str | None) -> str:
    """The API server's host from the kubeconfig (to find this node's own address)."""
    try:
        single = client.load_config(path).get()
        server = single.cluster.server if single is not None else ""
    except (client.UnusableKubeconfig, AttributeError):
        return ""
    return urllib.parse.urlsplit(server or "").hostname or ""


def _check_probe_port(host: str, port: int) -> None:
    """Refuse at start a probe port asked for with ``--probe-port`` that cannot be bound.
    The default port is not checked here: when it is taken, the speaker probes on an
    ephemeral one (:class:`~announcers.kubernetes.liveness.ProbeLiveness`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host or "0.0.0.0", port))
    except OSError as error:
        raise _UsageError(
            f"--probe-port {port}: cannot listen on UDP {host or '*'}:{port}: {error.strerror}"
        ) from None


def _speaker(args: argparse.Namespace) -> int:
    if args.renew_period >= args.lease_duration:
        raise _UsageError(
            f"--renew-period ({args.renew_period:g}) must be shorter than --lease-duration "
            f"({args.lease_duration})"
        )
    if not args.node.strip():
        raise _UsageError("--node must name this node")
    if args.probe_address:
        try:
            ipaddress.ip_address(args.probe_address)
        except ValueError:
            raise _UsageError(
                f"--probe-address: not an IP address: {args.probe_address!r}"
            ) from None
    api = client.connect(args.kubeconfig)
    try:
        sockets.check_capability()
    except sockets.MissingCapabilityError:
        raise _UsageError(
            "missing capability CAP_NET_RAW: raw packet sockets need it "
            "(run as root, or grant CAP_NET_RAW)"
        ) from None
    explicit: list[str] | None = args.interface or None

    def interfaces() -> list[SelectedInterface]:
        return discover_interfaces(explicit)

    try:
        found = interfaces()
    except UnknownInterfaceError as error:
        raise _UsageError(str(error)) from None
    pod_name, pod_uid = os.environ.get("POD_NAME"), os.environ.get("POD_UID")
    probe_port = DEFAULT_PROBE_PORT if args.probe_port is None else args.probe_port
    if args.liveness == "probe" and args.probe_port is not None:
        _check_probe_port(args.probe_address, args.probe_port)
    settings = speaker.SpeakerSettings(
        node=args.node,
        namespace=args.namespace,
        liveness=args.liveness,
        lease_duration=args.lease_duration,
        renew_period=args.renew_period,
        pod=PodRef(pod_name, pod_uid) if pod_name and pod_uid else None,
        probe_address=args.probe_address,
        probe_port=probe_port,
        probe_port_fallback=args.probe_port is None,
        api_host=_api_host(args.kubeconfig),
        probe_timing=dataclasses.replace(
            ProbeTiming(),
            interval=args.probe_interval,
            timeout=args.probe_timeout,
            indirect_timeout=args.indirect_timeout,
        ),
    )
    metrics = SpeakerMetrics(node=args.node)
    stop_metrics = _serve_metrics(metrics, args.metrics_port)
    announcer = L2Announcer()
    log_event(
        _log,
        logging.INFO,
        "starting speaker",
        node=settings.node,
        namespace=settings.namespace,
        interfaces=[i.name for i in found],
        liveness=settings.liveness,
        probe=f"{settings.probe_address or '*'}:{settings.probe_port}",
        lease_duration=settings.lease_duration,
        renew_period=settings.renew_period,
        metrics_port=args.metrics_port or None,
        lightkube=client.LIGHTKUBE_VERSION,
    )
    try:
        return asyncio.run(_run_speaker(api, announcer, settings, metrics, interfaces))
    except Exception:
        _log.exception("speaker crashed")  # a bug: JSON line with the traceback, exit 1
        return 1
    finally:
        announcer.close()
        stop_metrics()


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "controller": _controller,
    "speaker": _speaker,
}


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
