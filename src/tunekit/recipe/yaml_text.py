"""Bounded, safe YAML for recipes: the text is checked (a regular UTF-8 file of at most
MAX_RECIPE_BYTES, no NUL bytes), then read with the safe loader, counting values with every alias
expanded before anything is built (an alias bomb is refused, a recursive alias outright, nesting
deeper than MAX_DEPTH too). A key written twice in one mapping is an error; an unquoted
yes/no/on/off keeps its text (YamlWord) so the loader can read it per field; dates stay text;
!!binary, !!set, !!omap and !!pairs are refused.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from tunekit.errors import RecipeError

MAX_RECIPE_BYTES = 1 << 20
MAX_NODES = 20_000
MAX_DEPTH = 64
TEXT_HINT = "give a recipe YAML file (UTF-8 text), e.g. one of the shipped recipes in recipes/"


class YamlWord(NamedTuple):
    """An unquoted yes/no/on/off: `value` is what YAML 1.1 reads, `text` what was written.
    _normalise resolves it against the schema before validation."""

    text: str
    value: bool


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that counts the nodes it composes (a huge document stops early) and keeps
    the text of yes/no/on/off; mapping keys are always read as written."""

    nodes = 0

    def compose_node(self, parent, index):
        if not self.check_event(yaml.AliasEvent):
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise RecipeError(f"{self.name}: more than {MAX_NODES} values: too large for a recipe", TEXT_HINT)
        return super().compose_node(parent, index)

    def construct_yaml_bool(self, node):
        value = super().construct_yaml_bool(node)
        return value if node.value.lower() in ("true", "false") else YamlWord(node.value, value)

    def construct_mapping(self, node, deep=False):
        seen: dict[str, Any] = {}
        for key_node, _ in node.value:  # a key written twice: YAML keeps the last, the user meant one
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} appears twice in one mapping (first at line "
                    f"{seen[key_node.value].line + 1}): the first would be lost", key_node.start_mark)
            seen[key_node.value] = key_node.start_mark
        mapping = super().construct_mapping(node, deep=deep)
        if any(isinstance(key, YamlWord) for key in mapping):
            mapping = {k.text if isinstance(k, YamlWord) else k: v for k, v in mapping.items()}
        return mapping


def _refuse_tag(loader, node):
    raise yaml.constructor.ConstructorError(None, None, f"the {node.tag.rpartition(':')[2]} tag (!!) has no place "
                                            "in a recipe", node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:bool", _Loader.construct_yaml_bool)
# No recipe key holds a date: 2024-01-01 is the text written (a run name, say), not a datetime.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
for _tag in ("binary", "set", "omap", "pairs"):  # bytes, sets and pairs have no JSON or recipe meaning
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def parse_yaml(text: str, name: str) -> tuple[Any, Any]:
    """(data, root node) of one YAML document, safe tags only, with the limits above.
    Raises RecipeError for an alias bomb, a recursive alias, deep nesting or invalid YAML."""
    loader = None
    try:
        loader = _Loader(text)  # reading starts here: a control character fails now
        loader.name = name
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node, name)
        return loader.construct_document(node), node
    except yaml.reader.ReaderError as exc:
        raise RecipeError(f"{name}: not a text/YAML file (control character #x{exc.character:02x} at "
                          f"character {exc.position})", TEXT_HINT) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise RecipeError(f"{where}: not valid YAML ({problem})",
                          "fix the YAML syntax (indentation, colons, quotes)") from None
    except RecursionError:
        raise RecipeError(f"{name}: nested too deeply for a recipe", TEXT_HINT) from None
    finally:
        if loader is not None:
            loader.dispose()


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_expansion(root, name: str) -> None:
    """Count the values the node graph stands for with every alias expanded (each shared node
    counted once per use, computed once), without expanding anything; refuse cycles."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, 0, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise RecipeError(f"{name}: YAML aliases expand to more than {MAX_NODES} values "
                                  "(an alias bomb?)", "write the values out, or use fewer aliases (*name)")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise RecipeError(f"{name}:{node.start_mark.line + 1}: a YAML alias refers to the value that contains "
                              "it (a recursive alias)", "remove the alias (*name) inside its own anchor (&name)")
        if depth > MAX_DEPTH:
            raise RecipeError(f"{name}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep",
                              TEXT_HINT)
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))


def read_text(path: Path) -> str:
    """The recipe's text: a regular file, at most MAX_RECIPE_BYTES, UTF-8 without NUL bytes."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        raise RecipeError(f"recipe file not found: {path}",
                          "check the path; the shipped recipes are in recipes/") from None
    if stat.S_ISDIR(mode):
        raise RecipeError(f"recipe file not found: {path} is a folder", "give the path of a recipe YAML file")
    if not stat.S_ISREG(mode):
        raise RecipeError(f"recipe {path} is not a regular file (a pipe, socket or device)", TEXT_HINT)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_RECIPE_BYTES + 1)
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}", "check the file's permissions") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"recipe {path} is over {MAX_RECIPE_BYTES // 1024} KiB: not a recipe", TEXT_HINT)
    if b"\0" in raw:
        raise RecipeError(f"recipe {path} is not a text/YAML file (it has NUL bytes: binary data)", TEXT_HINT)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe {path} is not a text/YAML file (byte 0x{raw[exc.start]:02x} at offset "
                          f"{exc.start} is not UTF-8)", "save the recipe as UTF-8 text") from None
