"""indi_eval's expression language: C-style arithmetic over quoted "device.property.element" operands.

The expression is compiled to a short postfix program (at most 31 operations) by precedence
climbing, and run on a small stack of doubles, with the same limits, the same error messages and
the same corner cases as the reference tool (evalINDI with compiler.c of indi-bin 1.9.9):

* operators, loosest first: ``||``; ``&&``; ``==`` ``!=``; ``<`` ``<=`` ``>`` ``>=``; ``+`` ``-``;
  ``*`` ``/``; unary ``-`` ``!`` ``+``. Binary operators associate left to right.
* functions: abs floor sin cos tan asin acos atan degrad raddeg log log10 exp sqrt (one argument),
  pow atan2 (two), and the constant pi. A name is recognised by its prefix (``pie`` is ``pi`` then
  ``e``), in lower case only.
* numbers are read as C's atof reads them, and skipped as the reference skips them (digits, '.',
  and 'e' with an optional sign after it), so ``1E5`` is ``1`` followed by a bad function ``E5``.
* an operand is a double-quoted name of at most 62 characters with exactly two dots. Each use is
  its own operand, and a value is given to the first one of that name only.
* arithmetic is IEEE (1/0 is inf, 0/0 is -nan), and functions are those of the C library.

Programs with fewer values than operators are not rejected when compiled (the reference is not
either): they fail when run, with the reference's "Bug! stack has N items" messages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math

from .common import atof

__all__ = ["CompileError", "EvalError", "Expression", "MAX_PROG", "MAX_STACK"]

# Tokens, which are also the opcodes of the program.
(HALT, ADD, SUB, MULT, DIV, AND, OR, GT, GE, EQ, NE, LT, LE, NEG, NOT, CONST, VAR, ABS, FLOOR, SIN, COS, TAN,
 ASIN, ACOS, ATAN, PITOK, DEGRAD, RADDEG, LOG, LOG10, EXP, SQRT, POW, ATAN2) = range(34)
LPAREN, RPAREN, COMMA, ERR = 255, 254, 253, -1

PRECEDENCE = {ADD: 5, SUB: 5, MULT: 6, DIV: 6, AND: 2, OR: 1, GT: 4, GE: 4, EQ: 3, NE: 3, LT: 4, LE: 4}
UNI_PREC = 7

MAX_STACK = 32
MAX_PROG = 32
MAX_OPX = 64
MAXFLDLEN = 64

# Longer names first where one is the prefix of another.
FUNCTIONS = [("abs", ABS), ("floor", FLOOR), ("acos", ACOS), ("asin", ASIN), ("atan2", ATAN2), ("atan", ATAN),
             ("cos", COS), ("degrad", DEGRAD), ("exp", EXP), ("log10", LOG10), ("log", LOG), ("pi", PITOK),
             ("pow", POW), ("raddeg", RADDEG), ("sin", SIN), ("sqrt", SQRT), ("tan", TAN)]
ONE_ARG = {ABS, FLOOR, SIN, COS, TAN, ASIN, ACOS, ATAN, DEGRAD, RADDEG, LOG, LOG10, EXP, SQRT}
TWO_ARG = {POW, ATAN2}

_C_SPACE = " \t\n\r\v\f"


# ------------------------------------------------------------------------------ the C math library

def _load_libm():
    name = ctypes.util.find_library("m")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    for fn in ("sin", "cos", "tan", "asin", "acos", "atan", "log", "log10", "exp", "sqrt", "floor", "fabs"):
        getattr(lib, fn).restype = ctypes.c_double
        getattr(lib, fn).argtypes = [ctypes.c_double]
    for fn in ("pow", "atan2"):
        getattr(lib, fn).restype = ctypes.c_double
        getattr(lib, fn).argtypes = [ctypes.c_double, ctypes.c_double]
    return lib


_LIBM = _load_libm()
_DEFAULT_NAN = math.copysign(math.nan, -1.0)  # what x86 computes for 0/0, inf-inf, ...


def _math1(name: str):
    """A one-argument libm function: the C library's own when it can be loaded (same results, same
    signed NaNs), else Python's math with C's answers for domain and range errors."""
    if _LIBM is not None:
        return getattr(_LIBM, name)
    fn = {"fabs": math.fabs}.get(name) or getattr(math, name)

    def call(x: float) -> float:
        try:
            return fn(x)
        except OverflowError:
            return math.inf
        except ValueError:
            if name in ("log", "log10") and x == 0:
                return -math.inf
            return _DEFAULT_NAN

    return call


def _math2(name: str):
    if _LIBM is not None:
        return getattr(_LIBM, name)
    fn = getattr(math, name)

    def call(x: float, y: float) -> float:
        try:
            return fn(x, y)
        except OverflowError:
            return math.inf
        except (ValueError, ZeroDivisionError):
            if name == "pow" and x == 0:
                return math.copysign(math.inf, x) if float(y).is_integer() and int(y) % 2 else math.inf
            return _DEFAULT_NAN

    return call


_UNARY = {ABS: _math1("fabs"), FLOOR: _math1("floor"), SIN: _math1("sin"), COS: _math1("cos"),
          TAN: _math1("tan"), ASIN: _math1("asin"), ACOS: _math1("acos"), ATAN: _math1("atan"),
          LOG: _math1("log"), LOG10: _math1("log10"), EXP: _math1("exp"), SQRT: _math1("sqrt")}
_POW = _math2("pow")
_ATAN2 = _math2("atan2")
_ATAN = _math1("atan")


def _divide(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if math.isnan(a):
        return a
    if a == 0:
        return _DEFAULT_NAN
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _binary(op: int, a: float, b: float) -> float:
    if op == ADD:
        return a + b
    if op == SUB:
        return a - b
    if op == MULT:
        return a * b
    if op == DIV:
        return _divide(a, b)
    if op == AND:
        return 1.0 if (a != 0 and b != 0) else 0.0
    if op == OR:
        return 1.0 if (a != 0 or b != 0) else 0.0
    if op == GT:
        return 1.0 if a > b else 0.0
    if op == GE:
        return 1.0 if a >= b else 0.0
    if op == EQ:
        return 1.0 if a == b else 0.0
    if op == NE:
        return 1.0 if a != b else 0.0
    if op == LT:
        return 1.0 if a < b else 0.0
    if op == LE:
        return 1.0 if a <= b else 0.0
    if op == POW:
        return _POW(a, b)
    return _ATAN2(a, b)


# ----------------------------------------------------------------------------------------- errors

class CompileError(ValueError):
    """The expression cannot be compiled; str() is the reference's message."""


