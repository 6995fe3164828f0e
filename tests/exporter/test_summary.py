"""Labels and run summary aggregation (reference §6)."""

from __future__ import annotations

import copy
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatdebug.exporter import aggregate_run_summary, truncate_label
from chatdebug.exporter._summary import first_user_text, seed_summary
from chatdebug.store import EncodedJSON, Step

RUN_ID = uuid.UUID("11111111-2222-3333-4444-555555555555")
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def make_step(number: int, **overrides: Any) -> Step:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "run_id": RUN_ID,
        "chat_id": "chat-1",
        "step_number": number,
        "operation": "generate",
        "status": "completed",
        "normalized_request": {},
        "attempts": [],
        "metadata": {},
        "started_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return Step(**fields)


def attempt(
    status: str = "completed", method: str = "POST", path: str = "/v1/chat"
) -> dict[str, Any]:
    return {"number": 1, "status": status, "method": method, "path": path, "duration_ms": 3}


class TestTruncateLabel:
    @pytest.mark.parametrize(
        ("text", "max_len", "expected"),
        [
            pytest.param("", 200, "", id="Empty"),
            pytest.param("  \n\t  ", 200, "", id="WhitespaceOnly"),
            pytest.param("hello world", 200, "hello world", id="ShortText"),
            pytest.param("abcde", 5, "abcde", id="ExactLength"),
            pytest.param("abcdefghij", 5, "abcd…", id="LongTextTruncated"),
            pytest.param("hello", -1, "", id="NegativeMaxLen"),
            pytest.param("hello", 0, "", id="ZeroMaxLen"),
            pytest.param("hello", 1, "…", id="SingleRuneLimit"),
            pytest.param("  a \n\n b\t\tc  ", 200, "a b c", id="MultipleWhitespaceRuns"),
            pytest.param("héllo wörld ☃☃☃", 8, "héllo w…", id="UnicodeRunes"),
        ],
    )
    def test_truncate_label(self, text: str, max_len: int, expected: str) -> None:
        result = truncate_label(text, max_len)
        assert result == expected
        assert len(result) <= max(max_len, 0)

    def test_default_limit_is_200_characters(self) -> None:
        result = truncate_label("x" * 500)
        assert len(result) == 200
        assert result.endswith("…")


class TestSeedSummary:
    def test_non_empty_label(self) -> None:  # NonEmptyLabel
        assert seed_summary("hi there") == {"first_message": "hi there"}

    def test_empty_label(self) -> None:  # EmptyLabel
        assert seed_summary("") is None


class TestFirstUserText:
    def test_concatenates_text_parts_of_first_user_message(self) -> None:
        request = {
            "messages": [
                {"role": "system", "parts": [{"type": "text", "text": "be brief"}]},
                {
                    "role": "user",
                    "parts": [
                        {"type": "text", "text": "hello "},
                        {"type": "file", "media_type": "image/png"},
                        {"type": "text", "text": "world"},
                    ],
                },
                {"role": "user", "parts": [{"type": "text", "text": "second"}]},
            ]
        }
        assert first_user_text(request) == "hello world"

    @pytest.mark.parametrize(
        "request_",
        [{}, {"messages": "nope"}, {"messages": [{"role": "assistant", "parts": []}]}, None],
    )
    def test_no_user_text(self, request_: Any) -> None:
        assert first_user_text(request_) == ""


