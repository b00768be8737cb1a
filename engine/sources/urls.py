"""A list of image URLs: ``.txt`` (``URL`` or ``URL<TAB>caption`` per line, ``#`` comments) or
``.csv`` / ``.tsv`` with a header that names a ``url`` column and optionally a caption column.
A line that is not a URL (no ``scheme://``) fails alone as ``line:N``, without quoting the line."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.settings import FetchSettings
from engine.sources.base import (
    CAPTION_KEYS, FetchError, ReadResult, Source, SourceError, SourceItem, timed_read,
)
from engine.sources.http import HttpFetcher

MAX_KEY = 1000
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S")


class UrlListSource(Source):
    kind = "urls"
    queue = "io"

    def __init__(self, uri: str, fetch: FetchSettings) -> None:
        path = Path(uri).expanduser()
        if not path.is_file():
            raise SourceError(f"URL list not found: {uri}")
        self.path = path.resolve()
        self.uri = str(self.path)
        self.fetch_settings = fetch
        self._fetcher: HttpFetcher | None = None

    def iter_items(self) -> Iterator[SourceItem]:
        suffix = self.path.suffix.lower()
        rows = self._table_rows(suffix) if suffix in (".csv", ".tsv") else self._text_rows()
        for line_no, url, caption in rows:
            meta: dict[str, Any] = {"line": line_no}
            if caption:
                meta["captions"] = [caption]
            if not _URL_LIKE.match(url):  # not a URL: neither its key nor its reason quotes the line
                yield SourceItem(key=f"line:{line_no}", meta={"line": line_no},
                                 locator={"error": f"line {line_no} is not a URL"})
                continue
            key = url if len(url) <= MAX_KEY else f"line:{line_no}"
            yield SourceItem(key=key, locator={"url": url}, meta=meta)

    def _text_rows(self) -> Iterator[tuple[int, str, str | None]]:
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(handle, start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                url, _, caption = line.partition("\t")
                yield line_no, url.strip(), caption.strip() or None

    def _table_rows(self, suffix: str) -> Iterator[tuple[int, str, str | None]]:
        with self.path.open(encoding="utf-8", errors="replace", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            fields = {name.lower().strip(): name for name in reader.fieldnames or []}
            if "url" not in fields:
                raise SourceError(f"{self.path.name}: the header has no 'url' column")
            caption_field = next((fields[k] for k in CAPTION_KEYS if k in fields), None)
            for line_no, row in enumerate(reader, start=2):
                url = (row.get(fields["url"]) or "").strip()
                if url:
                    caption = (row.get(caption_field) or "").strip() if caption_field else ""
                    yield line_no, url, caption or None

    @property
    def fetcher(self) -> HttpFetcher:
        if self._fetcher is None:
            self._fetcher = HttpFetcher(self.fetch_settings)
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
