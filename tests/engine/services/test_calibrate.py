"""Human labels as the targets the verifiers are calibrated against."""

def test_human_exhaustivity_labels_as_verifier_targets():
    from engine.db.models import TaskKind
    from engine.services.calibrate import human_positive

    ev, mv = TaskKind.CHECK_EXHAUSTIVITY, TaskKind.VERIFY_MASK
    assert human_positive(ev, "complete", "with_masks") == 1
    assert human_positive(ev, "missing", "with_masks") == 0
    assert human_positive(ev, "not_present", "presence") == 1  # no masks, nothing missing
    assert human_positive(ev, "not_present", "with_masks") == 0  # the masks were all wrong
    assert [human_positive(mv, label, "all") for label in ("accept", "reject", "ungroundable")] == [1, 0, 0]