class TestAggregateRunSummary:
    """Subtests of TestService_AggregateRunSummary."""

    def test_nil_run_id(self) -> None:  # NilRunID
        base = {"first_message": "x", "step_count": 9}
        assert aggregate_run_summary(uuid.UUID(int=0), [make_step(1)], base) == base
        assert aggregate_run_summary(None, [make_step(1)], base) == base

    def test_zero_steps(self) -> None:  # ZeroSteps
        assert aggregate_run_summary(RUN_ID, [], None) == {
            "step_count": 0,
            "total_input_tokens": 0,
            "total_output_tokens": 0,
        }

    def test_nil_base_summary(self) -> None:  # NilBaseSummary
        step = make_step(1, usage={"input_tokens": 3, "output_tokens": 4})
        assert aggregate_run_summary(RUN_ID, [step], None) == {
            "step_count": 1,
            "total_input_tokens": 3,
            "total_output_tokens": 4,
        }

    def test_preserves_first_message(self) -> None:  # PreservesFirstMessage
        base = {"first_message": "hello", "mcp_connect": [{"server": "a"}]}
        snapshot = copy.deepcopy(base)
        summary = aggregate_run_summary(RUN_ID, [make_step(1)], base)
        assert summary["first_message"] == "hello"
        assert summary["mcp_connect"] == [{"server": "a"}]
        assert base == snapshot  # the caller's mapping is never modified

    def test_clears_stale_derived_fields(self) -> None:  # ClearsStaleDerivedFields
        base = {
            "first_message": "keep",
            "step_count": 42,
            "total_input_tokens": 1000,
            "total_output_tokens": 1000,
            "total_reasoning_tokens": 7,
            "total_cache_creation_tokens": 7,
            "total_cache_read_tokens": 7,
            "endpoint_label": "GET /stale",
            "has_error": True,
            "duration_ms": 99999,
            "steps_without_usage": 3,
        }
        summary = aggregate_run_summary(RUN_ID, [make_step(1)], base)
        assert summary == {
            "first_message": "keep",
            "step_count": 1,
            "total_input_tokens": 0,
            "total_output_tokens": 0,
        }
        assert base["step_count"] == 42

    def test_recomputes_has_error_and_completed_endpoint_label(self) -> None:
        # RecomputesHasErrorAndCompletedEndpointLabel
        steps = [
            make_step(
                1,
                status="error",
                attempts=[attempt("failed", path="/v1/failed"), attempt(path="/v1/messages")],
            ),
            make_step(2, attempts=[attempt(path="/v1/later")]),
        ]
        summary = aggregate_run_summary(RUN_ID, steps, {"has_error": False})
        assert summary["has_error"] is True
        assert summary["endpoint_label"] == "POST /v1/messages"

    def test_endpoint_label_path_only_when_method_empty(self) -> None:
        # EndpointLabelPathOnlyWhenMethodEmpty
        steps = [make_step(1, attempts=[attempt(method="", path="/v1/responses")])]
        assert aggregate_run_summary(RUN_ID, steps, None)["endpoint_label"] == "/v1/responses"

    def test_interrupted_step_with_error_excluded_from_has_error(self) -> None:
        # InterruptedStepWithErrorExcludedFromHasError
        steps = [
            make_step(1, status="interrupted", error={"message": "context canceled"}),
            make_step(2, status="completed", error=None),
        ]
        assert "has_error" not in aggregate_run_summary(RUN_ID, steps, None)

    def test_completed_step_with_error_payload_counts(self) -> None:
        steps = [make_step(1, status="completed", error={"message": "boom"})]
        assert aggregate_run_summary(RUN_ID, steps, None)["has_error"] is True

    def test_multiple_steps_sum_tokens(self) -> None:  # MultipleStepsSumTokens
        steps = [
            make_step(1, usage={"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 2}),
            make_step(2, usage={"input_tokens": 7, "output_tokens": 1, "cache_creation_tokens": 4}),
            make_step(3, usage={"input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 3}),
        ]
        summary = aggregate_run_summary(RUN_ID, steps, None)
        assert summary["step_count"] == 3
        assert summary["total_input_tokens"] == 18
        assert summary["total_output_tokens"] == 7
        assert summary["total_cache_read_tokens"] == 5
        assert summary["total_cache_creation_tokens"] == 4

    def test_step_with_nil_usage_contributes_zero_tokens(self) -> None:
        # StepWithNilUsageContributesZeroTokens
        steps = [make_step(1, usage=None), make_step(2, usage={"input_tokens": 2})]
        summary = aggregate_run_summary(RUN_ID, steps, None)
        assert summary["step_count"] == 2
        assert summary["total_input_tokens"] == 2
        assert summary["total_output_tokens"] == 0

    def test_zero_cache_totals_omit_cache_fields(self) -> None:  # ZeroCacheTotalsOmitCacheFields
        steps = [make_step(1, usage={"input_tokens": 1, "cache_read_tokens": 0})]
        summary = aggregate_run_summary(RUN_ID, steps, None)
        assert "total_cache_read_tokens" not in summary
        assert "total_cache_creation_tokens" not in summary

    def test_reasoning_tokens_summed_across_steps(self) -> None:
        # ReasoningTokensSummedAcrossSteps
        steps = [
            make_step(1, usage={"reasoning_tokens": 11}),
            make_step(2, usage={"reasoning_tokens": 31}),
        ]
        assert aggregate_run_summary(RUN_ID, steps, None)["total_reasoning_tokens"] == 42

    def test_zero_reasoning_tokens_omits_field(self) -> None:  # ZeroReasoningTokensOmitsField
        steps = [make_step(1, usage={"input_tokens": 1, "reasoning_tokens": 0})]
        assert "total_reasoning_tokens" not in aggregate_run_summary(RUN_ID, steps, None)

    @pytest.mark.parametrize(
        "usage",
        [
            pytest.param(
                {"error": "malformed debug payload", "parse_error": "x", "raw": "{"},
                id="undecodable",
            ),
            pytest.param({"input_tokens": "lots", "output_tokens": 3}, id="mistyped"),
            pytest.param(["not", "an", "object"], id="not-an-object"),
        ],
    )
    def test_malformed_usage_json_skipped(
        self, usage: Any, caplog: pytest.LogCaptureFixture
    ) -> None:  # MalformedUsageJSONSkipped
        steps = [make_step(1, usage=usage), make_step(2, usage={"input_tokens": 5})]
        with caplog.at_level(logging.WARNING, logger="chatdebug.exporter"):
            summary = aggregate_run_summary(RUN_ID, steps, None)
        assert summary["step_count"] == 2
        assert summary["total_input_tokens"] == 5
        assert summary["total_output_tokens"] == 0
        assert "malformed usage" in caplog.text

    def test_malformed_attempts_skipped(self) -> None:
        steps = [
            make_step(1, attempts=[{"error": "malformed debug payload", "raw": "["}]),
            make_step(2, attempts=[{"status": "completed", "path": 7}]),
            make_step(3, attempts=["junk", attempt(path="/v1/ok")]),
        ]
        summary = aggregate_run_summary(RUN_ID, steps, None)
        assert summary["step_count"] == 3
        assert summary["endpoint_label"] == "POST /v1/ok"

    def test_no_completed_attempt_leaves_endpoint_label_absent(self) -> None:
        steps = [make_step(1, attempts=[attempt("failed"), attempt(path="")])]
        assert "endpoint_label" not in aggregate_run_summary(RUN_ID, steps, None)

    def test_duration_ms_from_run_times(self) -> None:
        summary = aggregate_run_summary(
            RUN_ID, [], {}, started_at=T0, finished_at=T0 + timedelta(seconds=2, microseconds=5500)
        )
        assert summary["duration_ms"] == 2005
        assert "duration_ms" not in aggregate_run_summary(RUN_ID, [], {}, started_at=T0)

    def test_steps_without_usage_are_counted_not_summed_as_zero(self) -> None:
        """Usage the provider did not send is unknown: the totals cover what was
        reported, and the steps whose usage is unavailable are counted beside them."""
        unreported = {"usage_unavailable": "stream without include_usage"}
        steps = [
            make_step(1, usage={"input_tokens": 7, "output_tokens": 3}),
            make_step(2, usage=None, metadata=unreported),
            make_step(3, usage=None, metadata={"usage_unavailable": "stream closed before usage"}),
            # No usage and no reason (an HTTP error, a call with no answer): not counted.
            make_step(4, usage=None, status="error"),
        ]
        summary = aggregate_run_summary(RUN_ID, steps, None)
        assert summary["step_count"] == 4
        assert (summary["total_input_tokens"], summary["total_output_tokens"]) == (7, 3)
        assert summary["steps_without_usage"] == 2

    def test_every_step_reported_usage_leaves_the_count_out(self) -> None:
        steps = [make_step(1, usage={"input_tokens": 1}, metadata={"stream_summary": {}})]
        assert "steps_without_usage" not in aggregate_run_summary(RUN_ID, steps, None)

    def test_steps_without_usage_from_encoded_metadata(self) -> None:
        """Steps written in the same batch as their run's end still hold encoded
        payloads."""
        metadata = EncodedJSON('{"usage_unavailable": "provider sent no usage"}')
        steps = [make_step(1, usage=None, metadata=metadata)]
        assert aggregate_run_summary(RUN_ID, steps, None)["steps_without_usage"] == 1
