"""The sandbox: no path, symlink, hard link, race, FIFO or device file escapes the
roots, and nothing hangs. Real files in temporary directories; no OS mocks."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemini_failover.inputs import sandbox
from gemini_failover.inputs.sandbox import (
    ALLOWED_DIRS_ENV,
    InputError,
    Roots,
    parse_allowed_dirs,
    user_path,
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "inside" / "d1").mkdir(parents=True)
    (tmp_path / "outside" / "d2").mkdir(parents=True)
    (tmp_path / "inside" / "f").write_text("inside f")
    (tmp_path / "inside" / "d1" / "g").write_text("inside g")
    (tmp_path / "outside" / "s").write_text("secret")
    (tmp_path / "outside" / "d2" / "t").write_text("secret t")
    return tmp_path


def read(roots: Roots, raw: str) -> bytes:
    with roots.open("files[0]", raw, allow_dir=False) as opened:
        return os.read(opened.fd, 1 << 16)


def refused(roots: Roots, raw: str, allow_dir: bool = True) -> InputError:
    with pytest.raises(InputError) as info, roots.open("files[0]", raw, allow_dir=allow_dir):
        pass
    assert info.value.argument == "files[0]"
    assert info.value.path == raw
    assert raw in str(info.value)
    return info.value


@contextlib.contextmanager
def after_check(hook: Callable[[str], None]) -> Iterator[None]:
    sandbox._after_check = hook
    try:
        yield
    finally:
        sandbox._after_check = None


# -- parsing ---------------------------------------------------------------------------


def test_nothing_is_readable_without_roots_and_the_error_says_how(tree: Path) -> None:
    error = refused(Roots([]), str(tree / "inside" / "f"))
    assert "roots" in error.problem
    assert ALLOWED_DIRS_ENV in error.problem


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("inside/f", "not an absolute path"),
        ("~/f", "not an absolute path"),
        ("", "empty"),
        ("/tmp/a\x00b", "NUL"),
        ("file:///tmp/a%00b", "NUL"),
        ("file://example.com/etc/passwd", "host"),
        ("file:///etc/passwd?x=1", "query"),
        ("https://example.com/a.txt", "file:// URIs"),
        ("c:relative", "file:// URIs"),
        ("file:///tmp/%ff", "not UTF-8"),
    ],
)
def test_bad_paths_are_refused_before_any_lookup(raw: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        user_path("files[3]", raw)


def test_an_absolute_path_may_contain_a_colon_and_slashes() -> None:
    assert user_path("files[0]", "/tmp/a://b") == "/tmp/a://b"


def test_file_uris_are_percent_decoded_and_localhost_is_local(tree: Path) -> None:
    spaced = tree / "inside" / "a b%.txt"
    spaced.write_text("spaced")
    roots = Roots([tree / "inside"])
    assert read(roots, "file://" + quote(str(spaced))) == b"spaced"
    assert read(roots, "file://localhost" + quote(str(spaced))) == b"spaced"


def test_allowed_dirs_env_value_is_split_on_pathsep() -> None:
    assert parse_allowed_dirs(f" /a {os.pathsep}{os.pathsep}/b") == ["/a", "/b"]
    assert parse_allowed_dirs(None) == []


def test_roots_are_real_paths_deduplicated(tree: Path) -> None:
    (tree / "rootlink").symlink_to(tree / "inside")
    roots = Roots([tree / "inside", tree / "rootlink", f"file://{tree}/inside"])
    assert roots.dirs == (os.path.realpath(tree / "inside"),)
    assert read(roots, str(tree / "rootlink" / "f")) == b"inside f"
    with pytest.raises(InputError, match="absolute"):
        Roots(["relative/dir"])


# -- escapes -----------------------------------------------------------------------------


def test_files_inside_are_read_and_outside_refused(tree: Path) -> None:
    roots = Roots([tree / "inside"])
    assert read(roots, str(tree / "inside" / "d1" / "g")) == b"inside g"
    assert "outside the allowed folders" in refused(roots, str(tree / "outside" / "s")).problem


def test_dotdot_cannot_climb_out(tree: Path) -> None:
    roots = Roots([tree / "inside"])
    refused(roots, str(tree / "inside" / ".." / "outside" / "s"))
    refused(roots, str(tree / "inside" / "d1" / ".." / ".." / "outside" / "s"))
    assert read(roots, str(tree / "inside" / "d1" / ".." / "f")) == b"inside f"


def test_a_sibling_sharing_the_roots_prefix_is_outside(tree: Path) -> None:
    evil = tree / "inside-evil"
    evil.mkdir()
    (evil / "x").write_text("x")
    assert "outside" in refused(Roots([tree / "inside"]), str(evil / "x")).problem


def test_symlink_from_inside_to_outside_is_refused(tree: Path) -> None:
    (tree / "inside" / "link").symlink_to(tree / "outside" / "s")
    (tree / "inside" / "dirlink").symlink_to(tree / "outside" / "d2")
    roots = Roots([tree / "inside"])
    refused(roots, str(tree / "inside" / "link"))
    refused(roots, str(tree / "inside" / "dirlink" / "t"))


def test_symlink_from_outside_into_a_root_is_followed(tree: Path) -> None:
    (tree / "outside" / "in").symlink_to(tree / "inside" / "d1")
    assert read(Roots([tree / "inside"]), str(tree / "outside" / "in" / "g")) == b"inside g"


def test_symlink_chains_and_loops(tree: Path) -> None:
    inside = tree / "inside"
    (inside / "c1").symlink_to("c2")
    (inside / "c2").symlink_to("d1/g")
    (inside / "e1").symlink_to("e2")
    (inside / "e2").symlink_to("../outside/s")
    (inside / "loop1").symlink_to("loop2")
    (inside / "loop2").symlink_to("loop1")
    roots = Roots([inside])
    assert read(roots, str(inside / "c1")) == b"inside g"
    refused(roots, str(inside / "e1"))
    refused(roots, str(inside / "loop1"))


def test_dangling_symlink_outside_is_reported_as_outside_not_missing(tree: Path) -> None:
    (tree / "inside" / "dangling").symlink_to(tree / "outside" / "nothing-here")
    assert "outside" in refused(Roots([tree / "inside"]), str(tree / "inside" / "dangling")).problem
    assert (
        "does not exist" in refused(Roots([tree / "inside"]), str(tree / "inside" / "no")).problem
    )


def test_case_variants_do_not_reach_other_folders_on_linux(tree: Path) -> None:
    # Linux filesystems are case-sensitive: INSIDE is another (missing) folder.
    roots = Roots([tree / "inside"])
    refused(roots, str(tree / "INSIDE" / "f"))
    upper = tree / "INSIDE"
    upper.mkdir()
    (upper / "f").write_text("other")
    assert "outside" in refused(roots, str(upper / "f")).problem


def test_a_hard_link_inside_a_root_is_inside(tree: Path) -> None:
    # Documented: one inode, no "real" location; making the link needed access already.
    os.link(tree / "outside" / "s", tree / "inside" / "hard")
    assert read(Roots([tree / "inside"]), str(tree / "inside" / "hard")) == b"secret"


# -- special files -----------------------------------------------------------------------


def test_fifo_is_refused_without_blocking(tree: Path) -> None:
    os.mkfifo(tree / "inside" / "pipe")
    assert "FIFO" in refused(Roots([tree / "inside"]), str(tree / "inside" / "pipe")).problem


def test_socket_is_refused(tree: Path) -> None:
    # AF_UNIX paths are short: bind in a short temporary folder that is the root.
    with tempfile.TemporaryDirectory(dir="/tmp") as short, socket.socket(socket.AF_UNIX) as s:
        s.bind(os.path.join(short, "sock"))
        assert "socket" in refused(Roots([short]), os.path.join(short, "sock")).problem


@pytest.mark.parametrize("device", ["/dev/null", "/dev/zero", "/dev/urandom"])
def test_device_files_are_refused_even_under_a_root(device: str) -> None:
    assert "device" in refused(Roots(["/dev"]), device).problem


def test_a_directory_where_a_file_is_needed(tree: Path) -> None:
    assert "directory" in refused(Roots([tree]), str(tree / "inside"), allow_dir=False).problem
    with Roots([tree]).open("files[0]", str(tree / "inside")) as opened:
        assert opened.is_dir


# -- races: the filesystem changes between the check and the open --------------------------


def test_file_swapped_for_a_symlink_after_the_check_is_refused(tree: Path) -> None:
    target = tree / "inside" / "f"

    def swap(real: str) -> None:
        os.unlink(real)
        os.symlink(tree / "outside" / "s", real)

    with after_check(swap):
        assert "symlink" in refused(Roots([tree / "inside"]), str(target)).problem
    assert target.is_symlink()  # the swap did happen


def test_directory_swapped_for_a_symlink_after_the_check_is_refused(tree: Path) -> None:
    d1 = tree / "inside" / "d1"
    (tree / "outside" / "d2" / "g").write_text("secret g")

    def swap(real: str) -> None:
        shutil.rmtree(d1)
        os.symlink(tree / "outside" / "d2", d1)

    with after_check(swap):
        refused(Roots([tree / "inside"]), str(d1 / "g"))


def test_file_replaced_by_another_after_the_check_is_refused(tree: Path) -> None:
    def replace(real: str) -> None:
        os.rename(tree / "outside" / "s", real)

    with after_check(replace):
        assert "changed" in refused(Roots([tree / "inside"]), str(tree / "inside" / "f")).problem


def test_file_swapped_for_a_fifo_after_the_check_does_not_block(tree: Path) -> None:
    def swap(real: str) -> None:
        os.unlink(real)
        os.mkfifo(real)

    with after_check(swap):
        refused(Roots([tree / "inside"]), str(tree / "inside" / "f"))


# -- property: generated trees, symlinks, paths and races --------------------------------

NAMES = ["f", "g", "s", "t", "d1", "d2", "l1", "l2", "l3", "hard", "pipe", "inside", "outside"]
STEPS = [*NAMES, "..", ".", "INSIDE", ""]
PLACES = ["inside", "inside/d1", "outside", "outside/d2", ""]
TARGETS = [
    "f", "g", "s", "d1", "d2", "l1", "l2", "l3", "..", "../..", "../outside/s",
    "../outside/d2", "../inside/f", "/dev/null", "/etc/passwd", "/", "@inside", "@outside/s",
]  # fmt: skip
#: Paths that lead somewhere (mostly inside), so the races have something to act on.
USEFUL = [
    ["inside", "f"], ["inside", "d1", "g"], ["inside", "l1"], ["inside", "d1", "l2"],
    ["outside", "l1"], ["inside", "d1", "..", "f"], ["inside", "hard"], ["inside", "pipe"],
    ["inside", "l3", "g"], ["outside", "l2", "f"], ["inside"], ["inside", "d1"],
]  # fmt: skip
MUTATIONS = ["none", "symlink-out", "dir-symlink-out", "rename-in", "fifo", "delete"]


def _build(base: Path, links: list[tuple[str, str, str]], hard: bool, fifo: bool) -> None:
    for d in ("inside/d1", "outside/d2"):
        (base / d).mkdir(parents=True)
    (base / "inside/f").write_text("f")
    (base / "inside/d1/g").write_text("g")
    (base / "outside/s").write_text("s")
    (base / "outside/d2/t").write_text("t")
    (base / "outside/d2/g").write_text("outside g")  # so a swapped d1 would lead somewhere
    if hard:
        os.link(base / "outside/s", base / "inside/hard")
    if fifo:
        os.mkfifo(base / "inside/pipe")
    for place, name, target in links:
        where = base / place / name
        if where.exists() or where.is_symlink():
            continue
        dest = str(base / target[1:]) if target.startswith("@") else target
        os.symlink(dest, where)


def _inside_ids(inside: Path) -> set[tuple[int, int]]:
    ids = set()
    for top, dirs, files in os.walk(inside):
        for name in [*dirs, *files, "."]:
            st_ = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(st_.st_mode) or stat.S_ISDIR(st_.st_mode):
                ids.add((st_.st_dev, st_.st_ino))
    return ids


def _mutate(kind: str, base: Path) -> Callable[[str], None]:
    def hook(real: str) -> None:
        if kind == "none" or not real.startswith(str(base)):
            return
        if kind == "dir-symlink-out":
            d1 = base / "inside/d1"
            if d1.is_dir() and not d1.is_symlink():
                shutil.rmtree(d1)
                os.symlink(base / "outside/d2", d1)
            return
        if not os.path.lexists(real) or os.path.isdir(real):
            return
        os.unlink(real)
        if kind == "symlink-out":
            os.symlink(base / "outside/s", real)
        elif kind == "rename-in":
            shutil.copy(base / "outside/d2/t", real)
        elif kind == "fifo":
            os.mkfifo(real)

    return hook


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    links=st.lists(
        st.tuples(
            st.sampled_from(PLACES[:4]), st.sampled_from(NAMES[6:9]), st.sampled_from(TARGETS)
        ),
        max_size=6,
    ),
    hard=st.booleans(),
    fifo=st.booleans(),
    start=st.sampled_from(["", "", "inside", "outside", "/"]),
    steps=st.one_of(st.sampled_from(USEFUL), st.lists(st.sampled_from(STEPS), max_size=5)),
    as_uri=st.booleans(),
    mutation=st.sampled_from(MUTATIONS),
)
def test_property_no_escape_and_no_hang(
    links: list[tuple[str, str, str]],
    hard: bool,
    fifo: bool,
    start: str,
    steps: list[str],
    as_uri: bool,
    mutation: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp).resolve()
        _build(base, links, hard, fifo)
        inside = base / "inside"
        allowed = _inside_ids(inside)  # at check time (hard links to outside included)
        path = os.path.join("/" if start == "/" else str(base / start), *steps)
        raw = "file://" + quote(path) if as_uri else path
        real = os.path.realpath(path)
        expect_ok = (
            mutation == "none"
            and (real == str(inside) or real.startswith(str(inside) + os.sep))
            and os.path.exists(real)
            and (os.path.isdir(real) or stat.S_ISREG(os.stat(real).st_mode))
        )
        roots = Roots([inside])
        error: InputError | None = None
        got: tuple[int, int] | None = None
        with after_check(_mutate(mutation, base)):
            try:
                with roots.open("files[0]", raw) as opened:
                    got = (opened.st.st_dev, opened.st.st_ino)
                    assert stat.S_ISREG(opened.st.st_mode) or stat.S_ISDIR(opened.st.st_mode)
                    if stat.S_ISREG(opened.st.st_mode):
                        os.read(opened.fd, 16)  # readable without blocking
            except InputError as exc:
                error = exc
        if error is not None:
            assert (error.argument, error.path) == ("files[0]", raw)
            assert not expect_ok, f"{raw} should be readable: {error}"
            return
        assert got in allowed, f"{raw} escaped the root"
