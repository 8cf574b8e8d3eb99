"""Final-answer extraction and normalisation, shared by the answer-checking verifiers.

Two levels:

- :func:`extract_final_answer` finds the answer a completion commits to, in this order of
  precedence: the last GSM8K marker ``#### x``, the last ``\\boxed{...}`` (or ``\\fbox``), the
  last ``<answer>...</answer>`` tag, an "answer is x" phrase, and finally the last number in
  the text.
- :func:`normalize_answer` maps equal answers to one string, so that answers can be compared
  and voted on: numbers become a canonical exact form (``"1,000"`` and ``"1000.0"`` -> ``"1000"``;
  ``"0.50"``, ``"1/2"`` and ``"\\frac{1}{2}"`` -> ``"0.5"``; ``"1/3"`` -> ``"1/3"``), other text
  loses surrounding ``$``, ``\\text{}`` wrappers, spaces and a trailing full stop, and is
  lower-cased.

Everything here is pure string work (regular expressions and :class:`fractions.Fraction`):
microseconds a call, safe in any thread or process.
"""

from __future__ import annotations

import re
from fractions import Fraction

_HASHES = re.compile(r"####\s*([^\n]*)")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"(?:(?:final answer|the answer)\s*(?:is|:|=)|(?:^|\n)[ \t*]*answer[ \t*]*:)\s*:?\s*([^\n]+)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_FRAC = re.compile(r"^\\[dt]?frac\{\s*(-?[\d.]+)\s*\}\{\s*(-?[\d.]+)\s*\}$")
_FRAC_SHORT = re.compile(r"^\\[dt]?frac(\d)(\d)$")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")
_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?$")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; else None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    between = text[start:i]
    if between not in ("\\boxed", "\\fbox", "\\boxed ", "\\fbox "):
        # "\boxed 5" (no braces): take the next token
        m = re.match(r"\\(?:boxed|fbox)\s+(\S+)", text[start:])
        return m.group(1) if m else None
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None  # unbalanced: the completion was cut off inside the box


def _last_hashes(text: str) -> str | None:
    """The last ``_HASHES.findall(text)`` item (None when there is none), without scanning the
    whole text: a match ends at the end of a line, so no match starting before the line of the
    last ``####`` reaches into it unless only whitespace separates that line from a ``#``
    (then the whole text is scanned, as before), and the line's first ``####`` starts one."""
    i = text.rfind("####")
    if i < 0:
        return None
    start = text.rfind("\n", 0, i) + 1
    if start and text[:start].rstrip().endswith("#"):
        start = 0
    # the line's first #### starts a match (nothing before the line reaches into it)
    found = _HASHES.findall(text, text.find("####", start))
    return found[-1] if found else None


def extract_final_answer(text: str | None) -> str | None:
    """The final answer a completion gives (raw, not normalised), or None when it gives none."""
    if not text:
        return None
    last = _last_hashes(text)
    if last is not None and last.strip():
        return last.strip()
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    # every alternative of the two patterns below spells "answer"; re's IGNORECASE matches no
    # character that casefold() does not map onto those letters, so without it neither matches
    if "answer" in text.casefold():
        tags = _ANSWER_TAG.findall(text)
        if tags and tags[-1].strip():
            return tags[-1].strip()
        phrase = _ANSWER_IS.findall(text)
        if phrase:
            cand = phrase[-1].strip()
            nums = _NUMBER.findall(cand)
            # "The answer is 42 apples." -> 42; "the answer is x^2+1" -> the phrase itself
            return nums[0] if nums else cand.rstrip(". ")
    return _last_number(text)


_NUMBER_CHARS = frozenset("0123456789-,./")


def _last_number(text: str) -> str | None:
    """The last ``_NUMBER.findall(text)`` item (None when there is none), scanning only from
    the run of number characters holding the last digit: a match consists of those characters
    only, so none reaches across a character outside them."""
    p = max(text.rfind(d) for d in "0123456789")
    if p < 0:
        return None
    start = p
    while start > 0 and text[start - 1] in _NUMBER_CHARS:
        start -= 1
    found = _NUMBER.findall(text, start)
    return found[-1] if found else None


def canonical_number(value: Fraction) -> str:
    """An exact canonical string for a rational: integers bare, terminating decimals in
    shortest decimal form, other rationals as ``p/q`` in lowest terms."""
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d != 1:
        return f"{value.numerator}/{value.denominator}"
    # terminating decimal: scale to a power of ten and print exactly
    digits = 0
    scaled = value
    while scaled.denominator != 1:
        scaled *= 10
        digits += 1
    sign = "-" if scaled < 0 else ""
    s = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    return f"{sign}{s[:-digits]}.{s[-digits:]}"


def parse_number(s: str) -> Fraction | None:
    """``s`` as an exact rational when it is a plain number, a fraction ``a/b`` or
    ``\\frac{a}{b}`` (thousands separators and a leading ``+`` allowed); else None."""
    s = s.strip()
    m = _FRAC.match(s) or _FRAC_SHORT.match(s)
    if m:
        num, den = parse_number(m.group(1)), parse_number(m.group(2))
        if num is None or den is None or den == 0:
            return None
        return num / den
    if s.count("/") == 1:
        a, b = s.split("/")
        num, den = parse_number(a), parse_number(b)
        if num is None or den is None or den == 0:
            return None
        return num / den
    if not s or not _PLAIN_NUMBER.match(s) or not any(ch.isdigit() for ch in s):
        return None
    try:
        return Fraction(s.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def normalize_answer(answer: str | None) -> str | None:
    """A canonical form of an extracted answer, equal for equal answers; None stays None."""
    if answer is None:
        return None
    s = answer.strip()
    for _ in range(3):  # peel nested wrappers: $\boxed{\text{5}}$
        before = s
        s = s.strip().strip("$").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        boxed = last_boxed(s) if s.startswith(("\\boxed", "\\fbox")) else None
        if boxed is not None:
            s = boxed
        s = _TEXT_WRAP.sub(r"\1", s)
        s = s.rstrip(".").strip()
        if s == before:
            break
    s = s.replace("\\!", "").replace("\\,", "").replace("\\ ", "")
    s = s.replace("\\%", "%").replace("\\$", "")
    # units and currency around a lone number: "$18", "18 dollars", "50%"
    num = parse_number(s.rstrip("%").lstrip("$").strip())
    if num is None:
        m = re.fullmatch(r"\$?\s*(-?[\d,]*\.?\d+)\s*[a-zA-Z ]*", s)
        if m:
            num = parse_number(m.group(1))
    if num is not None:
        return canonical_number(num)
    s = re.sub(r"\s+", "", s).lower()
    return s or None


def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether two raw answers normalise to the same non-empty string."""
    na, nb = normalize_answer(a), normalize_answer(b)
    return na is not None and na == nb
