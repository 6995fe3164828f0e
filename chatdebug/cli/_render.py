"""Runs and steps for people and for scripts: the read API's JSON documents
(``ChatDebugRunSummary``, ``ChatDebugRun``, ``ChatDebugStep``) and terminal tables."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from .._documents import rfc3339, run_document, run_summary_document, step_document
from ..store import Run, Step

__all__ = ["render_run", "render_runs", "run_json", "run_summary_json", "step_json"]

_PREVIEW = 160


def _ts(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def run_summary_json(run: Run) -> dict[str, Any]:
    """``ChatDebugRunSummary``: a list entry, as the read API serves it."""
    return run_summary_document(run)


def step_json(step: Step) -> dict[str, Any]:
    """``ChatDebugStep`` as the read API serves it, plus the ids of its span."""
    out = step_document(step)
    _with_span(out, step.trace_id, step.span_id)
    return out


def run_json(run: Run, steps: list[Step]) -> dict[str, Any]:
    """``ChatDebugRun`` with its ordered ``steps`` as the read API serves it, plus the
    run's ``user_id`` and the ids of its span (a terminal user has no other way to
    see them)."""
    out = run_document(run, [])
    if run.user_id is not None:
        out["user_id"] = run.user_id
    _with_span(out, run.trace_id, run.span_id)
    out["steps"] = [step_json(s) for s in steps]
    return out


def _with_span(out: dict[str, Any], trace_id: str | None, span_id: str | None) -> None:
    if trace_id is not None:
        out["trace_id"] = trace_id
    if span_id is not None:
        out["span_id"] = span_id


# -- text ------------------------------------------------------------------------------


def _short(text: Any, limit: int = _PREVIEW) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return out


NOT_REPORTED = "not reported"
"""What a token count the provider did not send reads as: unknown, never 0."""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _run_tokens(summary: dict[str, Any], short: bool) -> str:
    """A run's token totals: those of the usage reported (``in/out``, or in full with
    the reasoning and cache counts), the steps whose usage was not reported beside
    them, "not reported" when no step reported any, ``-`` while the run has none yet."""
    if "total_input_tokens" not in summary and "total_output_tokens" not in summary:
        return "-"
    inp, out = summary.get("total_input_tokens", 0), summary.get("total_output_tokens", 0)
    known = f"{inp}/{out}" if short else f"in {inp} / out {out}"
    if not short:
        for key in (
            "total_reasoning_tokens",
            "total_cache_read_tokens",
            "total_cache_creation_tokens",
        ):
            if summary.get(key):
                label = key.removeprefix("total_").removesuffix("_tokens").replace("_", " ")
                known += f" / {label} {summary[key]}"
    missing = summary.get("steps_without_usage")
    if not isinstance(missing, int) or isinstance(missing, bool) or missing <= 0:
        return known
    if missing == summary.get("step_count"):
        return NOT_REPORTED
    return f"{known} ({_plural(missing, 'step')} {NOT_REPORTED})"


def _money(value: float) -> str:
    """Dollars, with the digits small per-call costs need."""
    return f"${value:,.4f}" if value >= 0.01 else f"${value:.6f}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _run_cost(summary: dict[str, Any]) -> str:
    """A run's cost: the total of its priced steps, the steps without a price beside it,
    "not available" when no step was priced, ``-`` while the run has no steps."""
    total = _number(summary.get("total_cost_usd"))
    unpriced = summary.get("unpriced_step_count")
    missing = unpriced if isinstance(unpriced, int) and not isinstance(unpriced, bool) else 0
    if total is None:
        return "not available" if missing > 0 else "-"
    if missing > 0:
        return f"{_money(total)} ({_plural(missing, 'step')} without a price)"
    return _money(total)


def _step_cost(metadata: dict[str, Any]) -> str | None:
    cost = metadata.get("cost")
    if isinstance(cost, dict) and _number(cost.get("total_usd")) is not None:
        text = f"cost {_money(float(cost['total_usd']))}"
        if cost.get("match") and cost.get("match") != "exact":
            text += f" ({_short(cost['match'], 20)})"
        return text
    reason = metadata.get("cost_unavailable")
    if reason:
        return f"cost not available ({_short(reason, 80)})"
    return None


def _duration(run: Run) -> str:
    ms = run.summary.get("duration_ms") if isinstance(run.summary, dict) else None
    if isinstance(ms, int | float):
        return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{int(ms)}ms"
    return "-"


def render_runs(runs: list[Run], *, with_chat: bool = False) -> str:
    """The ``chatdebug runs`` table (``with_chat``: a CHAT column, for runs across chats)."""
    if not runs:
        return "no runs"
    rows = []
    for run in runs:
        summary = run.summary if isinstance(run.summary, dict) else {}
        tokens = _run_tokens(summary, short=True)
        status = run.status + (" !" if summary.get("has_error") else "")
        rows.append(
            [
                (_ts(run.started_at) or "")[:19].replace("T", " "),
                str(run.id),
                run.kind,
                status,
                str(summary.get("step_count", "-")),
                tokens,
                _run_cost(summary) if "step_count" in summary else "-",
                _duration(run),
                _short(summary.get("first_message", ""), 48),
            ]
        )
    headers = [
        "STARTED (UTC)",
        "RUN ID",
        "KIND",
        "STATUS",
        "STEPS",
        "TOKENS IN/OUT",
        "COST",
        "DURATION",
        "FIRST MESSAGE",
    ]
    if with_chat:
        headers.insert(2, "CHAT")
        for row, run in zip(rows, runs, strict=True):
            row.insert(2, _short(run.chat_id, 36))
    return "\n".join(_table(headers, rows))


def _content_preview(parts: list[Any]) -> list[str]:
    lines = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool-call":
            lines.append(
                f"tool call {part.get('tool_name')}({_short(part.get('arguments', ''), 80)})"
            )
        elif kind == "tool-result":
            lines.append(
                f"tool result {part.get('tool_call_id')}: {_short(part.get('result', ''), 80)}"
            )
        elif "text" in part:
            lines.append(f"{kind}: {_short(part['text'])}")
        else:
            lines.append(str(kind))
    return lines


def _decode_body(value: Any) -> str:
    try:
        raw = base64.b64decode(value)
    except (ValueError, TypeError):
        return _short(value)
    return _short(raw.decode("utf-8", errors="replace"), 200)


def _step_lines(step: Step, verbose: bool) -> list[str]:
    usage = step.usage or {}
    duration = "-"
    if step.finished_at is not None:
        duration = f"{int((step.finished_at - step.started_at).total_seconds() * 1000)}ms"
    head = f"step {step.step_number}  {step.operation}  {step.status}  {duration}"
    if usage:
        head += f"  tokens in {usage.get('input_tokens', 0)} / out {usage.get('output_tokens', 0)}"
        for key in ("reasoning_tokens", "cache_read_tokens", "cache_creation_tokens"):
            if usage.get(key):
                head += f" / {key.removesuffix('_tokens').replace('_', ' ')} {usage[key]}"
    else:
        metadata = step.metadata if isinstance(step.metadata, dict) else {}
        reason = metadata.get("usage_unavailable")
        if reason:
            head += f"  tokens {NOT_REPORTED} ({_short(reason, 80)})"
    cost = _step_cost(step.metadata if isinstance(step.metadata, dict) else {})
    if cost is not None:
        head += f"  {cost}"
    lines = [head]
    request = step.normalized_request or {}
    if request.get("model"):
        lines.append(f"  model      {request['model']}")
    messages = request.get("messages") or []
    if messages:
        last = messages[-1]
        preview = _content_preview(last.get("parts") or [])
        lines.append(
            f"  request    {len(messages)} message(s); last ({last.get('role')}): "
            + (preview[-1] if preview else "-")
        )
    response = step.normalized_response or {}
    for text in _content_preview(response.get("content") or []):
        lines.append(f"  response   {text}")
    if response.get("finish_reason"):
        lines.append(f"  finish     {response['finish_reason']}")
    if step.error:
        error = step.error
        status = f" (HTTP {error['provider_status']})" if error.get("provider_status") else ""
        lines.append(
            f"  error      {error.get('type', 'error')}{status}: {_short(error.get('message', ''))}"
        )
    rows = []
    for attempt in step.attempts or []:
        rows.append(
            [
                str(attempt.get("number", "?")),
                str(attempt.get("status", "?")),
                str(attempt.get("response_status", "-")),
                f"{attempt.get('method', '')} {attempt.get('path', '')}",
                f"{attempt.get('duration_ms', '-')}ms",
                f"{attempt.get('ttfb_ms', '-')}",
                str(attempt.get("ttft_ms", "-")),
                _short(attempt.get("error", ""), 60),
            ]
        )
    if rows:
        lines.append("  attempts")
        table = _table(
            ["#", "STATUS", "HTTP", "REQUEST", "TIME", "TTFB MS", "TTFT MS", "ERROR"], rows
        )
        lines += ["    " + row for row in table]
    for attempt in step.attempts or []:
        lines.append(f"  attempt {attempt.get('number')} url {attempt.get('url', '')}")
        for name in ("request_headers", "response_headers"):
            headers = attempt.get(name) or {}
            if headers:
                shown = ", ".join(f"{k}: {v}" for k, v in headers.items())
                lines.append(
                    f"    {name.replace('_', ' ')}: {_short(shown, 400 if verbose else 200)}"
                )
        if verbose:
            for name in ("request_body", "response_body"):
                if attempt.get(name):
                    lines.append(f"    {name.replace('_', ' ')}: {_decode_body(attempt[name])}")
    return lines


def render_run(run: Run, steps: list[Step], *, verbose: bool = False) -> str:
    """The ``chatdebug show`` report."""
    summary = run.summary if isinstance(run.summary, dict) else {}
    lines = [
        f"run {run.id}",
        f"  chat       {run.chat_id}" + (f"   user {run.user_id}" if run.user_id else ""),
        f"  kind       {run.kind}",
        f"  status     {run.status}" + ("  (a step failed)" if summary.get("has_error") else ""),
        f"  started    {_ts(run.started_at)}",
        f"  finished   {_ts(run.finished_at) or '-'}   duration {_duration(run)}",
    ]
    if summary.get("first_message"):
        lines.append(f"  first msg  {_short(summary['first_message'])}")
    if summary.get("endpoint_label"):
        lines.append(f"  endpoint   {summary['endpoint_label']}")
    tokens = _run_tokens(summary, short=False)
    lines.append(f"  tokens     {tokens}   steps {summary.get('step_count', len(steps))}")
    if "step_count" in summary:
        lines.append(f"  cost       {_run_cost(summary)}")
    if run.trace_id:
        lines.append(f"  trace      {run.trace_id}")
    for step in steps:
        lines.append("")
        lines += _step_lines(step, verbose)
    return "\n".join(lines)


def dumps(value: Any) -> str:
    """Pretty JSON for ``--json`` output."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
