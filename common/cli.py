"""Build argparse options from a config dataclass (one dataclass per entry point; each field's
`metadata["help"]` is its help string, `metadata["positional"]` makes it positional)."""
from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from typing import Any, Callable, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


# torch.compile's modes, as --compile-mode of python -m manager train and python -m runs (and
# --compile_mode of the workers, python -m corl) offer them
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_kwargs(compile: bool, mode: str, flag: str = "--compile-mode") -> dict[str, str]:
    """torch.compile's keyword arguments for --compile / --compile-mode MODE (none for its default
    mode); an unknown mode, or a mode without --compile, is an error naming the fix (`flag`: the
    option's spelling in the caller's CLI)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown {flag} {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    if mode != "default" and not compile:
        raise ValueError(f"{flag} {mode} needs --compile (it chooses how the update is compiled)")
    return {} if mode == "default" else {"mode": mode}


TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def integer(text: Any) -> int:
    """A whole number as researchers write step counts: 100000, 100_000 or 1e5 (an exact float
    spelling is accepted, 1.5e3 too; 2.5 is not). argparse names this function in its errors:
    "invalid integer value"."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a whole number")
    if isinstance(text, int):
        return text
    try:
        return int(str(text).strip())
    except ValueError:
        pass
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not value.is_integer():
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def boolean(text: Any) -> bool:
    """true/false (also yes/no, on/off, 1/0, any case); any other word is an error, never True."""
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not true or false")


# how a command-line value of each field type is read, and what a wrong one is told it should be
VALUE_KINDS: dict[type, tuple[Callable[[Any], Any], str]] = {
    int: (integer, "a whole number (100000, 100_000 or 1e5)"), float: (float, "a number"),
    bool: (boolean, "true or false"), str: (str, "a word")}


def dashed_flag(name: str) -> str:
    """argparse's spelling of a field's option: log_every -> --log-every."""
    return "--" + name.replace("_", "-")


def check_minimums(cfg: Any, minimums: dict[str, float], flag: Callable[[str], str] = dashed_flag) -> None:
    """Each field of `cfg` named in `minimums` is at least its minimum (None: unset, skipped), else a
    ValueError naming the option and its least value, raised before any data is read or any step is
    spent: a negative --steps would otherwise write a finished run of an untrained model, a zero
    --log-every divide by zero. `flag`: how the caller's CLI spells a field's option."""
    for name, minimum in minimums.items():
        value = getattr(cfg, name)
        if value is not None and value < minimum:
            raise ValueError(f"{flag(name)} must be at least {minimum:g}, got {value:g}")


# (low, high, low included, high included) of a coefficient
Interval = tuple[float, float, bool, bool]
UNIT_RANGE: Interval = (0.0, 1.0, False, True)       # (0, 1]: discounts, Polyak rates, fractions
OPEN_UNIT_RANGE: Interval = (0.0, 1.0, False, False)  # (0, 1): expectiles
POSITIVE: Interval = (0.0, math.inf, False, False)    # learning rates, temperatures
PROBABILITY_BELOW_ONE: Interval = (0.0, 1.0, True, False)  # [0, 1): dropouts, momenta


def describe_interval(interval: Interval) -> str:
    """'positive', or the interval as written, e.g. 'in (0, 1]'."""
    low, high, low_in, high_in = interval
    if interval == POSITIVE:
        return "positive"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def check_ranges(cfg: Any, ranges: dict[str, Interval], flag: Callable[[str], str] = dashed_flag) -> None:
    """Each field of `cfg` named in `ranges` (and present; None: unset, skipped) lies in its interval,
    else a ValueError naming the option, the interval and the field's default, raised before any data
    is read: a typo such as 9.9 for a discount of 0.99 would otherwise train to a meaningless number."""
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name, interval in ranges.items():
        value = getattr(cfg, name, None)
        if name not in defaults or value is None:
            continue
        low, high, low_in, high_in = interval
        if not ((value >= low if low_in else value > low) and (value <= high if high_in else value < high)):
            default = "none" if defaults[name] is None else f"{defaults[name]:g}"
            raise ValueError(f"{flag(name)} must be {describe_interval(interval)}, got {value:g} "
                             f"(default: {default})")


def config_field(default: Any, help: str, positional: bool = False, choices: Any = None,
                 nargs: str | None = None) -> Any:
    """A dataclass field with its help string (required) and CLI hints (`nargs`: a positional's, "+"
    for a list of one or more)."""
    return dataclasses.field(default=default, metadata={"help": help, "positional": positional,
                                                        "choices": choices, "nargs": nargs,
                                                        "custom_args": {"help": help}})  # pyrallis reads this


def base_type(tp: Any) -> tuple[Any, tuple | None]:
    """(python type for argparse, choices) of an annotation such as `int | None` or Literal."""
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) is Literal:
        return type(get_args(tp)[0]), get_args(tp)
    if args and get_origin(tp) is not None:
        return base_type(args[0])
    return tp, None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help")
        if not help_text:
            raise TypeError(f"{cls.__name__}.{f.name} has no help string")
        tp, choices = base_type(hints[f.name])
        choices = f.metadata.get("choices") or choices
        arg_type = integer if tp is int else tp  # 1e5 as well as 100000
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if f.metadata.get("positional"):
            parser.add_argument(f.name, type=arg_type, choices=choices, nargs=f.metadata.get("nargs"), help=help_text)
        elif tp is bool:
            parser.add_argument(dashed_flag(f.name), dest=f.name, default=default,
                                action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(dashed_flag(f.name), dest=f.name, type=arg_type, default=default,
                                choices=choices, help=f"{help_text} (default: {default})")


def config_from_args(cls: type[T], namespace: argparse.Namespace) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in vars(namespace).items() if k in names})


def parse_config(cls: type[T], prog: str, description: str | None, argv: list[str] | None = None) -> T:
    """The usual entry point: an argparse CLI with one flag per field of `cls`, parsed into `cls`."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, cls)
    return config_from_args(cls, parser.parse_args(argv))


def split_names(text: str | None) -> list[str]:
    """'a,b c' -> ['a', 'b', 'c'] (commas or spaces)."""
    return [t.strip() for t in (text or "").replace(" ", ",").split(",") if t.strip()]


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); 'a-b' ranges are accepted ('0-4'); repeats are dropped."""
    seeds: list[int] = []
    for token in split_names(text):
        low, sep, high = token.partition("-")
        try:
            first, last = int(low), int(high if sep else low)
        except ValueError:
            raise ValueError(f"--seeds {text!r}: expected integers such as 0,1,2,3,4 or 0-4") from None
        if last < first:
            raise ValueError(f"--seeds {text!r}: the range {token} runs backwards; write {last}-{first}")
        seeds.extend(range(first, last + 1))
    if not seeds:
        raise ValueError("--seeds is empty; give e.g. 0,1,2,3,4")
    return tuple(dict.fromkeys(seeds))
