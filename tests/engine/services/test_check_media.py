"""``dataengine check`` F1 (orphan media files) and F2 (missing media files) on real files: found with
their keys and the images' source URIs, counted exactly past the limit, F1 repaired (old orphans and
leftover temporary files removed; young files, named files and F2 left alone)."""

from __future__ import annotations

import os
import time

from engine.db.models import Image
from engine.services import check as checker
from engine.services.check import MediaCheck
from tests.factories import seed_review_items

HOUR = 3600


def aged(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def plant(session, media):
    made = seed_review_items(session, media, n_images=3, phrases=("dog",))
    images = [session.get(Image, i) for i in made["images"]]
    for image in images:
        aged(media / image.storage_key, 2 * HOUR)  # named files, old: never orphans
    images[0].source_uri = "https://example.org/lost.png"
    session.commit()
    (media / images[0].storage_key).unlink()  # F2
    folder = media / images[1].storage_key.rsplit("/", 1)[0]
    old = folder / ("f" * 64 + ".png")
    old.write_bytes(b"orphan")
    aged(old, 2 * HOUR)
    tmp = media / "ab" / "cd" / ".tmp-0123456789abcdef.png"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half")
    aged(tmp, 2 * HOUR)
    young = folder / ("e" * 64 + ".png")
    young.write_bytes(b"being committed")
    return images, old, tmp, young


def test_orphan_and_missing_files_are_found_and_orphans_repaired(session, settings):
    media = settings.media_path
    images, old, tmp, young = plant(session, media)
    check = MediaCheck(media, grace_s=HOUR)

    report = checker.check(session, media=check)

    f1, f2 = report.result("F1"), report.result("F2")
    assert sorted(v.ids["file"] for v in f1.violations) == sorted(
        [str(old.relative_to(media)), str(tmp.relative_to(media))])
    assert any("temporary file" in v.detail for v in f1.violations)
    assert [v.ids for v in f2.violations] == [{"image": images[0].id, "file": images[0].storage_key}]
    assert "https://example.org/lost.png" in f2.violations[0].detail
    assert not report.ok and report.total == 3
    limited = checker.check(session, limit_per_invariant=1, codes=["F1"], media=check)
    assert limited.result("F1").count == 2 and len(limited.result("F1").violations) == 1

    repairs = checker.repair(session, media=check)
    session.commit()

    assert sorted(r.ids["file"] for r in repairs if r.code == "F1") == sorted(
        [str(old.relative_to(media)), str(tmp.relative_to(media))])
    assert not old.exists() and not tmp.exists()
    assert young.exists()  # younger than the grace period: a batch may commit its row yet
    assert all((media / i.storage_key).exists() for i in images[1:])
    after = checker.check(session, media=check)
    assert after.result("F1").count == 0
    assert after.result("F2").count == 1  # never repaired: a person mines it again
    assert not (media / images[0].storage_key).exists()


def test_without_a_media_root_the_f_invariants_are_not_run(session, settings):
    seed_review_items(session, settings.media_path, n_images=1, phrases=("dog",))
    session.commit()
    report = checker.check(session)
    assert not {"F1", "F2"} & {r.invariant.code for r in report.results}


def test_a_file_stored_again_is_young_again(session, settings):
    """An old orphan whose bytes are mined again (a row about to name it, not committed yet) is touched
    by the store, so the repair leaves it for the grace period."""
    import hashlib

    from engine.storage import LocalMediaStore

    media = settings.media_path
    store = LocalMediaStore(media)
    data = b"bytes of an image mined before, its row since lost"
    sha = hashlib.sha256(data).hexdigest()
    key = store.put(sha, "png", data)
    aged(media / key, 2 * HOUR)
    check = MediaCheck(media, grace_s=HOUR)
    assert [v.ids["file"] for v in checker.check(session, codes=["F1"], media=check).result("F1").violations] == [key]

    again = store.store(sha, "png", data)

    assert again.key == key and not again.created
    assert checker.repair(session, media=MediaCheck(media, grace_s=HOUR)) == []
    assert (media / key).exists()
