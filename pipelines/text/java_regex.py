"""Java regular expressions (what Spark NLP's users write) carried over to the ``regex`` module.

Spark NLP compiles user patterns (Tokenizer ``targetPattern``, ``infixPatterns``, ``splitPattern``,
``exceptions``; SentenceDetector ``customBounds``) with ``java.util.regex``. The ``regex`` module reads
most of that syntax as it is (variable-length lookbehind, possessive quantifiers, atomic groups,
``\\p{L}``, scoped inline flags in its version-1 mode); what it reads differently is rewritten here so
a pattern means what it means on the JVM:

- ``\\s \\S \\w \\W \\d \\D`` are ASCII-only in Java (no ``UNICODE_CHARACTER_CLASS``): a no-break space
  is not ``\\s`` there, ``é`` is not ``\\w``. ``\\b`` stays Unicode-aware, as in Java 17.
- ``.`` does not match Java's line terminators (``\\n \\r \\u0085 \\u2028 \\u2029``) unless ``(?s)``.
- ``\\z`` is spelled ``\\Z`` here; Java's ``\\Z`` (before a final line terminator) becomes a lookahead.
- POSIX classes (``\\p{Alpha}``, ``\\p{Punct}``, ...) are ASCII in Java; ``\\p{IsLatin}``, ``\\p{InGreek}``,
  ``\\p{Lu}`` and ``\\p{L}`` keep their Unicode meaning; ``\\h``, ``\\v``, ``\\R`` are expanded.
- ``\\Q...\\E`` quoting is expanded.

What cannot be carried over (``\\p{javaLowerCase}`` and the other ``java*`` classes, ``\\G``, octal
``\\0nn``, class intersections ``&&``) raises :class:`JavaRegexError` naming the construct, rather than
silently matching something else.
"""

from __future__ import annotations

import functools

import regex

JAVA_WHITESPACE = " \\t\\n\\x0B\\f\\r"
_ASCII_CLASSES = {
    "s": JAVA_WHITESPACE,
    "w": "a-zA-Z0-9_",
    "d": "0-9",
    "h": " \\t\\xA0\\u1680\\u180E\\u2000-\\u200A\\u202F\\u205F\\u3000",
    "v": "\\n\\x0B\\f\\r\\x85\\u2028\\u2029",
}
_LINE_TERMINATORS = "\\n\\r\\u0085\\u2028\\u2029"
_POSIX = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7F", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": "!-/:-@\\[-`{-~", "Graph": "!-~", "Print": " -~", "Blank": " \\t",
    "Cntrl": "\\x00-\\x1F\\x7F", "XDigit": "0-9a-fA-F", "Space": JAVA_WHITESPACE,
}


class JavaRegexError(ValueError):
    """A Java pattern construct the native engine cannot reproduce faithfully."""


def _class_body(letter: str) -> str:
    """The inside of a character class for a Java escape like ``\\s`` or ``\\S`` (negated: nested set)."""
    body = _ASCII_CLASSES[letter.lower()]
    return body if letter.islower() else f"[^{body}]"


def _property(name: str, negated: bool, pattern: str) -> str:
    if name.startswith("java"):
        raise JavaRegexError(f"\\p{{{name}}} in {pattern!r}: Java's java.lang.Character classes have no "
                             "equivalent here; use a Unicode property such as \\p{Ll} or \\p{L}")
    if name in _POSIX:
        return f"[^{_POSIX[name]}]" if negated else f"[{_POSIX[name]}]"
    if name.startswith("In"):
        name = f"Block={name[2:]}"
    elif name.startswith("Is"):
        name = name[2:]
    return f"\\{'P' if negated else 'p'}{{{name}}}"


def translate(pattern: str) -> str:
    """``pattern`` (Java syntax) rewritten for ``regex`` in VERSION1 mode."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = 0
    dotall = "(?s" in pattern  # a scoped (?s) is rare; honour it for the whole pattern
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append("".join("\\" + c if not c.isalnum() else c for c in literal))
                i = n if end < 0 else end + 2
                continue
            if nxt in "sSwWdDhHvV":
                body = _class_body(nxt)
                if in_class:
                    out.append(body)
                else:
                    out.append(f"[{body}]" if nxt.islower() else body)
                i += 2
                continue
            if nxt in "pP" and i + 2 < n:
                if pattern[i + 2] == "{":
                    close = pattern.find("}", i + 3)
                    if close < 0:
                        raise JavaRegexError(f"unclosed \\{nxt}{{ in {pattern!r}")
                    name, i = pattern[i + 3 : close], close + 1
                else:
                    name, i = pattern[i + 2], i + 3
                out.append(_property(name, nxt == "P", pattern))
                continue
            if nxt == "z":
                out.append("\\Z")
            elif nxt == "Z":
                out.append(f"(?=[{_LINE_TERMINATORS}]?\\Z)")
            elif nxt == "R":
                out.append(f"(?:\\r\\n|[{_ASCII_CLASSES['v']}])")
            elif nxt == "G":
                raise JavaRegexError(f"\\G in {pattern!r} is not supported by the native engine")
            elif nxt == "0":
                raise JavaRegexError(f"octal escape \\0 in {pattern!r}: write the character as \\xhh instead")
            elif nxt == "e":
                out.append("\\x1B")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class and ch == "&" and pattern.startswith("&&", i):
            raise JavaRegexError(f"class intersection && in {pattern!r} is not supported by the native engine")
        if ch == "[":
            # a '[' inside a class is a nested class in Java too (a union)
            out.append(ch)
            in_class += 1
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ']' is a literal in Java
                out.append("\\]")
                i += 1
            continue
        if ch == "]" and in_class:
            in_class -= 1
        elif ch == "." and not in_class and not dotall:
            out.append(f"[^{_LINE_TERMINATORS}]")
            i += 1
            continue
        elif in_class and ch in "|&~":
            ch = "\\" + ch  # set operators in regex's VERSION1 mode, plain characters in Java
        out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=512)
def compile_java(pattern: str, flags: int = 0) -> regex.Pattern:
    """Compile a Java pattern; a syntax error names the pattern."""
    try:
        return regex.compile(translate(pattern), flags | regex.VERSION1)
    except regex.error as e:
        raise JavaRegexError(f"invalid regular expression {pattern!r}: {e}") from None
