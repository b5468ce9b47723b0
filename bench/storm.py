"""Rate-limit storms and a flapping primary: issue 13's "done when" list, measured
against the emulator (its own process) with the real FailoverManager and google-genai.

    python -m bench.storm [--quick] [--only NAME ...] [--compare] [--candidate JSON]
                          [--baseline JSON] [--baseline-src DIR]

Every scenario starts from a reset emulator (faults set through its HTTP control API)
and a fresh manager built from Settings, and uses only the manager's public interface:
construct, ``start``, ``generate``, ``aclose``, and the provenance of results and
errors. Upstream traffic is counted from the emulator's request log, whose ``time``
field is each request's arrival (wall clock, stamped by the emulator).

A *variant* is a dict of Settings overrides (``{"rate_limit": {"spill_fraction": 0.5}}``)
merged over each scenario's own settings (chain, endpoint, deadline). The table has a
"defaults-today" column (``--baseline`` overrides, none by default) and, with
``--compare`` or ``--candidate``, a "candidate" column. ``--baseline-src DIR`` runs the
defaults-today column with another checkout's package (``git archive <commit> src | tar
-x -C /tmp/before``; DIR=/tmp/before/src) in a child process against the same emulator.

The scenario functions are importable (``await transient_storm(base_url)``, also with an
in-process ``EmulatorServer``'s base_url) and return bench/storm_figures.py's dataclasses.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from bench.common import (
    EmulatorControl,
    Outcome,
    build_settings,
    emulator_process,
    fire,
    machine,
    markdown_table,
    peak_window,
    running_manager,
    switches,
)
from bench.storm_figures import (
    Figures,
    Flapping,
    MinuteStorm,
    Oversized,
    PersistentLimit,
    Throughput,
    TransientStorm,
)
from gemini_failover.protocol import GenerationRequest
from gemini_failover.resilience.results import RequestFailed

PRIMARY, FALLBACK, THIRD = "storm-primary", "storm-fallback", "storm-third"
Overrides = Mapping[str, Any]
NO_OVERRIDES: Overrides = MappingProxyType({})
#: Faults on the answering actions only: the manager's models.get must not use them up.
ANSWERS = ["generate", "stream"]
#: Added to a scenario's deadline before unfinished calls are cancelled (and reported
#: as "unfinished"), so that a run always ends.
GRACE_SECONDS = 15.0
ModelSetup = tuple[dict[str, Any], list[dict[str, Any]]]  # (profile, faults)


async def _fresh(control: EmulatorControl, models: Mapping[str, ModelSetup]) -> None:
    await control.reset()
    for model, (profile, faults) in models.items():
        await control.configure(model, profile, faults)


async def _generates(control: EmulatorControl, model: str) -> list[dict[str, Any]]:
    return await control.requests(model=model, action="generate")


def _answered(outcomes: Sequence[Outcome], by: str | None = None) -> int:
    return sum(o.served_by is not None and by in (None, o.served_by) for o in outcomes)


def _failures(outcomes: Sequence[Outcome]) -> dict[str, int]:
    return dict(Counter(o.category for o in outcomes if o.category))


# -- scenarios ---------------------------------------------------------------------------


async def transient_storm(
    base_url: str, overrides: Overrides = NO_OVERRIDES, *, calls: int = 100, retry_after: float = 2
) -> TransientStorm:
    """The primary answers 429 + Retry-After ``retry_after`` s to its first ``calls``
    requests that arrive in the first ``retry_after`` s of the storm, then recovers (its
    quota refills when the Retry-After it announced runs out: a quota is a window of
    time, not a count of refusals); ``calls`` concurrent calls, deadline 90 s; a healthy
    fallback."""
    control = EmulatorControl(base_url)
    try:
        storm = {"kind": "status", "code": 429, "retry_after": retry_after, "count": calls}
        await _fresh(control, {PRIMARY: ({}, [{**storm, "actions": ANSWERS}]), FALLBACK: ({}, [])})
        settings = build_settings(base_url, [PRIMARY, FALLBACK], overrides, total_timeout=90.0)

        async def refill() -> None:
            await asyncio.sleep(retry_after)  # the scenario's own clock, not a wait on a condition
            await control.configure(PRIMARY, {}, [])

        async with running_manager(settings) as manager:
            prompts = [f"storm {i}" for i in range(calls)]
            refilled = asyncio.create_task(refill())
            outcomes = await fire(manager, prompts, concurrency=calls, limit=90 + GRACE_SECONDS)
            await refilled
        primary = await _generates(control, PRIMARY)
        injected = sum(r["outcome"] == "fault:status" for r in primary)
        after = [r["time"] for r in primary if r["outcome"] != "fault:status"]
        return TransientStorm(
            calls=calls,
            retry_after=retry_after,
            answered=_answered(outcomes),
            failures=_failures(outcomes),
            answered_by_primary=_answered(outcomes, PRIMARY),
            fallback_calls=len(await _generates(control, FALLBACK)),
            injected_429s=injected,
            primary_requests=len(primary),
            waiters=len(after),
            peak_100ms=peak_window(after, 0.1),
        )
    finally:
        await control.aclose()


async def persistent_limit(
    base_url: str,
    overrides: Overrides = NO_OVERRIDES,
    *,
    calls: int = 120,
    fallback_rpm: int = 60,
    deadline: float = 20.0,
) -> PersistentLimit:
    """The primary always answers 429 (a per-minute quota of 0: RetryInfo 60 s, longer
    than the deadline); the fallback has a per-minute quota of ``fallback_rpm``."""
    control = EmulatorControl(base_url)
    try:
        quota = {"kind": "rate_limit", "actions": ANSWERS}
        await _fresh(
            control,
            {
                PRIMARY: ({}, [{**quota, "rpm": 0}]),
                FALLBACK: ({}, [{**quota, "rpm": fallback_rpm}]),
            },
        )
        settings = build_settings(base_url, [PRIMARY, FALLBACK], overrides, total_timeout=deadline)
        async with running_manager(settings) as manager:
            prompts = [f"persistent {i}" for i in range(calls)]
            outcomes = await fire(
                manager, prompts, concurrency=calls, limit=deadline + GRACE_SECONDS
            )
        fallback = await _generates(control, FALLBACK)
        return PersistentLimit(
            calls=calls,
            fallback_rpm=fallback_rpm,
            deadline=deadline,
            answered=_answered(outcomes),
            failures=_failures(outcomes),
            fallback_calls=len(fallback),
            fallback_429s=sum(r["status"] == 429 for r in fallback),
            failed_with_retry_after=sum(o.retry_after is not None for o in outcomes),
        )
    finally:
        await control.aclose()


async def flapping(
    base_url: str,
    overrides: Overrides = NO_OVERRIDES,
    *,
    calls: int = 300,
    per_second: float | None = 10,
) -> Flapping:
    """The primary alternates 200 / 503 per request (the emulator's ``flap``); the
    fallback is healthy. Calls start at a steady ``per_second``, so that the run
    (30 s at the defaults) outlasts a breaker's break and shows how traffic returns;
    with ``per_second=None`` they all start at once."""
    control = EmulatorControl(base_url)
    try:
        flap = {"kind": "flap", "code": 503, "actions": ANSWERS}
        await _fresh(control, {PRIMARY: ({}, [flap]), FALLBACK: ({}, [])})
        settings = build_settings(base_url, [PRIMARY, FALLBACK], overrides)
        interval = 1 / per_second if per_second else 0.0
        async with running_manager(settings) as manager:
            prompts = [f"flap {i}" for i in range(calls)]
            limit = calls * interval + settings.total_timeout + GRACE_SECONDS
            outcomes = await fire(
                manager, prompts, concurrency=calls, limit=limit, interval=interval
            )
        served = [o.served_by for o in sorted(outcomes, key=lambda o: o.done_at) if o.served_by]
        return Flapping(
            calls=calls,
            per_second=per_second,
            answered=len(served),
            failures=_failures(outcomes),
            switches=switches(served),
            primary_requests=len(await _generates(control, PRIMARY)),
            answered_by_primary=served.count(PRIMARY),
        )
    finally:
        await control.aclose()


async def minute_storm(
    base_url: str,
    overrides: Overrides = NO_OVERRIDES,
    *,
    calls: int = 12,
    rpm: int = 2,
    deadline: float | None = None,
) -> MinuteStorm:
    """The primary has a per-minute quota of ``rpm`` (a token bucket; RetryInfo is the
    time to the next token); ``calls`` concurrent calls; a healthy fallback. The
    deadline is the manager's default (90 s today) unless given."""
    control = EmulatorControl(base_url)
    try:
        quota = {"kind": "rate_limit", "rpm": rpm, "actions": ANSWERS}
        await _fresh(control, {PRIMARY: ({}, [quota]), FALLBACK: ({}, [])})
        scenario = {} if deadline is None else {"total_timeout": deadline}
        settings = build_settings(base_url, [PRIMARY, FALLBACK], overrides, **scenario)
        async with running_manager(settings) as manager:
            prompts = [f"minute {i}" for i in range(calls)]
            limit = settings.total_timeout + GRACE_SECONDS
            outcomes = await fire(manager, prompts, concurrency=calls, limit=limit)
        return MinuteStorm(
            calls=calls,
            rpm=rpm,
            deadline=settings.total_timeout,
            primary_requests=len(await _generates(control, PRIMARY)),
            answered=_answered(outcomes),
            failures=_failures(outcomes),
            answered_by_primary=_answered(outcomes, PRIMARY),
            fallback_calls=len(await _generates(control, FALLBACK)),
        )
    finally:
        await control.aclose()


async def oversized_prompt(
    base_url: str, overrides: Overrides = NO_OVERRIDES, *, fallback_window: int = 1000
) -> Oversized:
    """Chain: a primary that is down (503 on every call), a fallback whose real window
    (``fallback_window`` tokens, in the emulator's profile) is smaller than the prompt,
    and a third model with the default window. The fallback's models.get answers only
    after 3 s, so its limit is not known when the first call arrives, however early the
    manager asks. The prompt (4x the window, 4,000 tokens by default) stays under the
    size (32k) at which today's manager waits for a model's limits."""
    control = EmulatorControl(base_url)
    try:
        await _fresh(
            control,
            {
                PRIMARY: ({}, [{"kind": "status", "code": 503, "actions": ANSWERS}]),
                FALLBACK: (
                    {"input_token_limit": fallback_window},
                    [{"kind": "latency", "ms": 3000, "actions": ["get"]}],
                ),
                THIRD: ({}, []),
            },
        )
        settings = build_settings(base_url, [PRIMARY, FALLBACK, THIRD], overrides)
        prompt = ("lorem ipsum " * fallback_window * 2)[: fallback_window * 16]
        limit = settings.total_timeout + GRACE_SECONDS
        async with running_manager(settings) as manager:
            first = (await fire(manager, [prompt], concurrency=1, limit=limit))[0]
            second = (await fire(manager, ["again " + prompt], concurrency=1, limit=limit))[0]
        return Oversized(
            prompt_tokens=len(prompt) // 4,  # the emulator's count: ceil(chars / 4)
            fallback_window=fallback_window,
            fits=(THIRD,),
            first=first.served_by or f"failed: {first.category}",
            second=second.served_by or f"failed: {second.category}",
        )
    finally:
        await control.aclose()


async def throughput(
    base_url: str,
    overrides: Overrides = NO_OVERRIDES,
    *,
    calls: int = 5000,
    concurrency: int = 200,
    rounds: int = 10,
    sdk_path: bool = True,
) -> Throughput:
    """No faults: ``calls`` calls at ``concurrency`` through the manager and as many
    through a direct google-genai client, in ``rounds`` batches each; the side that goes
    first alternates, so drift in this shared machine's load touches both alike. With
    ``sdk_path``, again with a small inline image in each request: the manager then goes
    through google-genai as the direct client does (plain text takes its direct path)."""
    from google import genai
    from google.genai import types

    from gemini_failover.protocol import Media, Turn

    control = EmulatorControl(base_url)
    try:
        await _fresh(control, {PRIMARY: ({}, []), FALLBACK: ({}, [])})
    finally:
        await control.aclose()
    direct = genai.Client(
        api_key="bench",
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),  # as GeminiBackend's
        ),
    )
    config = types.GenerateContentConfig(automatic_continuation=False)
    settings = build_settings(base_url, [PRIMARY, FALLBACK], overrides)
    per_round = max(1, calls // rounds)
    png = b"\x89PNG\r\n\x1a\n" + bytes(56)
    image = Media("/bench.png", "image/png", len(png), "0" * 64, data=png)

    async def batch(send: Callable[[str], Awaitable[object]], n: int, tag: int) -> float:
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await send(f"throughput {(tag + i) % 50}")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0

    failed = [0]  # manager calls that failed, after the warm-ups

    async def compare(
        via_manager: Callable[[str], Awaitable[object]],
        via_direct: Callable[[str], Awaitable[object]],
    ) -> tuple[float, float]:
        """(manager, direct) calls per second."""
        warm_up = min(calls, concurrency)  # connections, caches, models.get
        before = failed[0]
        await batch(via_manager, warm_up, 0)
        await batch(via_direct, warm_up, 0)
        failed[0] = before  # failures while warming up are not counted
        managed = direct_s = 0.0
        for r in range(rounds):
            if r % 2:
                direct_s += await batch(via_direct, per_round, r)
                managed += await batch(via_manager, per_round, r)
            else:
                managed += await batch(via_manager, per_round, r)
                direct_s += await batch(via_direct, per_round, r)
        done = per_round * rounds
        return done / managed, done / direct_s

    try:
        async with running_manager(settings) as manager:

            def via_manager(with_image: bool) -> Callable[[str], Awaitable[object]]:
                async def send(prompt: str) -> object:
                    attachments = (image,) if with_image else ()
                    request = GenerationRequest(contents=(Turn("user", prompt, attachments),))
                    try:
                        return await manager.generate(request)
                    except RequestFailed:
                        failed[0] += 1
                        return None

                return send

            def via_direct(with_image: bool) -> Callable[[str], Awaitable[object]]:
                async def send(prompt: str) -> object:
                    parts = [types.Part.from_bytes(data=png, mime_type="image/png")]
                    contents: Any = [*parts, prompt] if with_image else prompt
                    return await direct.aio.models.generate_content(
                        model=PRIMARY, contents=contents, config=config
                    )

                return send

            plain = await compare(via_manager(False), via_direct(False))
            sdk = await compare(via_manager(True), via_direct(True)) if sdk_path else None
    finally:
        await direct.aio.aclose()
    return Throughput(
        per_round * rounds,
        concurrency,
        *plain,
        failed[0],
        sdk_managed_per_s=sdk[0] if sdk else None,
        sdk_direct_per_s=sdk[1] if sdk else None,
    )


# -- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    figures: type[Any]  # the dataclass it returns (rebuilt from a child's JSON)
    function: Callable[..., Awaitable[Figures]]  # (base_url, overrides, **sizes)
    full: Mapping[str, Any]  # sizes of the full run (the issue's) ...
    quick: Mapping[str, Any]  # ... and of --quick

    async def run(self, base_url: str, overrides: Overrides, quick: bool) -> Figures:
        return await self.function(base_url, overrides, **(self.quick if quick else self.full))


SCENARIOS = [
    Scenario("storm", TransientStorm, transient_storm, {"calls": 100}, {"calls": 30}),
    Scenario(
        "persistent",
        PersistentLimit,
        persistent_limit,
        {"calls": 120, "fallback_rpm": 60, "deadline": 20.0},
        {"calls": 40, "fallback_rpm": 30, "deadline": 10.0},
    ),
    Scenario("flapping", Flapping, flapping, {"calls": 300}, {"calls": 60}),
    Scenario(
        "flapping-burst",
        Flapping,
        flapping,
        {"calls": 300, "per_second": None},
        {"calls": 100, "per_second": None},
    ),
    Scenario("minute", MinuteStorm, minute_storm, {}, {"deadline": 35.0}),
    Scenario("oversized", Oversized, oversized_prompt, {}, {}),
    Scenario(
        "throughput",
        Throughput,
        throughput,
        {"calls": 5000, "concurrency": 200, "rounds": 10},
        {"calls": 600, "concurrency": 50, "rounds": 4},
    ),
]


@dataclass(frozen=True)
class Variant:
    label: str
    overrides: Overrides
    src: str | None = None  # another checkout's src dir: run in a child process


async def run_variant(scenario: Scenario, variant: Variant, base_url: str, quick: bool) -> Figures:
    if variant.src is None:
        return await scenario.run(base_url, variant.overrides, quick)
    argv = ["--url", base_url, "--only", scenario.name, "--json"]
    argv += ["--baseline", json.dumps(dict(variant.overrides))] + (["--quick"] if quick else [])
    path = os.pathsep.join(p for p in (variant.src, os.environ.get("PYTHONPATH")) if p)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.storm",
        *argv,
        env={**os.environ, "PYTHONPATH": path},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"{scenario.name} with {variant.src}: exit {child.returncode}")
    figures: Figures = scenario.figures(**json.loads(out)[scenario.name])
    return figures


