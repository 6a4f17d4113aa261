"""The command line: ``missy-providers ...`` (the console script), ``python -m
missy_providers ...``, and in a checkout or a vendored copy ``python -m missy ...`` /
``python3 missy.py ...`` (missy.py runs this).

Output formatting only; everything it shows comes from missy_providers. It never prints a
secret, and it prints no colour codes (so NO_COLOR and pipes need nothing special); what a
server or a model said reaches the terminal with its control sequences neutralised (ESC, BEL,
CR, C1 and bidi overrides shown escaped; ``--raw`` prints a model's text as it came).

Exit codes: 0 ok, 1 provider or runtime error, 2 usage or config error, 3 policy denial,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # typing is not imported at run time (start-up stays fast)
if TYPE_CHECKING:
    from typing import Any, NoReturn, TextIO

    from missy_providers.config import Config
    from missy_providers.events import CallEvent
    from missy_providers.registry import ProviderRegistry

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_POLICY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader left
TIER_CHOICES = ("fast", "primary", "premium", "auto")


class Cli:
    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args, self.out, self.err = args, out, err
        # --raw keeps control sequences; a secret is redacted whatever the mode.
        self.raw = bool(getattr(args, "raw", False))
        self.midline = False  # stdout holds a started line (a streamed answer)
        self.streaming: Any = None  # a streamed answer's StreamScrubber, while it streams

    def write(self, text: str) -> None:
        """Text from a server or a model, on stdout, scrubbed and neutralised."""
        from missy_providers.core.secret import scrub

        self._show_scrubbed(scrub(text) if text else "")

    def stream(self, piece: str) -> None:
        """A piece of a streamed answer: scrubbed across pieces (a key sent a few characters
        at a time is still found whole), then neutralised like everything shown."""
        from missy_providers.core.secret import StreamScrubber

        if self.streaming is None:
            self.streaming = StreamScrubber()
        self._show_scrubbed(self.streaming.feed(piece))
        self.out.flush()

    def end_stream(self) -> None:
        """What a streamed answer's scrubber still holds, shown (also when the stream was
        cut short: before the error line)."""
        if self.streaming is not None:
            held, self.streaming = self.streaming.flush(), None
            self._show_scrubbed(held)

    def _show_scrubbed(self, text: str) -> None:
        """Text already scrubbed, on stdout: neutralised for the terminal unless --raw."""
        from missy_providers.core.secret import neutralised

        if text:
            self.out.write(text if self.raw else neutralised(text))
            self.midline = not text.endswith("\n")

    def print(self, text: str = "") -> None:
        self.write(text + "\n")

    def note(self, text: str) -> None:
        """One line on stderr (neutralised like everything shown); a streamed answer's line is
        ended first, so the note starts a line of its own."""
        self.end_stream()
        if self.midline:
            self.out.write("\n")
            self.out.flush()
            self.midline = False
        from missy_providers.core.secret import for_terminal

        self.err.write(for_terminal(text.rstrip("\n")) + "\n")

    def json(self, data: Any) -> None:
        """``data`` as JSON on stdout, every string in it (keys too) with secrets redacted;
        JSON itself escapes control characters."""
        from missy_providers.core.secret import scrub

        def scrubbed(value: Any) -> Any:
            if isinstance(value, str):
                return scrub(value)
            if isinstance(value, dict):
                return {scrubbed(k): scrubbed(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [scrubbed(v) for v in value]
            return value

        self.out.write(json.dumps(scrubbed(data), indent=2) + "\n")

    def config(self) -> Config:
        from missy_providers.config import load_config

        config = load_config(self.args.config)
        _apply_log_level(self.args, config)
        return config

    def registry(self) -> ProviderRegistry:
        from missy_providers.registry import ProviderRegistry

        return ProviderRegistry(self.config())


# --- missy providers ------------------------------------------------------------------------


def _models(row: dict[str, Any]) -> str:
    if not (row["fast_model"] or row["premium_model"]):
        return str(row["model"])
    return (f"{row['model']} (fast: {row['fast_model'] or '-'}, premium: "
            f"{row['premium_model'] or '-'})")


def _cell(value: object) -> str:
    """A field of a one-line record (a table cell, a model id): its line breaks and tabs
    escaped too, so a server's value cannot start a row or a column of its own."""
    from missy_providers.core.secret import MAX_MESSAGE_CHARS, sanitize

    return sanitize(str(value), MAX_MESSAGE_CHARS)


