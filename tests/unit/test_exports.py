"""The public surface: everything exported from fluxabee/__init__.py, sorted, documented."""

from __future__ import annotations

import builtins
import inspect
import subprocess
import sys
import typing

import fluxabee
from fluxabee import errors


def test_all_is_sorted_and_complete() -> None:
    assert list(fluxabee.__all__) == sorted(fluxabee.__all__)
    for name in fluxabee.__all__:
        assert hasattr(fluxabee, name), name


def test_every_public_name_has_a_docstring() -> None:
    for name in fluxabee.__all__:
        obj = getattr(fluxabee, name)
        if typing.get_origin(obj) is not None:
            continue  # a type alias such as AsyncHandler = Callable[...]: documented by `#:`
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and (
                    inspect.isfunction(member) or isinstance(member, property)
                ):
                    assert inspect.getdoc(member), f"{name}.{attr}"


def test_every_error_derives_from_the_root_and_none_shadows_a_builtin() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, fluxabee.FluxabeeError)
        assert not hasattr(builtins, name), name
        assert getattr(fluxabee, name) is cls


def test_error_replies_map_to_the_tree() -> None:
    loading = errors.reply_error("LOADING Redis is loading the dataset in memory")
    assert isinstance(loading, fluxabee.RedisUnavailableError)
    assert isinstance(loading, fluxabee.BrokerConnectionError)  # transient: retry later
    assert isinstance(loading, fluxabee.RedisReplyError)
    assert loading.prefix == "LOADING"
    assert isinstance(errors.reply_error("UNBLOCKED the stream key no longer exists"),
                      fluxabee.NoGroupError)  # fmt: skip
    assert isinstance(errors.reply_error("WRONGPASS invalid"), fluxabee.BrokerAuthenticationError)
    assert type(errors.reply_error("ERR unknown")) is fluxabee.RedisReplyError


def test_importing_fluxabee_does_not_import_redis_py() -> None:
    code = "import sys, fluxabee; assert 'redis' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_module_namespace_shows_only_public_names() -> None:
    assert dir(fluxabee) == sorted(fluxabee.__all__)
    leftovers = {"Any", "TYPE_CHECKING", "importlib"} & set(vars(fluxabee))
    assert not leftovers
