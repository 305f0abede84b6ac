"""An MCP `CallToolResult` as a planner observation.

A tool that declares an output schema answers with its structured content, which
is the observation. Any other tool answers with content blocks: the text blocks,
joined, are the observation's `text`; other blocks (images, audio, resources) are
described, not inlined, since their bytes mean nothing to the LLM. A result the
server flagged `isError` raises `MCPToolError` with its text, so the LLM sees a
failed step, as for a node tool that raises.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .errors import MCPToolError

__all__ = ["MCPContent"]


class MCPContent(BaseModel):
    """What an MCP tool without an output schema returned.

    `text` joins its text blocks (newline-separated); `structured` is its structured
    content, if any; `blocks` describes each non-text block (`type`, and `mimeType`,
    `uri` or `name` when the block has them).
    """

    text: str = ""
    structured: Any = None
    blocks: list[dict[str, Any]] = Field(default_factory=list)


def _describe(block: Any) -> dict[str, Any]:
    described: dict[str, Any] = {"type": str(getattr(block, "type", "unknown"))}
    for attribute, key in (("mime_type", "mimeType"), ("uri", "uri"), ("name", "name")):
        value = getattr(block, attribute, None)
        if value is not None:
            described[key] = str(value)
    resource = getattr(block, "resource", None)
    if resource is not None:
        described["uri"] = str(getattr(resource, "uri", ""))
        text = getattr(resource, "text", None)
        if isinstance(text, str):
            described["text"] = text
    return described


def result_text(result: Any) -> str:
    """The text blocks of a result, joined by newlines."""
    return "\n".join(
        block.text for block in result.content if getattr(block, "type", None) == "text"
    )


def observation(result: Any, *, tool: str, server: str, structured: bool) -> Any:
    """The observation of `result` (a `CallToolResult`), or `MCPToolError` if it is one.

    `structured`: the tool declared an output schema, so its structured content is
    the observation.
    """
    if result.is_error:
        text = result_text(result) or "the server gave no error text"
        raise MCPToolError(
            f"MCP server {server!r} reported an error from tool {tool!r}: {text}", server=server
        )
    if structured:
        return result.structured_content
    texts: list[str] = []
    blocks: list[dict[str, Any]] = []
    for block in result.content:
        if getattr(block, "type", None) == "text":
            texts.append(block.text)
        else:
            blocks.append(_describe(block))
    return MCPContent(text="\n".join(texts), structured=result.structured_content, blocks=blocks)