def _table(header: list[str], rows: list[list[str]]) -> str:
    cells = [header, *([_cell(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def _check_all(registry: ProviderRegistry, timeout: float) -> dict[str, dict[str, Any]]:
    """Probe every enabled provider at once: the total is the slowest probe, not the sum."""
    import threading

    from missy_providers.core.http import Timeouts

    timeouts = Timeouts(connect=min(timeout, 2.0), read=timeout, total=timeout)
    results: dict[str, dict[str, Any]] = {}

    def probe(name: str) -> None:
        p = registry.provider(name).probe(timeouts)
        results[name] = {"ok": p.ok, "reason": p.reason, "latency_ms":
                         None if p.latency_ms is None else round(p.latency_ms, 1),
                         "models": p.models}

    names = [r["name"] for r in registry.provider_rows() if r["enabled"]]
    threads = [threading.Thread(target=probe, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _check_text(result: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    text = str(result["reason"])
    if result["ok"] and result["latency_ms"] is not None:  # "OK" and what follows it
        text = f"OK {result['latency_ms']:.0f} ms{text[2:]}"
    if result["models"]:
        shown = ", ".join(result["models"][:5])
        more = f" +{len(result['models']) - 5}" if len(result["models"]) > 5 else ""
        text += f" (models: {shown}{more})"
    return text


def cmd_providers(cli: Cli) -> int:
    with cli.registry() as registry:
        rows = registry.provider_rows()
        if not cli.args.json:  # a provider skipped (a type this package lacks) is said
            for note in registry.config.notes:
                cli.note(f"note: {note}")
        checks = _check_all(registry, cli.args.timeout) if cli.args.check else {}
    for row in rows:
        check = checks.get(row["name"])
        row["available"] = None if check is None else bool(check["ok"] and row["ready"])
        if checks:
            row["check"] = check
    if cli.args.json:
        cli.json({"providers": rows})
        return _check_exit(rows, checks, cli.args.all)
    if not rows:
        cli.print("no providers configured")
        return EXIT_OK
    # READY: has what it needs to be called (nothing probed). AVAILABLE only after --check.
    last = ["AVAILABLE", "CHECK"] if checks else ["READY"]
    header = ["NAME", "TYPE", "MODEL", "ENDPOINT", "KEY", "ENABLED", *last]
    table = [[
        row["name"] + (" (default)" if row["default"] else ""), row["type"], _models(row),
        row["endpoint"], row["key_source"], "yes" if row["enabled"] else "no",
    ] + ([_yes_no(row["available"]), _check_text(row.get("check"))] if checks
         else [_yes_no(row["ready"])]) for row in rows]
    cli.print(_table(header, table))
    if not checks:
        cli.print(f"\nREADY: credentials present, nothing contacted; {command()} providers "
                  "--check probes each one")
    return _check_exit(rows, checks, cli.args.all)


def _check_exit(rows: list[dict[str, Any]], checks: dict[str, dict[str, Any]],
                every: bool) -> int:
    """With --check: 1 when the default provider (with --all: any enabled one) failed its
    check, so the command can be a scripted health check."""
    if not checks:
        return EXIT_OK
    judged = [r for r in rows if r["enabled"] and (every or r["default"])]
    return EXIT_RUNTIME if any(not r["available"] for r in judged) else EXIT_OK


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


# --- missy ask ------------------------------------------------------------------------------


def _with_attachments(prompt: str, images: list[str], files: list[str]) -> Any:
    """The prompt, then each ``--image`` and ``--file`` as a part (types from their bytes)."""
    if not images and not files:
        return prompt
    from missy_providers.content import Document, Image, Text

    parts: list[Any] = [Text(prompt)]
    for path in images:
        try:
            parts.append(Image.from_file(path))
        except ValueError as exc:
            if "application/pdf" in str(exc) or _is_pdf(path):
                raise _usage(f"--image {path}: this is a PDF; attach it with --file") from None
            raise
    return parts + [Document.from_file(path) for path in files]


def _is_pdf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(5) == b"%PDF-"
    except OSError:
        return False


def cmd_ask(cli: Cli) -> int:
    from missy_providers.types import Message

    args = cli.args
    if args.prompt and args.prompt != ["-"]:
        prompt = " ".join(args.prompt)
    else:
        if sys.stdin.isatty():
            cli.note("missy: reading the prompt from stdin (end it with Ctrl-D)")
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise _usage("nothing to ask: give a PROMPT or pipe one on stdin")
    messages = [Message("user", _with_attachments(prompt, args.image, args.file))]
    with cli.registry() as registry:
        if args.verbose:  # every call event, one short line each
            def show(event: CallEvent) -> None:
                cli.note(f"missy: event {event.line()}")

            registry.subscribe(show)
        opts: dict[str, Any] = {}
        if args.model:
            opts["model"] = args.model
        elif args.tier:
            opts["tier"] = args.tier
        if args.system:
            opts["system"] = args.system
        if args.max_tokens is not None:
            opts["max_tokens"] = args.max_tokens
        if args.temperature is not None:
            opts["temperature"] = args.temperature
        # The registry's call: the config's fallback order and tiers; --provider pins one.
        if args.provider:
            registry.provider(args.provider)  # an unknown or disabled name: a usage error
            opts["providers"] = [args.provider]
        if args.no_stream or args.json:
            response = registry.complete(messages, **opts)
            if not args.json:
                cli.print(response.content)
        else:
            stream = registry.stream(messages, **opts)
            try:
                for text in stream:
                    cli.stream(text)
                response = stream.response
            finally:
                stream.close()  # on Ctrl-C too: the connection is closed, not left half-read
                cli.end_stream()
                if cli.midline:  # the answer (or a cut stream's partial text) ends its line
                    cli.print()
    if args.json:
        cli.json({"content": response.content, "model": response.model,
                  "provider": response.provider, "usage": response.usage,
                  "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments}
                                 for c in response.tool_calls],
                  "finish_reason": response.finish_reason})
    if args.verbose:
        u = response.usage
        cli.note(f"usage: prompt {u['prompt_tokens']} (cached {u['cached_prompt_tokens']}, "
                 f"cache write {u['cache_write_tokens']}), completion "
                 f"{u['completion_tokens']} (reasoning {u['reasoning_tokens']}), total "
                 f"{u['total_tokens']} tokens; finish: {response.finish_reason}"
                 f"{f' ({response.stop_reason})' if response.stop_reason else ''}; model: "
                 f"{response.model}")
    return EXIT_OK


# --- missy models ---------------------------------------------------------------------------


def cmd_models(cli: Cli) -> int:
    """The models each provider lists (its model endpoint, through the policy client)."""
    from missy_providers.core.errors import MissyError

    found: dict[str, dict[str, Any]] = {}
    with cli.registry() as registry:
        if cli.args.provider:
            names = [cli.args.provider]
            registry.provider(cli.args.provider)  # an unknown or disabled name: a usage error
        else:
            names = [row["name"] for row in registry.provider_rows() if row["enabled"]]
        for name in names:
            provider = registry.provider(name)
            if provider.models_path is None and not cli.args.provider:
                found[name] = {"models": [], "note": f"{provider.provider_type} has no "
                               "endpoint that lists models: skipped"}
                continue
            try:
                found[name] = {"models": [i.as_dict() for i in provider.list_model_info()]
                               if cli.args.long else provider.list_models()}
            except MissyError as exc:
                if cli.args.provider:
                    raise
                found[name] = {"error": f"{type(exc).__name__}: {exc}"}
    if cli.args.json:
        cli.json({"providers": found})
    else:
        for name, result in found.items():
            for model in result.get("models", []):
                shown = _model_line(model) if cli.args.long else _cell(model)
                cli.print(f"{_cell(name)}\t{shown}")
            if "note" in result:
                cli.note(f"missy: {name}: {result['note']}")
            if "error" in result:
                cli.note(f"missy: {name}: {result['error']}")
    return EXIT_OK if all("models" in r for r in found.values()) else EXIT_RUNTIME


def _model_line(info: dict[str, Any]) -> str:
    """``--long``: the model, its window and output limit, and what it takes ("-": the API
    does not say)."""
    def count(value: int | None) -> str:
        return "-" if value is None else str(value)

    caps = ",".join(f"{k}={_yes_no(info[k])}" for k in
                    ("vision", "tools", "thinking", "structured_output"))
    return (f"{_cell(info['name'])}\tcontext {count(info['context_window'])}\toutput "
            f"{count(info['max_output_tokens'])}\t{caps}")


# --- missy count ----------------------------------------------------------------------------


def cmd_count(cli: Cli) -> int:
    """A prompt's input tokens: the API's own count where it has one, else an estimate."""
    from missy_providers.types import Message

    args = cli.args
    prompt = " ".join(args.prompt) if args.prompt and args.prompt != ["-"] else \
        sys.stdin.read()
    with cli.registry() as registry:
        provider = registry.provider(args.provider)
        counted = provider.count_tokens([Message("user", prompt)], system=args.system)
    if args.json:
        cli.json({"provider": provider.name, "tokens": counted.tokens, "exact": counted.exact,
                  "source": counted.source})
    else:
        how = f"counted by {counted.source}" if counted.exact else \
            "estimated at about 4 characters a token: this API cannot count"
        cli.print(f"{counted.tokens} tokens ({how}; {provider.name})")
    return EXIT_OK


# --- missy policy ---------------------------------------------------------------------------


def cmd_policy_check(cli: Cli) -> int:
    from missy_providers.config import http_client

    client = http_client(cli.config())
    results = [client.explain(url, resolve=cli.args.resolve) for url in cli.args.urls]
    if cli.args.json:
        cli.json({"results": results})
    else:
        for r in results:
            cli.print(f"{'allowed' if r['allowed'] else 'denied '}  {r['url']}  {r['reason']}")
            for a in r.get("addresses", []):
                verdict = "allowed" if a["allowed"] else "denied "
                cli.print(f"  {verdict}  -> {a['address']}  {a['reason']}")
    return EXIT_OK if all(r["allowed"] for r in results) else EXIT_POLICY


def cmd_policy_show(cli: Cli) -> int:
    from missy_providers.config import network_policy

    config = cli.config()
    shown = network_policy(config).describe()
    from missy_providers.core.http import trust_description
    from missy_providers.core.wire import shown_url

    net = config.network
    shown["proxy"] = shown_url(net.proxy) if net.proxy else None
    shown["ca_bundle"] = net.ca_bundle or None
    shown["trust"] = trust_description(net.ca_bundle, net.ca_bundle_adds_to_system)
    shown["audit_log"] = net.audit_log or None
    shown["client_certificates"] = _client_certificates(config)
    shown.update(_host_network(config))
    if cli.args.json:
        cli.json(shown)
        return EXIT_OK
    cli.print(f"default_deny: {str(shown['default_deny']).lower()}")
    for key in ("allowed_hosts", "allowed_domains", "allowed_cidrs"):
        values = shown[key]
        cli.print(f"{key}: {', '.join(values) if values else '(none)'}")  # type: ignore[arg-type]
    _print_host_network(cli, shown)
    cli.print("provider hosts (added from base_url):")
    for host, origin in shown["provider_hosts"].items():  # type: ignore[attr-defined]
        cli.print(f"  {host}  ({origin})")
    cli.print(f"tls trust: {shown['trust']}")
    for where, tls in shown["client_certificates"].items():  # type: ignore[attr-defined]
        scope = "every server" if where == "network" else f"{where} only"
        cli.print(f"client certificate ({scope}): {tls['cert']} (key {tls['key']})")
    for key in ("proxy", "audit_log"):
        if shown[key]:
            cli.print(f"{key}: {shown[key]}")
    return EXIT_OK


def _client_certificates(config: Config) -> dict[str, dict[str, str]]:
    """The client certificates (mutual TLS) the config presents, by where they are set: the
    paths only."""
    net = config.network
    found = {"network": {"cert": net.client_cert, "key": net.client_key}} \
        if net.client_cert else {}
    found.update({f"providers.{name}": {"cert": p.client_cert, "key": p.client_key}
                  for name, p in config.providers.items() if p.enabled and p.client_cert})
    return found


def _host_network(config: Config) -> dict[str, Any]:
    """The network keys of a host's (Missy's) config: presets (already in the lists), REST
    rules, and the host lists of traffic that is not a provider's (never used here)."""
    net = config.network
    other = {"tool_allowed_hosts": net.tool_allowed_hosts,
             "discord_allowed_hosts": net.discord_allowed_hosts}
    return {"presets": list(net.presets),
            "not_for_provider_traffic": {k: list(v) for k, v in other.items() if v}}


def _print_host_network(cli: Cli, shown: dict[str, Any]) -> None:
    if shown["presets"]:
        cli.print(f"presets: {', '.join(shown['presets'])} (expanded into the lists above)")
    if shown["rest_policies"]:
        cli.print("rest_policies (the first rule that matches decides; allow only means not "
                  "denied):")
        for rule in shown["rest_policies"]:
            cli.print(f"  {rule}")
    for key, hosts in shown["not_for_provider_traffic"].items():
        cli.print(f"{key}: {', '.join(hosts)} (another kind of traffic's: never used for "
                  "provider traffic)")


def _apply_log_level(args: argparse.Namespace, config: Config) -> None:
    """observability.log_level sets the package's loggers' level, unless -v or -q says."""
    if config.log_level and not (args.verbose or args.quiet):
        logging.getLogger("missy_providers").setLevel(config.log_level)


# --- missy config ---------------------------------------------------------------------------


def cmd_config_check(cli: Cli) -> int:
    from missy_providers.config import config_path, load_config
    from missy_providers.core.errors import ConfigError
    from missy_providers.preflight import local_file_notes, local_file_problems

    path = config_path(cli.args.config)
    try:
        config = load_config(path)
        problems = local_file_problems(config)
    except ConfigError as exc:
        problems = list(exc.problems)
    if problems:
        for problem in problems:
            cli.note(f"{problem}")
        cli.note(f"{len(problems)} problem(s) in {path}")
        return EXIT_USAGE
    for note in (*config.notes, *local_file_notes(config)):
        cli.note(f"note: {note}")
    if not any(p.enabled for p in config.providers.values()):
        cli.note("note: no enabled provider: every call fails until the providers: section "
                 "names one (missy config init writes a starter)")
    _note_host_keys(cli, config)
    enabled = sum(p.enabled for p in config.providers.values())
    cli.print(f"{path}: ok ({len(config.providers)} providers, {enabled} enabled)")
    return EXIT_OK


def _note_host_keys(cli: Cli, config: Config) -> None:
    if config.host_keys:
        cli.note(f"note: not ours, left to the host application: {', '.join(config.host_keys)}")


def cmd_config_init(cli: Cli) -> int:
    import missy_providers
    from missy_providers.config import DEFAULT_CONFIG_PATH, config_path
    from missy_providers.core.env import expand_user
    from missy_providers.core.files import create_private, make_private_dir

    path = config_path(cli.args.path or cli.args.config)
    # A .json path gets the same starter as JSON: a host without PyYAML can read it.
    kind = "json" if path.lower().endswith(".json") else "yaml"
    starter_file = os.path.join(os.path.dirname(missy_providers.__file__),
                                f"starter_config.{kind}")
    with open(starter_file, encoding="utf-8") as f:
        starter = f.read()
    directory = os.path.dirname(os.path.abspath(path))
    if path == expand_user(DEFAULT_CONFIG_PATH):
        try:
            make_private_dir(directory)  # the default place: made for you
        except OSError as exc:  # a file, or a dangling symlink, where the folder goes
            raise _usage(f"cannot create {directory} ({type(exc).__name__}): it exists and is "
                         "not a directory; move it away or give config init a path") from None
    if os.path.isdir(path):
        raise _usage(f"{path} is a directory; give a file path")
    if os.path.islink(path):
        raise _usage(f"{path} is a symbolic link; config init never writes through one "
                     "(give the file's own path)")
    try:
        create_private(path, starter, overwrite=cli.args.force)
    except FileExistsError:
        raise _usage(f"{path} exists; pass --force to overwrite it") from None
    except IsADirectoryError:
        raise _usage(f"{path} is a directory; give a file path") from None
    except FileNotFoundError:
        if not os.path.isdir(directory):
            raise _usage(f"the directory {directory} does not exist; create it first") from None
        raise _usage(f"cannot write {path} (FileNotFoundError)") from None
    except OSError as exc:
        raise _usage(f"cannot write {path} ({type(exc).__name__}: {exc.strerror})") from None
    cli.print(f"wrote {path} (mode 0600); edit it, then run: {command()} config check"
              + ("" if path == expand_user(DEFAULT_CONFIG_PATH) else f" --config {path}"))
    return EXIT_OK


def command() -> str:
    """How this CLI was started, for the commands its hints name: ``missy-providers`` (the
    console script), ``python -m missy_providers``, ``python -m missy`` (a checkout), or
    ``python3 path/missy.py`` (a vendored copy, run as a file)."""
    import __main__

    spec = getattr(__main__, "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    script = sys.argv[0] if sys.argv else ""
    return f"python3 {script}" if script.endswith(".py") else os.path.basename(script) or "missy"


def _usage(message: str) -> Exception:
    from missy_providers.core.errors import UsageError

    return UsageError(message)


# --- the parser -----------------------------------------------------------------------------


def _positive(kind: Callable[[str], Any], most: float = float("inf")
              ) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        if not value <= most:
            raise argparse.ArgumentTypeError(f"must be <= {most:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line reported like every other operator
    mistake: one line on stderr and exit 2, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        from missy_providers.core.secret import MAX_MESSAGE_CHARS, sanitize

        # The message quotes the command line: escaped and scrubbed like every error shown.
        self.exit(EXIT_USAGE, f"missy: UsageError: {sanitize(message, MAX_MESSAGE_CHARS)} "
                              f"(see {self.prog} --help)\n")


def _global_options(defaults: bool) -> _Parser:
    """--config, -v and -q, accepted before the command and after it. Only the top-level
    copy sets defaults: a subcommand's copy must not overwrite what was given before it."""
    keep: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
    common = _Parser(add_help=False)
    common.add_argument("--raw", action="store_true",
                        help="print a model's text as it came (control sequences and all; a "
                             "secret is still redacted)",
                        **keep)
    common.add_argument("--config", metavar="FILE",
                        help="config file (default: $MISSY_CONFIG, then ~/.missy/config.yaml)",
                        **keep)
    loud = common.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true",
                      help="debug logging and tracebacks on stderr", **keep)
    loud.add_argument("-q", "--quiet", action="store_true", help="errors only on stderr",
                      **keep)
    return common


def _parser() -> _Parser:
    from missy_providers import __version__
    from missy_providers.core.wire import MAX_SECONDS  # the limit every timeout shares

    common = _global_options(defaults=False)
    parser = _Parser(
        prog=command(), parents=[_global_options(defaults=True)],
        description="Missy's provider layer: one interface to Anthropic, OpenAI (and "
                    "compatible), Codex and Ollama, behind a network policy.",
        epilog="exit codes: 0 ok, 1 provider/runtime error, 2 usage/config error, "
               "3 policy denial, 130 interrupted, 141 the output's reader left")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    providers = sub.add_parser("providers", parents=[common],
                               help="list the configured providers and whether they are usable")
    providers.add_argument("--check", action="store_true",
                           help="probe every enabled provider now, in parallel")
    providers.add_argument("--timeout", type=_positive(float, MAX_SECONDS), default=3.0,
                           metavar="SECONDS",
                           help="with --check: the most each probe may take, in all "
                                "(default 3)")
    providers.add_argument("--all", action="store_true",
                           help="with --check: exit 1 if any enabled provider fails (default: "
                                "only if the default provider does)")
    providers.add_argument("--json", action="store_true", help="print JSON")
    providers.set_defaults(run=cmd_providers)

    ask = sub.add_parser("ask", parents=[common], help="ask a provider; streams the answer")
    ask.add_argument("prompt", nargs="*", help="the prompt (default: read stdin)")
    ask.add_argument("--provider", help="only this provider (default: the config's fallback "
                                        "order, from the default provider)")
    ask.add_argument("--model", help="model id (overrides --tier)")
    ask.add_argument("--tier", choices=TIER_CHOICES, help="model tier; auto = ModelRouter")
    ask.add_argument("--system", help="system prompt")
    ask.add_argument("--max-tokens", type=_positive(int), metavar="N",
                     help="most tokens to generate (a whole number > 0)")
    ask.add_argument("--temperature", type=float, help="sampling temperature, 0 to 2")
    ask.add_argument("--image", action="append", default=[], metavar="FILE",
                     help="attach an image (png, jpeg, gif, webp); repeatable")
    ask.add_argument("--file", action="append", default=[], metavar="FILE",
                     help="attach a PDF; repeatable")
    ask.add_argument("--no-stream", action="store_true", help="wait for the whole answer")
    ask.add_argument("--json", action="store_true", help="print the final response as JSON")
    ask.set_defaults(run=cmd_ask)

    models = sub.add_parser("models", parents=[common],
                            help="the models each provider lists (contacts it)")
    models.add_argument("--provider", help="only this provider (default: every enabled one)")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.add_argument("--long", action="store_true",
                        help="context window, output limit and capabilities, where the API "
                             "says them")
    models.set_defaults(run=cmd_models)

    count = sub.add_parser("count", parents=[common],
                           help="count a prompt's tokens (the API's count, else an estimate)")
    count.add_argument("prompt", nargs="*", help="the prompt (default: read stdin)")
    count.add_argument("--provider", help="provider name (default: the default provider)")
    count.add_argument("--system", help="system prompt")
    count.add_argument("--json", action="store_true", help="print JSON")
    count.set_defaults(run=cmd_count)

    policy = sub.add_parser("policy", parents=[common], help="inspect the network policy")
    policy_sub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = policy_sub.add_parser("check", parents=[common],
                                  help="allowed or denied, and why, without connecting")
    check.add_argument("urls", nargs="+", metavar="URL")
    check.add_argument("--resolve", action="store_true",
                       help="also resolve host names and check every address (DNS only)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(run=cmd_policy_check)
    show = policy_sub.add_parser("show", parents=[common],
                                 help="the effective policy, provider hosts included")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=cmd_policy_show)

    config = sub.add_parser("config", parents=[common], help="validate or create a config")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_sub.add_parser("check", parents=[common],
                          help="print every problem in the config file").set_defaults(
        run=cmd_config_check)
    init = config_sub.add_parser("init", parents=[common], help="write a commented starter")
    init.add_argument("path", nargs="?", help="where (default: --config, $MISSY_CONFIG, then "
                                              "~/.missy/config.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(run=cmd_config_init)
    return parser


def _exit_code(exc: BaseException) -> int:
    from missy_providers.core.errors import ConfigError, PolicyViolation, UsageError

    if isinstance(exc, (ConfigError, UsageError)):
        return EXIT_USAGE
    return EXIT_POLICY if isinstance(exc, PolicyViolation) else EXIT_RUNTIME


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="missy: %(levelname)s: %(name)s: %(message)s")
    run: Callable[[Cli], int] = args.run
    started = time.monotonic()
    cli = Cli(args, sys.stdout, sys.stderr)
    try:
        return run(cli)
    except BrokenPipeError:  # `missy models | head -1`: the reader has what it wanted
        from missy_providers.core.files import discard_stdout

        discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.write("\nmissy: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        from missy_providers.core.errors import MissyError

        if not isinstance(exc, MissyError):
            raise
        errors: tuple[MissyError, ...] = getattr(exc, "errors", ())
        if len(errors) == 1:  # a chain of one provider: its own error says it best
            exc = errors[0]
        if args.verbose:
            import traceback

            traceback.print_exc()
        cli.note(f"missy: {type(exc).__name__}: {exc}")
        return _exit_code(exc)
    finally:
        logging.getLogger("missy").debug("done in %.0f ms", (time.monotonic() - started) * 1000)

