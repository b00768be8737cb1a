"""A list of image URLs: ``.txt`` (``URL`` or ``URL<TAB>caption`` per line, ``#`` comments) or
``.csv`` / ``.tsv`` with a header that names a ``url`` column and optionally a caption column.
A line that is not a URL (no ``scheme://``, or holding a control character such as NUL), a line
longer than ``MAX_LINE_CHARS`` (read in bounded pieces, never whole) and a CSV row the parser
refuses each fail alone as ``line:N``, without quoting the line."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from engine.domain.vocabulary import SourceKind
from engine.settings import FetchSettings
from engine.sources.base import (
    CAPTION_KEYS,
    FetchError,
    ReadResult,
    Source,
    SourceError,
    SourceItem,
    real_path,
    safe_text,
    timed_read,
)
from engine.sources.http import HttpFetcher

MAX_KEY = 1000
MAX_LINE_CHARS = 64 * 1024  # a longer line is no URL (and is not held in memory)
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TOO_LONG = f"is longer than {MAX_LINE_CHARS:,} characters; not read"


class UrlListSource(Source):
    kind = SourceKind.URLS
    queue = "io"

    def __init__(self, uri: str, fetch: FetchSettings, *, media_type: str = "image") -> None:
        path = Path(uri).expanduser()
        if not path.is_file():
            raise SourceError(f"URL list not found: {uri}")
        self.path = real_path(path)
        self.uri = str(self.path)
        self.fetch_settings = fetch
        self.media_type = media_type
        self._fetcher: HttpFetcher | None = None

    def iter_items(self) -> Iterator[SourceItem]:
        suffix = self.path.suffix.lower()
        rows = self._table_rows(suffix) if suffix in (".csv", ".tsv") else self._text_rows()
        for line_no, url, caption in rows:
            if url is None:  # the line could not be read: ``caption`` says why
                yield SourceItem(key=f"line:{line_no}", meta={"line": line_no},
                                 locator={"error": f"line {line_no} {caption}"})
                continue
            meta: dict[str, Any] = {"line": line_no}
            if caption:
                meta["captions"] = [safe_text(caption)]
            if not _URL_LIKE.match(url) or _CONTROL.search(url):  # neither key nor reason quotes the line
                yield SourceItem(key=f"line:{line_no}", meta={"line": line_no},
                                 locator={"error": f"line {line_no} is not a URL"})
                continue
            key = url if len(url) <= MAX_KEY else f"line:{line_no}"
            yield SourceItem(key=key, locator={"url": url}, meta=meta)

    def _text_rows(self) -> Iterator[tuple[int, str | None, str | None]]:
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(bounded_lines(handle), start=1):
                if line is None:
                    yield line_no, None, TOO_LONG
                    continue
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                url, _, caption = line.partition("\t")
                yield line_no, url.strip(), caption.strip() or None

    def _table_rows(self, suffix: str) -> Iterator[tuple[int, str | None, str | None]]:
        too_long: list[int] = []
        read = [0]  # physical lines handed to the CSV reader

        def lines(handle: TextIO) -> Iterator[str]:
            for line_no, line in enumerate(bounded_lines(handle), start=1):
                read[0] = line_no
                if line is None:
                    too_long.append(line_no)
                    yield "\n"  # a blank row in its place keeps the line count
                else:
                    yield line

        with self.path.open(encoding="utf-8", errors="replace", newline="") as handle:
            reader = csv.DictReader(lines(handle), delimiter="\t" if suffix == ".tsv" else ",")
            try:
                fields = {name.lower().strip(): name for name in reader.fieldnames or []}
            except csv.Error as exc:
                raise SourceError(f"{self.path.name}: the header cannot be parsed as CSV ({exc})") from None
            if "url" not in fields:
                raise SourceError(f"{self.path.name}: the header has no 'url' column")
            caption_field = next((fields[k] for k in CAPTION_KEYS if k in fields), None)
            while True:
                before = read[0]
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:  # the reader goes on with the next line
                    yield read[0], None, f"cannot be parsed as CSV ({exc})"
                    if read[0] == before:  # nothing consumed: it would fail again
                        break
                    continue
                finally:
                    while too_long:
                        yield too_long.pop(0), None, TOO_LONG
                url = row.get(fields["url"])
                url = url.strip() if isinstance(url, str) else ""
                if url:
                    caption = row.get(caption_field) if caption_field else ""
                    caption = caption.strip() if isinstance(caption, str) else ""
                    yield read[0], url, caption or None

    @property
    def fetcher(self) -> HttpFetcher:
        if self._fetcher is None:
            self._fetcher = HttpFetcher(self.fetch_settings, media_type=self.media_type)
        return self._fetcher

    def read(self, locator: dict[str, Any]) -> bytes:
        if "error" in locator:
            raise FetchError(str(locator["error"]))
        url = locator.get("url")
        if not isinstance(url, str):
            raise FetchError("bad locator: no url")
        return self.fetcher.fetch(url)

    def read_many(self, requests: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[ReadResult]:
        """Download concurrently (``fetch.concurrency`` at a time); yield in request order."""
        requests = list(requests)
        workers = min(self.fetch_settings.concurrency, max(len(requests), 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            futures = [pool.submit(timed_read, self, item_id, loc) for item_id, loc in requests]
            for future in futures:
                yield future.result()

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None


def bounded_lines(handle: TextIO, limit: int = MAX_LINE_CHARS) -> Iterator[str | None]:
    """The file's lines, each read in pieces of at most ``limit`` characters: a longer line is
    skipped to its end and given as None (memory stays bounded whatever the file holds)."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith("\n"):
            yield line
            continue
        while line and not line.endswith("\n"):
            line = handle.readline(limit)
        yield None
