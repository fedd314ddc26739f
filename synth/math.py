"""Final-answer extraction, answer equivalence and majority voting for math solutions.

Public API used by other modules: :func:`extract_answer` and :func:`answers_equivalent`.

Equivalence is decided in two tiers:

1. a fast, exact in-process path for plain numbers (integers, decimals, fractions, LaTeX
   ``\\frac``, thousands separators, currency signs, percent signs, trailing unit words), using
   :class:`fractions.Fraction` — no sympy, no timeouts needed;
2. everything else goes to math-verify (``parse`` + ``verify``, sympy based) with math-verify's
   own ``signal.alarm`` timeouts **disabled** (they raise outside the main thread, e.g. in Beam
   workers) and run instead in a persistent helper process of ours; a check that exceeds
   ``timeout_s`` gets the helper killed and restarted and counts as "not equivalent".
"""

from __future__ import annotations

import functools
import json
import logging
import re
import select
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- extraction

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"####\s*(.+)")
# "The answer is X", "final answer: X", "**Answer:** X"; the last occurrence counts
_ANSWER_IS = re.compile(  # covers "final answer", "the answer", "Answer"
    r"\banswer\s*(?:\*\*)?\s*(?:is|=|:)\s*:?\s*(?:\*\*)?\s*", re.IGNORECASE)
_LAST_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
# an answer that stops on an operator or an open bracket was cut off ("100 + 50 =")
_INCOMPLETE = re.compile(r"(?:[=+\-*/^(\[{,]|\\(?:frac|sqrt|cdot|times|div))\s*$")


def _balanced(text: str, start: int) -> str | None:
    """Content of the brace group opened just before ``start`` (``text[start-1] == '{'``)."""
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


_DELIMS = ((r"\(", r"\)"), (r"\[", r"\]"), ("$$", "$$"), ("$", "$"))


def strip_math_delimiters(ans: str) -> str:
    """``\\(24\\)``, ``\\[24\\]``, ``$$24$$``, ``$24$`` -> ``24`` (repeatedly, outermost first).

    Applied before any other rule, so a delimited answer is read exactly like a bare one. A
    ``$`` that is a currency sign (``$18``) is kept: only a matched pair around the whole
    answer is a delimiter.
    """
    s = ans.strip()
    changed = True
    while changed:
        changed = False
        s = s.strip().strip("*").strip()  # markdown bold around the delimiters
        for a, b in _DELIMS:
            if len(s) >= len(a) + len(b) and s.startswith(a) and s.endswith(b):
                inner = s[len(a):len(s) - len(b)]
                if a == "$" and "$" in inner:
                    continue  # "$5 and $6": two currency amounts, not a delimited answer
                s, changed = inner.strip(), True
                break
    return s


# template placeholders and non-answers a model copies from the format instructions
_PLACEHOLDER_WORDS = {
    "answer", "the answer", "your answer", "final answer", "the final answer", "number",
    "the number", "a number", "your final answer", "result", "the result", "value", "...",
    "…", "?", "??", "blank", "_", "__", "___", "n/a",
}
_PLACEHOLDER_LETTERS = {"N", "X"}


def is_placeholder(ans: str | None, instructions: str | None = None) -> bool:
    """True for a template placeholder or non-answer, never a real answer.

    ``N`` / ``X`` (capital), words such as ``answer`` / ``your answer`` / ``number``,
    ``<answer>`` / ``[answer]`` / ``{N}``, and any single letter that stands alone in the
    prompt's format ``instructions`` ("end with 'The answer is N.' where N is a number").
    """
    if ans is None:
        return False
    s = strip_math_delimiters(ans)
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", s).strip()
    s = s.strip("<>[]{}()'\"`*.,;:!").strip()
    if not s:
        return True
    if s.lower() in _PLACEHOLDER_WORDS:
        return True
    # "N, which is the number of miles ...": the placeholder letter followed by prose
    m = re.match(r"^([A-Za-z])\s*(?:,|\b(?:which|where|is|being|represents)\b)", s)
    if m and not re.search(r"\d", s):
        s = m.group(1)
    if len(s) == 1 and s.isalpha():
        if s in _PLACEHOLDER_LETTERS:
            return True
        if instructions and re.search(r"(?<![\w\\])" + re.escape(s) + r"(?!\w)", instructions):
            return True
    return False


