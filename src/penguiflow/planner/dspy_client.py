"""`DSPyLLMClient`: a `JSONLLMClient` on top of DSPy (extra `planner`)."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..errors import MissingExtraError
from .clients.retry import LLMEmptyResponseError, LLMError, LLMRequestError
from .models import PlannerAction

__all__ = ["DSPyLLMClient"]

logger = logging.getLogger("penguiflow.planner.dspy_client")

_ROLE_PREFIX = {"system": "System: ", "user": "User: ", "assistant": "Assistant: "}


class DSPyLLMClient:
    """Asks a DSPy `Predict` module for a `PlannerAction` (or text) per call.

    DSPy is imported at the first `complete()`; all errors are retried up to
    `max_retries` attempts with exponential backoff.
    """

    expects_json_schema = True

    def __init__(
        self,
        llm: str | dict[str, Any],
        *,
        temperature: float = 0.0,
        max_retries: int = 3,
        timeout_s: float = 60.0,
    ) -> None:
        self._llm = llm
        self._temperature = temperature
        self._max_retries = max_retries
        self._timeout_s = timeout_s
        self._dspy_module: Any = None
        self._lm: Any = None

    def _ensure_dspy_initialized(self) -> Any:
        try:
            import dspy
        except ImportError as exc:
            raise MissingExtraError(
                "DSPy is not installed. Install penguiflow[planner] or provide a custom "
                "llm_client.",
                extra="planner",
            ) from exc
        if self._lm is None:
            model = self._llm if isinstance(self._llm, str) else self._llm["model"]
            self._lm = dspy.LM(model=model, temperature=self._temperature, max_tokens=4096)
            logger.info(
                "dspy_lm_initialized", extra={"model": model, "temperature": self._temperature}
            )
        return dspy

    def _create_signature(self, response_format: Mapping[str, Any] | None) -> Any:
        dspy = self._ensure_dspy_initialized()
        if not response_format or "json_schema" not in response_format:

            class TextOutputSignature(dspy.Signature):  # type: ignore[misc,name-defined]
                messages: str = dspy.InputField()
                response: str = dspy.OutputField()

            return TextOutputSignature

        class PlannerActionSignature(dspy.Signature):  # type: ignore[misc,name-defined]
            messages: str = dspy.InputField(
                desc="The conversation and query that need the next planner action."
            )
            response: PlannerAction = dspy.OutputField(
                desc="The structured action: thought, next_node, args, plan, join."
            )

        return PlannerActionSignature

    @staticmethod
    def _messages_to_text(messages: Sequence[Mapping[str, str]]) -> str:
        parts = []
        for message in messages:
            role = message.get("role", "user")
            content = message.get("content", "")
            parts.append(_ROLE_PREFIX.get(role, "") + content)
        return "\n\n".join(parts)

    @staticmethod
    def _normalise_json(text: str) -> str | None:
        candidate = text.strip()
        if not candidate:
            return None
        if candidate.startswith("```"):
            pieces = [p.strip() for p in candidate.split("```") if p.strip()]
            if pieces:
                first = pieces[0]
                if first[:4].lower() == "json":
                    first = first[4:].strip()
                candidate = first
            else:
                candidate = candidate.strip("` \n")
        start, end = candidate.find("{"), candidate.rfind("}")
        if start >= 0 and end > start:
            candidate = candidate[start : end + 1]
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(candidate)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return None
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return None

    async def complete(
        self,
        *,
        messages: Sequence[Mapping[str, str]],
        response_format: Mapping[str, Any] | None = None,
    ) -> str:
        """Run the DSPy predictor and return JSON text."""
        dspy = self._ensure_dspy_initialized()
        predictor = dspy.Predict(self._create_signature(response_format))
        text = self._messages_to_text(messages)
        loop = asyncio.get_running_loop()
        last_error: Exception | None = None
        for attempt in range(self._max_retries):
            try:
                async with asyncio.timeout(self._timeout_s):
                    result = await loop.run_in_executor(
                        None, lambda: _predict(dspy, self._lm, predictor, text)
                    )
                return self._extract(result)
            except TimeoutError as exc:
                last_error = exc
                logger.warning(
                    "dspy_timeout", extra={"attempt": attempt, "timeout_s": self._timeout_s}
                )
            except Exception as exc:
                last_error = exc
                logger.warning(
                    "dspy_error",
                    extra={"attempt": attempt, "error": str(exc), "error_type": type(exc).__name__},
                )
            if attempt < self._max_retries - 1:
                await asyncio.sleep(2**attempt)
        suffix = f": {last_error}" if last_error is not None else ""
        raise LLMError(
            f"DSPy LLM call failed after {self._max_retries} attempts{suffix}",
            attempts=self._max_retries,
        )

    def _extract(self, result: Any) -> str:
        if not hasattr(result, "response"):
            raise LLMEmptyResponseError("DSPy returned no response field")
        response = result.response
        logger.debug("dspy_response_extracted")
        if isinstance(response, BaseModel):
            logger.debug("dspy_pydantic_success")
            return response.model_dump_json()
        if isinstance(response, dict):
            return json.dumps(response)
        logger.debug("dspy_string_response")
        normalised = self._normalise_json(str(response))
        if normalised is None:
            logger.warning("dspy_invalid_json")
            raise LLMRequestError("DSPy returned output that could not be coerced to JSON")
        logger.debug("dspy_json_normalised_success")
        return normalised


def _predict(dspy: Any, lm: Any, predictor: Any, text: str) -> Any:
    with dspy.context(lm=lm):
        return predictor(messages=text)
