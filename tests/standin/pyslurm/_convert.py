# Stand-in only (no counterpart module in pyslurm): pure-Python ports of the pyslurm
# 25.11.2 helpers the stand-in classes need, so values convert exactly as they do there.
# Read from the pyslurm-25.11.2 sdist:
#   pyslurm/utils/uint.pyx     u16, u32, u64, uint_bool, u16_parse, u32_parse
#   pyslurm/utils/ctime.pyx    timestr_to_mins, timestr_to_secs, date_to_timestamp, _raw_time
#   pyslurm/utils/helpers.pyx  uid_to_name, user_to_uid, signal_to_num, dehumanize,
#                              _get_exit_code, MEMORY_UNITS
#   pyslurm/utils/cstr.pyx     fmalloc (str check), list_to_str, from_gres_dict
#   pyslurm/constants.py       UNLIMITED
# Numeric limits are Slurm's (slurm.h): NO_VAL, INFINITE, NO_VAL16, INFINITE16.
# Cython's conversion of a Python object to uint16_t/uint32_t (TypeError for a non-int,
# OverflowError when negative or too large) is reproduced by _c_uint().
from __future__ import annotations

import datetime
import os
import pwd
import re
import signal

UNLIMITED = "UNLIMITED"
NO_VAL = 0xFFFFFFFE
INFINITE = 0xFFFFFFFF
NO_VAL16 = 0xFFFE
INFINITE16 = 0xFFFF
NO_VAL64 = 0xFFFFFFFFFFFFFFFE
NICE_OFFSET = 0x80000000

MEMORY_UNITS = {
    "K": 2**10.0,
    "M": 2**20.0,
    "G": 2**30.0,
    "T": 2**40.0,
    "P": 2**50.0,
    "E": 2**60.0,
    "Z": 2**70.0,
}


def _c_uint(val, bits):
    """What Cython does for ``<uintN_t>val`` on a Python object."""
    if isinstance(val, bool) or isinstance(val, int):
        value = int(val)
    else:
        raise TypeError(f"an integer is required (got type {type(val).__name__})")
    if value < 0:
        raise OverflowError(f"can't convert negative value to uint{bits}_t")
    if value >= 2**bits:
        raise OverflowError(f"value too large to convert to uint{bits}_t")
    return value


def _uint(val, bits, noval, on_noval, zero_is_noval, inf=False, infinite=None):
    if val is None or (val == 0 and zero_is_noval) or val == noval:
        return on_noval
    if inf and (val == UNLIMITED or val == "unlimited"):
        return infinite
    if isinstance(val, str) and val.isdigit():
        return _c_uint(int(val), bits)
    return _c_uint(val, bits)


def u16(val, inf=False, noval=NO_VAL16, on_noval=NO_VAL16, zero_is_noval=True):
    return _uint(val, 16, noval, on_noval, zero_is_noval, inf, INFINITE16)


def u32(val, inf=False, noval=NO_VAL, on_noval=NO_VAL, zero_is_noval=True):
    return _uint(val, 32, noval, on_noval, zero_is_noval, inf, INFINITE)


def u64(val, inf=False, noval=NO_VAL64, on_noval=NO_VAL64, zero_is_noval=True):
    return _uint(val, 64, noval, on_noval, zero_is_noval, inf, 0xFFFFFFFFFFFFFFFF)


def uint_bool(val, no_val):
    if val is None:
        return no_val
    return 1 if val else 0


def u_parse(val, noval, infinite, on_inf=UNLIMITED, on_noval=None, zero_is_noval=True):
    if val is None or val == noval or (val == 0 and zero_is_noval):
        return on_noval
    if val == infinite:
        return on_inf
    return val


def _raw_time(time, on_noval=None, on_inf=None):
    if time is None or time == NO_VAL or time == 0:
        return on_noval
    if time == INFINITE:
        return on_inf
    return time


# -- Slurm time strings (slurm_time_str2mins / slurm_time_str2secs) --------------------
_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def _slurm_time_str2secs(text):
    """Slurm's accepted forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; NO_VAL if invalid."""
    text = str(text).strip()
    if text.lower() in ("-1", "infinite", "unlimited"):
        return INFINITE
    match = _TIME_RE.match(text)
    if not match:
        return NO_VAL
    days, first, second, third = match.groups()
    if days is not None:
        hours = int(first)
        minutes = int(second) if second is not None else 0
        seconds = int(third) if third is not None else 0
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if third is not None:
        return (int(first) * 60 + int(second)) * 60 + int(third)
    if second is not None:
        return int(first) * 60 + int(second)
    return int(first) * 60


def timestr_to_mins(timestr):
    """ctime.pyx: a digit *string* is returned unchanged (and later fails the uint32
    assignment with TypeError, as seen on a real controller); ints pass through."""
    if timestr is None:
        return NO_VAL
    if str(timestr).isdigit():
        return timestr
    if timestr == UNLIMITED or timestr.casefold() == "unlimited":
        return INFINITE
    secs = _slurm_time_str2secs(timestr)
    if secs == NO_VAL:
        raise ValueError(f"Invalid Time Specification: {timestr}.")
    if secs == INFINITE:
        return INFINITE
    return (secs + 59) // 60


