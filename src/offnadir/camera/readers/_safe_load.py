"""Parsing JSON and YAML model / GCP documents without surprises: malformed content, nesting deeper
than the interpreter can recurse, integers beyond Python's digit limit and YAML alias bombs all become
the caller's offnadir error class naming the file (never RecursionError, ValueError or MemoryError)."""

from __future__ import annotations

import json
import re

import numpy as np

from offnadir.camera.rpc import short_repr
from offnadir.errors import InvalidModelError, OffnadirError

#: nesting depth accepted in JSON model/GCP files. Real ones nest 3-5 levels (document -> rpc ->
#: coefficient list; GeoJSON features -> geometry -> coordinates); CPython's decoder recurses per
#: level and hits the interpreter's recursion limit near 1,000, so anything deeper is refused first.
MAX_NESTING = 100
#: values (YAML nodes) a model document may hold once its aliases are expanded. An orthority RPC
#: file holds ~100 per image, so a million leaves room for thousands of images, while an alias bomb
#: ("billion laughs": a few hundred bytes that expand to 9**9 items) is refused before anything
#: walks (or prints) the expanded structure.
MAX_YAML_NODES = 1_000_000


_JSON_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def json_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting of JSON text, brackets inside strings ignored (a vectorised scan
    run before CPython's recursive decoder)."""
    b = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8", "replace"), dtype=np.uint8)
    step = (np.isin(b, (ord("["), ord("{"))).astype(np.int32)
            - np.isin(b, (ord("]"), ord("}"))).astype(np.int32))
    return int(np.cumsum(step).max(initial=0))


def load_json(path, text: str, error=InvalidModelError):
    """Parsed JSON ``text`` of ``path``; malformed, too deeply nested or out-of-range content is an
    ``error`` naming the file (never a RecursionError/ValueError)."""
    if text.count("[") + text.count("{") > MAX_NESTING and json_depth(text) > MAX_NESTING:
        raise error(f"{path}: JSON nests lists/objects more than {MAX_NESTING} levels deep; a camera "
                    "model or GCP file nests a few levels. The file is corrupt or not a model file.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}). "
                    "Fix the file or export it again.") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer above Python's digit limit
        raise error(f"{path}: JSON content cannot be read ({short_repr(str(e), 120)}).") from None


def load_yaml(path, text: str, error=InvalidModelError):
    """Parsed YAML ``text`` (safe loader, at most :data:`MAX_YAML_NODES` values once aliases are
    expanded); anything malformed, too deeply nested (PyYAML recursing past the interpreter's limit)
    or out of range is an ``error`` naming the file."""
    import yaml

    def expanded(node, memo) -> int:
        """Node count with aliases expanded (shared nodes counted once per use, computed once)."""
        k = id(node)
        if k not in memo:
            memo[k] = 0  # a recursive structure (an alias inside its own anchor) counts as small here
            kids = node.value if isinstance(node, yaml.SequenceNode) else (
                [x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode) else [])
            memo[k] = 1 + sum(expanded(c, memo) for c in kids)
        return memo[k]

    class _Loader(yaml.SafeLoader):
        def compose_document(self):
            node = super().compose_document()
            if node is not None and expanded(node, {}) > MAX_YAML_NODES:
                raise error(f"{path}: YAML aliases (*name) expand to more than {MAX_YAML_NODES:,} values; "
                            "a camera model file holds a few hundred. Write the values out in full.")
            return node

    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except OffnadirError:
        raise
    except yaml.YAMLError as e:
        raise error(f"{path}: is not valid YAML ({short_repr(str(e), 300)}).") from None
    except (ValueError, OverflowError, RecursionError, TypeError) as e:  # constructor limits (huge ints)
        raise error(f"{path}: YAML content cannot be read ({short_repr(str(e), 120)}).") from None