class EvalError(ValueError):
    """The program cannot be run; str() is the reference's message."""


class _Operand:
    __slots__ = ("name", "value", "set")

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = 0.0
        self.set = False


# --------------------------------------------------------------------------------------- compiler

class Expression:
    """A compiled expression: its operands (in order of appearance) and its program."""

    def __init__(self, text: str) -> None:
        nul = text.find("\0")
        self._text = text if nul < 0 else text[:nul]   # a C string ends at its first NUL
        self._pos = 0          # cexpr: just after the current token
        self._token_start = 0  # lcexpr: where the current token starts
        self._parens = 0
        self._err = ""
        self.program: list[int] = []
        self.consts: list[float] = []
        self.operands: list[_Operand] = []
        # The stack persists between evaluations, as the reference's static one does; the slack
        # beyond its end stands for what a program short of values reads there before it fails.
        self._stack = [0.0] * (MAX_STACK + 4)
        if self._compile(0) == ERR:
            raise CompileError(f"{self._err} near `{self._text[self._token_start:self._token_start + 10]}'")
        if not self.program:
            raise CompileError("Null program")
        self.program.append(HALT)

    # -- operands
    @property
    def names(self) -> list[str]:
        return [op.name for op in self.operands]

    def set_operand(self, name: str, value: float) -> bool:
        """Give the first operand with this name its value; False if there is none."""
        for op in self.operands:
            if op.name == name:
                op.value = value
                op.set = True
                return True
        return False

    def all_set(self) -> bool:
        return all(op.set for op in self.operands)

    def unset(self) -> list[str]:
        return [op.name for op in self.operands if not op.set]

    # -- lexer
    def _char(self, pos: int) -> str:
        return self._text[pos] if pos < len(self._text) else "\0"

    def _fail(self, message: str) -> int:
        self._err = message
        return ERR

    def _next_token(self) -> int:
        while self._char(self._pos) in _C_SPACE and self._pos < len(self._text):
            self._pos += 1
        self._token_start = start = self._pos
        c = self._char(start)
        self._pos += 1
        nxt = self._char(self._pos)
        simple = {",": COMMA, "+": ADD, "-": SUB, "*": MULT, "/": DIV}
        if c in simple:
            return simple[c]
        if c == "\0":
            self._pos -= 1
            return HALT
        if c == "(":
            self._parens += 1
            return LPAREN
        if c == ")":
            self._parens -= 1
            if self._parens < 0:
                return self._fail("Too many right parens")
            return RPAREN
        if c in "|&=":
            if nxt == c:
                self._pos += 1
                return {"|": OR, "&": AND, "=": EQ}[c]
            return self._fail("Illegal operator")
        if c in "!<>":
            if nxt == "=":
                self._pos += 1
                return {"!": NE, "<": LE, ">": GE}[c]
            return {"!": NOT, "<": LT, ">": GT}[c]
        if c.isascii() and (c.isdigit() or c == "."):
            if len(self.consts) > MAX_OPX:
                return self._fail(f"More than {MAX_OPX} constants")
            self.consts.append(atof(self._text[start:]))
            self._skip_double()
            return CONST | ((len(self.consts) - 1) << 8)
        if c.isascii() and c.isalpha():
            for name, token in FUNCTIONS:
                if self._text.startswith(name, start):
                    self._pos += len(name) - 1
                    return token
            return self._fail("Bad function")
        if c == '"':
            if len(self.operands) > MAX_OPX:
                return self._fail(f"More than {MAX_OPX} variables")
            name = self._field_name()
            if name is None:
                return self._fail("Bad field")
            self.operands.append(_Operand(name))
            return VAR | ((len(self.operands) - 1) << 8)
        return self._fail("Syntax error")

    def _skip_double(self) -> None:
        after_e = False
        while True:
            c = self._char(self._pos)
            if (c.isascii() and c.isdigit()) or c == "." or (after_e and c in "+-"):
                after_e = False
                self._pos += 1
            elif c == "e":
                after_e = True
                self._pos += 1
            else:
                return

    def _field_name(self) -> str | None:
        """The name between double quotes: under MAXFLDLEN characters, with exactly two dots."""
        pos = self._token_start + 1
        remaining = MAXFLDLEN
        chars = []
        c = "\0"
        while True:
            remaining -= 1
            if remaining <= 0:
                break
            c = self._char(pos)
            pos += 1
            if c == '"' or c == "\0":
                break
            chars.append(c)
        self._pos = pos
        if remaining == 0 or c != '"' or chars.count(".") != 2:
            return None
        return "".join(chars)

    # -- parser: compile operators tighter than prec; returns the look-ahead token
    def _compile(self, prec: int) -> int:
        program = self.program
        expect_binop = False
        tok = self._next_token()
        while True:
            if tok == ERR:
                return ERR
            if len(program) >= MAX_PROG:
                return self._fail("Program is too long")
            kind = tok & 0xFF
            if kind in (COMMA, HALT):
                return tok
            if kind == RPAREN:
                return RPAREN
            if kind == ADD and not expect_binop:
                tok = self._next_token()  # a unary plus is skipped
                if tok == HALT:
                    return self._fail("Term expected after unary +")
                continue
            if (kind == SUB and not expect_binop) or kind == NOT:
                before = len(program)
                tok = self._compile(UNI_PREC)
                if len(program) == before:
                    return self._fail(f"Term expected after unary {'!' if kind == NOT else '-'}")
                program.append(NEG if kind == SUB else NOT)
                expect_binop = True
                continue
            if kind in ONE_ARG:
                if self._next_token() != LPAREN:
                    return self._fail("expecting '(' after function")
                before = len(program)
                if self._compile(0) != RPAREN or len(program) == before:
                    return self._fail("1-arg function arglist error")
                program.append(tok)
                tok = self._next_token()
                expect_binop = True
                continue
            if kind in TWO_ARG:
                if self._next_token() != LPAREN:
                    return self._fail("Saw a built-in function: expecting (")
                before = len(program)
                if self._compile(0) != COMMA or len(program) == before:
                    return self._fail("1st of 2-arg function arglist error")
                before = len(program)
                if self._compile(0) != RPAREN or len(program) == before:
                    return self._fail("2nd of 2-arg function arglist error")
                program.append(tok)
                tok = self._next_token()
                expect_binop = True
                continue
            if kind in (CONST, PITOK, VAR):
                program.append(tok)
                tok = self._next_token()
                expect_binop = True
                continue
            if kind == LPAREN:
                before = len(program)
                if self._compile(0) != RPAREN:
                    return self._fail("Unmatched left paren")
                if len(program) == before:
                    return self._fail("Null expression")
                tok = self._next_token()
                expect_binop = True
                continue
            # a binary operator
            p = PRECEDENCE[tok]
            if p <= prec:
                return tok
            before = len(program)
            newtok = self._compile(p)
            if newtok == ERR:
                return ERR
            if len(program) == before:
                return self._fail("Term or factor expected")
            program.append(tok)
            expect_binop = True
            tok = newtok

    # -- evaluation
    def evaluate(self) -> float:
        """Run the program with the operands' current values; raises EvalError."""
        stack = self._stack
        sp = MAX_STACK  # grows downwards; stack[sp] is the top
        for instr in self.program:
            op = instr & 0xFF
            if op == HALT:
                break
            if op in PRECEDENCE or op in TWO_ARG:
                stack[sp + 1] = _binary(op, stack[sp + 1], stack[sp])
                sp += 1
            elif op == NEG:
                stack[sp] = -stack[sp]
            elif op == NOT:
                stack[sp] = 1.0 if stack[sp] == 0 else 0.0
            elif op == CONST:
                sp -= 1
                stack[sp] = self.consts[instr >> 8]
            elif op == VAR:
                sp -= 1
                stack[sp] = self.operands[instr >> 8].value
            elif op == PITOK:
                sp -= 1
                stack[sp] = 4.0 * _ATAN(1.0)
            elif op == DEGRAD:
                stack[sp] *= _ATAN(1.0) / 45.0
            elif op == RADDEG:
                stack[sp] *= 45.0 / _ATAN(1.0)
            else:
                stack[sp] = _UNARY[op](stack[sp])
            if sp < 0:
                raise EvalError("Runtime stack overflow")
            if sp > MAX_STACK:
                raise EvalError("Bug! runtime stack underflow")
        if sp != MAX_STACK - 1:
            raise EvalError(f"Bug! stack has {MAX_STACK - sp} items")
        return stack[sp]
