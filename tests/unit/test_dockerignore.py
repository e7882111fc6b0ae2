"""`.dockerignore` matching (`client.dockerignore`), checked against moby's own tables
(patternmatcher's TestMatches, the filepath.Match cases it borrows, ignorefile.ReadAll's
rules) and docker's walk rule for excluded directories."""

from __future__ import annotations

import pytest

from pallet.client.dockerignore import Matcher, clean, read_patterns
from pallet.v1.errors import InvalidArgument

# patternmatcher_test.go's TestMatches: (pattern, path, excluded).
SINGLE = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True),
    ("**", "/", True), ("**/", "/", True), ("**", "dir/file", True), ("**/", "dir/file", True),
    ("**", "dir/file/", True), ("**/", "dir/file/", True), ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True), ("dir/**", "dir/file", True), ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True), ("dir/**", "dir/dir2/file/", True), ("**/dir", "dir", True),
    ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True), ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True), ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True), ("**file", "dir/file", True), ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True), ("**/file", "dir/dir/file", True), ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True), ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True), ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True), ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True), ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False), ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False), ("a[^b-d]e", "aze", True),
    (".*", ".foo", True), (".*", "foo", False), ("abc.def", "abcdef", False), ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False), ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True), ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True), ("abc/**", "abc", False), ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True), ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True), ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
    # filepath.Match's table, as patternmatcher borrows it (the valid patterns).
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", True), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("[\\-x]", "-", True), ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]

# (patterns, path, excluded): exceptions and order.
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README.md", False),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "other.md", True),
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "temp", False),
    (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
    (["temp?"], "temp1", True),
    (["temp?"], "temp12", False),
    (["node_modules"], "node_modules/pkg/index.js", True),
    (["node_modules"], "src/node_modules/pkg", False),
    (["**/node_modules"], "src/node_modules/pkg", True),
    ([], "anything", False),
]


@pytest.mark.parametrize(("pattern", "path", "excluded"), SINGLE)
def test_moby_single_patterns(pattern: str, path: str, excluded: bool) -> None:
    assert Matcher([pattern]).excludes(path) is excluded


@pytest.mark.parametrize(("pattern", "path", "excluded"), SINGLE)
def test_moby_single_patterns_with_the_parents_results(pattern: str, path: str, excluded: bool) -> None:
    """The walk's way (MatchesUsingParentResults): each directory's results handed down."""
    assert _walked(Matcher([pattern]), path) is excluded


@pytest.mark.parametrize(("patterns", "path", "excluded"), MULTI)
def test_exceptions_and_order(patterns: list[str], path: str, excluded: bool) -> None:
    matcher = Matcher(patterns)
    assert matcher.excludes(path) is excluded
    assert _walked(matcher, path) is excluded


def _walked(matcher: Matcher, path: str) -> bool:
    """As moby's test walks: the parents are those of Go's filepath.Dir(path)."""
    parent = clean(path[: path.rfind("/") + 1]) if "/" in path else "."
    results: list[bool] | None = None
    if parent != ".":
        dirs = parent.split("/")
        for i in range(len(dirs)):
            _, results = matcher.match("/".join(dirs[: i + 1]), results)
    return matcher.match(path, results)[0]


def test_the_context_itself_is_never_excluded() -> None:
    assert Matcher(["*", "**"]).excludes(".") is False
    assert Matcher(["**"]).excludes("./") is False


@pytest.mark.parametrize(
    "pattern",
    ["[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[z-a]", "!"],
)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid .dockerignore pattern"):
        Matcher([pattern])


@pytest.mark.parametrize(
    ("text", "patterns"),
    [
        ("\ufeff*.pyc\n", ["*.pyc"]),
        ("# a comment\n  # not one: a pattern\n", ["# not one: a pattern"]),
        ("/abs\n!/abs/keep\n", ["abs", "!abs/keep"]),
        ("  spaced  \n\n\t\n", ["spaced"]),
        ("./a/../b/\n", ["b"]),
        ("! keep.txt\n", ["!keep.txt"]),
        ("dir//sub/\n", ["dir/sub"]),
        ("/\n", ["/"]),
        ("!\n", ["!"]),
        ("a\r\nb\r\n", ["a", "b"]),
    ],
)
def test_reading_the_file(text: str, patterns: list[str]) -> None:
    assert read_patterns(text) == patterns


def test_a_leading_slash_means_the_contexts_root() -> None:
    matcher = Matcher(read_patterns("/build\n"))
    assert matcher.excludes("build/x")
    assert not matcher.excludes("src/build/x")


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "."), (".", "."), ("a/./b", "a/b"), ("a/b/../c", "a/c"), ("../a", "../a"), ("a/../..", ".."),
     ("/../a", "/a"), ("//a//", "/a"), ("a/", "a")],
)
def test_clean_is_gos(path: str, cleaned: str) -> None:
    assert clean(path) == cleaned


def test_an_excluded_directory_is_walked_only_for_an_exception_below_it() -> None:
    matcher = Matcher(["docs", "!docs/keep.md", "build"])
    assert matcher.may_include_below("docs")
    assert not matcher.may_include_below("build")
    assert not Matcher(["docs"]).may_include_below("docs")
    # Docker's test is a textual prefix of the exception: `!*/keep` opens no directory.
    assert not Matcher(["*", "!*/keep"]).may_include_below("docs")