def _clean_tail(ans: str) -> str:
    ans = ans.strip()
    # Cut at the end of the first line / sentence: "The answer is 42. Next problem..."
    ans = ans.split("\n", 1)[0].strip()
    m = re.match(r"(.*?)(?:\.\s+[A-Z]|\.$|$)", ans)
    if m and m.group(1):
        ans = m.group(1)
    ans = ans.strip().rstrip(".").strip()
    if ans.startswith("$") and ans.endswith("$") and len(ans) > 1 and ans.count("$") == 2:
        ans = ans[1:-1].strip()
    ans = ans.strip("*").strip()  # markdown bold
    return strip_math_delimiters(ans)


def boxed_answers(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces allowed), in order."""
    out = []
    for m in _BOXED.finditer(text or ""):
        inner = _balanced(text, m.end())
        if inner is not None and inner.strip():
            out.append(inner.strip())
    return out


@functools.lru_cache(maxsize=65536)
def is_incomplete(ans: str) -> bool:
    """True for an answer cut off mid-expression (ends with an operator or open bracket)."""
    s = normalize_answer(ans)
    return not s or bool(_INCOMPLETE.search(s)) or s.count("{") != s.count("}")


def answer_markers(text: str | None) -> list[tuple[int, str, str]]:
    """Every stated final answer ``(position, answer, how)`` in text order.

    how is ``boxed`` (``\\boxed{...}`` / ``\\fbox{...}``, nested braces), ``hashes``
    (``#### X``) or ``answer_is`` ("The answer is X", "Answer: X", "final answer: X"). Math
    delimiters around an answer are removed; empty answers and "answer is not X" are left out.
    """
    if not text:
        return []
    out: list[tuple[int, str, str]] = []
    for m in _BOXED.finditer(text):
        inner = _balanced(text, m.end())
        if inner is not None and inner.strip():
            out.append((m.start(), strip_math_delimiters(inner.strip()), "boxed"))
    for m in _HASHES.finditer(text):
        out.append((m.start(), _clean_tail(m.group(1)), "hashes"))
    if "nswer" in text or "NSWER" in text:  # cheap pre-check: the regex scan is the cost
        for m in _ANSWER_IS.finditer(text):
            # "The answer is:\n24" -> the next line; "The answer is ...." -> "" (no answer,
            # a placeholder: the last-number fallback must not invent one)
            tail = _clean_tail(text[m.end():].lstrip())
            if not re.match(r"(?:not|never|wrong)\b", tail, re.IGNORECASE):
                out.append((m.start(), tail, "answer_is"))
    out = [x for x in out if x[1] or x[2] == "answer_is"]
    out.sort(key=lambda x: x[0])
    return out


# the last number of the final sentence that holds one: a fraction, a decimal, thousands
# separators, a sign or a currency sign; not a digit inside a word (H2O) or an exponent (x^2)
_FALLBACK_NUMBER = re.compile(
    r"(?<![A-Za-z_^\d.])-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+(?:\.\d+)?)?(?![\d/])")
_LATEX_FRAC_ANY = re.compile(r"-?\\[dt]?frac\s*\{\s*-?\d+\s*\}\s*\{\s*\d+\s*\}")


def last_number(text: str) -> str | None:
    """The last number of the final sentence that contains a number (``last_number`` fallback)."""
    body = re.sub(r"\\[()\[\]]", " ", text)  # \( 24 \) reads as 24
    sentences = [x for x in re.split(r"\n+|(?<=[.!?])\s+", body) if x.strip()]
    for sent in reversed(sentences):
        fr = list(_LATEX_FRAC_ANY.finditer(sent))
        nums = list(_FALLBACK_NUMBER.finditer(sent))
        if not fr and not nums:
            continue
        if fr and (not nums or fr[-1].end() >= nums[-1].end()):
            return fr[-1].group(0)
        num = nums[-1].group(0).rstrip(",").lstrip("$").replace("-$", "-")
        return num or None
    return None


def extract_answer_with_source(text: str | None, *, fallback_last_number: bool = False,
                               instructions: str | None = None) -> tuple[str | None, str]:
    """``(answer, how)``: how is boxed | hashes | answer_is | last_number | none | incomplete |
    placeholder.

    The final answer is the *last* stated one in the text, whatever its form (``\\boxed``,
    ``#### X``, "The answer is X"), so an answer restated after a self-correction ("Wait,
    actually it's 3. The answer is 3." after a boxed 2) wins. Math delimiters (``\\(..\\)``,
    ``\\[..\\]``, ``$..$``) are removed first. Template placeholders and non-answers ("N",
    "X", "answer", a single letter of the prompt's format ``instructions``) are not answers:
    an earlier real one is used, else the sample has none (``placeholder``, no fallback). With
    ``fallback_last_number`` a sample without any marker answers with the last number of its
    final sentence that holds one. An answer that ends on an operator ("100 + 50 =") is
    reported as ``incomplete`` with no answer: it was cut off, and must not be compared.
    """
    if not text:
        return None, "none"
    marks = answer_markers(text)
    saw_placeholder = False
    for _pos, ans, how in reversed(marks):
        if is_placeholder(ans, instructions):
            saw_placeholder = True
            continue
        return (None, "incomplete") if is_incomplete(ans) else (ans, how)
    if saw_placeholder:
        return None, "placeholder"
    if fallback_last_number:
        num = last_number(text)
        if num is not None:
            return num, "last_number"
    return None, "none"


def extract_answer(text: str | None, *, fallback_last_number: bool = False) -> str | None:
    """The final answer stated in a solution, or None (see :func:`extract_answer_with_source`)."""
    return extract_answer_with_source(text, fallback_last_number=fallback_last_number)[0]


# --------------------------------------------------------------------------- fast numeric path

_UNIT_WORDS = re.compile(r"^(-?[\d.,/]+)\s*[a-zA-Z][a-zA-Z\s.]*$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_LATEX_FRAC = re.compile(r"^(-)?\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}$")
_LATEX_FRAC_SHORT = re.compile(r"^(-)?\\[dt]?frac(\d)(\d)$")


_ROW = "\x00ROW\x00"
# scientific notation: mantissa x 10^exp (\times, \cdot, ×, *, x), or a bare power of ten
_SCI = re.compile(r"^(?:([-+]?\d+(?:\.\d+)?)(?:\\times|\\cdot|×|\*|x))?10\^\{?([-+]?\d+)\}?$")
_MAGNITUDES = {"dozen": Fraction(12), "hundred": Fraction(100), "thousand": Fraction(10**3),
               "million": Fraction(10**6), "billion": Fraction(10**9),
               "trillion": Fraction(10**12)}
_MAGNITUDE = re.compile(r"^(-?[\d.,]+)\s*(dozen|hundred|thousand|million|billion|trillion)s?"
                        r"\b(.*)$", re.IGNORECASE)
_UNIT_TAIL = re.compile(r"^[a-zA-Z][a-zA-Z\s.]*$")


@functools.lru_cache(maxsize=65536)
def normalize_answer(ans: str) -> str:
    """Light, meaning-preserving cleanup of an answer string (used for voting keys too)."""
    s = strip_math_delimiters(ans)
    s = s.strip("$").strip()
    s = s.replace("\\\\", _ROW)  # LaTeX row break: keep it out of the spacing rules below
    s = re.sub(r"\\(?:left|right|displaystyle|!|,|;|\s)", lambda m: "" if m.group(0) not in
               ("\\,", "\\;", "\\ ") else " ", s)
    s = re.sub(r"\\text\{\s*([^{}]*)\}", r" \1", s)  # \text{ dollars} -> dollars
    s = re.sub(r"\\mbox\{\s*([^{}]*)\}", r" \1", s)
    s = s.replace("{,}", ",")  # LaTeX thousands separator 1{,}000
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    s = s.replace("\\%", "%").replace("\\$", "$")
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s*(" + re.escape(_ROW) + r"|&)\s*", r"\1", s)
    return s.replace(_ROW, "\\\\")


def final_value(ans: str) -> str:
    """The last side of a chained equation: ``12 + 60 = 72`` -> ``72`` (else unchanged)."""
    s = normalize_answer(ans)
    if "=" in s and not re.search(r"[<>!]=|=[<>]|\\(?:le|ge|neq)", s):
        rhs = s.rsplit("=", 1)[1].strip()
        if rhs:
            return rhs
    return s


@functools.lru_cache(maxsize=65536)
def parse_number(ans: str) -> Fraction | None:
    """Exact value of a plain numeric answer, else None.

    Accepts ``1,234.5``, ``$18``, ``18 dollars``, ``50%`` (-> 50, GSM8K convention), ``3/4``,
    ``\\frac{3}{4}``, ``-0.25``, ``1e3``. Anything with symbols/expressions returns None.
    """
    s = normalize_answer(ans)
    s = s.lstrip("$€£").strip()
    if s.startswith("-$"):
        s = "-" + s[2:]
    s = s.rstrip("%").strip()
    m = _MAGNITUDE.match(s)
    if m:  # 2.5 million (dollars) -> 2500000
        v = parse_number(m.group(1))
        if v is None or (m.group(3) or "").strip() and not _UNIT_TAIL.match(m.group(3).strip()):
            return None
        return v * _MAGNITUDES[m.group(2).lower()]  # "2.5 millions" is not 2.5
    m = _UNIT_WORDS.match(s)
    if m:
        s = m.group(1)
    s = s.rstrip(".").replace(" ", "")
    m = _SCI.match(s)
    if m:  # 6.02 \times 10^{23}, 6.02*10^23, 10^{5}
        base = parse_number(m.group(1)) if m.group(1) else Fraction(1)
        exp = int(m.group(2))
        if base is None or abs(exp) > 400:
            return None
        return base * Fraction(10) ** exp
    m = _LATEX_FRAC.match(s) or _LATEX_FRAC_SHORT.match(s)
    if m:
        num, den = int(m.group(2)), int(m.group(3))
        if den == 0:
            return None
        v = Fraction(num, den)
        return -v if m.group(1) else v
    if "," in s:
        if not _THOUSANDS.match(s):
            return None  # "1,2" is a tuple, not a number
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+/\d+", s):
        num, den = s.split("/")
        return None if int(den) == 0 else Fraction(int(num), int(den))
    if re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", s):
        try:
            return Fraction(s)
        except (ValueError, ZeroDivisionError):
            return None
    return None


_UNIT_ALIASES = {
    "m": "meter", "metre": "meter", "km": "kilometer", "kilometre": "kilometer",
    "cm": "centimeter", "centimetre": "centimeter", "mm": "millimeter", "millimetre": "millimeter",
    "g": "gram", "kg": "kilogram", "mg": "milligram", "l": "liter", "litre": "liter",
    "ml": "milliliter", "millilitre": "milliliter", "s": "second", "sec": "second",
    "min": "minute", "h": "hour", "hr": "hour", "mi": "mile", "ft": "foot", "feet": "foot",
    "in": "inch", "inches": "inch", "lb": "pound", "lbs": "pound", "oz": "ounce",
    "$": "dollar", "usd": "dollar", "cents": "cent", "¢": "cent", "%": "percent",
}


@functools.lru_cache(maxsize=65536)
def answer_unit(ans: str) -> str | None:
    """The unit word after a number (``5 km`` -> ``kilometer``), canonical, or None."""
    s = normalize_answer(ans).lstrip("$€£").strip()
    m = re.match(r"^-?[\d.,/]+\s*([a-zA-Z][a-zA-Z\s.]*)$", s)
    if not m:
        return None
    u = m.group(1).strip().rstrip(".").lower()
    u = re.sub(r"^(?:dozen|hundred|thousand|million|billion|trillion)s?\b\s*", "", u)
    if not u:
        return None
    u = re.sub(r"^(?:square|sq\.?)\s+", "square ", u)
    u = _UNIT_ALIASES.get(u, u)
    if len(u) > 3 and u.endswith("s") and not u.endswith("ss"):
        u = u[:-1]
    return _UNIT_ALIASES.get(u, u)


_EMPTY_SET_FORMS = {
    "\\emptyset", "\\varnothing", "∅", "\\{\\}", "{}", "\\{ \\}", "\\o",
    "\\text{\\o}", "\\mathbb{\\o}", "\\left\\{\\right\\}", "empty set",
    "the empty set", "no solution", "no solutions", "there is no solution",
    "there are no solutions", "no solution exists", "the equation has no solution",
}


@functools.lru_cache(maxsize=65536)
def is_empty_set(ans: str) -> bool:
    """``\\emptyset``, ``\\varnothing``, ``∅``, ``\\{\\}``, ``{}``, "no solution"..."""
    s = normalize_answer(ans).strip().rstrip(".").strip().lower()
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s).strip()
    s = re.sub(r"^(?:[a-z]\s*(?:=|\\in)\s*)", "", s)  # x \in \emptyset
    return s in _EMPTY_SET_FORMS or bool(re.fullmatch(r"\\?\{\s*\\?\}", s))


_SET_SPLIT = re.compile(r"\s*(?:,|;|\bor\b|\band\b|\\lor|\\vee|\\text\{\s*or\s*\})\s*")
_ASSIGN = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*")


@functools.lru_cache(maxsize=65536)
def solution_set(ans: str) -> frozenset | None:
    """A set of numbers written as a list: ``x = 2 or x = 3``, ``2, 3``, ``\\{2, 3\\}``, ``2 and 3``.

    The empty set (any notation, "no solution") is ``frozenset()``. None when the answer is
    not a list of plain numbers (a single number, a tuple ``(1, 2)``, an interval ``[1, 2]``,
    ``1,000``, symbolic elements: those compare by the other rules).
    """
    if is_empty_set(ans):
        return frozenset()
    s = normalize_answer(ans).strip().rstrip(".").strip()
    braced = re.fullmatch(r"\\\{(.*)\\\}|\{(.*)\}", s)
    body = (braced.group(1) if braced.group(1) is not None else braced.group(2)) if braced \
        else s
    if not braced and (s[:1] in "([" or parse_number(s) is not None):
        return None
    parts = [p for p in _SET_SPLIT.split(body) if p.strip()]
    if len(parts) < 2 and not braced:
        return None
    vals = []
    for p in parts:
        v = parse_number(_ASSIGN.sub("", p.strip()))
        if v is None:
            return None
        vals.append(v)
    return frozenset(vals)


def _sets_equal(a: frozenset, b: frozenset) -> bool:
    return all(any(_numbers_close(x, y) for y in b) for x in a) and \
        all(any(_numbers_close(x, y) for y in a) for x in b)


def _numbers_close(a: Fraction, b: Fraction) -> bool:
    if a == b:
        return True
    # a rounded decimal such as 0.333333 vs 1/3: equal to 6 significant decimals
    diff = abs(a - b)
    return diff <= Fraction(1, 10**6) * max(Fraction(1), abs(a), abs(b))


# --------------------------------------------------------------------------- math-verify worker


_MV_SERVER = r"""
import json, logging, sys
logging.disable(logging.WARNING)
from math_verify import parse, verify
out = sys.stdout
sys.stdout = sys.stderr  # keep library prints off the protocol channel
out.write("ready\n"); out.flush()
for line in sys.stdin:
    a, b = json.loads(line)
    try:
        ga = parse(a, parsing_timeout=None)
        gb = parse(b, parsing_timeout=None)
        ok = bool(ga) and bool(gb) and bool(verify(ga, gb, timeout_seconds=None))
        out.write(json.dumps(["ok", ok]) + "\n")
    except Exception as e:
        out.write(json.dumps(["error", type(e).__name__ + ": " + str(e)]) + "\n")
    out.flush()
"""


def _as_latex(ans: str) -> str:
    """math-verify extracts from LaTeX environments; wrap a bare answer so it is found."""
    s = ans.strip()
    if "\\boxed" in s or s.startswith("$"):
        return s
    return f"${s}$"


class MathVerifyWorker:
    """A persistent helper process running math-verify, with a per-check wall-clock timeout.

    The helper is a plain ``python -c`` subprocess speaking JSON lines over stdin/stdout (no
    multiprocessing main-module re-import, so it works from Beam workers, threads and
    ``python -``). Thread-safe: one check at a time per worker. A check that exceeds
    ``timeout_s`` kills the helper (restarted on the next check) and returns False.
    """

    def __init__(self, timeout_s: float = 5.0, startup_timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self.timeouts = 0
        self.errors = 0
        self.checks = 0

    def _readline(self, timeout: float) -> str | None:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self._proc.stdout.readline()

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _MV_SERVER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1,
        )
        line = self._readline(self.startup_timeout_s)
        if line != "ready\n":
            self._kill()
            raise RuntimeError("math-verify helper process failed to start (is math-verify "
                               "installed in this Python?)")

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
            for f in (self._proc.stdin, self._proc.stdout):
                if f is not None:
                    f.close()
        self._proc = None

    def check(self, a: str, b: str) -> bool:
        """math-verify equivalence of two answers (LaTeX or plain), False on timeout/error."""
        with self._lock:
            self.checks += 1
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                self._start()
            assert self._proc is not None and self._proc.stdin is not None
            try:
                self._proc.stdin.write(json.dumps([_as_latex(a), _as_latex(b)]) + "\n")
                self._proc.stdin.flush()
                line = self._readline(self.timeout_s)
            except (BrokenPipeError, OSError):
                line = ""
            if line is None:
                self.timeouts += 1
                log.warning("math-verify check timed out after %.1fs: %r vs %r",
                            self.timeout_s, a[:80], b[:80])
                self._kill()
                return False
            if not line:
                self.errors += 1
                self._kill()
                return False
            status, value = json.loads(line)
            if status != "ok":
                self.errors += 1
                return False
            return bool(value)

    def close(self) -> None:
        with self._lock:
            self._kill()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self._kill()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown
            pass


_DEFAULT_WORKER: MathVerifyWorker | None = None
_DEFAULT_LOCK = threading.Lock()


def default_worker() -> MathVerifyWorker:
    global _DEFAULT_WORKER
    with _DEFAULT_LOCK:
        if _DEFAULT_WORKER is None:
            _DEFAULT_WORKER = MathVerifyWorker()
        return _DEFAULT_WORKER


def answers_equivalent(a: str, b: str, *, timeout_s: float | None = None,
                       worker: MathVerifyWorker | None = None) -> bool:
    """True when two final answers denote the same mathematical value.

    Numbers are compared exactly (after removing thousands separators, currency, percent and
    unit words); other forms (``\\sqrt{2}/2``, ``x+1``, intervals, sets) via math-verify in a
    helper process bounded by ``timeout_s`` (default 5 s), in both directions, so the relation
    is symmetric. Answers cut off mid-expression are never equivalent to anything; different
    units (``5 km`` vs ``5 m``) are not equivalent; a chained equation compares by its last
    side (``12 + 60 = 72`` ~ ``72``).
    """
    if a is None or b is None:
        return False
    a, b = str(a), str(b)
    if not a.strip() or not b.strip() or is_incomplete(a) or is_incomplete(b):
        return False
    if is_placeholder(a) or is_placeholder(b):
        return False  # "N" copied from the prompt is not an answer, not even equal to itself
    sa, sb = solution_set(a), solution_set(b)
    if sa is not None and sb is not None:
        return _sets_equal(sa, sb)  # "x = 2 or x = 3" ~ "3, 2" ~ "\{2, 3\}"; ∅ ~ no solution
    if sa is not None or sb is not None:
        if sa == frozenset() or sb == frozenset():
            return False  # the empty set is no number, expression or non-empty set
        # a list against something else: never by its last side ("x = 2 or x = 3" is not 3)
        na, nb = normalize_answer(a), normalize_answer(b)
        w = worker or default_worker()
        return na == nb or (w.check(na, nb) and w.check(nb, na))
    ua, ub = answer_unit(a), answer_unit(b)
    if ua is not None and ub is not None and ua != ub:
        return False  # 5 km is not 5 m (no unit conversion is attempted)
    a, b = final_value(a), final_value(b)
    na, nb = normalize_answer(a), normalize_answer(b)
    if na == nb:
        return True
    fa, fb = parse_number(a), parse_number(b)
    if fa is not None and fb is not None:
        return _numbers_close(fa, fb)
    w = worker or default_worker()
    if timeout_s is not None and timeout_s != w.timeout_s:
        w.timeout_s = timeout_s
    # math-verify's verify(gold, pred) is asymmetric; equivalence must not depend on which
    # sample came first, so both directions must hold
    return w.check(na, nb) and w.check(nb, na)


# --------------------------------------------------------------------------- voting


@dataclass
class VoteResult:
    """Outcome of a majority vote over the extracted answers of n samples."""

    answer: str | None  # representative answer of the winning cluster
    agreement: float  # winning cluster size / number of samples
    n_samples: int
    n_extracted: int
    cluster_of: list[int] = field(default_factory=list)  # cluster index per sample (-1: none)
    clusters: list[tuple[str, int]] = field(default_factory=list)  # (representative, size)
    accepted: bool = False


def cluster_answers(answers: list[str | None], equiv: Any = None) -> tuple[list[int], list[str]]:
    """Group answers into equivalence classes (first-seen representative per class)."""
    equiv = equiv or answers_equivalent
    reps: list[str] = []
    cluster_of: list[int] = []
    cache: dict[tuple[str, str], bool] = {}
    for ans in answers:
        if ans is None:
            cluster_of.append(-1)
            continue
        hit = -1
        for ci, rep in enumerate(reps):
            key = (rep, ans)
            if key not in cache:
                cache[key] = equiv(rep, ans)
            if cache[key]:
                hit = ci
                break
        if hit < 0:
            reps.append(ans)
            hit = len(reps) - 1
        cluster_of.append(hit)
    return cluster_of, reps


def majority_vote(answers: list[str | None], *, threshold: float = 0.5,
                  min_votes: int = 2, equiv: Any = None) -> VoteResult:
    """Majority vote (self-consistency) with an agreement threshold.

    ``agreement`` is the winning class size over *all* samples (unextractable answers count as
    disagreement). Accepted when agreement >= ``threshold`` and the class has ``min_votes``.
    Ties are broken by the earliest-seen class, which is deterministic for ordered samples.
    """
    n = len(answers)
    cluster_of, reps = cluster_answers(answers, equiv)
    sizes = Counter(c for c in cluster_of if c >= 0)
    clusters = [(rep, sizes[i]) for i, rep in enumerate(reps)]
    n_ext = sum(1 for c in cluster_of if c >= 0)
    if not sizes:
        return VoteResult(None, 0.0, n, 0, cluster_of, clusters, False)
    best = min(sizes, key=lambda c: (-sizes[c], c))
    agreement = sizes[best] / n if n else 0.0
    accepted = agreement >= threshold and sizes[best] >= min_votes
    return VoteResult(reps[best], agreement, n, n_ext, cluster_of, clusters, accepted)


def pass_rate(answers: list[str | None], reference: str, equiv: Any = None) -> float:
    """Fraction of answers equivalent to ``reference``."""
    if not answers:
        return 0.0
    equiv = equiv or answers_equivalent
    return sum(1 for a in answers if a is not None and equiv(reference, a)) / len(answers)


def gsm8k_reference(answer_field: str) -> str | None:
    """The reference answer of a GSM8K ``answer`` field (text after ``####``)."""
    m = _HASHES.findall(answer_field or "")
    return m[-1].strip().replace(",", "") if m else None