def timestr_to_secs(timestr):
    if timestr is None:
        return NO_VAL
    if timestr == UNLIMITED or str(timestr).casefold() == "unlimited":
        return INFINITE
    if str(timestr).isdigit():
        timestr = "00:00:{}".format(timestr)
    secs = _slurm_time_str2secs(timestr)
    if secs == NO_VAL:
        raise ValueError(f"Invalid Time Specification: {timestr}.")
    return secs


def date_to_timestamp(date, on_nodate=0):
    if not date:
        return on_nodate
    if str(date).isdigit():
        return int(date)
    if isinstance(date, datetime.datetime):
        return int(date.timestamp())
    text = str(date).strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return int(datetime.datetime.strptime(text, fmt).timestamp())
        except ValueError:
            continue
    raise ValueError(f"Invalid Time Specification: {date}")


# -- users, signals, memory, exit codes -------------------------------------------------
def uid_to_name(uid, err_on_invalid=False, lookup=None):
    if uid is None or uid == NO_VAL or uid == INFINITE:
        return None
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except KeyError:
        if err_on_invalid:
            raise
    return str(uid)


def user_to_uid(user, err_on_invalid=True):
    if user is None:
        return NO_VAL
    try:
        if isinstance(user, str) and not user.isdigit():
            return pwd.getpwnam(user).pw_uid
        return pwd.getpwuid(int(user)).pw_uid
    except KeyError:
        if err_on_invalid:
            raise
    return os.getuid()


def signal_to_num(sig):
    if not sig:
        return None
    try:
        if str(sig).isnumeric():
            _sig = signal.Signals(int(sig)).value
        else:
            _sig = signal.Signals[sig].value
    except Exception:
        raise ValueError(f"Invalid Signal: {sig}.") from None
    return _sig


def dehumanize(humanized_str, target="M", decimals=0):
    if not humanized_str:
        return None
    units_str = " ".join(MEMORY_UNITS.keys())
    splitted = re.split(f"([{units_str}])", str(humanized_str))
    if len(splitted) == 1:
        try:
            return int(humanized_str)
        except ValueError:
            raise ValueError(f"Invalid value specified: {humanized_str}")
    val = float(splitted[0])
    unit = splitted[1]
    val_in_bytes = val * MEMORY_UNITS[unit]
    val_in_target_size = float(val_in_bytes / MEMORY_UNITS[target])
    if not decimals:
        return round(val_in_target_size)
    return float(f"{val_in_target_size:.{decimals}f}")


def _get_exit_code(exit_code):
    """helpers.pyx: a raw wait status -> (exit status, signal); note the -128."""
    exit_state = sig = 0
    if exit_code != NO_VAL:
        if os.WIFSIGNALED(exit_code):
            exit_state, sig = 0, os.WTERMSIG(exit_code)
        elif os.WIFEXITED(exit_code):
            exit_state, sig = os.WEXITSTATUS(exit_code), 0
            if exit_state >= 128:
                exit_state -= 128
    return exit_state, sig


def raw_wait_status(text):
    """Slurm's printed ``EXIT:SIGNAL`` back to the raw status pyslurm receives."""
    if not text or ":" not in str(text):
        return 0
    code, _, sig = str(text).partition(":")
    try:
        code_i, sig_i = int(code), int(sig)
    except ValueError:
        return 0
    if sig_i:
        return sig_i & 0x7F
    return (code_i & 0xFF) << 8


# -- char* fields -------------------------------------------------------------------------
def check_cstr(name, val):
    """cstr.fmalloc: ``val[0]`` then a char* coercion, so only str (or bytes) pass."""
    if not val:
        return None
    if not isinstance(val, (str, bytes)):
        raise TypeError(f"expected str for {name}, got {type(val).__name__}")
    if isinstance(val, bytes):
        val = val.decode()
    if val[0] == "\0":
        return None
    return val.split("\0", 1)[0]


def list_to_str(vals, delim=","):
    final = vals
    if vals and not isinstance(vals, str):
        final = delim.join(vals)
    return final


def from_gres_dict(vals, typ=""):
    final = []
    gres_dict = {} if not vals else vals
    if not vals:
        return None
    if isinstance(vals, str) and not vals.isdigit():
        gres_dict = {}
        gres_list = vals.replace("gres:", "")
        for gres_str in gres_list.split(","):
            gres_and_type, cnt = gres_str.rsplit(":", 1)
            gres_dict.update({gres_and_type: int(cnt)})
    elif not isinstance(vals, dict):
        return f"gres:{typ}:{int(vals)}"
    for gres_and_type, cnt in gres_dict.items():
        if len(gres_and_type.split(":")) > 2:
            raise ValueError(f"Invalid specifier: '{gres_and_type}'")
        if typ not in gres_and_type:
            gres_and_type = f"{typ}:{gres_and_type}"
        final.append(f"gres:{gres_and_type}:{int(cnt)}")
    return ",".join(final)