async def measure(
    base_url: str, names: Sequence[str], variants: Sequence[Variant], quick: bool
) -> dict[str, list[Figures]]:
    """Each scenario with each variant, one after another."""
    results: dict[str, list[Figures]] = {}
    for scenario in SCENARIOS:
        if scenario.name not in names:
            continue
        for variant in variants:
            print(f"  {scenario.name} / {variant.label} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            figures = await run_variant(scenario, variant, base_url, quick)
            print(f"    {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            results.setdefault(scenario.name, []).append(figures)
    return results


def report(results: Mapping[str, list[Figures]], variants: Sequence[Variant], quick: bool) -> str:
    rows: list[list[str]] = []
    for columns in results.values():
        per_variant = [f.metrics() for f in columns]
        for i, metric in enumerate(per_variant[0]):
            title = columns[0].title if i == 0 else ""
            rows.append([title, metric.name, metric.target, *(m[i].cell() for m in per_variant)])
    header = ["scenario", "metric", "target", *(v.label for v in variants)]
    notes = [f"- {v.label}: {_describe(v)}" for v in variants]
    title = "Rate-limit storms and a flapping primary (issue 13)" + (" (quick)" if quick else "")
    return markdown_table(title, header, rows) + "\n" + "\n".join(notes) + "\n"


def _describe(variant: Variant) -> str:
    settings = json.dumps(dict(variant.overrides)) if variant.overrides else "default Settings"
    return settings + (f", code from {variant.src}" if variant.src else ", this checkout's code")


def main() -> None:
    parser = argparse.ArgumentParser(description="Issue 13's scenarios against the emulator.")
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run")
    names = [s.name for s in SCENARIOS]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these scenarios")
    parser.add_argument("--compare", action="store_true", help="add a 'candidate' column")
    parser.add_argument(
        "--candidate", type=json.loads, help="the candidate's Settings overrides (JSON)"
    )
    parser.add_argument(
        "--baseline", type=json.loads, default={}, help="defaults-today's overrides (JSON)"
    )
    parser.add_argument("--baseline-src", help="run defaults-today with this src dir's package")
    parser.add_argument("--url", help="use this running emulator instead of starting one")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    variants = [Variant("defaults-today", args.baseline, args.baseline_src)]
    if args.compare or args.candidate is not None:
        variants.append(Variant("candidate", args.candidate or {}))
    selected = args.only or names

    def run(url: str) -> dict[str, list[Figures]]:
        return asyncio.run(measure(url, selected, variants, args.quick))

    if args.url:
        results = run(args.url)
    else:
        with emulator_process() as url:
            results = run(url)
    if args.json:
        print(json.dumps({k: dataclasses.asdict(v[0]) for k, v in results.items()}))
    else:
        print(report(results, variants, args.quick) + f"\n{machine()}\n")


if __name__ == "__main__":
    main()
