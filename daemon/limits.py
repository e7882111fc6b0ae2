"""The sizes palletd accepts for free-form values that it stores and repeats.

Owns: the documented limits of labels, a process's arguments and environment, an import's
config changes, host names and working directories, and the checks that raise
InvalidArgument naming the value. Docker sets none for labels; these are
pallet's own, generous for any real use and small enough that one object cannot fill the
store, the event journal or every listing (a label is stored with its object and copied
into each of its events). Every front end shares them because the domain calls them.
Must not: do I/O, or know the API (strings' NUL bytes and the per-string cap are checked
at the gRPC edge, `pallet.daemon.api.inputs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pallet.v1.errors import InvalidArgument

#: Longest label key (bytes, UTF-8). Keys are reverse-DNS names such as com.example.role.
MAX_LABEL_KEY = 1024
#: Longest label value (bytes, UTF-8).
MAX_LABEL_VALUE = 16 * 1024
#: All the labels one request sets on one object: keys and values together (bytes).
MAX_LABELS_TOTAL = 64 * 1024
#: A process's arguments and environment together (bytes, each with its NUL): what execve
#: takes with Linux's default 8 MiB stack (a quarter of it). A longer one could never run,
#: and would only be stored, listed and copied into events.
MAX_ARGS_AND_ENV = 2 * 1024 * 1024
#: All the config changes of one import (`import -c`, Dockerfile lines), together (bytes).
MAX_CHANGES = 1024 * 1024
#: Linux's HOST_NAME_MAX: sethostname refuses a longer name.
MAX_HOSTNAME = 64
#: Linux's PATH_MAX less its NUL: chdir refuses a longer path.
MAX_PATH = 4095


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def check_labels(labels: Mapping[str, str], what: str) -> None:
    """Refuse labels of `what` ("container web", "image import") over the limits."""
    total = 0
    for key, value in labels.items():
        key_size, value_size = _size(key), _size(value)
        if not key:
            raise InvalidArgument(f"invalid label on {what}: the key is empty")
        if key_size > MAX_LABEL_KEY:
            raise InvalidArgument(
                f"label key {_shown(key)} on {what} is {key_size} bytes: a label key is at "
                f"most {MAX_LABEL_KEY} bytes"
            )
        if value_size > MAX_LABEL_VALUE:
            raise InvalidArgument(
                f"label {_shown(key)} on {what} has a value of {value_size} bytes: a label "
                f"value is at most {MAX_LABEL_VALUE} bytes ({MAX_LABEL_VALUE // 1024} KiB)"
            )
        total += key_size + value_size
    if total > MAX_LABELS_TOTAL:
        raise InvalidArgument(
            f"the labels on {what} come to {total} bytes: all the labels of one object are "
            f"at most {MAX_LABELS_TOTAL} bytes ({MAX_LABELS_TOTAL // 1024} KiB), keys and "
            "values together"
        )


def check_args_and_env(args: Iterable[str], env: Iterable[str], what: str) -> None:
    """Refuse a command and environment (of `what`: "the container") execve would refuse."""
    total = sum(_size(item) + 1 for item in args) + sum(_size(item) + 1 for item in env)
    if total > MAX_ARGS_AND_ENV:
        raise InvalidArgument(
            f"the command and environment of {what} come to {total} bytes: Linux runs a "
            f"process with at most {MAX_ARGS_AND_ENV} bytes ({MAX_ARGS_AND_ENV >> 20} MiB) "
            "of arguments and environment together"
        )


def check_changes(changes: Iterable[str]) -> None:
    total = sum(_size(change) for change in changes)
    if total > MAX_CHANGES:
        raise InvalidArgument(
            f"the config changes come to {total} bytes: one import takes at most "
            f"{MAX_CHANGES} bytes ({MAX_CHANGES >> 20} MiB) of them"
        )


def check_hostname(hostname: str) -> None:
    size = _size(hostname)
    if size > MAX_HOSTNAME:
        raise InvalidArgument(
            f"invalid hostname {_shown(hostname)}: it is {size} bytes, and Linux allows "
            f"at most {MAX_HOSTNAME}"
        )


def check_path(path: str, what: str) -> None:
    """Refuse a path longer than Linux's PATH_MAX (`what`: "the working directory")."""
    size = _size(path)
    if size > MAX_PATH:
        raise InvalidArgument(
            f"{what} {_shown(path)} is {size} bytes: Linux allows paths of at most "
            f"{MAX_PATH} bytes"
        )
