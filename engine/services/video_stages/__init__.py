"""The stages of a video job after mining (caption, parse, propose, negatives, verify; route runs
``engine.services.route`` on the videos' pairs): one module per stage, each the video counterpart
of the image service of the same name, with the same guarantees (claimed batches, per-video
failure with its reason, idempotent re-runs, model version stamps). A stage's subject ids are
video ids."""
