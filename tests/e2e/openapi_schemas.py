"""Response schemas from the yagna OpenAPI files in ../shared/yagna-api, as JSON Schema.

``$ref``s (local and ``common.yaml#/...``) are inlined and OpenAPI's ``nullable`` is turned
into a JSON Schema null type, so ``jsonschema`` can validate a devnet reply directly.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any, Optional

API_DIR = Path(os.environ.get("GOLEMSYNC_YAGNA_API_DIR")
               or Path(__file__).resolve().parents[3] / "shared" / "yagna-api")


@functools.cache
def _document(name: str) -> dict[str, Any]:
    import yaml

    with open(API_DIR / name, encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def _resolve(ref: str, current: str) -> tuple[Any, str]:
    file_part, _, pointer = ref.partition("#")
    name = file_part or current
    node: Any = _document(name)
    for part in pointer.strip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, name


def _inline(node: Any, current: str, depth: int = 0) -> Any:
    """A schema with refs inlined; ``properties`` maps are walked as maps, not schemas."""
    if depth > 40:
        return {}
    if isinstance(node, list):
        return [_inline(item, current, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target, name = _resolve(node["$ref"], current)
        return _inline(copy.deepcopy(target), name, depth + 1)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("discriminator", "example", "xml"):
            continue
        if key == "properties" and isinstance(value, dict):
            result[key] = {k: _inline(v, current, depth + 1) for k, v in value.items()}
        else:
            result[key] = _inline(value, current, depth + 1)
    if "properties" in result and "type" not in result:
        result["type"] = "object"  # lets oneOf tell a string from an object
    if result.pop("nullable", False):
        result = {"anyOf": [result, {"type": "null"}]}
    return result


def response_schema(api: str, path: str, method: str, status: int) -> Optional[dict[str, Any]]:
    """The JSON schema of one documented response, or None when it has no JSON body."""
    operation = _document(api)["paths"][path][method.lower()]
    responses = operation["responses"]
    response, name = responses.get(status, responses.get(str(status))), api
    if "$ref" in response:
        response, name = _resolve(response["$ref"], api)
    content = (response.get("content") or {}).get("application/json")
    if content is None:
        return None
    schema: dict[str, Any] = _inline(content["schema"], name)
    return schema
